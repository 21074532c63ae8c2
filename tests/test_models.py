"""DIET architectures: shapes, the official layer layout, and the SNN driver's semantics
(direct/Poisson input, per-sample dropout masks reused over time, Σ_t W·o_t readout, bulk
execution identical to the per-step loop)."""

import pytest
import torch
from torch import nn

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.encodings import get_encoding
from dietsnn_deploy.spine.neurons.lif import lif_scan
from dietsnn_deploy.training.models import ARCHITECTURES, MIN_THRESHOLD, DietNet, build_model
from dietsnn_deploy.training.stages import convert

SHAPES = {"digits": ((1, 8, 8), 10), "mnist": ((1, 28, 28), 10), "cifar100": ((3, 32, 32), 100)}


def _active_snn(arch: str, shape, seed: int = 0, dropout: float = 0.2, timesteps: int = 4):
    """A model whose every layer spikes: thresholds balanced on random images, then halved."""
    torch.manual_seed(seed)
    model = build_model(arch, shape, 10, dropout)
    images = torch.randn((32, *shape), generator=torch.Generator().manual_seed(seed))
    convert(model, images, timesteps=timesteps, scale=0.5, progress=False)
    model.set_neuron_params(leaks=[0.9] * len(model.neuron_keys))
    return model


def _images(shape, count: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn((count, *shape), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("dataset", list(SHAPES))
def test_every_architecture_builds_and_gives_batch_by_classes(arch, dataset):
    shape, classes = SHAPES[dataset]
    # Shapes only: the meta device skips allocating the (up to 134 M) weights.
    with torch.device("meta"):
        model = build_model(arch, shape, classes)
        x = torch.empty((3, *shape))
        assert model(x).shape == (3, classes)
        model.spiking = True
        model.train()
        out = model.run_snn(x, 2, record=True)
    assert out.logits.shape == (3, classes)
    assert list(out.spikes) == model.neuron_keys
    assert all(s.shape[:2] == (2, 3) for s in out.spikes.values())
    # Neither bias nor BatchNorm anywhere; pooling (if any) is average pooling.
    for module in model.modules():
        assert not isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d | nn.MaxPool2d)
        if isinstance(module, nn.Conv2d | nn.Linear):
            assert module.bias is None
    for key, value in model.state_dict().items():
        assert key.endswith(".weight") or (key.startswith(("threshold.t", "leak.l")))
        if key.startswith(("threshold.", "leak.")):
            assert value.shape == ()


def test_vgg5_on_28x28_has_the_official_parameter_shapes():
    with torch.device("meta"):
        model = build_model("vgg5", (1, 28, 28), 10)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {
        "features.0.weight": (64, 1, 3, 3),
        "features.3.weight": (128, 64, 3, 3),
        "features.6.weight": (128, 128, 3, 3),
        "classifier.0.weight": (4096, 128 * 7 * 7),
        "classifier.3.weight": (4096, 4096),
        "classifier.6.weight": (10, 4096),
        **{f"threshold.t{i}": () for i in (0, 3, 6, 9, 12)},
        **{f"leak.l{i}": () for i in (0, 3, 6, 9, 12)},
    }
    kinds = [type(m) for m in model.features]
    assert kinds == [
        nn.Conv2d, nn.ReLU, nn.AvgPool2d,
        nn.Conv2d, nn.ReLU, nn.Dropout,
        nn.Conv2d, nn.ReLU, nn.AvgPool2d,
    ]  # fmt: skip
    assert [type(m) for m in model.classifier] == [
        nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear
    ]  # fmt: skip
    assert model.neuron_keys == ["0", "3", "6", "9", "12"]


def test_vgg4_on_28x28_has_the_official_classifier():
    with torch.device("meta"):
        model = build_model("vgg4", (1, 28, 28), 10)
    linear = [tuple(m.weight.shape) for m in model.classifier if isinstance(m, nn.Linear)]
    assert linear == [(1024, 128 * 7 * 7), (10, 1024)]


def test_unknown_architecture_is_a_deploy_error():
    with pytest.raises(DeployError, match="unknown architecture 'vgg7'"):
        build_model("vgg7", (1, 8, 8), 10)


def test_initialisation_follows_the_official_code():
    torch.manual_seed(0)
    model = build_model("vgg5-slim", (1, 28, 28), 10)
    conv = model.features[3]  # 64 outputs, 3×3: std √(2/(9·64)) = 0.0589
    assert float(conv.weight.detach().std()) == pytest.approx((2 / (9 * 64)) ** 0.5, rel=0.03)
    assert float(model.classifier[0].weight.detach().std()) == pytest.approx(0.01, rel=0.03)
    assert model.thresholds() == [1.0] * 4 and model.leaks() == [1.0] * 4


@pytest.mark.parametrize("arch", ["vgg-tiny", "vgg5-slim", "resnet20"])
@pytest.mark.parametrize("encoding", ["direct", "poisson"])
def test_bulk_equals_per_step_loop_in_train_mode(arch, encoding):
    model = _active_snn(arch, (1, 8, 8))
    model.encoding = get_encoding(encoding)
    model.train()  # dropout on: both runs must draw the same per-sample masks
    x = _images((1, 8, 8), count=16).clamp(-1.5, 1.5)
    runs = []
    for bulk in (True, False):
        torch.manual_seed(7)
        generator = torch.Generator().manual_seed(3)
        with torch.no_grad():
            runs.append(model.run_snn(x, 4, bulk=bulk, record=True, generator=generator))
    bulk_out, loop_out = runs
    for key, spikes in bulk_out.spikes.items():
        assert spikes.shape[:2] == (4, 16)
        assert 0.005 < float(spikes.mean()) < 0.95, f"layer {key} is silent or saturated"
        assert torch.equal(spikes, loop_out.spikes[key]), f"layer {key} differs"
    # The readout sums the same W·o_t in the same order; the GEMM kernel chosen for T·B rows
    # may still round differently from the one for B rows on some CPUs, hence the tolerance.
    torch.testing.assert_close(bulk_out.logits, loop_out.logits, rtol=1e-6, atol=1e-6)
    assert float(bulk_out.logits.abs().max()) > 0.01


def test_bulk_and_loop_give_the_same_gradients():
    model = _active_snn("vgg-tiny", (1, 8, 8))
    model.train()
    x = _images((1, 8, 8), count=8)
    labels = torch.arange(8) % 10
    grads = []
    for bulk in (True, False):
        model.zero_grad()
        torch.manual_seed(5)
        logits = model.run_snn(x, 4, bulk=bulk).logits
        nn.functional.cross_entropy(logits, labels).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], rtol=1e-4, atol=1e-7, msg=name)
    assert float(grads[0]["threshold.t0"].abs()) > 0 and float(grads[0]["leak.l3"].abs()) > 0


