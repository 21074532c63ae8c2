"""Hardware-aware fine-tuning: train through what Loihi will actually run.

The forward pass uses the quantizer's own numbers — weights ``2·round(W·s/2)/s`` clipped to
8 bits, thresholds ``round(θ·s·k²)/(s·k²)``, leaks ``1 − round(4096·(1 − λ))/4096`` — and
Loihi's hard reset (``u ← 0`` after a spike). Rounding passes gradients straight through
(``x + (q(x) − x).detach()``), so the float parameters keep learning and the exported network
is the one that was trained. Not modelled: the host drive's rounding to integers (its scale
makes that error ≤ 1/8190 of the largest drive) and the truncation of v's decay.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from dietsnn_deploy.deployed import DECAY_UNITY, WEIGHT_MAX, WEIGHT_MIN
from dietsnn_deploy.models import DietNet
from dietsnn_deploy.quantize import LayerScale, host_drive_max, layer_scales, synapses
from dietsnn_deploy.training import train_snn


def straight_through(value: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """``quantized`` in the forward pass, the identity's gradient in the backward pass."""
    return value + (quantized - value).detach()


class _WeightQuant(nn.Module):
    """Parametrization of one layer's weight: even 8-bit mantissas at the layer's scale."""

    def __init__(self, scales: HardwareScales, index: int) -> None:
        super().__init__()
        self.scales, self.index = scales, index

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        scale = self.scales.current[self.index].scale
        mantissa = torch.clamp(torch.round(weight * scale / 2) * 2, WEIGHT_MIN, WEIGHT_MAX)
        return straight_through(weight, mantissa / scale)


class HardwareScales:
    """The quantizer's per-layer scales, refreshed after every optimizer step, and the
    neuron-parameter rounding the model applies through its ``hardware`` hook."""

    def __init__(self, model: DietNet, calibration: torch.Tensor) -> None:
        self.model = model
        self.drive_max = host_drive_max(model, calibration)
        self.keys = {syn.key: i for i, syn in enumerate(synapses(model)) if syn.key is not None}
        self.current: list[LayerScale] = []
        self.refresh()

    def refresh(self) -> None:
        with torch.no_grad():
            self.current = layer_scales(self.model, self.drive_max)

    def neuron(self, key: str, leak: torch.Tensor, threshold: torch.Tensor):
        """(leak, threshold) as the chip sees them; the host layer keeps its drive scale."""
        ls = self.current[self.keys[key]]
        unit = ls.scale * ls.pool**2
        threshold_q = straight_through(threshold, torch.round(threshold * unit) / unit)
        decay = torch.round(DECAY_UNITY * (1 - leak))
        return straight_through(leak, 1 - decay / DECAY_UNITY), threshold_q


def attach(model: DietNet, calibration: torch.Tensor) -> HardwareScales:
    """Switch ``model`` to the hardware's arithmetic (hard reset, quantized parameters)."""
    scales = HardwareScales(model, calibration)
    for index, syn in enumerate(synapses(model)):
        if index > 0:  # the first conv runs on the host in float
            parametrize.register_parametrization(syn.module, "weight", _WeightQuant(scales, index))
    model.hardware = scales
    model.reset_mode = "hard"
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
    lr: float = 1e-4,
    neuron_lr: float | None = None,
    progress: bool = True,
    start_epoch: int = 0,
    on_epoch=None,
) -> list[dict]:
    """Train weights (``lr``), leaks and thresholds (``neuron_lr``, default ``lr``) through the
    hardware's behaviour; the model ends in float form with hard reset, ready for export."""
    scales = attach(model, calibration)
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
        )
    finally:
        detach(model)
    return history
