"""The emulator against hand-computed Lava arithmetic and a literal per-neuron NumPy loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures_nets import random_images, random_network

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.loihi import THRESHOLD_MAX
from dietsnn_deploy.spine.network import (
    ConvLayer,
    DenseLayer,
    DeployedNetwork,
    FlattenLayer,
    HostEncoder,
    InputLayer,
    Neuron,
)
from hw_sim.emulator import classify, emulate
from hw_sim.host import encode_drive
from hw_sim.op_counter import OpCounter
from hw_sim.synapses import lava_dense_weights

ALWAYS = Neuron(v_decay=4096, threshold=0)  # with a positive drive: spikes at every step


def encoder(shape) -> HostEncoder:
    c = shape[0]
    return HostEncoder(
        weight=np.zeros((c, 1, 3, 3), np.float32),
        stride=(1, 1),
        padding=(1, 1),
        drive_scale=1.0,
        mean=(0.0,),
        std=(1.0,),
        in_shape=(1, *shape[1:]),
    )


def chain(layers, timesteps: int) -> DeployedNetwork:
    classes = layers[-1].shape[0]
    return DeployedNetwork(encoder(layers[0].shape), layers, timesteps, num_classes=classes)


def readout(weight, v_decay=0, threshold=THRESHOLD_MAX) -> DenseLayer:
    neuron = Neuron(v_decay=v_decay, threshold=threshold, spiking=False)
    return DenseLayer(weight=np.array(weight, dtype=np.int64), neuron=neuron)


def const_drive(shape, value=100) -> torch.Tensor:
    return torch.full((1, *shape), value, dtype=torch.int64)


# --- hand-computed cases -------------------------------------------------------------------


@pytest.mark.parametrize("steps, expected", [(4, 175), (5, 195)])
def test_decay_truncates_toward_zero_for_negative_v(steps, expected):
    # a_in = ∓1 per step → u = ∓64; v ← trunc0(v·3072/4096) ∓ 64:
    # ∓64, ∓112, ∓148, ∓175 (111 exact), ∓195 (−131.25 → −131, not floor −132).
    net = chain([InputLayer((1, 1, 1), ALWAYS), readout([[-1], [1]], v_decay=1024)], steps)
    record = emulate(net, const_drive((1, 1, 1)))
    assert record.readout.tolist() == [[-expected, expected]]


def test_exactly_at_threshold_does_not_spike():
    shape = (3, 1, 1)
    layers = [
        InputLayer(shape, Neuron(v_decay=0, threshold=5)),
        readout([[1, -1, 1]]),
    ]
    drive = torch.tensor([[[[5]], [[6]], [[2]]]])  # = θ, θ + 1, below θ
    spikes = emulate(chain(layers, 6), drive).spikes[0][:, 0, :, 0, 0]
    # v = 5·64 = θ·64 at step 1: no spike; 10·64 at step 2: spike, reset; and so on.
    assert spikes[:, 0].tolist() == [False, True] * 3
    assert spikes[:, 1].tolist() == [True] * 6
    assert spikes[:, 2].tolist() == [False, False, True] * 2  # 2, 4, 6 > 5 → reset


def test_v_clips_at_24_bits_and_clipped_v_cannot_reach_threshold_2_pow_17():
    # 8 inputs spike every step; weight ∓254 → a_in = ∓2032 → u = ∓130048 per step.
    # After 65 steps |Σ| = 8453120 > 2²³ − 1: v sticks at ±8388607. Threshold 2¹⁷ (netx's
    # default vThMant) means v must exceed 2²³, which the clip makes impossible.
    w = [[-254] * 8, [254] * 8, [2] * 8]
    layers = [InputLayer((8, 1, 1), ALWAYS), readout(w, threshold=2**17)]
    record = emulate(chain(layers, 70), const_drive((8, 1, 1)))
    assert record.readout.tolist() == [[-(2**23 - 1), 2**23 - 1, 70 * 16 * 64]]


def test_current_wraps_once_at_24_bits():
    # 600 inputs × ±254 = ±152400 → u = ±9753600, beyond ±2²³ → ∓2²⁴: ∓7023616.
    layers = [InputLayer((600, 1, 1), ALWAYS), readout([[254] * 600, [-254] * 600, [2] * 600])]
    record = emulate(chain(layers, 1), const_drive((600, 1, 1)))
    assert record.readout.tolist() == [[9753600 - 2**24, 2**24 - 9753600, 1200 * 64]]


@pytest.mark.parametrize("channels, spikes", [(33000, True), (33100, False)])
def test_conv_output_wraps_at_24_bits(channels, spikes):
    # Σ = 254·channels: 8382000 < 2²³ passes; 8407400 wraps to −8369816, so v clips negative
    # and the neuron (threshold 0) stays silent. (u's single wrap then leaves v saturated.)
    conv = ConvLayer(
        weight=np.full((1, channels, 1, 1), 254),
        stride=(1, 1),
        padding=(0, 0),
        in_shape=(channels, 1, 1),
        shape=(1, 1, 1),
        neuron=Neuron(v_decay=4096, threshold=0),
    )
    layers = [InputLayer((channels, 1, 1), ALWAYS), conv, FlattenLayer((1, 1, 1)), readout([[2]])]
    record = emulate(chain(layers, 2), const_drive((channels, 1, 1)))
    assert record.spikes[1].flatten().tolist() == [spikes, spikes]


def test_lava_dense_weights_hand_cases():
    # mixed, max 63: scale 127/63 → 2 bits of headroom: ×4, exponent −2
    w, shift = lava_dense_weights(np.array([[63, -50]]))
    assert (w.tolist(), shift) == ([[252, -200]], 2)
    # mixed beyond 8 bits: clipped to 254 with a warning in netx
    w, shift = lava_dense_weights(np.array([[300, -10]]))
    assert (w.tolist(), shift) == ([[254, -10]], 0)
    # max 0 is "mixed" for netx (×16) but inhibitory for Lava's Dense: −256 → −255, then the
    # low 6 bits are truncated (num_weight_bits 2): −192. Checked against Lava 0.10.0.
    w, shift = lava_dense_weights(np.array([[-16, -8], [-8, 0]]))
    assert (w.tolist(), shift) == ([[-192, -128], [-128, 0]], 4)
    with pytest.raises(DeployError, match="all zero"):
        lava_dense_weights(np.zeros((2, 3)))
    with pytest.raises(DeployError, match="shift them to zero"):
        lava_dense_weights(np.array([[300, 1]]))


def test_bad_drive_raises():
    net = chain([InputLayer((2, 1, 1), ALWAYS), readout([[1, -1]])], 2)
    with pytest.raises(DeployError, match="drive shape"):
        emulate(net, torch.zeros((1, 3, 1, 1), dtype=torch.int64))
    with pytest.raises(DeployError, match="integer"):
        emulate(net, torch.zeros((1, 2, 1, 1)))
    with pytest.raises(DeployError, match="13-bit"):
        emulate(net, torch.full((1, 2, 1, 1), 5000))


# --- random networks against a literal NumPy loop ------------------------------------------


def even_weights(rng, shape):
    return rng.integers(-128, 128, size=shape) * 2


def small_net(seed: int, fold_fast_path: bool = True, timesteps: int = 6) -> DeployedNetwork:
    """input 2×8×8 → conv 4 → pool+conv 5 (folded) → stride-2 conv 6 → flatten → pool+dense 7
    (folded) → readout 3. ``fold_fast_path=False`` stores pool = 1 on the folded layers, so the
    emulator convolves the kron kernels directly instead of sum-pooling first."""
    rng = np.random.default_rng(seed)

    def neuron(lo, hi):
        return Neuron(v_decay=int(rng.integers(0, 4097)), threshold=int(rng.integers(lo, hi)))

    k = 2
    pool = k if fold_fast_path else 1
    conv_b = np.kron(even_weights(rng, (5, 4, 3, 3)), np.ones((k, k), np.int64))
    dense_d = np.repeat(np.repeat(even_weights(rng, (7, 6, 1, 1)), k, 2), k, 3).reshape(7, 24)
    layers = [
        InputLayer((2, 8, 8), neuron(150, 400)),
        ConvLayer(
            even_weights(rng, (4, 2, 3, 3)), (1, 1), (1, 1), (2, 8, 8), (4, 8, 8), neuron(50, 300)
        ),  # fmt: skip
        ConvLayer(conv_b, (2, 2), (2, 2), (4, 8, 8), (5, 4, 4), neuron(100, 800), pool=pool),
        ConvLayer(
            even_weights(rng, (6, 5, 3, 3)), (2, 2), (1, 1), (5, 4, 4), (6, 2, 2), neuron(50, 300)
        ),  # fmt: skip
        FlattenLayer((6, 2, 2)),
        DenseLayer(dense_d, neuron(50, 400), pool=pool),
        DenseLayer(even_weights(rng, (3, 7)), Neuron(int(rng.integers(0, 4097)), 2**17, False)),
    ]
    return DeployedNetwork(encoder((2, 8, 8)), layers, timesteps, num_classes=3)


def random_drive(seed: int, batch: int) -> torch.Tensor:
    rng = np.random.default_rng(seed + 1000)
    return torch.from_numpy(rng.integers(-200, 900, size=(batch, 2, 8, 8)))


def trunc0_decay(v: np.ndarray, v_decay: int) -> np.ndarray:
    product = v * (4096 - v_decay)
    return np.sign(product) * (np.abs(product) >> 12)


def reference_run(net: DeployedNetwork, drive: np.ndarray):
    """Lava's equations neuron by neuron, one sample at a time (weights used as stored: the
    dense transform is the identity for mixed-sign matrices with a positive maximum)."""
    steps = net.timesteps
    all_spikes = [[] for _ in net.layers]
    readouts = []
    for sample in drive:
        v = [np.zeros(layer.shape, np.int64) for layer in net.layers]
        per_step = [[] for _ in net.layers]
        for _ in range(steps):
            spikes = None
            for i, layer in enumerate(net.layers):
                if isinstance(layer, FlattenLayer):
                    spikes = spikes.reshape(-1)
                    continue
                if isinstance(layer, InputLayer):
                    a_in, bias = np.zeros(layer.shape, np.int64), sample
                else:
                    a_in, bias = literal_synapse(layer, spikes), 0
                u = a_in * 64
                u = np.where(u > 2**23, u - 2**24, np.where(u <= -(2**23), u + 2**24, u))
                v[i] = trunc0_decay(v[i], layer.neuron.v_decay) + u + bias * 64
                v[i] = np.clip(v[i], -(2**23 - 1), 2**23 - 1)
                spikes = v[i] > layer.neuron.threshold * 64
                v[i][spikes] = 0
                per_step[i].append(spikes.copy())
        for i in range(len(net.layers)):
            if per_step[i]:
                all_spikes[i].append(np.stack(per_step[i]))
        readouts.append(v[-1].copy())
    spikes = [np.stack(s, axis=1) if s else None for s in all_spikes]
    return spikes, np.stack(readouts)


def literal_synapse(layer, spikes: np.ndarray) -> np.ndarray:
    if isinstance(layer, DenseLayer):
        w = layer.weight
        return np.array([sum(int(w[o, j]) for j in np.flatnonzero(spikes)) for o in range(len(w))])
    w, (sy, sx), (py, px) = layer.weight, layer.stride, layer.padding
    c_out, c_in, kh, kw = w.shape
    _, h, wd = spikes.shape
    out = np.zeros(layer.shape, np.int64)
    for co, oy, ox in np.ndindex(*layer.shape):
        total = 0
        for ky, kx in np.ndindex(kh, kw):
            iy, ix = oy * sy - py + ky, ox * sx - px + kx
            if 0 <= iy < h and 0 <= ix < wd:
                total += int(w[co, :, ky, kx] @ spikes[:, iy, ix])
        out[co, oy, ox] = total
    return (out + 2**23) % 2**24 - 2**23


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fold_fast_path", [True, False])
def test_matches_literal_reference(seed, fold_fast_path):
    net = small_net(seed, fold_fast_path)
    drive = random_drive(seed, batch=3)
    record = emulate(net, drive)
    ref_spikes, ref_readout = reference_run(net, drive.numpy())
    for i, layer in enumerate(net.layers[:-1]):
        if isinstance(layer, FlattenLayer):
            assert record.spikes[i] is None
            continue
        got = record.spikes[i].numpy()
        assert np.array_equal(got, ref_spikes[i]), f"layer {i}"
        assert 0.02 < got.mean() < 0.9, f"layer {i} is not exercised: rate {got.mean():.3f}"
    assert record.spikes[-1] is None
    assert np.array_equal(record.readout.numpy(), ref_readout)
    assert len(set(map(tuple, ref_readout.tolist()))) > 1  # readout differs between samples


def test_batch_equals_singles():
    net = small_net(3)
    drive = random_drive(3, batch=8)
    batch = emulate(net, drive)
    for b in range(8):
        single = emulate(net, drive[b : b + 1])
        assert torch.equal(single.readout[0], batch.readout[b])
        for got, whole in zip(single.spikes, batch.spikes, strict=True):
            assert (got is None) == (whole is None)
            if got is not None:
                assert torch.equal(got[:, 0], whole[:, b])


def test_record_false_keeps_readout_only():
    net = small_net(4)
    drive = random_drive(4, batch=2)
    full, bare = emulate(net, drive), emulate(net, drive, record=False)
    assert all(s is None for s in bare.spikes)
    assert torch.equal(full.readout, bare.readout)


# --- classify, and the Lava simulator itself -----------------------------------------------


def test_classify_batches_and_feeds_the_op_counter():
    net = random_network("pooled", seed=5)
    images = random_images(7, net.encoder.in_shape, seed=6)
    whole = emulate(net, encode_drive(net.encoder, images))
    counter = OpCounter.for_network(net)
    result = classify(net, images, batch_size=3, progress=False, on_batch=counter.add)
    assert torch.equal(result.readout, whole.readout)
    assert torch.equal(result.predictions, whole.readout.argmax(dim=1))
    assert result.num_images == 7
    for count, spikes in zip(result.spike_counts, whole.spikes, strict=True):
        assert count == (None if spikes is None else int(spikes.sum()))
    counts = counter.result()
    assert counts.num_images == 7
    assert counts.layers[0].spikes * 7 == pytest.approx(result.spike_counts[0])


@pytest.mark.lava
@pytest.mark.parametrize("arch", ["conv", "pooled"])
def test_equals_lava_fixed_point_run(arch):
    from hw_sim.lava.runner import run_lava

    net = random_network(arch, seed=11)
    images = random_images(3, net.encoder.in_shape, seed=12)
    lava = run_lava(net, images, progress=False).record
    mine = emulate(net, encode_drive(net.encoder, images))
    assert torch.equal(mine.readout, lava.readout)
    for i, (got, expected) in enumerate(zip(mine.spikes, lava.spikes, strict=True)):
        assert (got is None) == (expected is None), f"layer {i}"
        if got is not None:
            assert torch.equal(got, expected.bool()), f"layer {i}"
