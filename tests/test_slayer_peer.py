"""Networks trained with lava-dl's slayer and exported by its ``export_hdf5`` run through our
simulators: the emulator gives slayer's own spike counts, and Lava the emulator's spikes; also
with slayer's learned axonal delays."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_main
from fixtures_nets import assert_records_agree

from exporters.netx import read_netx
from hw_sim.emulator import Emulator, classify
from hw_sim.host import network_drive

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from slayer_peer import digits, slayer_counts, train_slayer  # noqa: E402

T = 16
SEED = 7


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(slayer network, its exported netx file): 8 epochs on digits, about 3 s."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's weight_norm deprecation, in slayer
        net = train_slayer(T, epochs=8)
    path = tmp_path_factory.mktemp("slayer") / "slayer.net"
    net.export_hdf5(path)
    return net, path


def _slayer_counts(net, images, shift: bool) -> torch.Tensor:
    return slayer_counts(net, images, T, SEED, shift)


def test_emulator_gives_slayers_own_spike_counts(trained):
    net, path = trained
    deployed = read_netx(path, timesteps=T)
    layer = deployed.layers[0]
    assert layer.neuron.i_decay == 1024 and layer.neuron.v_decay == 123  # CUBA from slayer
    images, labels = digits("test")
    ours = classify(deployed, images, progress=False, seed=SEED)
    theirs = _slayer_counts(net, images, shift=False)
    assert torch.equal(ours.readout, theirs)  # every count of all 360 test images
    accuracy = float((ours.predictions == labels).double().mean())
    assert accuracy > 0.6  # trained: chance is 0.1
    # slayer's training default delays each block by a step: the late spikes of the window are
    # lost, so counts differ, and predictions mostly agree (95.8% measured)
    shifted = _slayer_counts(net, images, shift=True)
    assert not torch.equal(shifted, theirs)
    assert float((shifted.argmax(dim=1) == ours.predictions).double().mean()) > 0.9


def test_lava_gives_the_emulators_spikes_on_slayers_file(trained):
    from hw_sim.lava.runner import run_lava

    _, path = trained
    deployed = read_netx(path, timesteps=T)
    images = digits("test")[0][:8]
    lava = run_lava(deployed, images, progress=False, seed=SEED, file=path)
    emulated = Emulator(deployed).run(network_drive(deployed, images, seed=SEED))
    assert_records_agree(lava.record, emulated, deployed, rates=(0.02, 0.9))
    assert torch.equal(lava.predictions, deployed.class_scores(emulated).argmax(dim=1))


def test_cli_runs_slayers_file_on_both_backends(trained, monkeypatch, capsys):
    _, path = trained
    reports = []
    for backend in ("emulator", "lava"):
        code, out, err = run_main(monkeypatch, capsys, "simulate", str(path), "-T", str(T),
                                  "--dataset", "digits", "-n", "6", "--seed", str(SEED),
                                  "--backend", backend, "--json")  # fmt: skip
        assert code == 0, err
        reports.append(json.loads(out))
    assert reports[0]["predictions"] == reports[1]["predictions"]
    assert reports[0]["spike_counts"] == reports[1]["spike_counts"]


@pytest.fixture(scope="module")
def delayed(tmp_path_factory):
    """A slayer network whose hidden block learned axonal delays (8 epochs, about 7 s), its
    delays then set to whole steps 0…5 (what slayer learns is mostly 0 or 1 this briefly)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = train_slayer(T, epochs=8, delay=True)
    generator = torch.Generator().manual_seed(0)
    delay = net.blocks[0].delay.delay
    delay.data = torch.randint(0, 6, delay.shape, generator=generator).to(delay.dtype)
    path = tmp_path_factory.mktemp("slayer") / "delayed.net"
    net.export_hdf5(path)
    return net, path


def test_emulator_and_lava_follow_slayers_axonal_delays(delayed):
    from hw_sim.lava.runner import blank_samples, run_lava

    net, path = delayed
    deployed = read_netx(path, timesteps=T)
    delays = deployed.layers[0].delay
    assert delays.max() == 5 and np.all(delays == delays[:, :1])  # one per hidden neuron
    images, labels = digits("test")
    ours = classify(deployed, images, progress=False, seed=SEED)
    assert torch.equal(ours.readout, _slayer_counts(net, images, shift=False))
    assert float((ours.predictions == labels).double().mean()) > 0.5
    assert blank_samples(deployed) == 1  # Lava: one blank sample after each image
    lava = run_lava(deployed, images[:6], progress=False, seed=SEED, file=path)
    emulated = Emulator(deployed).run(network_drive(deployed, images[:6], seed=SEED))
    assert_records_agree(lava.record, emulated, deployed, rates=(0.02, 0.9))


def test_a_slayer_input_block_is_netxs_input_layer_with_its_default_transform(tmp_path):
    """slayer's Input block exports an input layer without weight or bias: netx's default
    transform (a spike is 64 bias_mant units, 1.0) gives slayer's own counts."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = train_slayer(T, epochs=4, input_block=True)
    path = tmp_path / "input.net"
    net.export_hdf5(path)
    deployed = read_netx(path, timesteps=T)
    assert deployed.layers[0].kind == "input" and deployed.layers[0].shape == (64,)
    assert (deployed.encoder.drive_per_spike, deployed.encoder.drive_bias) == (64, 0)
    images, labels = digits("test")
    ours = classify(deployed, images, progress=False, seed=SEED)
    assert torch.equal(ours.readout, _slayer_counts(net, images, shift=False))
    assert float((ours.predictions == labels).double().mean()) > 0.5
    from hw_sim.lava.runner import run_lava

    lava = run_lava(deployed, images[:4], progress=False, seed=SEED, file=path)
    emulated = Emulator(deployed).run(network_drive(deployed, images[:4], seed=SEED))
    assert_records_agree(lava.record, emulated, deployed, rates=(0.02, 0.9))
