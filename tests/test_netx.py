"""exporters.netx: round trip, validation of bad networks and bad files, netx compatibility."""

from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest
from fixtures_nets import ARCHS, assert_same_network, random_network

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.loihi import THRESHOLD_MAX, check_weight_mantissas
from dietsnn_deploy.spine.network import DenseLayer, Neuron, SpikeInput
from exporters.netx import read_netx, read_netx_layers, write_netx


@pytest.fixture
def conv_file(tmp_path):
    path = tmp_path / "conv.net"
    write_netx(random_network("conv", 3), path)
    return path


@pytest.mark.parametrize("arch", ARCHS)
def test_round_trip_keeps_every_field(tmp_path, arch):
    net = random_network(arch, seed=11)
    path = tmp_path / "net.net"
    write_netx(net, path)
    assert_same_network(read_netx(path), net)
    assert [p.name for p in tmp_path.iterdir()] == ["net.net"]  # no temp file left behind


def test_file_layout_is_what_netx_reads(conv_file):
    with h5py.File(conv_file) as f:
        assert [f[f"layer/{i}/type"][0] for i in range(6)] == [
            b"input",
            b"conv",
            b"conv",
            b"flatten",
            b"dense",
            b"dense",
        ]
        conv = f["layer/2"]
        assert conv["shape"][()].tolist() == [4, 4, 4]
        assert conv["stride"][()].tolist() == [2, 2] and conv["groups"][()] == 1
        readout = f["layer/5/neuron"]
        assert readout["vDecay"][()] == 0 and readout["vThMant"][()] == THRESHOLD_MAX
        assert readout["iDecay"][()] == 4096 and "messageBits" not in readout
        assert "weight" not in f["layer/0"] and "bias" not in f["layer/0"]
        assert f["dietsnn/layer_pool"][()].tolist() == [1, 1, 1, 1, 1, 1]


def test_read_layers_without_metadata(conv_file):
    with h5py.File(conv_file, "a") as f:
        del f["dietsnn"]
    with pytest.raises(DeployError, match="does not say how many steps it runs; pass -T"):
        read_netx(conv_file)
    foreign = read_netx(conv_file, timesteps=5)  # another tool's file: it takes spikes
    assert foreign.encoder == SpikeInput(foreign.layers[0].shape) and foreign.readout == "spikes"
    assert foreign.layers[-1].neuron.spiking and foreign.timesteps == 5
    layers = read_netx_layers(conv_file)
    assert [layer.kind for layer in layers] == [
        "input",
        "conv",
        "conv",
        "flatten",
        "dense",
        "dense",
    ]
    assert layers[-1].neuron == Neuron(0, THRESHOLD_MAX, spiking=False)


def _damage(path, action) -> None:
    with h5py.File(path, "a") as f:
        action(f)


