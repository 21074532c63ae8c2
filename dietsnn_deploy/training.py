"""The three DIET-SNN training stages: ANN, ANN→SNN conversion, and DIET (spike-based BPTT).

Each stage takes a :class:`~dietsnn_deploy.models.DietNet` and moves it forward in place;
``history`` lists one dict per epoch so checkpoints can carry the whole run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.models import DietNet

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: str = "cpu"):
    """Synaptic ops (conv, linear) in reduced ``precision``; fp32 is a no-op context."""
    if precision not in PRECISIONS:
        raise DeployError(f"unknown precision '{precision}'; choose from {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    return torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None)


@dataclass
class EvalResult:
    """Accuracy (fraction) and, for an SNN, spikes per neuron over all T for each layer."""

    accuracy: float
    loss: float
    spike_rates: dict[str, float] = field(default_factory=dict)


def _check_finite(loss: torch.Tensor, stage: str) -> None:
    if not torch.isfinite(loss):
        raise DeployError(f"{stage}: loss became {loss.item()} (diverged; lower the learning rate)")


def evaluate(
    model: DietNet, loader: Iterable, *, progress: bool = False, desc: str = "evaluate"
) -> EvalResult:
    """Accuracy of the model in its current mode; SNNs also report per-layer spike rates."""
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    spike_sums: dict[str, float] = {}
    neurons: dict[str, int] = {}
    with torch.no_grad():
        for images, labels in tqdm(loader, desc=desc, disable=not progress, leave=False):
            if model.spiking:
                out = model.run_snn(images, record=True)
                logits = out.logits
                for key, spikes in out.spikes.items():
                    spike_sums[key] = spike_sums.get(key, 0.0) + float(spikes.sum())
                    neurons[key] = spikes[0, 0].numel()
            else:
                logits = model.forward_ann(images)
            loss_sum += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(1) == labels).sum())
            total += len(labels)
    if total == 0:
        raise DeployError("evaluation set is empty")
    rates = {k: spike_sums[k] / (neurons[k] * total) for k in spike_sums}
    return EvalResult(correct / total, loss_sum / total, rates)


def _fit(
    model: DietNet,
    train_loader,
    test_loader,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    stage: str,
    progress: bool,
    *,
    start_epoch: int = 0,
    on_epoch=None,
    after_step=None,
    precision: str = "fp32",
) -> list[dict]:
    """Shared epoch loop: cross-entropy, cosine learning rate over ``epochs`` (entered at
    ``start_epoch`` when resuming), progress bar, evaluation and ``on_epoch(entry)`` per epoch."""
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    history = []
    for epoch in range(start_epoch, epochs):
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
        model.train()
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(train_loader, desc=f"{stage} {epoch + 1}/{epochs}", disable=not progress)
        for images, labels in bar:
            with autocast(precision):
                logits = model(images)
            loss = nn.functional.cross_entropy(logits.float(), labels)
            _check_finite(loss, stage)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step()
            seen += len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            loss_sum += loss.item() * len(labels)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        result = evaluate(model, test_loader, progress=progress, desc=f"{stage} eval")
        history.append(
            {
                "stage": stage,
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(seen, 1),
                "train_accuracy": correct / max(seen, 1),
                "test_accuracy": result.accuracy,
                "thresholds": model.thresholds() if model.spiking else None,
                "leaks": model.leaks() if model.spiking else None,
            }
        )
        if progress:
            tqdm.write(f"{stage} epoch {epoch + 1}: test accuracy {result.accuracy:.4f}")
        if on_epoch is not None:
            on_epoch(history[-1])
    return history


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
    precision: str = "fp32",
) -> list[dict]:
    """Stage 1: ReLU ANN with Adam (amsgrad), weight decay and a cosine schedule."""
    model.spiking = False
    optimizer = torch.optim.Adam(
        model.parameters(), lr=lr, weight_decay=weight_decay, amsgrad=True, fused=True
    )
    return _fit(
        model,
        train_loader,
        test_loader,
        optimizer,
        epochs,
        "ann",
        progress,
        start_epoch=start_epoch,
        on_epoch=on_epoch,
        precision=precision,
    )


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
    precision: str = "fp32",
) -> list[dict]:
    """Stage 3: spike-based BPTT of weights and, as asked, per-layer thresholds and leaks.

    Fixed parameters keep their conversion values; leaks are clamped to [0, 1] after every
    step, then ``after_step()`` runs if given. Adam moves a parameter by about its learning
    rate per step, so ``neuron_lr`` (default ``lr``) lets thresholds and leaks travel as far
    in a short run as they would in the paper's hundreds of epochs.
    """
    model.spiking = True
    for p in model.threshold.values():
        p.requires_grad_(train_threshold)
    for p in model.leak.values():
        p.requires_grad_(train_leak)
    neuron_params = {id(p) for p in (*model.threshold.values(), *model.leak.values())}
    trained = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trained if id(p) not in neuron_params], "lr": lr},
        {"params": [p for p in trained if id(p) in neuron_params], "lr": neuron_lr or lr},
    ]
    optimizer = torch.optim.Adam([g for g in groups if g["params"]], amsgrad=True, fused=True)
    stage = stage or ("diet" if (train_threshold or train_leak) else "snn-weights")

    def step_done() -> None:
        model.clamp_leaks()
        if after_step is not None:
            after_step()

    try:
        return _fit(
            model,
            train_loader,
            test_loader,
            optimizer,
            epochs,
            stage,
            progress,
            start_epoch=start_epoch,
            on_epoch=on_epoch,
            after_step=step_done,
            precision=precision,
        )
    finally:
        for p in (*model.threshold.values(), *model.leak.values()):
            p.requires_grad_(True)