def _capture_inputs(module: nn.Module, store: list):
    return module.register_forward_pre_hook(lambda _m, args: store.append(args[0].detach()))


@pytest.mark.parametrize("bulk", [True, False])
def test_one_dropout_mask_per_sample_reused_at_every_step(bulk):
    # vgg5-slim: classifier = Linear(9) → ReLU → Dropout(11) → readout; the readout's input is
    # the dropped-out spike train of layer 9.
    model = _active_snn("vgg5-slim", (1, 8, 8), dropout=0.5)
    model.train()
    seen: list[torch.Tensor] = []
    hook = _capture_inputs(model.classifier[-1], seen)
    torch.manual_seed(11)
    out = model.run_snn(_images((1, 8, 8), count=8), 5, bulk=bulk, record=True)
    hook.remove()
    readout_in = torch.cat(seen) if not bulk else seen[0]
    spikes = out.spikes["9"]  # recorded before dropout
    assert readout_in.shape == spikes.shape == (5, 8, 512)
    fired = spikes.bool().any(0)  # (B, N): neurons that spiked at least once
    # Mask value per neuron from any step where it fired; 0 (dropped) or 1/(1−p) = 2.
    mask = (readout_in.sum(0) / spikes.sum(0).clamp(min=1))[fired]
    assert set(mask.unique().tolist()) == {0.0, 2.0}
    full_mask = torch.zeros_like(fired, dtype=torch.float32)
    full_mask[fired] = mask
    # The same mask explains every step: dropped neurons are zero at all T steps.
    assert torch.equal(readout_in[:, fired], (spikes * full_mask)[:, fired])
    dropped = fired & (full_mask == 0)
    assert int(dropped.sum()) > 20 and float(readout_in[:, dropped].abs().sum()) == 0.0
    assert 0.35 < float((full_mask[fired] == 0).float().mean()) < 0.65
    # Per sample: two samples' masks differ where both fired.
    both = fired[0] & fired[1]
    assert not torch.equal(full_mask[0][both], full_mask[1][both])