def _replace_dataset(name: str, value):
    def action(f):
        del f[name]
        f[name] = value

    return action


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda f: f.__delitem__("layer/1/weight"), r"layer 1 \(conv\): missing field 'weight'"),
        (lambda f: f.__delitem__("layer/4/neuron/vThMant"), r"layer 4 \(dense\): missing field"),
        (lambda f: f.__delitem__("layer/2/stride"), r"layer 2 \(conv\): missing field 'stride'"),
        (_replace_dataset("layer/2/shape", [4, 5, 5]), r"layer 2 \(conv\): shape \(4, 5, 5\)"),
        (_replace_dataset("layer/1/weight", np.full((4, 3, 3, 3), 2)), r"layer 1 \(conv\): weight"),
        (_replace_dataset("layer/4/weight", np.full((12, 63), 2)), r"layer 4 \(dense\): weight"),
        (_replace_dataset("layer/4/weight", np.full((12, 64), 2.5)), r"layer 4 .*non-integer"),
        (_replace_dataset("layer/4/weight", np.full((12, 64), 300)), r"layer 4 .*8-bit range"),
        (_replace_dataset("layer/3/type", np.array([b"pool"])), r"layer 3: unsupported .*'pool'"),
        (_replace_dataset("layer/1/type", np.array([b"average"])), r"layer 1: unsupported"),
        (_replace_dataset("layer/1/neuron/iDecay", 5000), r"layer 1 \(conv\): i_decay 5000"),
        (_replace_dataset("layer/1/neuron/iDecay", 0), r"checksum mismatch"),  # valid, but edited
        (lambda f: f.create_dataset("layer/4/bias", data=np.zeros(5)), r"layer 4.*'bias' has 5"),
        (lambda f: f.create_dataset("layer/4/bias", data=np.ones(12)), r"checksum mismatch"),
        (lambda f: f.create_dataset("layer/0/bias", data=1), r"layer 0.*input transform"),
        (lambda f: f.create_dataset("layer/0/weight", data=64), r"comes from its host encoder"),
        (_replace_dataset("layer/1/neuron/gradedSpike", True), r"graded spikes"),
        (lambda f: f.move("layer/5", "layer/7"), r"/layer must hold groups 0\.\.5"),
        (lambda f: f.__delitem__("dietsnn/encoder"), r"missing encoder"),
        (lambda f: f["dietsnn"].attrs.__delitem__("timesteps"), r"missing attribute 'timesteps'"),
        (_replace_dataset("dietsnn/layer_pool", [1, 1]), r"layer_pool has 2 entries for 6"),
        (lambda f: f["dietsnn"].attrs.__setitem__("num_classes", 5), r"num_classes 5"),
    ],
)
def test_malformed_file_raises_one_line_error(conv_file, action, message):
    _damage(conv_file, action)
    with pytest.raises(DeployError, match=message) as caught:
        read_netx(conv_file)
    assert "\n" not in str(caught.value)


def test_garbage_and_truncated_files(tmp_path, conv_file):
    garbage = tmp_path / "garbage.net"
    garbage.write_bytes(b"\x89HDF not really" * 50)
    with pytest.raises(DeployError, match="not a readable HDF5 file"):
        read_netx(garbage)
    truncated = tmp_path / "truncated.net"
    truncated.write_bytes(conv_file.read_bytes()[:3000])
    with pytest.raises(DeployError):
        read_netx(truncated)
    with pytest.raises(DeployError, match="not found"):
        read_netx(tmp_path / "missing.net")


def _with_layer(net, index, **changes):
    layers = list(net.layers)
    layers[index] = replace(layers[index], **changes)
    return replace(net, layers=layers)


@pytest.mark.parametrize(
    ("index", "weight", "message"),
    [
        (4, lambda w: np.where(w > 0, 201, w - 1), r"layer 4 \(dense\): odd mixed-sign weights"),
        (1, lambda w: np.where(w > 0, 256, w), r"layer 1 \(conv\): weights span .*outside"),
        (4, lambda w: w.astype(np.float64), r"layer 4 \(dense\): weights must be integers"),
        (4, np.zeros_like, r"layer 4 \(dense\): no positive weight"),
        (5, lambda w: np.full_like(w, -64), r"layer 5 \(dense\): no positive weight"),
    ],
)
def test_writer_refuses_weights_netx_would_mangle(tmp_path, conv_file, index, weight, message):
    net = random_network("conv", 3)
    bad = _with_layer(net, index, weight=weight(net.layers[index].weight))
    before = conv_file.read_bytes()
    with pytest.raises(DeployError, match=message):
        write_netx(bad, conv_file)
    assert conv_file.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in conv_file.parent.iterdir()) == ["conv.net"]


