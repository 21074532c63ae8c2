"""The quantizer (DietVGG → DeployedNetwork): exactness against the float model on a network
already on the integer grid, pool folding, the scale rules, the per-step input bound, and the
refusals."""

from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dietsnn_deploy.data import make_loader
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.encodings import get_encoding
from dietsnn_deploy.spine.loihi import A_IN_MAX, BIAS_MAX, DECAY_UNITY, THRESHOLD_MAX, WEIGHT_MAX
from dietsnn_deploy.spine.network import ConvLayer, DenseLayer, LayerQuantization
from dietsnn_deploy.spine.neurons import get_neuron_model
from dietsnn_deploy.training.models import ArchSpec, DietVGG, build_model
from dietsnn_deploy.training.quantize import quantize, quantize_weights, raw_weight, synapses
from dietsnn_deploy.training.stages import convert
from exporters.netx import read_netx, write_netx
from hw_sim.emulator import Emulator
from hw_sim.host import encode_drive

# conv 4 (host) → 2×2 pool → conv 6 → 2×2 pool → flatten → dense 8 → readout 10 on 8×8:
# both kinds of pool folding (into a conv and into a dense layer after the flatten).
GRID_SPEC = ArchSpec("grid-test", "vgg", (4, "A", 6, "A"), (8,))
GRID_UNIT = 64  # hidden weights are even integers / 64, so the quantizer's scale is 64
HOST_PEAK = 315  # 9 taps × 35 on an all-ones image: s0 = 4095 / 315 = 13, an integer


GRID_T = 6


def grid_model(leak: float = 1.0, seed: int = 0) -> DietVGG:
    """A DietVGG whose quantization is exact: integer host weights with a peak drive that
    divides 4095, hidden weights 2m/64 with max |2m| = 254, thresholds on each layer's grid,
    hard reset, ``leak`` in every layer."""
    generator = torch.Generator().manual_seed(seed)
    model = DietVGG(GRID_SPEC, (1, 8, 8), 10, dropout=0.0)
    syns = synapses(model)
    with torch.no_grad():
        host = torch.randint(-4, 5, syns[0].module.weight.shape, generator=generator).float()
        host[0] = HOST_PEAK / 9
        syns[0].module.weight.copy_(host)
        for syn in syns[1:]:
            low = -127 if syn.key is None else -100  # hidden layers lean excitatory
            mantissa = 2 * torch.randint(low, 128, syn.module.weight.shape, generator=generator)
            mantissa.view(-1)[0] = WEIGHT_MAX
            syn.module.weight.copy_(mantissa.float() / GRID_UNIT)
    model.set_neuron_params(thresholds=[60.0, 1200 / GRID_UNIT, 300 / GRID_UNIT], leaks=[leak] * 3)
    model.spiking, model.neuron_model = True, get_neuron_model("lif", "hard")
    return model.eval()


def binary_images(count: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand((count, 1, 8, 8), generator=generator) < 0.5).float()


def grid_network(model: DietVGG):
    """Quantize with mean 0 / std 1, so the float model and the host see the same pixels."""
    calibration = torch.cat([binary_images(64, 1), torch.ones(1, 1, 8, 8)])
    return quantize(model, calibration, timesteps=GRID_T, mean=(0.0,), std=(1.0,), dataset="binary")


def compare_runs(model: DietVGG, images: torch.Tensor):
    """(emulator record, float SNN output, deployed network) on the same images."""
    net = grid_network(model)
    record = Emulator(net).run(encode_drive(net.encoder, images))
    with torch.no_grad():
        out = model.run_snn(images, GRID_T, record=True)
    return record, out, net


def test_grid_model_runs_bit_exact_with_hard_reset_and_no_leak():
    model = grid_model()
    record, out, net = compare_runs(model, binary_images(64, 2))
    assert [q.scale for q in net.quantization] == [13.0, 64.0, 64.0, 64.0]
    spiking = [index for index, layer in net.neuron_layers[:-1]]
    assert len(spiking) == len(model.neuron_keys) == 3
    for index, key in zip(spiking, model.neuron_keys, strict=True):
        expected = out.spikes[key].bool()
        assert record.spikes[index].shape == expected.shape
        assert torch.equal(record.spikes[index], expected), f"layer {index} (t{key})"
        assert 0.05 < float(expected.float().mean()) < 0.6  # neither silent nor saturated
    # readout v = Σ_t W_int·o_t << 6 = logits · scale · 64, exactly
    expected_readout = (out.logits.double() * GRID_UNIT * 64).round().long()
    assert torch.equal(record.readout, expected_readout)
    assert torch.equal(record.readout.argmax(1), out.logits.argmax(1))
    assert len(record.readout.argmax(1).unique()) > 1


