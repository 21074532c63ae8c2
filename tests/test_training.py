"""Training stages on the embedded digits data: conversion's threshold balancing against an
independent NumPy computation, the DIET stage's fixed/learned neuron parameters, a short run
that learns, evaluation's spike rates, and divergence as a DeployError."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from dietsnn_deploy.data import make_loader
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.encodings import get_encoding
from dietsnn_deploy.spine.settings import RunSettings
from dietsnn_deploy.training.loop import evaluate
from dietsnn_deploy.training.models import build_model
from dietsnn_deploy.training.stages import convert, train_ann, train_snn

T = 5
RUN = RunSettings(T)


def _digits_loaders():
    train = make_loader("digits", "train", 32, limit=960, seed=0)
    test = make_loader("digits", "test", 256, limit=200)
    return train, test


@pytest.fixture
def loaders():
    """Fresh loaders per test: the shuffle and augmentation generators start from the seed."""
    return _digits_loaders()


@pytest.fixture(scope="module")
def calibration():
    loader = make_loader("digits", "train", 256, augment=False, shuffle=False)
    return next(iter(loader))[0]


@pytest.fixture(scope="module")
def trained():
    """vgg-tiny ANN trained for 12 short epochs (about 2 s), with its history."""
    torch.manual_seed(0)
    model = build_model("vgg-tiny", (1, 8, 8), 10)
    history = train_ann(model, *_digits_loaders(), epochs=12, lr=3e-3, progress=False)
    return model, history


@pytest.fixture(scope="module")
def converted(trained, calibration):
    model = copy.deepcopy(trained[0])
    thresholds = convert(model, calibration, timesteps=T, progress=False)
    return model, thresholds


def _numpy_threshold(currents: torch.Tensor, q: float = 99.7) -> float:
    """max over steps of the q-th percentile (nearest rank) of one layer's currents (T, …)."""
    return max(float(np.percentile(step.numpy().ravel(), q, method="nearest")) for step in currents)


def _if_spikes(currents: torch.Tensor, threshold: float) -> torch.Tensor:
    """IF neuron (leak 1, soft reset) over the leading time axis, written out by hand."""
    u = torch.zeros_like(currents[0])
    out = []
    for current in currents:
        u = u + current
        spike = (u > threshold).float()
        u = u - threshold * spike
        out.append(spike)
    return torch.stack(out)


def _expected_vgg_tiny_thresholds(model, images: torch.Tensor, scale: float) -> list[float]:
    """vgg-tiny = conv0 → pool → conv3 → pool → fc6 → readout, balanced layer by layer with
    unscaled thresholds (as the official code), then scaled."""
    conv0, conv3, fc6 = model.features[0], model.features[3], model.classifier[0]
    with torch.no_grad():
        c0 = conv0(images).expand(T, *conv0(images).shape)  # direct input: same every step
        t0 = _numpy_threshold(c0)
        s0 = _if_spikes(c0, t0)
        c3 = torch.stack([conv3(nn.functional.avg_pool2d(s, 2)) for s in s0])
        t3 = _numpy_threshold(c3)
        s3 = _if_spikes(c3, t3)
        c6 = torch.stack([fc6(nn.functional.avg_pool2d(s, 2).flatten(1)) for s in s3])
        t6 = _numpy_threshold(c6)
    return [t0 * scale, t3 * scale, t6 * scale]


def test_poisson_models_are_balanced_on_poisson_input(trained, calibration):
    model = copy.deepcopy(trained[0])
    model.encoding = get_encoding("poisson")
    found = convert(model, calibration, timesteps=T, progress=False)
    frames = get_encoding("poisson").frames(calibration, T, torch.Generator().manual_seed(0))
    with torch.no_grad():
        first = torch.stack([model.features[0](frame) for frame in frames])
    assert found[0] == pytest.approx(_numpy_threshold(first), rel=1e-6)
    model.encoding = get_encoding("direct")
    direct = convert(model, calibration, timesteps=T, progress=False)
    assert direct[0] != pytest.approx(found[0], rel=1e-3)


@pytest.mark.parametrize("scale", [1.0, 0.4])
def test_convert_balances_thresholds_at_the_997th_percentile(trained, calibration, scale):
    model = copy.deepcopy(trained[0])
    model.set_neuron_params(leaks=[0.5, 0.6, 0.7])
    found = convert(model, calibration, timesteps=T, scale=scale, progress=False)
    expected = _expected_vgg_tiny_thresholds(model, calibration, scale)
    assert found == pytest.approx(expected, rel=1e-6)
    assert model.thresholds() == pytest.approx(expected, rel=1e-6)
    assert model.leaks() == [1.0, 1.0, 1.0]
    assert model.spiking
    # the later layers' currents really vary over T (so the max over steps matters)
    assert len(set(found)) == 3


def test_convert_on_a_dead_network_is_a_deploy_error(calibration):
    model = build_model("vgg-tiny", (1, 8, 8), 10)
    with torch.no_grad():
        model.features[0].weight.zero_()
    with pytest.raises(DeployError, match="layer 0 has no positive input current"):
        convert(model, calibration, timesteps=T, progress=False)