def test_writer_refuses_inconsistent_networks(tmp_path):
    net = random_network("pooled", 2)
    readout = net.layers[-1]
    cases = [
        (_with_layer(net, 1, shape=(4, 5, 5)), r"layer 1 \(conv\): shape \(4, 5, 5\) is not"),
        (_with_layer(net, -1, neuron=Neuron(0, 1000, spiking=False)), r"readout threshold"),
        (_with_layer(net, 3, neuron=Neuron(10, 50, spiking=False)), r"layer 3.*only the last"),
        (_with_layer(net, 0, neuron=Neuron(5000, 10)), r"layer 0 \(input\): v_decay 5000"),
        (replace(net, num_classes=7), r"num_classes 7"),
        (
            replace(
                net, layers=[*net.layers[:-1], DenseLayer(readout.weight[:, :5], readout.neuron)]
            ),
            r"layer 4",
        ),
        (replace(net, encoder=replace(net.encoder, padding=(0, 0))), r"encoder output"),
    ]
    for bad, message in cases:
        with pytest.raises(DeployError, match=message):
            write_netx(bad, tmp_path / "bad.net")
    assert list(tmp_path.iterdir()) == []


# --- against lava-dl netx itself ---------------------------------------------------------------


def _lava_effective_dense(weight: np.ndarray) -> np.ndarray:
    """The weights Lava's Dense actually sums (per input spike), after netx's bit optimisation,
    Lava's sign-mode clip and truncation and the weight exponent shift."""
    from hw_sim.lava.compat import import_netx

    netx = import_netx()
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    scaled, bits, exponent, _ = netx.utils.optimize_weight_bits(weight)
    mode = determine_sign_mode(scaled)
    kept = truncate_weights(clip_weights(scaled, mode, num_bits=8), mode, bits)
    return np.left_shift(kept, exponent) if exponent > 0 else np.right_shift(kept, -exponent)


@pytest.mark.lava
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # netx on max == 0
def test_weights_accepted_by_check_load_unchanged_in_lava():
    rng = np.random.default_rng(0)
    edge_values = np.array([-256, -255, -254, -129, -128, -2, -1, 0, 1, 2, 127, 128, 253, 254])
    accepted = 0
    for trial in range(600):
        if trial % 3 == 0:
            weight = rng.choice(edge_values, size=(3, 4))
        else:
            low, high = sorted(rng.integers(-128, 128, size=2))
            weight = rng.integers(low, high + 1, size=(3, 4)) * 2
        try:
            check_weight_mantissas(weight, "layer 0 (dense)", dense=True)
        except DeployError:
            continue
        accepted += 1
        assert np.array_equal(_lava_effective_dense(weight), weight), weight
    assert accepted > 250
    # The refused matrices without a positive weight include ones Lava really mangles.
    for trap in (np.array([[-64, -6], [0, -2]]), np.array([[-8, 0, -74], [-51, -1, -175]])):
        with pytest.raises(DeployError, match="no positive weight"):
            check_weight_mantissas(trap, "layer 0 (dense)", dense=True)
        assert not np.array_equal(_lava_effective_dense(trap), trap)


@pytest.mark.lava
@pytest.mark.parametrize("arch", ARCHS)
def test_netx_loads_written_file(tmp_path, arch):
    from hw_sim.lava.compat import import_netx

    netx = import_netx()
    net = random_network(arch, seed=5)
    path = tmp_path / "net.net"
    write_netx(net, path)
    lava_net = netx.hdf5.Network(net_config=str(path), reset_interval=net.timesteps)
    lava_net.net_config.f.close()
    expected = [layer.shape[::-1] for _, layer in net.neuron_layers]  # Lava shapes are (W, H, C)
    assert [tuple(layer.shape) for layer in lava_net.layers] == expected
    dense = [layer for layer in lava_net.layers if type(layer).__name__ == "Dense"]
    ours = [layer.weight for layer in net.layers if layer.kind == "dense"]
    for block, weight in zip(dense, ours, strict=True):
        scaled = block.synapse.weights.init
        exponent = block.synapse.proc_params["weight_exp"]
        assert np.array_equal(np.right_shift(scaled, -exponent), weight)