@pytest.mark.parametrize("v_decay", [410, 1229])
def test_grid_model_with_leak_agrees_closely(v_decay):
    """With λ < 1 the chip truncates v's decay toward zero each step (< 1/64 weight unit), so
    spikes may differ where a potential sits at the threshold: test agreement rates."""
    model = grid_model(leak=1 - v_decay / DECAY_UNITY, seed=3)
    record, out, net = compare_runs(model, binary_images(128, 4))
    assert [q.v_decay for q in net.quantization] == [v_decay] * 3 + [0]
    for (index, _), key in zip(net.neuron_layers[:-1], model.neuron_keys, strict=True):
        agreement = (record.spikes[index] == out.spikes[key].bool()).float().mean()
        assert agreement >= 0.99, f"layer {index}: {float(agreement):.4f}"
    predictions_agree = (record.readout.argmax(1) == out.logits.argmax(1)).float().mean()
    assert predictions_agree >= 0.95


def test_folded_pool_equals_original_kernel_on_pooled_spikes():
    """conv(spikes, kron(W, 1ₖₓₖ), stride·k, padding·k) == conv(avgpool(spikes), W)·k², and
    the dense weight after the flatten likewise, as integers."""
    model = grid_model()
    net = grid_network(model)
    syns = synapses(model)
    conv = next(layer for layer in net.layers if isinstance(layer, ConvLayer))
    dense = next(layer for layer in net.layers if isinstance(layer, DenseLayer))
    assert conv.pool == dense.pool == 2
    generator = torch.Generator().manual_seed(7)
    spikes = (torch.rand((5, *conv.in_shape), generator=generator) < 0.4).double()
    original, _ = quantize_weights(raw_weight(syns[1].module).double().numpy(), 64.0)
    folded = F.conv2d(
        spikes, torch.from_numpy(conv.weight).double(), stride=conv.stride, padding=conv.padding
    )
    pooled = F.conv2d(F.avg_pool2d(spikes, 2), torch.from_numpy(original).double(), padding=1)
    assert folded.shape[1:] == conv.shape
    assert torch.equal(folded, pooled * 4)
    assert torch.equal(folded, folded.round())

    hidden = (torch.rand((5, *conv.shape), generator=generator) < 0.4).double()
    dense_original, _ = quantize_weights(raw_weight(syns[2].module).double().numpy(), 64.0)
    folded_sum = hidden.flatten(1) @ torch.from_numpy(dense.weight).double().T
    pooled_sum = F.avg_pool2d(hidden, 2).flatten(1) @ torch.from_numpy(dense_original).double().T
    assert torch.equal(folded_sum, pooled_sum * 4)


# --- scale rules on a converted vgg-tiny (real-valued weights) ------------------------------


@pytest.fixture(scope="module")
def digits_calibration():
    images, _ = next(iter(make_loader("digits", "train", 128, augment=False, shuffle=False)))
    return images


def tiny_model(calibration, leaks=(0.9, 0.75, 0.6)) -> DietVGG:
    torch.manual_seed(0)
    model = build_model("vgg-tiny", (1, 8, 8), 10, dropout=0.0)
    convert(model, calibration, timesteps=5, progress=False)
    model.set_neuron_params(leaks=list(leaks))
    return model.eval()


def _quantize_digits(model, calibration, timesteps: int = 5):
    return quantize(
        model, calibration, timesteps=timesteps, mean=(0.3054,), std=(0.3761,), dataset="digits"
    )


