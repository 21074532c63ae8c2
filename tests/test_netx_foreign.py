"""netx files our exporter did not write (no /dietsnn): spike input, spiking readouts, and
agreement with Lava on networks of every accepted feature."""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pytest
import torch
from cli_helpers import assert_one_error_line, run_main
from fixtures_nets import assert_records_agree
from foreign_netx import INPUT_NEURON, INPUT_TRANSFORM, KINDS, random_foreign

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.services.inputs import load_test_images
from dietsnn_deploy.spine.network import ConvLayer, DenseLayer, InputLayer, SpikeInput
from dietsnn_deploy.spine.record import HostDrive, SpikeRasters
from exporters.netx import read_netx, write_netx
from hw_sim.emulator import Emulator, classify
from hw_sim.host import network_drive, spike_drive
from hw_sim.op_counter import OpCounter

T = 6


@pytest.fixture(params=KINDS)
def foreign(request, tmp_path):
    return random_foreign(request.param, 0, tmp_path / f"{request.param}.net")


def test_foreign_files_take_spikes_where_netx_feeds_them(tmp_path):
    dense = read_netx(random_foreign("dense", 0, tmp_path / "d.net"), timesteps=T)
    assert dense.encoder == SpikeInput((64,)) and dense.synaptic_input
    assert isinstance(dense.layers[0], DenseLayer) and dense.layers[0].neuron.i_decay == 1024
    assert dense.layers[0].bias is not None and dense.readout == "spikes"
    conv = read_netx(random_foreign("conv", 0, tmp_path / "c.net"), timesteps=T)
    assert conv.encoder == SpikeInput((1, 8, 8)) and isinstance(conv.layers[0], ConvLayer)
    assert len(conv.layers) == 4  # the shape-only input layer builds no layer, as in netx
    first = read_netx(random_foreign("input", 0, tmp_path / "i.net"), timesteps=T)
    assert isinstance(first.layers[0], InputLayer) and not first.synaptic_input
    assert first.num_classes == 10 and first.arch == "i.net"


def test_rate_coding_is_bernoulli_of_the_pixels_and_batch_independent():
    source = SpikeInput((64,))
    pixels = torch.tensor([0.0, 1.0, 0.25]).repeat(22)[:64].reshape(1, 1, 8, 8)
    images = pixels.repeat(400, 1, 1, 1)
    spikes = spike_drive(source, images, 50, seed=1).drive  # (T, N, 64)
    assert spikes.shape == (50, 400, 64) and set(spikes.unique().tolist()) <= {0, 1}
    rate = spikes.double().mean(dim=(0, 1))
    flat = pixels.reshape(-1).double()
    assert torch.all((rate - flat).abs() < 0.02)  # 20 000 draws per pixel
    assert torch.all(rate[flat == 0] == 0) and torch.all(rate[flat == 1] == 1)
    alone = spike_drive(source, images[7:8], 50, seed=1, first_index=7).drive
    assert torch.equal(alone[:, 0], spikes[:, 7])
    assert not torch.equal(spike_drive(source, images[:1], 50, seed=2).drive[:, 0], spikes[:, 0])


@pytest.mark.parametrize(("steps", "seed"), [(T, 4), (3, 9)])
def test_lava_and_emulator_agree_on_foreign_files(foreign, steps, seed):
    from hw_sim.lava.runner import run_lava

    net = read_netx(foreign, timesteps=steps)
    images, _, _ = load_test_images(net, "digits", None, 3)
    lava = run_lava(net, images, progress=False, seed=seed, file=foreign)
    emulated = Emulator(net).run(network_drive(net, images, seed=seed))
    assert_records_agree(lava.record, emulated, net, rates=(0.02, 0.9))
    assert torch.equal(lava.record.input_spikes, emulated.input_spikes)
    assert torch.equal(lava.predictions, net.class_scores(emulated).argmax(dim=1))


def test_our_writer_keeps_a_spike_input_network_and_lava_loads_it(tmp_path, foreign):
    from hw_sim.lava.runner import run_lava

    net = read_netx(foreign, timesteps=T)
    ours = tmp_path / "ours.net"
    write_netx(net, ours)
    again = read_netx(ours)
    assert again.digest() == net.digest() and again.readout == "spikes"
    with h5py.File(ours) as f:  # a first conv layer gets the input shape netx needs
        assert (f["layer/0/type"][0] == b"input") == (len(net.input_shape) == 3 or not
                                                      net.synaptic_input)  # fmt: skip
    images, _, _ = load_test_images(net, "digits", None, 2)
    from_ours = run_lava(again, images, progress=False, seed=1)  # exported afresh
    from_theirs = run_lava(net, images, progress=False, seed=1, file=foreign)
    for a, b in zip(from_ours.record.spikes, from_theirs.record.spikes, strict=True):
        assert (a is None and b is None) or torch.equal(a, b)


