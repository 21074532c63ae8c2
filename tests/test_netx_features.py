"""netx features our exporter never writes but netx builds: conv and dense bias, current decay
(iDecay < 4096) and the LOIHI neuron type. The fixed-point rules by hand, the reader, digest
compatibility, and Lava == emulator on random networks that use them."""

from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch
from fixtures_nets import (
    assert_records_agree,
    assert_same_network,
    child_processes,
    random_images,
    random_network,
)

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.network import ConvLayer, DenseLayer, Neuron
from dietsnn_deploy.spine.neurons import get_neuron_model
from exporters.netx import read_netx, write_netx
from hw_sim.emulator import emulate
from hw_sim.host import encode_drive

# Digests of the fixture networks before bias and i_decay existed: files written then must
# still verify (the digest skips a field added later while it holds its default).
DIGESTS_BEFORE_BIAS = {
    "dense": "82e247ee415a4c3a661921cb18f20ac4b2c6eb638d6959ab68e5ac5c99af9bd8",
    "conv": "6b1261b9d8de21eb9202b70368d61ee033edbe2ea193a43d79086f8fac841571",
    "pooled": "aba7fcb68528a582e33bbfc27bae5a5c401b908a05be6dfbc250ed1aa69c2b25",
}


def _step_all(neuron: Neuron, a_in: list[int], bias: int | None = None):
    """(v after each step, spikes) of one neuron of ``neuron`` for the ``a_in`` sequence."""
    model = get_neuron_model("lif")
    bias_current = None if bias is None else torch.tensor([bias << 6])
    state = model.fixed_state(torch.zeros(1, dtype=torch.int64), bias_current)
    vs, spikes = [], []
    for value in a_in:
        spikes.append(bool(model.fixed_step(state, torch.tensor([value << 6]), neuron)))
        vs.append(int(state["v"]))
    return vs, spikes, state


def test_current_decay_and_bias_by_hand():
    # iDecay 2048 halves u each step: u = 640, 320, 160; bias 1 adds 64; vDecay 0.
    # v = 640 + 64 = 704, 704 + 320 + 64 = 1088, 1088 + 160 + 64 = 1312 > 20 << 6 = 1280: spike.
    neuron = Neuron(v_decay=0, threshold=20, i_decay=2048)
    vs, spikes, _ = _step_all(neuron, [10, 0, 0], bias=1)
    assert vs == [704, 1088, 0] and spikes == [False, False, True]
    # Without current memory the same input gives 704, 768, 832 and no spike.
    vs, spikes, _ = _step_all(replace(neuron, i_decay=4096), [10, 0, 0], bias=1)
    assert vs == [704, 768, 832] and spikes == [False, False, False]
    # A negative u decays toward zero: trunc0(−3 · 64 · 1/4096 …) with iDecay 4095 keeps 0.
    vs, _, state = _step_all(Neuron(v_decay=4096, threshold=10**5, i_decay=4095), [-3, 0])
    assert vs == [-192, 0] and int(state["u"]) == 0  # trunc0(−192/4096) = 0, not −1


def test_decaying_current_wraps_at_24_bits():
    # iDecay 0: u never decays; a_in 2^16 adds 2^22 per step: 2^22, 2^23 (kept), then wraps.
    neuron = Neuron(v_decay=4096, threshold=10**5, i_decay=0)
    _, _, state = _step_all(neuron, [2**16, 2**16])
    assert int(state["u"]) == 2**23
    _, _, state = _step_all(neuron, [2**16, 2**16, 2**16])
    assert int(state["u"]) == 2**22 - 2**23


def _with_features(net, seed: int):
    """``net`` with a bias on every synaptic layer but the readout and a decaying current
    (iDecay in [2048, 3584]) on every spiking layer."""
    rng = np.random.default_rng(seed)
    layers = []
    for index, layer in enumerate(net.layers):
        if isinstance(layer, ConvLayer | DenseLayer) and index < len(net.layers) - 1:
            channels = layer.shape[0]
            layer = replace(layer, bias=rng.integers(-6, 7, size=channels).astype(np.int64))
        if layer.kind != "flatten" and layer.neuron.spiking:
            decay = int(rng.integers(2048, 3585))
            layer = replace(layer, neuron=replace(layer.neuron, i_decay=decay))
        layers.append(layer)
    return replace(net, layers=layers)


@pytest.mark.parametrize("arch", ["dense", "conv", "pooled"])
def test_default_fields_keep_the_digests_of_older_files(arch):
    assert random_network(arch, 3).digest() == DIGESTS_BEFORE_BIAS[arch]
    assert _with_features(random_network(arch, 3), 0).digest() != DIGESTS_BEFORE_BIAS[arch]


def test_bias_and_current_decay_survive_the_file(tmp_path):
    net = _with_features(random_network("conv", 5), 1)
    path = tmp_path / "features.net"
    write_netx(net, path)
    with h5py.File(path) as f:
        assert f["layer/1/bias"].shape == (net.layers[1].shape[0],)
        assert f["layer/1/neuron/iDecay"][()] == net.layers[1].neuron.i_decay < 4096
    assert_same_network(read_netx(path), net)