def test_scale_rules(digits_calibration):
    model = tiny_model(digits_calibration)
    net = _quantize_digits(model, digits_calibration)
    syns = synapses(model)
    report = net.quantization
    assert [q.name for q in report] == ["input t0", "t3", "t6", "readout"]
    # host: the largest calibration drive lands exactly on the 13-bit bias limit, none clipped
    with torch.no_grad():
        peak = float(syns[0].module(digits_calibration).abs().max())
    assert report[0].scale == pytest.approx(BIAS_MAX / peak, rel=1e-12)
    assert report[0].weight_saturated == 0.0
    assert report[0].input_bound == BIAS_MAX
    weighted = [layer for layer in net.layers if isinstance(layer, ConvLayer | DenseLayer)]
    for syn, q, layer in zip(syns[1:], report[1:], weighted, strict=True):
        w_int, _ = quantize_weights(raw_weight(syn.module).double().numpy(), q.scale)
        assert int(np.abs(w_int).max()) == WEIGHT_MAX  # full 8-bit range (nothing binds here)
        assert q.weight_saturated == 0.0
        assert np.all(layer.weight % 2 == 0)
        assert layer.pool == syn.pool
        assert q.weight_rmse <= 1.0 / q.scale  # even mantissas: error ≤ 1 unit / scale
    for key, q, leak in zip(model.neuron_keys, report[:3], (0.9, 0.75, 0.6), strict=True):
        pool = next(s.pool for s in syns if s.key == key)
        theta = float(model.threshold[f"t{key}"].detach())
        assert q.threshold == round(theta * q.scale * pool**2)
        assert q.v_decay == round(DECAY_UNITY * (1 - leak))
    readout = net.layers[-1].weight
    assert net.timesteps * int(np.abs(readout).sum(1).max()) < 2**17
    neurons = [layer.neuron for _, layer in net.neuron_layers]
    assert [(n.threshold, n.v_decay) for n in neurons] == [(q.threshold, q.v_decay) for q in report]


def test_threshold_limited_scale(digits_calibration):
    """A threshold too large for 17 bits at the full weight range shrinks the layer's scale."""
    model = tiny_model(digits_calibration)
    with torch.no_grad():
        model.threshold["t6"].fill_(1e4)
    q = _quantize_digits(model, digits_calibration).quantization[2]
    pool = synapses(model)[2].pool
    assert pool == 2
    assert q.threshold == round(1e4 * q.scale * pool**2) <= THRESHOLD_MAX
    assert q.threshold >= THRESHOLD_MAX - 1
    w_int, _ = quantize_weights(raw_weight(synapses(model)[2].module).double().numpy(), q.scale)
    assert int(np.abs(w_int).max()) < WEIGHT_MAX


def test_readout_bound_holds_on_rounded_weights(digits_calibration):
    """With many steps the readout's scale is set by T·max_row Σ|W_int| < 2^17, and stays
    close to that limit (not needlessly coarse)."""
    model = tiny_model(digits_calibration)
    net = _quantize_digits(model, digits_calibration, timesteps=100)
    row_sum = int(np.abs(net.layers[-1].weight).sum(1).max())
    assert 0.95 * 2**17 < 100 * row_sum < 2**17
    assert int(np.abs(net.layers[-1].weight).max()) < WEIGHT_MAX


def test_readout_bound_holds_when_rounding_inflates_the_row_sums(digits_calibration):
    """Weights of 0.01 next to one of 1.0 per row: at the float bound's scale (≈ 102) each
    small one becomes 1.02 → mantissa 2, doubling the row sum; the scale must shrink."""
    model = tiny_model(digits_calibration)
    with torch.no_grad():
        readout = synapses(model)[-1].module.weight
        readout.fill_(0.01)
        readout[:, 0] = 1.0
    net = _quantize_digits(model, digits_calibration, timesteps=560)
    assert 560 * int(np.abs(net.layers[-1].weight).sum(1).max()) < 2**17


def _brute_input_bound(layer) -> int:
    """max over neurons of max(Σ W⁺, Σ |W⁻|) over the inputs it actually sees, one by one."""
    weight = layer.weight.astype(np.int64)
    if isinstance(layer, DenseLayer):
        return int(max(np.maximum(weight, 0).sum(1).max(), np.maximum(-weight, 0).sum(1).max()))
    _, height, width = layer.in_shape
    (sy, sx), (py, px), (kh, kw) = layer.stride, layer.padding, weight.shape[2:]
    best = 0
    for y in range(layer.shape[1]):
        for x in range(layer.shape[2]):
            rows = [r for r in range(kh) if 0 <= y * sy - py + r < height]
            cols = [c for c in range(kw) if 0 <= x * sx - px + c < width]
            seen = weight[:, :, rows][:, :, :, cols]
            positive = np.maximum(seen, 0).sum((1, 2, 3)).max()
            negative = np.maximum(-seen, 0).sum((1, 2, 3)).max()
            best = max(best, int(positive), int(negative))
    return best