def test_eval_mode_has_no_dropout():
    model = _active_snn("vgg5-slim", (1, 8, 8), dropout=0.5)
    model.eval()
    seen: list[torch.Tensor] = []
    hook = _capture_inputs(model.classifier[-1], seen)
    out = model.run_snn(_images((1, 8, 8)), 3, record=True)
    hook.remove()
    assert torch.equal(seen[0], out.spikes["9"])


@pytest.mark.parametrize("arch", ["vgg-tiny", "resnet20"])
def test_output_is_sum_over_steps_of_readout_weights_times_spikes(arch):
    model = _active_snn(arch, (1, 8, 8))
    model.eval()
    out = model.run_snn(_images((1, 8, 8)), 5, record=True)
    last = out.spikes[model.neuron_keys[-1]].flatten(2)  # (T, B, N), o_t of the last layer
    weight = (model.classifier[-1] if arch != "resnet20" else model.classifier).weight
    expected = sum(last[t] @ weight.T for t in range(5))  # no leak, no threshold, not / T
    torch.testing.assert_close(out.logits, expected, rtol=1e-5, atol=1e-6)
    assert float(last.mean()) > 0.01


def test_direct_encoding_feeds_the_same_current_every_step():
    model = _active_snn("vgg-tiny", (1, 8, 8))
    model.eval()
    x = _images((1, 8, 8))
    out = model.run_snn(x, 6, record=True)
    current = model.features[0](x)
    leak, threshold = model.neuron("0")
    expected, _ = lif_scan(current.expand(6, *current.shape), None, leak, threshold)
    assert torch.equal(out.spikes["0"], expected)
    torch.testing.assert_close(model.probe_current(x, "0", 6), current.expand(6, *current.shape))


def test_average_pool_passes_fractional_spike_counts_to_the_next_conv():
    model = _active_snn("vgg-tiny", (1, 8, 8))
    model.eval()
    seen: list[torch.Tensor] = []
    hook = _capture_inputs(model.features[3], seen)
    out = model.run_snn(_images((1, 8, 8)), 3, record=True)
    hook.remove()
    pooled = nn.functional.avg_pool2d(out.spikes["0"].flatten(0, 1), 2)
    assert torch.equal(seen[0], pooled)
    assert set(seen[0].unique().tolist()) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert len(seen[0].unique()) >= 4


def test_poisson_frames_rate_and_sign():
    x = torch.tensor([0.3, -0.6, 2.0, -3.0, 0.0])
    frames = get_encoding("poisson").frames(x, 4000, torch.Generator().manual_seed(0))
    assert frames.shape == (4000, 5)
    assert set(frames.unique().tolist()) <= {-1.0, 0.0, 1.0}
    rates = frames.mean(0)
    assert rates.tolist() == pytest.approx([0.3, -0.6, 1.0, -1.0, 0.0], abs=0.03)
    again = get_encoding("poisson").frames(x, 4000, torch.Generator().manual_seed(0))
    assert torch.equal(frames, again)


def test_poisson_encoding_is_used_when_set():
    model = _active_snn("vgg-tiny", (1, 8, 8))
    model.eval()
    x = _images((1, 8, 8)).clamp(-1, 1)
    model.encoding = get_encoding("poisson")
    a = model.run_snn(x, 4, generator=torch.Generator().manual_seed(1), record=True).spikes["0"]
    b = model.run_snn(x, 4, generator=torch.Generator().manual_seed(2), record=True).spikes["0"]
    model.encoding = get_encoding("direct")
    c = model.run_snn(x, 4, record=True).spikes["0"]
    assert not torch.equal(a, b) and not torch.equal(a, c)


def test_neuron_parameter_helpers():
    model = build_model("vgg-tiny", (1, 8, 8), 10)
    assert isinstance(model, DietNet) and model.neuron_keys == ["0", "3", "6"]
    model.set_neuron_params(thresholds=[0.5, -1.5, 2.5], leaks=[-0.2, 0.7, 1.3])
    model.clamp_neuron_params()
    assert model.thresholds() == pytest.approx([0.5, MIN_THRESHOLD, 2.5])
    assert model.leaks() == pytest.approx([0.0, 0.7, 1.0])
    with pytest.raises(DeployError, match="expected 3 neuron values, got 2"):
        model.set_neuron_params(thresholds=[1.0, 2.0])
    with pytest.raises(DeployError, match="no spiking layer '5'"):
        model.probe_current(_images((1, 8, 8)), "5", 2)
