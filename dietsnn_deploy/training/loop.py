"""The epoch loop every training stage shares, and evaluation.

One step: forward under the run's precision (synaptic ops in bf16/fp16, potentials and loss in
fp32), the stage's loss (:mod:`.objectives`), backward (fp16 through a gradient scaler), optimizer step, then
``after_step`` (leak clamps, hardware scale refresh). The learning rate follows a cosine over
the stage's epochs, entered at ``start_epoch`` when a run resumes. Under torchrun the model is
wrapped in ``DistributedDataParallel``, each rank evaluates every world-th test batch, and
every metric is summed over the ranks (:mod:`.distributed`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from dietsnn_deploy.data import set_epoch
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.settings import RunSettings, check_memory
from dietsnn_deploy.training.distributed import current, sum_over_ranks
from dietsnn_deploy.training.models import DietNet
from dietsnn_deploy.training.objectives import OBJECTIVES, Objective


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


def logits_of(
    model: nn.Module, images: torch.Tensor, settings: RunSettings, per_step: bool = False
) -> torch.Tensor:
    """The model's logits (fp32) under the run's precision (``model`` may be DDP-wrapped), or
    with ``per_step`` the readout's per-step potentials (T, B, classes)."""
    with settings.autocast():
        logits = model(images, settings.timesteps, per_step=per_step)
    return logits.float()


def evaluate(
    model: DietNet,
    loader: Iterable,
    settings: RunSettings,
    *,
    progress: bool = False,
    desc: str = "evaluate",
) -> EvalResult:
    """Accuracy of the model in its current mode; SNNs also report per-layer spike rates
    (spikes per neuron over all T). Under torchrun every rank takes every world-th batch and
    the sums are combined, so all ranks return the same result."""
    model.to(settings.device).eval()
    check_run_memory(model, _batch_size(loader), settings, "eval")
    ranks = current()
    keys = model.neuron_keys if model.spiking else []
    sums = dict.fromkeys(["correct", "total", "loss", *(f"spikes {k}" for k in keys)], 0.0)
    with torch.no_grad():
        batches = tqdm(loader, desc=desc, disable=not progress or not ranks.main, leave=False)
        for index, (images, labels) in enumerate(batches):
            if index % ranks.world != ranks.rank:
                continue
            images, labels = images.to(settings.device), labels.to(settings.device)
            if model.spiking:
                with settings.autocast():
                    out = model.run_snn(images, settings.timesteps, record=True)
                logits = out.logits.float()
                for key, spikes in out.spikes.items():
                    sums[f"spikes {key}"] += float(spikes.sum())
            else:
                logits = logits_of(model, images, settings)
            sums["loss"] += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
            sums["correct"] += int((logits.argmax(1) == labels).sum())
            sums["total"] += len(labels)
    totals = dict(zip(sums, sum_over_ranks(list(sums.values()), settings.device), strict=True))
    if totals["total"] == 0:
        raise DeployError("evaluation set is empty")
    neurons = model.neurons_by_key() if keys else {}
    rates = {k: totals[f"spikes {k}"] / (neurons[k] * totals["total"]) for k in keys}
    return EvalResult(totals["correct"] / totals["total"], totals["loss"] / totals["total"], rates)


def _batch_size(loader) -> int:
    """The largest batch the loader gives: its batch size (or its batch sampler's, when the
    dataset answers whole batches), at most the dataset's size."""
    size = getattr(loader, "batch_size", None)
    for sampler in (getattr(loader, "batch_sampler", None), getattr(loader, "sampler", None)):
        size = size or getattr(sampler, "batch_size", None)
    dataset = getattr(loader, "dataset", None)
    return min(size or 1, len(dataset)) if dataset is not None else (size or 1)


def _wrapped(model: DietNet, settings: RunSettings) -> nn.Module:
    """The module the steps run: DDP around ``model`` under torchrun, ``model`` alone."""
    if not current().distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [settings.device.index] if settings.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, gradient_as_bucket_view=True)


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
    objective: Objective = OBJECTIVES["potential"],
) -> list[dict]:
    """Train ``epochs`` epochs from ``start_epoch`` on ``objective`` (:mod:`.objectives`);
    evaluate and call ``on_epoch(entry)`` after each, on rank 0 only (entry: stage, epoch,
    train loss/accuracy, test accuracy, test spike rates, thresholds, leaks)."""
    model.to(settings.device)
    check_run_memory(model, _batch_size(train_loader), settings, "train")
    ranks = current()
    stepped = _wrapped(model, settings)
    scaler = torch.amp.GradScaler(settings.device.type, enabled=settings.precision == "fp16")
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    history = []
    for epoch in range(start_epoch, epochs):
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
        set_epoch(train_loader, epoch)
        model.train()
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(train_loader, desc=f"{stage} {epoch + 1}/{epochs}",
                   disable=not progress or not ranks.main)  # fmt: skip
        for images, labels in bar:
            images, labels = images.to(settings.device), labels.to(settings.device)
            potentials = logits_of(stepped, images, settings, per_step=True)
            logits = potentials.sum(0)
            loss = objective(potentials, labels)
            _check_finite(loss, stage)
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if after_step is not None:
                after_step()
            seen += len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            loss_sum += loss.item() * len(labels)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        seen, correct, loss_sum = sum_over_ranks([seen, correct, loss_sum], settings.device)
        result = evaluate(model, test_loader, settings, progress=progress, desc=f"{stage} eval")
        history.append(
            {
                "stage": stage,
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(seen, 1),
                "train_accuracy": correct / max(seen, 1),
                "test_accuracy": result.accuracy,
                "spike_rates": list(result.spike_rates.values()) if model.spiking else None,
                "thresholds": model.thresholds() if model.spiking else None,
                "leaks": model.leaks() if model.spiking else None,
            }
        )
        if progress and ranks.main:
            tqdm.write(f"{stage} epoch {epoch + 1}: test accuracy {result.accuracy:.4f}")
        if on_epoch is not None and ranks.main:
            on_epoch(history[-1])
    return history