def test_input_bound_is_the_worst_case_per_step_input(digits_calibration):
    model = tiny_model(digits_calibration)
    net = _quantize_digits(model, digits_calibration)
    weighted = [layer for layer in net.layers if isinstance(layer, ConvLayer | DenseLayer)]
    for q, layer in zip(net.quantization[1:], weighted, strict=True):
        assert q.input_bound == _brute_input_bound(layer)


def test_large_excitatory_fan_in_is_flagged(digits_calibration):
    """1024 folded inputs of weight up to 254 can deliver ≫ 2^15 in one step."""
    model = tiny_model(digits_calibration)
    q_before = _quantize_digits(model, digits_calibration).quantization
    with torch.no_grad():
        hidden = synapses(model)[2].module.weight
        hidden.copy_(hidden.abs())
    q_after = _quantize_digits(model, digits_calibration).quantization
    assert q_after[2].input_bound > A_IN_MAX and q_after[2].exceeds_int16
    flagged_before = [q.name for q in q_before if q.exceeds_int16]
    assert flagged_before == [q.name for q in q_before if q.input_bound > A_IN_MAX]
    assert not q_after[0].exceeds_int16  # the host drive is at most 4095
    unknown = LayerQuantization("old", 1.0, 0.0, 0.0, 1, 0)
    assert unknown.input_bound is None and not unknown.exceeds_int16


def test_input_bound_survives_netx_and_old_tables_read_as_unknown(tmp_path, digits_calibration):
    net = _quantize_digits(tiny_model(digits_calibration), digits_calibration)
    path = tmp_path / "net.net"
    write_netx(net, path)
    assert read_netx(path).quantization == net.quantization
    with h5py.File(path, "r+") as f:  # rewrite the table as files before the column had it
        table = f["dietsnn/quantization"][()]
        old_columns = [name for name in table.dtype.names if name != "input_bound"]
        old = np.array(table[old_columns].tolist(), dtype=table[old_columns].dtype)
        del f["dietsnn/quantization"]
        f["dietsnn"].create_dataset("quantization", data=old)
        f["dietsnn"].attrs["format_version"] = 1  # a file of that time: no digest
        del f["dietsnn"].attrs["digest"]
    expected = [replace(q, input_bound=None) for q in net.quantization]
    assert read_netx(path).quantization == expected


# --- refusals ------------------------------------------------------------------------------


def _refused(model, calibration, message: str) -> None:
    with pytest.raises(DeployError, match=message) as caught:
        _quantize_digits(model, calibration)
    assert "\n" not in str(caught.value)


def test_refuses_resnet(digits_calibration):
    model = build_model("resnet20", (1, 8, 8), 10)
    model.spiking = True
    _refused(model, digits_calibration, "resnet20.*residual")


def test_poisson_host_scale_covers_the_worst_binary_frame(digits_calibration):
    """Poisson frames are in {−1, 0, 1}: the host's scale is set by the largest Σ|W| a frame
    can meet (border windows see fewer pixels), so no drive is ever clipped."""
    model = tiny_model(digits_calibration)
    model.encoding = get_encoding("poisson")
    net = _quantize_digits(model, digits_calibration)
    weight = synapses(model)[0].module.weight.detach().double()
    worst = float(weight.abs().sum(dim=(1, 2, 3)).max())  # an interior 3×3 window
    assert net.encoder.encoding == "poisson"
    assert net.encoder.drive_scale == pytest.approx(BIAS_MAX / worst, rel=1e-12)


@pytest.mark.parametrize("key", ["0", "3", "6"])
@pytest.mark.parametrize("value", [0.0, -0.5, float("nan")])
def test_refuses_non_positive_threshold(digits_calibration, key, value):
    model = tiny_model(digits_calibration)
    with torch.no_grad():
        model.threshold[f"t{key}"].fill_(value)
    _refused(model, digits_calibration, f"layer {key}: threshold")


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_refuses_leak_outside_unit_interval(digits_calibration, value):
    model = tiny_model(digits_calibration, leaks=(0.9, value, 0.6))
    _refused(model, digits_calibration, "layer 3: leak")


@pytest.mark.parametrize(
    ("index", "message"),
    [(0, "layer 0 \\(host conv\\)"), (1, "layer 3: all weights are zero"), (3, "layer readout")],
)
def test_refuses_all_zero_weights(digits_calibration, index, message):
    model = tiny_model(digits_calibration)
    with torch.no_grad():
        synapses(model)[index].module.weight.zero_()
    _refused(model, digits_calibration, message)
