"""The epoch loop every training stage shares, and evaluation.

One step: forward under the run's precision (synaptic ops in bf16/fp16, potentials and loss in
fp32), cross-entropy, backward, optimizer step, then ``after_step`` (leak clamps, hardware
scale refresh). The learning rate follows a cosine over the stage's epochs, entered at
``start_epoch`` when a run resumes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.settings import RunSettings, check_memory
from dietsnn_deploy.training.models import DietNet


@dataclass
class EvalResult:
    """Accuracy (fraction) and, for an SNN, spikes per neuron over all T for each layer."""

    accuracy: float
    loss: float
    spike_rates: dict[str, float] = field(default_factory=dict)


def _check_finite(loss: torch.Tensor, stage: str) -> None:
    if not torch.isfinite(loss):
        raise DeployError(f"{stage}: loss became {loss.item()} (diverged; lower the learning rate)")


#: Bytes a spiking run holds per neuron, step and image: fp32 current, potential and spike,
#: and in training what autograd saves for the backward pass (measured on vgg5: about 30).
BYTES_PER_NEURON_STEP = {"train": 40, "eval": 12}


def check_run_memory(model: DietNet, batch: int, settings: RunSettings, mode: str) -> None:
    """Refuse, before any work, a spiking run that would not fit in memory (with the figure)."""
    if model.spiking:
        needed = BYTES_PER_NEURON_STEP[mode] * model.neurons_per_image() * batch
        check_memory(needed * settings.timesteps, f"a {mode} step of batch {batch} at "
                     f"T = {settings.timesteps}", device=settings.device)  # fmt: skip


def logits_of(model: DietNet, images: torch.Tensor, settings: RunSettings) -> torch.Tensor:
    """The model's logits (fp32) under the run's precision."""
    with settings.autocast():
        logits = model(images, settings.timesteps)
    return logits.float()


def evaluate(
    model: DietNet,
    loader: Iterable,
    settings: RunSettings,
    *,
    progress: bool = False,
    desc: str = "evaluate",
) -> EvalResult:
    """Accuracy of the model in its current mode; SNNs also report per-layer spike rates."""
    model.eval()
    check_run_memory(model, _batch_size(loader), settings, "eval")
    correct = total = 0
    loss_sum = 0.0
    spike_sums: dict[str, float] = {}
    neurons: dict[str, int] = {}
    with torch.no_grad():
        for images, labels in tqdm(loader, desc=desc, disable=not progress, leave=False):
            images, labels = images.to(settings.device), labels.to(settings.device)
            if model.spiking:
                with settings.autocast():
                    out = model.run_snn(images, settings.timesteps, record=True)
                logits = out.logits.float()
                for key, spikes in out.spikes.items():
                    spike_sums[key] = spike_sums.get(key, 0.0) + float(spikes.sum())
                    neurons[key] = spikes[0, 0].numel()
            else:
                logits = logits_of(model, images, settings)
            loss_sum += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(1) == labels).sum())
            total += len(labels)
    if total == 0:
        raise DeployError("evaluation set is empty")
    rates = {k: spike_sums[k] / (neurons[k] * total) for k in spike_sums}
    return EvalResult(correct / total, loss_sum / total, rates)


def _batch_size(loader) -> int:
    """The largest batch the loader gives: its batch size (or its batch sampler's, when the
    dataset answers whole batches), at most the dataset's size."""
    size = getattr(loader, "batch_size", None)
    for sampler in (getattr(loader, "batch_sampler", None), getattr(loader, "sampler", None)):
        size = size or getattr(sampler, "batch_size", None)
    dataset = getattr(loader, "dataset", None)
    return min(size or 1, len(dataset)) if dataset is not None else (size or 1)


def fit(
    model: DietNet,
    train_loader,
    test_loader,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    stage: str,
    settings: RunSettings,
    *,
    progress: bool = True,
    start_epoch: int = 0,
    on_epoch: Callable[[dict], None] | None = None,
    after_step: Callable[[], None] | None = None,
) -> list[dict]:
    """Train ``epochs`` epochs from ``start_epoch``; evaluate and call ``on_epoch(entry)``
    after each (entry: stage, epoch, train loss/accuracy, test accuracy, thresholds, leaks)."""
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    check_run_memory(model, _batch_size(train_loader), settings, "train")
    history = []
    for epoch in range(start_epoch, epochs):
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
        model.train()
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(train_loader, desc=f"{stage} {epoch + 1}/{epochs}", disable=not progress)
        for images, labels in bar:
            images, labels = images.to(settings.device), labels.to(settings.device)
            logits = logits_of(model, images, settings)
            loss = nn.functional.cross_entropy(logits, labels)
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
        result = evaluate(model, test_loader, settings, progress=progress, desc=f"{stage} eval")
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