def test_spike_readout_scores_are_the_last_layers_spike_counts(tmp_path):
    net = read_netx(random_foreign("dense", 1, tmp_path / "d.net"), timesteps=T)
    images, _, _ = load_test_images(net, "digits", None, 40)
    record = Emulator(net).run(network_drive(net, images, seed=0))
    counts = record.spikes[-1].sum(dim=0)
    assert torch.equal(net.class_scores(record), counts)
    result = classify(net, images, progress=False)
    assert torch.equal(result.predictions, counts.argmax(dim=1))
    assert result.spike_counts[-1] == int(counts.sum()) > 0
    with pytest.raises(DeployError, match="readout threshold must be"):  # it would reset
        read_netx(tmp_path / "d.net", timesteps=T, readout="potential")


def test_input_spikes_are_priced_as_the_first_layers_synaptic_events(tmp_path):
    net = read_netx(random_foreign("dense", 2, tmp_path / "d.net"), timesteps=T)
    images, _, _ = load_test_images(net, "digits", None, 30)
    counter = OpCounter.for_network(net)
    record = Emulator(net).run(network_drive(net, images, seed=0))
    counter.add(record)
    rows = counter.result().layers
    assert [r.name for r in rows] == ["fc1", "readout"]
    per_image = float(record.input_spikes.sum()) / 30
    assert rows[0].synaptic_events == pytest.approx(per_image * 32)
    assert rows[0].ann_macs == 64 * 32 and rows[0].host_macs == 0 == rows[0].host_acs
    assert rows[1].synaptic_events == pytest.approx(float(record.spikes[0].sum()) / 30 * 10)
    assert rows[1].spiking and rows[1].spikes == pytest.approx(float(record.spikes[1].sum()) / 30)
    assert rows[0].eq17_ops == pytest.approx(per_image / 64 * 64 * 32)


def _rasters(net, images, seed):
    drive = spike_drive(net.encoder, images, net.timesteps, seed=seed).drive
    return drive.transpose(0, 1).numpy().astype(np.uint8)


def test_cli_rasters_match_the_same_spikes_drawn_from_images(tmp_path, monkeypatch, capsys):
    path = random_foreign("conv", 3, tmp_path / "c.net")
    net = read_netx(path, timesteps=T)
    images, labels, _ = load_test_images(net, "digits", None, 24)
    np.save(tmp_path / "r.npy", _rasters(net, images, seed=5))
    np.save(tmp_path / "l.npy", labels.numpy())
    common = ["simulate", str(path), "-T", str(T), "--json"]
    code, out, err = run_main(monkeypatch, capsys, *common, "--dataset", "digits", "-n", "24",
                              "--seed", "5")  # fmt: skip
    assert code == 0, err
    drawn = json.loads(out)
    code, out, err = run_main(monkeypatch, capsys, *common, "--spikes", str(tmp_path / "r.npy"),
                              "--labels", str(tmp_path / "l.npy"))  # fmt: skip
    assert code == 0, err
    rasters = json.loads(out)
    assert rasters["predictions"] == drawn["predictions"]
    assert rasters["spike_counts"] == drawn["spike_counts"] and rasters["accuracy"] is not None
    assert rasters["accuracy"] == drawn["accuracy"] and rasters["encoding"] == "spikes"
    code, out, err = run_main(monkeypatch, capsys, "simulate", str(path), "-T", str(T),
                              "--spikes", str(tmp_path / "r.npy"))  # fmt: skip
    assert code == 0 and "accuracy n/a (no labels) on 24 r.npy spike rasters" in out


def test_cli_energy_of_a_foreign_file(tmp_path, monkeypatch, capsys):
    path = random_foreign("input", 4, tmp_path / "i.net")
    code, out, err = run_main(monkeypatch, capsys, "energy", str(path), "-T", str(T),
                              "--dataset", "digits", "-n", "20", "--json",
                              str(tmp_path / "e.json"))  # fmt: skip
    assert code == 0, err
    assert "i.net on digits, deployed (Loihi fixed point) on the emulator, T=6" in out
    assert "into the input layer's a_in (no host work)" in out
    doc = json.loads((tmp_path / "e.json").read_text())
    assert [row["name"] for row in doc["layers"]] == ["input", "conv1", "readout"]
    assert doc["layers"][0]["energy_ann_pj"] == 0 and doc["layers"][0]["host_macs"] == 0