def test_short_run_learns_far_above_chance(trained, converted, loaders):
    _, history = trained
    assert [h["stage"] for h in history] == ["ann"] * 12
    assert history[-1]["test_accuracy"] > 0.8  # 10 classes: chance is 0.1
    model = copy.deepcopy(converted[0])
    assert evaluate(model, loaders[1], RUN).accuracy > 0.5  # converted SNN, T = 5
    torch.manual_seed(0)
    snn_history = train_snn(model, *loaders, epochs=2, lr=3e-4, progress=False, settings=RUN)
    assert [h["stage"] for h in snn_history] == ["diet", "diet"]
    assert snn_history[-1]["test_accuracy"] > 0.75
    assert snn_history[-1]["thresholds"] == model.thresholds()


def _leaky_copy(converted):
    """A copy of the converted SNN with every leak at 0.75, free to move either way."""
    model = copy.deepcopy(converted[0])
    model.set_neuron_params(leaks=[0.75, 0.75, 0.75])
    return model


def test_fixed_threshold_and_leak_stay_put_while_weights_train(converted, loaders):
    model = _leaky_copy(converted)
    weights = model.features[0].weight.detach().clone()
    thresholds = model.thresholds()
    torch.manual_seed(0)
    history = train_snn(
        model, *loaders, epochs=1, lr=1e-3, train_threshold=False, train_leak=False,
        progress=False, settings=RUN,
    )  # fmt: skip
    assert history[0]["stage"] == "snn-weights"
    assert model.thresholds() == thresholds
    assert model.leaks() == [0.75, 0.75, 0.75]
    assert not torch.equal(model.features[0].weight, weights)
    # the flags do not leak out of the call
    assert all(p.requires_grad for p in [*model.threshold.values(), *model.leak.values()])


def test_learned_threshold_and_leak_both_change(converted, loaders):
    model = _leaky_copy(converted)
    thresholds = model.thresholds()
    torch.manual_seed(0)
    train_snn(model, *loaders, epochs=1, lr=1e-2, progress=False, settings=RUN)
    assert all(a != b for a, b in zip(model.thresholds(), thresholds, strict=True))
    assert all(leak != 0.75 and 0.0 <= leak <= 1.0 for leak in model.leaks())


def test_neuron_lr_moves_thresholds_and_leaks_apart_from_weights(converted, loaders):
    # Adam moves a parameter by about its learning rate per step: with weights at 1e-6 and
    # neurons at 1e-2, one epoch (23 steps) leaves weights within 1e-4 and moves thresholds
    model = _leaky_copy(converted)
    weights = model.features[0].weight.detach().clone()
    thresholds = model.thresholds()
    torch.manual_seed(0)
    train_snn(model, *loaders, epochs=1, lr=1e-6, neuron_lr=1e-2, progress=False, settings=RUN)
    assert float((model.features[0].weight.detach() - weights).abs().max()) < 1e-4
    moved = [abs(a - b) for a, b in zip(model.thresholds(), thresholds, strict=True)]
    assert min(moved) > 1e-3
    assert max(abs(leak - 0.75) for leak in model.leaks()) > 1e-3


def test_leaks_are_clamped_to_at_most_one(converted, loaders):
    model = copy.deepcopy(converted[0])
    model.train()
    images, labels = next(iter(_digits_loaders()[0]))
    nn.functional.cross_entropy(model(images, T), labels).backward()
    pushed_up = [k for k, p in model.leak.items() if float(p.grad) < 0]
    assert pushed_up  # from conversion's λ = 1, a plain step would take these leaks above 1
    model.zero_grad()
    torch.manual_seed(0)
    train_snn(model, *loaders, epochs=1, lr=1e-3, progress=False, settings=RUN)
    assert all(0.0 <= leak <= 1.0 for leak in model.leaks())
    assert all(float(model.leak[k].detach()) == 1.0 for k in pushed_up)


def test_only_the_learned_parameter_moves(converted, loaders):
    model = _leaky_copy(converted)
    thresholds = model.thresholds()
    torch.manual_seed(0)
    train_snn(
        model, *loaders, epochs=1, lr=1e-2, train_threshold=False, progress=False, settings=RUN
    )
    assert model.thresholds() == thresholds
    assert all(leak != 0.75 for leak in model.leaks())


def test_evaluate_reports_spikes_per_neuron_over_all_steps(converted, loaders):
    model = converted[0]
    _, test = loaders
    result = evaluate(model, test, RUN)
    images, labels = next(iter(test))  # the 200 test images are one batch
    with torch.no_grad():
        out = model.run_snn(images, T, record=True)
    assert result.accuracy == pytest.approx(float((out.logits.argmax(1) == labels).float().mean()))
    assert list(result.spike_rates) == ["0", "3", "6"]
    for key, spikes in out.spikes.items():
        per_neuron = float(spikes.sum()) / (spikes[0, 0].numel() * len(labels))
        assert result.spike_rates[key] == pytest.approx(per_neuron)
        assert 0.0 < result.spike_rates[key] <= T


def test_evaluate_ann_mode_has_no_spike_rates(trained, loaders):
    result = evaluate(trained[0], loaders[1], RUN)
    assert result.spike_rates == {} and result.accuracy == trained[1][-1]["test_accuracy"]


@pytest.mark.parametrize("stage", ["ann", "snn"])
def test_nan_loss_is_a_deploy_error(stage, converted, loaders):
    model = copy.deepcopy(converted[0])
    with torch.no_grad():
        model.classifier[-1].weight[0, 0] = float("nan")
    with pytest.raises(DeployError, match=r"loss became nan"):
        if stage == "ann":
            train_ann(model, *loaders, epochs=1, progress=False)
        else:
            train_snn(model, *loaders, epochs=1, progress=False, settings=RUN)
