"""Hardware-aware fine-tuning: train through what Loihi will actually run.

The forward pass uses the quantizer's own numbers — the spine's codec
(:mod:`dietsnn_deploy.spine.loihi`) on weights at each layer's scale and on the host's integer
drive, and the neuron model's hardware rounding of leaks and thresholds — and the chip's hard
reset. Rounding passes gradients straight through, so the float parameters keep learning and
the exported network is the one that was trained. Not modelled: the truncation of v's decay
toward zero (at most one 2⁻⁶ weight unit per step).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from dietsnn_deploy.spine.loihi import fake_drive, fake_weight
from dietsnn_deploy.spine.settings import RunSettings
from dietsnn_deploy.training.models import DietNet
from dietsnn_deploy.training.objectives import OBJECTIVES, Objective
from dietsnn_deploy.training.quantize import LayerScale, host_drive_max, layer_scales, synapses
from dietsnn_deploy.training.stages import train_snn


class _WeightQuant(nn.Module):
    """Parametrization of one layer's weight: even 8-bit mantissas at the layer's scale."""

    def __init__(self, scales: HardwareScales, index: int) -> None:
        super().__init__()
        self.scales, self.index = scales, index

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return fake_weight(weight, self.scales.current[self.index].scale)


class HardwareScales:
    """The quantizer's per-layer scales, refreshed after every optimizer step, and the
    neuron-parameter rounding the model applies through its ``hardware`` hook."""

    def __init__(self, model: DietNet, calibration: torch.Tensor, timesteps: int) -> None:
        self.model = model
        self.timesteps = timesteps
        self.drive_max = host_drive_max(model, calibration, timesteps)
        self.keys = {syn.key: i for i, syn in enumerate(synapses(model)) if syn.key is not None}
        self.current: list[LayerScale] = []
        self.refresh()

    def refresh(self) -> None:
        with torch.no_grad():
            self.current = layer_scales(self.model, self.drive_max, self.timesteps)

    def drive(self, current: torch.Tensor) -> torch.Tensor:
        """The first layer's current as the host's integer drive delivers it."""
        return fake_drive(current, self.current[0].scale)

    def neuron(self, key: str, leak: torch.Tensor, threshold: torch.Tensor):
        """(leak, threshold) as the chip sees them."""
        unit = self.current[self.keys[key]].threshold_unit
        return self.model.neuron_model.hardware(leak, threshold, unit)


def attach(model: DietNet, calibration: torch.Tensor, timesteps: int) -> HardwareScales:
    """Switch ``model`` to the hardware's arithmetic (hard reset, quantized parameters)."""
    scales = HardwareScales(model, calibration, timesteps)
    for index, syn in enumerate(synapses(model)):
        if index > 0:  # the first conv runs on the host in float
            parametrize.register_parametrization(syn.module, "weight", _WeightQuant(scales, index))
    model.hardware = scales
    model.neuron_model = model.neuron_model.with_reset("hard")
    return scales


def detach(model: DietNet) -> None:
    """Back to plain float parameters (the trained raw values; export re-quantizes them)."""
    for syn in synapses(model)[1:]:
        parametrize.remove_parametrizations(syn.module, "weight", leave_parametrized=False)
    model.hardware = None


def finetune_hardware(
    model: DietNet,
    calibration: torch.Tensor,
    train_loader,
    test_loader,
    *,
    epochs: int,
    settings: RunSettings,
    lr: float = 1e-4,
    neuron_lr: float | None = None,
    progress: bool = True,
    start_epoch: int = 0,
    on_epoch=None,
    objective: Objective = OBJECTIVES["potential"],
) -> list[dict]:
    """Train weights (``lr``), leaks and thresholds (``neuron_lr``, default ``lr``) through the
    hardware's behaviour; the model ends in float form with hard reset, ready for export."""
    scales = attach(model, calibration, settings.timesteps)
    try:
        history = train_snn(
            model,
            train_loader,
            test_loader,
            epochs=epochs,
            lr=lr,
            neuron_lr=neuron_lr,
            progress=progress,
            start_epoch=start_epoch,
            on_epoch=on_epoch,
            after_step=scales.refresh,
            stage="hardware",
            settings=settings,
            objective=objective,
        )
    finally:
        detach(model)
    return history