def _write(path, edit):
    with h5py.File(path, "a") as f:
        edit(f)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "does not say how many steps it runs; pass -T"),
        (["-T", "6", "--labels", "l.npy"], "--labels goes with --spikes"),
        (["-T", "6", "--spikes", "bad.npy"], "rasters are (3, 5, 64), expected (N, 6, 64)"),
        (["-T", "5", "--spikes", "bad.npy"], "rasters must hold 0 or 1 only"),
        (["-T", "5", "--spikes", "none.npy"], "spike raster file not found"),
        (["-T", "5", "--spikes", "ok.npy", "--labels", "l.npy"], "labels must be 4 integers"),
        (["-T", "5", "--spikes", "ok.npy", "--labels", "bad.npy"], "labels must be 4 integers"),
        (["-T", "5", "--spikes", "ok.npy", "--labels", "l12.npy"], "labels outside [0, 9]"),
        (["-T", "5", "--spikes", "text.npy"], "not a readable .npy array"),
        (["-T", "6", "--dataset", "fashion-mnist", "-n", "2"], "the network takes spikes (64,)"),
        (["-T", "6", "--readout", "potential", "--dataset", "digits"], "readout threshold must"),
    ],
)
def test_cli_refuses_bad_spike_input(tmp_path, monkeypatch, capsys, args, message):
    path = random_foreign("dense", 0, tmp_path / "d.net")
    bad = np.zeros((3, 5, 64), np.int8)
    bad[0, 0, 0] = 2
    np.save(tmp_path / "bad.npy", bad)
    np.save(tmp_path / "l.npy", np.zeros(3, np.int64))
    np.save(tmp_path / "ok.npy", np.zeros((4, 5, 64), bool))
    np.save(tmp_path / "l12.npy", np.full(4, 12))
    (tmp_path / "text.npy").write_text("not an array")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(monkeypatch, capsys, "simulate", str(path), *args)
    assert code == 2
    assert_one_error_line(err, message)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f["layer/1"].create_dataset("delay", data=np.ones(4)), "(netx ignores it)"),
        (lambda f: f["layer/3"].create_dataset("delay", data=np.ones((24, 256))), "fits neither"),
        (
            lambda f: f["layer/3"].create_dataset("delay", data=np.full(24, 63)),
            "layer 3 (dense): delays outside [0, 62]",
        ),  # numbered as in the file
        (lambda f: f.__delitem__("layer/0"), "a first conv layer needs an input layer"),
        (lambda f: f["layer/1/neuron/gradedSpike"].write_direct(np.array(True)), "graded spikes"),
    ],
)
def test_unsupported_foreign_features_are_refused(tmp_path, edit, message):
    path = _write(random_foreign("conv", 0, tmp_path / "n.net"), edit)
    if "input layer" in message:  # renumber so that the conv is layer 0
        with h5py.File(path, "a") as f:
            for i in range(1, len(f["layer"]) + 1):
                f["layer"].move(str(i), str(i - 1))
    with pytest.raises(DeployError, match=re.escape(message)):
        read_netx(path, timesteps=T)


def test_options_meant_for_other_files_are_refused(tmp_path, monkeypatch, capsys):
    net = read_netx(random_foreign("dense", 0, tmp_path / "d.net"), timesteps=T)
    write_netx(net, tmp_path / "ours.net")
    code, _, err = run_main(monkeypatch, capsys, "simulate", str(tmp_path / "ours.net"), "-T", "4")
    assert code == 2
    assert_one_error_line(err, "is deployed at its own T and readout")
    with pytest.raises(DeployError, match="spike rasters need a network that takes spikes"):
        from fixtures_nets import random_network

        network_drive(random_network("dense", 0), SpikeRasters(torch.zeros(1, 2, 3)))


