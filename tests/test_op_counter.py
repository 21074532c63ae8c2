"""Op counts against hand-computed fan-outs, brute-force window enumeration and pooled maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.network import (
    ConvLayer,
    DenseLayer,
    DeployedNetwork,
    FlattenLayer,
    HostEncoder,
    InputLayer,
    Neuron,
)
from dietsnn_deploy.spine.record import SpikeRecord
from hw_sim.op_counter import ConvGeometry, OpCounter, counting_plan

SPIKING = Neuron(v_decay=0, threshold=10)
READOUT = Neuron(v_decay=0, threshold=2**17, spiking=False)


def network(layers, timesteps, host_kernel=3) -> DeployedNetwork:
    c = layers[0].shape[0]
    encoder = HostEncoder(
        weight=np.zeros((c, 1, host_kernel, host_kernel)),
        stride=(1, 1),
        padding=(host_kernel // 2,) * 2,
        drive_scale=1.0,
        mean=(0.0,),
        std=(1.0,),
        in_shape=(1, *layers[0].shape[1:]),
    )
    return DeployedNetwork(encoder, layers, timesteps, num_classes=layers[-1].shape[0])


def conv(c_in, c_out, hw_in, hw_out, kernel, stride, padding, pool=1) -> ConvLayer:
    weight = np.ones((c_out, c_in, kernel, kernel), np.int64)
    return ConvLayer(weight, (stride,) * 2, (padding,) * 2, (c_in, hw_in, hw_in),
                     (c_out, hw_out, hw_out), SPIKING, pool=pool)  # fmt: skip


def spikes_at(shape, steps, positions_per_step) -> torch.Tensor:
    """(T, 1, *shape) bool with the given (c, y, x) positions set at each step."""
    s = torch.zeros((steps, 1, *shape), dtype=torch.bool)
    for t, positions in enumerate(positions_per_step):
        for p in positions:
            s[(t, 0, *p)] = True
    return s


def test_conv_with_padding_and_stride_hand_counted():
    # 4×4 input, 3×3 kernel, stride 2, padding 1 → 2×2 output, 2 channels.
    # Windows per axis: o=0 covers inputs {0, 1} (−1 is padding), o=1 covers {1, 2, 3}.
    # Windows holding input index 0, 1, 2, 3: 1, 2, 1, 1. Fan-out = rows × cols × 2 channels:
    # (0,0) → 2, (1,1) → 8, (2,1) → 4, (3,3) → 2. Step 0 spikes at all four: 16 events;
    # step 1 at (3,3) only: 2 events, one output position reached (×2 channels active).
    layers = [
        InputLayer((1, 4, 4), SPIKING),
        conv(1, 2, 4, 2, kernel=3, stride=2, padding=1),
        FlattenLayer((2, 2, 2)),
        DenseLayer(np.ones((3, 8), np.int64), READOUT),
    ]
    net = network(layers, timesteps=2)
    record = SpikeRecord(
        spikes=[
            spikes_at((1, 4, 4), 2, [[(0, 0, 0), (0, 1, 1), (0, 2, 1), (0, 3, 3)], [(0, 3, 3)]]),
            spikes_at((2, 2, 2), 2, [[(0, 0, 0), (1, 0, 1), (1, 1, 1)], [(0, 1, 0)]]),
            None,
            None,
        ],
        readout=torch.zeros((1, 3), dtype=torch.int64),
    )
    counter = OpCounter.for_network(net)
    counter.add(record)
    host, conv_row, out = counter.result().layers
    assert [host.name, conv_row.name, out.name] == ["conv1", "conv2", "readout"]
    # host conv1: 3·3·1 in-channel · 4·4 · 1 out-channel, once per image
    assert (host.host_macs, host.ann_macs, host.synaptic_events) == (144, 144, 0)
    assert (host.spikes, host.spike_rate, host.neuron_updates) == (5, 5 / 16, 32)
    assert host.active_neuron_updates == 32
    assert conv_row.events_per_step == (16, 2)
    assert conv_row.synaptic_events == 18
    assert conv_row.ann_macs == 3 * 3 * 1 * 2 * 2 * 2
    assert conv_row.active_neuron_updates == 8 + 2  # step 0: all 4 positions; step 1: one
    assert (conv_row.spikes, conv_row.spikes_per_step) == (4, (3, 1))
    # eq. 17: input spike rate × ANN MACs = 5/16 · 72 (border fan-outs ignored)
    assert conv_row.eq17_ops == pytest.approx(5 / 16 * 72)
    assert host.eq17_ops == 0  # the analog layer is priced as MACs
    # readout: every conv spike reaches its 3 outputs
    assert out.events_per_step == (9, 3)
    assert (out.ann_macs, out.spikes, out.neuron_updates, out.active_neuron_updates) == (
        24,
        0,
        6,
        6,
    )


def brute_force_fan_out(geometry: ConvGeometry) -> np.ndarray:
    """Enumerate every output window and the in-range input pixels it holds."""
    (_, h, w), (c_out, ho, wo) = geometry.in_shape, geometry.out_shape
    (kh, kw), (sy, sx), (py, px) = geometry.kernel, geometry.stride, geometry.padding
    fan = np.zeros((h, w), np.int64)
    for oy, ox, ky, kx in np.ndindex(ho, wo, kh, kw):
        iy, ix = oy * sy - py + ky, ox * sx - px + kx
        if 0 <= iy < h and 0 <= ix < w:
            fan[iy, ix] += c_out
    return fan


@pytest.mark.parametrize(
    "h, k, s, p", [(7, 3, 1, 1), (8, 3, 2, 1), (9, 5, 2, 2), (10, 6, 2, 2), (6, 3, 3, 0)]
)
def test_fan_out_map_matches_enumeration_and_transposed_conv(h, k, s, p):
    ho = (h + 2 * p - k) // s + 1
    geometry = ConvGeometry((2, h, h), (3, ho, ho), (k, k), (s, s), (p, p))
    fan = geometry.fan_out_map()
    assert np.array_equal(fan, brute_force_fan_out(geometry))
    extra = h - ((ho - 1) * s - 2 * p + k)  # rows the windows never reach need output padding
    if extra < s:
        ones = F.conv_transpose2d(torch.ones(1, 1, ho, ho), torch.ones(1, 1, k, k), stride=s,
                                  padding=p, output_padding=extra)  # fmt: skip
        assert np.array_equal(fan, ones[0, 0].numpy().astype(np.int64) * 3)


def pooled_conv_net(steps) -> DeployedNetwork:
    """input 1×8×8 → pool 2 + conv 3×3/1/1 to 3 channels, folded: kernel 6, stride 2, pad 2."""
    layers = [
        InputLayer((1, 8, 8), SPIKING),
        conv(1, 3, 8, 4, kernel=6, stride=2, padding=2, pool=2),
        FlattenLayer((3, 4, 4)),
        DenseLayer(np.ones((2, 48), np.int64), READOUT),
    ]
    return network(layers, steps)


def naive_pooled_events(spikes: np.ndarray, weighted: bool) -> int:
    """Pool first (2×2 window sums), then count on the 4×4 pooled map with a 3×3/1/1 conv:
    each pooled pixel × its pooled-map fan-out (weighted by its spike count, or 1 if any)."""
    pooled = spikes.reshape(4, 2, 4, 2).sum(axis=(1, 3))
    pooled_geometry = ConvGeometry((1, 4, 4), (3, 4, 4), (3, 3), (1, 1), (1, 1))
    fan = brute_force_fan_out(pooled_geometry)
    return int(((pooled if weighted else pooled > 0) * fan).sum())


def test_pooled_folded_counts_equal_pool_then_conv():
    rng = np.random.default_rng(0)
    # step 0: at most one spike per 2×2 window; step 1: dense random spikes
    one_per_window = np.zeros((8, 8), bool)
    for wy, wx in np.ndindex(4, 4):
        if rng.random() < 0.6:
            one_per_window[2 * wy + rng.integers(2), 2 * wx + rng.integers(2)] = True
    crowded = rng.random((8, 8)) < 0.5
    source = torch.from_numpy(np.stack([one_per_window, crowded]))[:, None, None]
    record = SpikeRecord(
        spikes=[source, torch.zeros((2, 1, 3, 4, 4), dtype=torch.bool), None, None],
        readout=torch.zeros((1, 2), dtype=torch.int64),
    )
    counter = OpCounter.for_network(pooled_conv_net(2))
    counter.add(record)
    row = counter.result().layers[1]
    assert row.name == "pool+conv2"
    assert row.events_per_step[0] == naive_pooled_events(one_per_window, weighted=False)
    assert row.events_per_step[0] == naive_pooled_events(one_per_window, weighted=True)
    # several spikes in one window: each is its own event on chip
    assert row.events_per_step[1] == naive_pooled_events(crowded, weighted=True)
    assert row.events_per_step[1] > naive_pooled_events(crowded, weighted=False)
    assert row.ann_macs == 3 * 3 * 1 * 4 * 4 * 3  # original 3×3 kernel on the pooled map


def test_pooled_dense_ann_macs_and_events():
    weight = np.kron(np.ones((5, 1, 2, 2), np.int64), np.ones((2, 2), np.int64)).reshape(5, 16)
    layers = [
        InputLayer((1, 4, 4), SPIKING),
        FlattenLayer((1, 4, 4)),
        DenseLayer(weight, SPIKING, pool=2),
        DenseLayer(np.ones((2, 5), np.int64), READOUT),
    ]
    net = network(layers, timesteps=1, host_kernel=1)
    record = SpikeRecord(
        spikes=[
            spikes_at((1, 4, 4), 1, [[(0, 0, 0), (0, 0, 1), (0, 3, 3)]]),
            None,
            spikes_at((5,), 1, [[(0,), (4,)]]),
            None,
        ],
        readout=torch.zeros((1, 2), dtype=torch.int64),
    )
    counter = OpCounter.for_network(net)
    counter.add(record)
    host, fc, out = counter.result().layers
    assert host.ann_macs == 1 * 1 * 1 * 4 * 4 * 1
    assert (fc.name, fc.ann_macs, fc.synaptic_events) == ("pool+fc1", 4 * 5, 3 * 5)
    assert (out.ann_macs, out.synaptic_events) == (10, 2 * 2)
    # eq. 17 prices the 3 input spikes over 16 neurons against the pooled layer's 20 MACs:
    # 3.75 ops where the chip makes 15 events (k² = 4 per spike)
    assert fc.eq17_ops == pytest.approx(3 / 16 * 20)
    assert out.eq17_ops == pytest.approx(2 / 5 * 10)


def random_record(net, batch, seed) -> SpikeRecord:
    gen = torch.Generator().manual_seed(seed)
    spikes = [
        None
        if isinstance(layer, FlattenLayer) or not layer.neuron.spiking
        else torch.rand((net.timesteps, batch, *layer.shape), generator=gen) < 0.3
        for layer in net.layers
    ]
    return SpikeRecord(spikes=spikes, readout=torch.zeros((batch, 2), dtype=torch.int64))


def test_batches_accumulate_as_one():
    net = pooled_conv_net(3)
    a, b = random_record(net, 2, 1), random_record(net, 3, 2)
    joined = SpikeRecord(
        spikes=[
            None if x is None else torch.cat([x, y], 1)
            for x, y in zip(a.spikes, b.spikes, strict=True)
        ],
        readout=torch.zeros((5, 2), dtype=torch.int64),
    )
    split, whole = OpCounter.for_network(net), OpCounter.for_network(net)
    split.add(a)
    split.add(b)
    whole.add(joined)
    assert split.result() == whole.result()
    counts = whole.result()
    expected_input_spikes = float(joined.spikes[0].sum()) / 5
    assert counts.layers[0].spikes == pytest.approx(expected_input_spikes)
    assert counts.num_images == 5


def test_paper_fractions():
    net = pooled_conv_net(1)
    counter = OpCounter.for_network(net)
    counter.add(random_record(net, 2, 3))
    counts = counter.result()
    total = counts.total()
    host = 9 * 64  # 3×3 host conv onto 1×8×8
    assert total.ann_macs == host + 432 + 48 * 2
    assert counts.first_layer_share == pytest.approx(host / total.ann_macs)
    assert counts.normalised_snn_ops == pytest.approx(total.synaptic_events / (432 + 96))
    assert counts.normalised_eq17_ops == pytest.approx(total.eq17_ops / (432 + 96))
    assert total.eq17_ops == pytest.approx(sum(row.eq17_ops for row in counts.layers))


def test_bad_records_raise():
    net = pooled_conv_net(2)
    counter = OpCounter.for_network(net)
    record = random_record(net, 2, 0)
    record.spikes[1] = None
    with pytest.raises(DeployError, match="no spikes for layer 1"):
        counter.add(record)
    record = random_record(net, 2, 0)
    record.spikes[1] = record.spikes[1][:, :1]
    with pytest.raises(DeployError, match="batch"):
        counter.add(record)
    with pytest.raises(DeployError, match="no spikes were counted"):
        OpCounter.for_network(net).result()


def test_plan_rejects_kernels_that_do_not_unfold():
    layers = [
        InputLayer((1, 8, 8), SPIKING),
        conv(1, 3, 8, 4, kernel=5, stride=2, padding=2, pool=2),
        FlattenLayer((3, 4, 4)),
        DenseLayer(np.ones((2, 48), np.int64), READOUT),
    ]
    with pytest.raises(DeployError, match="not divisible by its folded pool 2"):
        counting_plan(network(layers, 1))
    names = [g.name for g in counting_plan(pooled_conv_net(1))]
    assert names == ["conv1", "pool+conv2", "readout"]


def test_notes_state_the_networks_input_pricing_and_single_spike_layers():
    from dataclasses import replace

    direct = pooled_conv_net(4)
    expected = "input encoding direct: step 1 analog (host MACs), step 2–4 the drive reused"
    assert OpCounter.for_network(direct).notes[-1].startswith(expected)
    single = Neuron(v_decay=0, threshold=10, model="single-spike", refractory=4)
    layers = [
        replace(layer, neuron=single) if i == 0 else layer for i, layer in enumerate(direct.layers)
    ]
    hybrid = replace(direct, layers=layers, encoder=replace(direct.encoder, encoding="hybrid"))
    notes = OpCounter.for_network(hybrid).notes
    assert "input encoding hybrid: step 1 analog (host MACs), step 2–4 binary (host ACs)" in notes
    assert any(n.startswith("single-spike neurons (conv1) fire at most once") for n in notes)
