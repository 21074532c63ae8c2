"""Hardware-aware fine-tuning: the fake-quantized forward is the exported network, gradients
pass straight through, and the fine-tuned model leaves as a plain float model whose hard-reset
accuracy is what the emulator measures on its export."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

from dietsnn_deploy.data import make_loader
from dietsnn_deploy.spine.loihi import DECAY_UNITY
from dietsnn_deploy.spine.settings import RunSettings
from dietsnn_deploy.training.checkpoints import load_checkpoint
from dietsnn_deploy.training.config import TrainConfig
from dietsnn_deploy.training.hardware_aware import attach, detach, finetune_hardware
from dietsnn_deploy.training.loop import evaluate
from dietsnn_deploy.training.models import build_model
from dietsnn_deploy.training.pipeline import calibration_images, run_ann, run_convert
from dietsnn_deploy.training.quantize import quantize, quantize_weights, raw_weight, synapses
from hw_sim.emulator import classify

T = 5  # the timesteps of the demo's and the quick model's checkpoints
DEMO = Path(__file__).resolve().parents[1] / "runs" / "demo" / "digits.pt"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model, info) of a trained digits SNN: the demo's if it exists, else a quick one
    (12 ANN epochs + conversion, ≈ 9 s)."""
    if DEMO.is_file():
        return load_checkpoint(DEMO)
    folder = tmp_path_factory.mktemp("hw")
    cfg = TrainConfig(
        dataset="digits",
        arch="vgg-tiny",
        ann_epochs=12,
        ann_lr=3e-3,
        batch_size=32,
        snn_batch_size=32,
        progress=False,
    )
    run_ann(cfg, folder / "ann.pt")
    return run_convert(cfg, folder / "ann.pt", folder / "converted.pt")


@pytest.fixture(scope="module")
def calibration(trained):
    return calibration_images(trained[1], None)


@pytest.fixture(scope="module")
def finetuned(trained, calibration):
    """The trained model after one epoch of hardware-aware fine-tuning, and its history."""
    model, info = copy.deepcopy(trained)
    norm = (info.mean, info.std)
    train = make_loader("digits", "train", 32, normalization=norm)
    test = make_loader("digits", "test", 256, normalization=norm)
    history = finetune_hardware(
        model, calibration, train, test, epochs=1, progress=False, settings=RunSettings(T)
    )
    return model, info, history


def test_finetuned_model_is_plain_float_with_hard_reset(finetuned):
    model, info, history = finetuned
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    fresh = build_model(info.arch, info.in_shape, info.num_classes)
    assert list(model.state_dict()) == list(fresh.state_dict())
    assert model.neuron_model.reset == "hard" and model.hardware is None
    assert [h["stage"] for h in history] == ["hardware"]


def test_float_hard_reset_accuracy_matches_emulator_of_export(finetuned, calibration):
    """Within 1 point on the 360 digits test images (host drive rounding and v's decay
    truncation are the only differences the fine-tuning does not model)."""
    model, info, _ = finetuned
    test = make_loader("digits", "test", 360, normalization=(info.mean, info.std))
    float_accuracy = evaluate(model, test, RunSettings(T)).accuracy
    net = quantize(model, calibration, timesteps=T, mean=info.mean, std=info.std, dataset="digits")
    pixels, labels = next(iter(make_loader("digits", "test", 360, normalization=((0.0,), (1.0,)))))
    predictions = classify(net, pixels, progress=False).predictions
    emulated = float((predictions == labels).double().mean())
    assert len(labels) == 360
    assert abs(float_accuracy - emulated) <= 0.01, (float_accuracy, emulated)
    assert emulated > 0.3  # a trained network, not chance
    # Through the hardware's arithmetic (what the fine-tuning trained) the float model is the
    # chip: the same prediction on every image but a tie or two.
    attach(model, calibration, T)
    try:
        with torch.no_grad():
            images, _ = next(iter(test))
            chip_like = model.run_snn(images, T).logits.argmax(1)
    finally:
        detach(model)
    assert float((chip_like == predictions).double().mean()) >= 0.995


def test_forward_uses_the_exported_integers(trained, calibration):
    """Under ``attach`` the weights are W_int/scale, thresholds threshold_int/(scale·k²) and
    leaks 1 − v_decay/4096 of the very network ``quantize`` exports."""
    model, info = copy.deepcopy(trained)
    model.set_neuron_params(leaks=[0.93, 0.8, 0.61])
    net = quantize(model, calibration, timesteps=T, mean=info.mean, std=info.std)  # raw values
    attach(model, calibration, T)
    try:
        syns = synapses(model)
        for syn, q in zip(syns[1:], net.quantization[1:], strict=True):
            exported, _ = quantize_weights(raw_weight(syn.module).double().numpy(), q.scale)
            seen = syn.module.weight.detach().double().numpy()
            np.testing.assert_array_equal(np.round(seen * q.scale), exported)
            np.testing.assert_allclose(seen, exported / q.scale, rtol=1e-6, atol=1e-9)
        for key, q in zip(model.neuron_keys, net.quantization, strict=False):
            pool = next(s.pool for s in syns if s.key == key)
            leak, threshold = model.neuron(key)
            assert float(leak.detach()) == pytest.approx(1 - q.v_decay / DECAY_UNITY, abs=1e-7)
            assert float(threshold.detach()) == pytest.approx(
                q.threshold / (q.scale * pool**2), rel=1e-6
            )
        assert model.neuron_model.reset == "hard"
    finally:
        detach(model)


def test_gradients_pass_straight_through(trained, calibration):
    model, info = copy.deepcopy(trained)
    model.set_neuron_params(leaks=[0.9, 0.9, 0.9])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attach(model, calibration, T)
    model.train()
    images, labels = next(
        iter(make_loader("digits", "train", 64, normalization=(info.mean, info.std)))
    )
    loss = torch.nn.functional.cross_entropy(model(images, T), labels)
    loss.backward()
    syns = synapses(model)
    originals = [syns[0].module.weight] + [
        s.module.parametrizations.weight.original for s in syns[1:]
    ]
    for param in [*originals, *model.threshold.values(), *model.leak.values()]:
        assert param.grad is not None and float(param.grad.abs().sum()) > 0
    detach(model)
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) for k in before)  # raw values come back