def test_delays_by_hand_and_in_netx_layouts(tmp_path):
    """A spike at step τ through a synapse of delay d reaches the neuron at step τ + d (the
    delay-free schedule), each delay's sum floored on its own; netx's 1-d layouts expand."""
    path = random_foreign("delay", 0, tmp_path / "d.net")
    net = read_netx(path, timesteps=T)
    first = net.layers[0]
    assert first.delay.shape == (32, 64) and np.all(first.delay == first.delay[:, :1])
    assert np.all(net.layers[1].delay == net.layers[1].delay[:1, :])  # per input
    spikes = torch.zeros((T, 1, 64), dtype=torch.int64)
    spikes[1, 0, 5] = 1
    record = Emulator(net).run(HostDrive(drive=spikes))
    plain = read_netx(random_foreign("delay", 0, tmp_path / "p.net"), timesteps=T)
    synapse = Emulator(plain).synapses[0]
    a_in = synapse.over_time(spikes)  # with delays: column 5 of W arrives 1 + delay late
    weight = plain.layers[0].weight[:, 5]
    for out in range(32):
        arrival = 1 + int(first.delay[out, 5])
        expected = np.zeros(T, np.int64)
        if arrival < T:
            expected[arrival] = weight[out]
        assert a_in[:, 0, out].tolist() == expected.tolist(), out
    assert record.spikes[0][0].sum() == 0  # nothing before the spike arrives
    with h5py.File(path, "a") as f:
        del f["layer/0/delay"]
        f["layer/0"].create_dataset("delay", data=3.0)  # a scalar: every synapse
    assert np.all(read_netx(path, timesteps=T).layers[0].delay == 3)


def test_lava_isolates_images_of_a_delayed_network(tmp_path):
    """Blank samples cover the delays; after a bias (which fires in the blanks) each image runs
    alone. Either way Lava gives the emulator's spikes, image by image."""
    from hw_sim.lava.runner import blank_samples, run_lava

    net = read_netx(random_foreign("delay", 0, tmp_path / "d.net"), timesteps=3)
    total = int(net.layers[0].delay.max() + net.layers[1].delay.max())
    assert blank_samples(net) == -(-total // 3) >= 2
    path = random_foreign("delay", 0, tmp_path / "b.net")
    with h5py.File(path, "a") as f:
        f["layer/0"].create_dataset("bias", data=np.full(32, 30.0))  # fires in 2 steps alone
    biased = read_netx(path, timesteps=T)
    assert blank_samples(biased) is None
    images, _, _ = load_test_images(biased, "digits", None, 3)
    lava = run_lava(biased, images, progress=False, seed=2, file=path)
    emulated = Emulator(biased).run(network_drive(biased, images, seed=2))
    assert_records_agree(lava.record, emulated, biased, rates=(0.02, 0.95))


def test_a_first_dense_layers_bad_weight_is_one_error(tmp_path):
    """The fuzz run's finding: a scalar weight in a first dense layer (which sets the input
    shape) was an IndexError."""

    def scalar_weight(f):
        del f["layer/0/weight"]
        f["layer/0"].create_dataset("weight", data=2.0)

    path = _write(random_foreign("dense", 0, tmp_path / "d.net"), scalar_weight)
    with pytest.raises(DeployError, match=re.escape("layer 0 (dense): weight must be 2-d")):
        read_netx(path, timesteps=T)


def test_the_input_transform_makes_the_input_layers_drive_by_hand(tmp_path):
    """drive = 48·s − 4 into a LIF of v_decay 2048, threshold 60 (the "input" kind), stepped
    here in plain integers: v = trunc0(v·2048/4096) + (drive << 6), spike iff v > 60 << 6."""
    net = read_netx(random_foreign("input", 0, tmp_path / "i.net"), timesteps=T)
    assert (net.encoder.drive_per_spike, net.encoder.drive_bias) == INPUT_TRANSFORM
    images, _, _ = load_test_images(net, "digits", None, 4)
    drive = network_drive(net, images, seed=3)
    spikes = drive.spikes.numpy()
    assert np.array_equal(drive.drive.numpy(), 48 * spikes - 4)
    record = Emulator(net).run(drive)
    keep = 4096 - INPUT_NEURON["v_decay"]
    v = np.zeros(spikes.shape[1:], np.int64)
    expected = np.zeros(spikes.shape, bool)
    for t in range(T):
        v = np.trunc(v * keep / 4096).astype(np.int64) + ((48 * spikes[t] - 4) << 6)
        expected[t] = v > INPUT_NEURON["threshold"] << 6
        v[expected[t]] = 0
    assert np.array_equal(record.spikes[0].numpy(), expected) and expected.any()
    assert not np.array_equal(expected, spikes.astype(bool))  # the transform matters
    ours = tmp_path / "ours.net"
    write_netx(net, ours)
    with h5py.File(ours) as f:
        assert (f["layer/0/weight"][()], f["layer/0/bias"][()]) == INPUT_TRANSFORM


def test_energy_refuses_rasters_for_a_float_model(tmp_path, monkeypatch, capsys):
    np.save(tmp_path / "r.npy", np.zeros((2, 3, 64), bool))
    code, _, err = run_main(monkeypatch, capsys, "energy", "any.pt", "--float", "--spikes",
                            str(tmp_path / "r.npy"))  # fmt: skip
    assert code == 2
    assert_one_error_line(err, "--spikes is for netx files")
