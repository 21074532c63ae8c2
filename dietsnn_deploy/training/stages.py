"""The three DIET-SNN training stages: ANN, ANN→SNN conversion, and DIET (spike-based BPTT).

Each stage takes a :class:`~dietsnn_deploy.training.models.DietNet` and moves it forward in
place; ``history`` lists one dict per epoch so checkpoints can carry the whole run.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from tqdm import tqdm

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.settings import RunSettings
from dietsnn_deploy.training.loop import fit
from dietsnn_deploy.training.models import DietNet
from dietsnn_deploy.training.objectives import OBJECTIVES, Objective


def train_ann(
    model: DietNet,
    train_loader,
    test_loader,
    *,
    epochs: int,
    lr: float = 1e-3,
    weight_decay: float = 5e-4,
    progress: bool = True,
    start_epoch: int = 0,
    on_epoch=None,
    settings: RunSettings | None = None,
) -> list[dict]:
    """Stage 1: ReLU ANN with Adam (amsgrad), weight decay and a cosine schedule."""
    model.spiking = False
    with _neurons_trainable(model, threshold=False, leak=False):  # an ANN has no neurons
        params = [p for p in model.parameters() if p.requires_grad]  # (DDP wants none idle)
        optimizer = _adam(params, lr=lr, weight_decay=weight_decay)
        return fit(
            model,
            train_loader,
            test_loader,
            optimizer,
            epochs,
            "ann",
            settings or RunSettings(),
            progress=progress,
            start_epoch=start_epoch,
            on_epoch=on_epoch,
        )


@contextmanager
def _neurons_trainable(model: DietNet, *, threshold: bool, leak: bool):
    """Thresholds and leaks trainable as a stage asks, and all trainable again after it."""
    for p in model.threshold.values():
        p.requires_grad_(threshold)
    for p in model.leak.values():
        p.requires_grad_(leak)
    try:
        yield
    finally:
        for p in (*model.threshold.values(), *model.leak.values()):
            p.requires_grad_(True)


def _adam(params, **options) -> torch.optim.Optimizer:
    """Adam with amsgrad (the official recipe), fused where torch has a fused kernel for the
    parameters' device (one kernel over all parameters instead of a dozen per tensor)."""
    return torch.optim.Adam(params, amsgrad=True, fused=True, **options)


def convert(
    model: DietNet,
    images: torch.Tensor,
    *,
    timesteps: int,
    percentile: float = 99.7,
    scale: float = 1.0,
    progress: bool = True,
) -> list[float]:
    """Stage 2: IF neurons (leak 1) with thresholds balanced layer by layer.

    Layer l's threshold is the ``percentile`` of its input current W·x over ``images`` at each
    step, maximised over the T steps, with layers before l already spiking at their found
    (unscaled) thresholds (direct input). ``scale`` multiplies all of them at the end, as the
    official code's ``scaling_factor`` does. Returns the thresholds it set.
    """
    model.spiking = True
    model.eval()
    images = images.to(next(model.parameters()).device)
    keys = model.neuron_keys
    model.set_neuron_params(thresholds=[1.0] * len(keys), leaks=[1.0] * len(keys))
    found: list[float] = []
    with torch.no_grad():
        for key in tqdm(keys, desc="convert", disable=not progress):
            current = model.probe_current(images, key, timesteps)
            per_step = [_percentile(step, percentile) for step in current]
            threshold = max(per_step)
            if not math.isfinite(threshold) or threshold <= 0:
                raise DeployError(
                    f"convert: layer {key} has no positive input current (threshold {threshold})"
                )
            model.threshold[f"t{key}"].fill_(threshold)
            found.append(threshold)
    scaled = [threshold * scale for threshold in found]
    model.set_neuron_params(thresholds=scaled)
    return scaled


def _percentile(values: torch.Tensor, q: float) -> float:
    flat = values.reshape(-1)
    k = 1 + round(0.01 * q * (flat.numel() - 1))
    return float(flat.kthvalue(k).values)


def make_snn_optimizer(
    model: DietNet, lr: float, neuron_lr: float | None = None
) -> torch.optim.Optimizer:
    """Adam over the trainable parameters: weights at ``lr``, thresholds and leaks at
    ``neuron_lr`` (default ``lr``)."""
    neuron_params = {id(p) for p in (*model.threshold.values(), *model.leak.values())}
    trained = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trained if id(p) not in neuron_params], "lr": lr},
        {"params": [p for p in trained if id(p) in neuron_params], "lr": neuron_lr or lr},
    ]
    return _adam([g for g in groups if g["params"]])


def train_snn(
    model: DietNet,
    train_loader,
    test_loader,
    *,
    epochs: int,
    lr: float = 1e-4,
    neuron_lr: float | None = None,
    train_threshold: bool = True,
    train_leak: bool = True,
    progress: bool = True,
    start_epoch: int = 0,
    on_epoch=None,
    after_step=None,
    stage: str | None = None,
    settings: RunSettings,
    objective: Objective = OBJECTIVES["potential"],
) -> list[dict]:
    """Stage 3: spike-based BPTT of weights and, as asked, per-layer thresholds and leaks,
    on ``objective``.

    Fixed parameters keep their conversion values; leaks are clamped to [0, 1] and thresholds
    to ≥ ``MIN_THRESHOLD`` after every step, then ``after_step()`` runs if given. Adam moves a parameter by about its learning
    rate per step, so ``neuron_lr`` (default ``lr``) lets thresholds and leaks travel as far
    in a short run as they would in the paper's hundreds of epochs.
    """
    model.spiking = True
    stage = stage or ("diet" if (train_threshold or train_leak) else "snn-weights")

    def step_done() -> None:
        model.clamp_neuron_params()
        if after_step is not None:
            after_step()

    with _neurons_trainable(model, threshold=train_threshold, leak=train_leak):
        optimizer = make_snn_optimizer(model, lr, neuron_lr)
        return fit(
            model,
            train_loader,
            test_loader,
            optimizer,
            epochs,
            stage,
            settings,
            progress=progress,
            start_epoch=start_epoch,
            on_epoch=on_epoch,
            after_step=step_done,
            objective=objective,
        )