def test_loihi_type_and_scalar_bias_read_as_netx_builds_them(tmp_path):
    net = _with_features(random_network("dense", 6), 2)
    dense = net.layers[2]
    net = replace(net, layers=[*net.layers[:2], replace(dense, bias=np.full(12, 3)), net.layers[3]])
    path = tmp_path / "loihi.net"
    write_netx(net, path)
    with h5py.File(path, "r+") as f:
        del f["layer/2/neuron/type"], f["layer/2/bias"]
        f["layer/2/neuron"].create_dataset("type", (1,), "S10", [b"LOIHI"])
        f["layer/2"].create_dataset("bias", data=3)  # one value for every neuron
    assert_same_network(read_netx(path), net)


@pytest.mark.parametrize(
    ("bias", "message"),
    [
        (np.zeros(3, np.int64), r"bias must be 4 integers"),
        (np.zeros(4), r"bias must be 4 integers .*float64"),
        (np.full(4, 5000), r"bias outside the 13-bit range"),
    ],
)
def test_bad_bias_is_refused(bias, message):
    net = random_network("conv", 7)
    layers = list(net.layers)
    layers[1] = replace(layers[1], bias=bias)
    with pytest.raises(DeployError, match=message):
        replace(net, layers=layers).validate()


def test_emulator_uses_bias_and_current_decay():
    net = random_network("conv", 8)
    images = random_images(6, net.encoder.in_shape, seed=1)
    drive = encode_drive(net.encoder, images)
    plain = emulate(net, drive)
    featured = emulate(_with_features(net, 3), drive)
    for index in (0, 1, 2):  # input (current decay), conv and conv (bias and current decay)
        assert not torch.equal(plain.spikes[index], featured.spikes[index]), f"layer {index}"


def _odd_weights(net):
    """``net`` with every synaptic weight moved up by one: odd, mixed-sign, within ±127."""
    layers = [
        replace(layer, weight=layer.weight + 1)
        if isinstance(layer, ConvLayer | DenseLayer)
        else layer
        for layer in net.layers
    ]
    return replace(net, layers=layers)


def test_odd_mixed_sign_weights_within_127_are_accepted(tmp_path):
    net = _odd_weights(random_network("conv", 9))
    assert all(int(layer.weight.max()) <= 127 for layer in net.layers if hasattr(layer, "weight"))
    path = tmp_path / "odd.net"
    write_netx(net, path)
    assert_same_network(read_netx(path), net)


# Lava builds bias (bias_mant, bias_exp 6) and iDecay (du = iDecay − 1) from the file itself;
# netx doubles odd mixed-sign dense weights (weight exponent −1) and Lava shifts the sum back,
# while conv weights run as stored. The emulator must agree with it spike for spike.
LAVA_CASES = [
    ("bias and current decay", "conv", 51, 4, 3),
    ("bias and current decay", "dense", 52, 5, 3),
    ("bias and current decay", "pooled", 53, 4, 2),
    ("odd weights", "conv", 61, 4, 3),
    ("odd weights", "pooled", 62, 3, 2),
]
FEATURES = {
    "bias and current decay": lambda net, seed: _with_features(net, seed),
    "odd weights": lambda net, seed: _odd_weights(net),
}


@pytest.mark.lava
@pytest.mark.parametrize(("feature", "arch", "seed", "timesteps", "count"), LAVA_CASES)
def test_lava_and_emulator_agree_on_netx_features(tmp_path, feature, arch, seed, timesteps, count):
    from hw_sim.lava.runner import run_lava

    net = FEATURES[feature](random_network(arch, seed, timesteps=timesteps), seed)
    path = tmp_path / f"{arch}.net"
    write_netx(net, path)
    images = random_images(count, net.encoder.in_shape, seed=seed + 100)
    lava = run_lava(path, images, progress=False).record
    emulated = emulate(read_netx(path), encode_drive(net.encoder, images))
    assert_records_agree(lava, emulated, net, rates=(0.02, 0.9))
    assert child_processes() == []


@pytest.mark.lava
def test_netx_and_lava_keep_odd_mixed_sign_dense_sums_exact():
    """netx's optimize_weight_bits, then Lava's clip and truncate and the exponent shift, give
    the plain sum for 3 000 random odd mixed-sign matrices within ±127 (what the reader
    accepts); outside that range they would not, which is why it refuses them."""
    from hw_sim.lava.compat import import_netx

    import_netx()
    from lava.lib.dl.netx.utils import optimize_weight_bits
    from lava.utils.weightutils import SignMode, clip_weights, truncate_weights

    rng = np.random.default_rng(0)
    for _ in range(3000):
        low, high = int(rng.integers(-128, 0)), int(rng.integers(1, 128))
        weight = rng.integers(low, high + 1, size=(6, 9))
        if not weight.min() < 0 < weight.max():
            continue
        shifted, bits, exponent, sign = optimize_weight_bits(weight.copy())
        mode = SignMode(sign.value) if hasattr(sign, "value") else sign
        stored = truncate_weights(clip_weights(shifted, mode, num_bits=8), mode, bits)
        spikes = rng.random((5, 9)) < 0.5
        for s in spikes:
            total = stored[:, s].sum(axis=1)
            total = total << exponent if exponent > 0 else total >> -exponent
            np.testing.assert_array_equal(total, weight[:, s].sum(axis=1))
