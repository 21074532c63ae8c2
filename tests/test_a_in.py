"""Loihi's int16 a_in port: the emulator's saturating mode against a hand-computed network,
and the quantizer's fitting modes (worst case: no step can ever clip; measured: fewer clip)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from dietsnn_deploy.data import make_loader
from dietsnn_deploy.spine.loihi import A_IN_MAX, THRESHOLD_MAX
from dietsnn_deploy.spine.network import (
    DenseLayer,
    DeployedNetwork,
    FlattenLayer,
    HostEncoder,
    InputLayer,
    Neuron,
)
from dietsnn_deploy.training.models import build_model
from dietsnn_deploy.training.quantize import quantize, synapses
from dietsnn_deploy.training.stages import convert
from hw_sim.emulator import Emulator, classify

WIDTH = 200  # inputs that all spike every step: 200 × 254 = 50 800 > 2^15 − 1


def _wide_network(threshold: int) -> DeployedNetwork:
    encoder = HostEncoder(np.ones((WIDTH, 1, 1, 1)), (1, 1), (0, 0), 1.0, (0.0,), (1.0,), (1, 1, 1))
    return DeployedNetwork(
        encoder,
        [
            InputLayer((WIDTH, 1, 1), Neuron(v_decay=4096, threshold=0)),  # fires on any drive
            FlattenLayer((WIDTH, 1, 1)),
            DenseLayer(np.full((1, WIDTH), 254), Neuron(v_decay=4096, threshold=threshold)),
            DenseLayer(np.array([[2]]), Neuron(0, THRESHOLD_MAX, spiking=False)),
        ],
        timesteps=3,
        num_classes=1,
    )


def test_saturation_clips_a_in_to_int16_and_counts_the_steps():
    net = _wide_network(threshold=40_000)  # between the clipped 32 767 and the true 50 800
    drive = torch.ones((2, WIDTH, 1, 1), dtype=torch.int64)
    free = Emulator(net).run(drive)
    clipped = Emulator(net, saturate_a_in=True).run(drive)
    assert free.spikes[2].all() and not clipped.spikes[2].any()  # every step, both images
    assert free.saturated is None
    assert clipped.saturated == [None, None, 2 * 3, 0]  # 1 neuron × 3 steps × 2 images
    assert free.readout.tolist() == [[2 * 3 * 64]] * 2 and clipped.readout.tolist() == [[0]] * 2


def test_classify_reports_the_clipped_steps_per_layer():
    net = _wide_network(threshold=40_000)
    images = torch.ones((5, 1, 1, 1))
    result = classify(net, images, batch_size=2, progress=False, saturate_a_in=True)
    assert result.saturated == [None, None, 5 * 3, 0]
    assert classify(net, images, progress=False).saturated is None


@pytest.fixture(scope="module")
def overflowing():
    """A digits vgg-tiny whose fc layer receives more than int16 in one step, in practice: its
    conv layers fire on about half their neuron-steps and every fc weight is the largest."""
    torch.manual_seed(0)
    images = next(iter(make_loader("digits", "train", 128, augment=False, shuffle=False)))[0]
    model = build_model("vgg-tiny", (1, 8, 8), 10, dropout=0.0)
    convert(model, images, timesteps=5, progress=False)
    model.set_neuron_params(leaks=[0.9, 0.75, 0.6])
    with torch.no_grad():
        synapses(model)[2].module.weight.fill_(0.01)  # every fc input excites at full scale
    t0, t3, t6 = model.thresholds()
    model.set_neuron_params(thresholds=[0.2 * t0, 0.002 * t3, t6])  # busy conv layers
    return model.eval(), images


def _deploy(model, images, fit=None):
    return quantize(model, images, timesteps=5, mean=(0.3054,), std=(0.3761,), dataset="digits",
                    fit_a_in=fit)  # fmt: skip


def test_worst_case_fit_bounds_every_layer_so_saturation_changes_nothing(overflowing):
    model, images = overflowing
    plain = _deploy(model, images)
    assert max(q.input_bound for q in plain.quantization[1:]) > A_IN_MAX
    fitted = _deploy(model, images, "worst")
    for q, layer in zip(
        fitted.quantization[1:],
        [la for la in fitted.layers if la.kind != "flatten"][1:],
        strict=True,
    ):
        assert q.input_bound == layer.input_bound() <= A_IN_MAX
        assert not q.exceeds_int16
    # scales only shrink where needed (the fc layer), never elsewhere
    shrunk = [
        f.scale < p.scale for p, f in zip(plain.quantization, fitted.quantization, strict=True)
    ]
    assert shrunk[2] and not shrunk[0]
    pixels = images[:64] * 0.3761 + 0.3054  # back to [0, 1] pixels for the host
    free = classify(fitted, pixels, progress=False, saturate_a_in=False)
    clipped = classify(fitted, pixels, progress=False, saturate_a_in=True)
    assert torch.equal(free.readout, clipped.readout)
    assert all(n in (None, 0) for n in clipped.saturated)


def test_measured_fit_clips_less_than_no_fit(overflowing):
    model, images = overflowing
    pixels = images * 0.3761 + 0.3054
    counts = {}
    for fit in (None, "measured"):
        net = _deploy(copy.deepcopy(model), images, fit)
        counts[fit] = sum(n or 0 for n in classify(
            net, pixels, progress=False, saturate_a_in=True).saturated)  # fmt: skip
    assert counts[None] > 10_000  # the fc layer saturates at nearly every step
    assert counts["measured"] < counts[None] / 100
