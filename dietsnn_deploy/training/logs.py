"""Per-epoch logs beside a checkpoint: ``<stem>.epochs.csv`` (every epoch of the checkpoint's
history, rewritten atomically after each one) and, when the ``tensorboard`` package is
installed, TensorBoard events in ``<stem>.tensorboard/`` (one scalar per metric and epoch)."""

from __future__ import annotations

import csv
import importlib.util
import io
from pathlib import Path

from dietsnn_deploy.atomic import atomic_write_text

BASE_COLUMNS = ("stage", "epoch", "train_loss", "train_accuracy", "test_accuracy")
SERIES = ("spike_rates", "thresholds", "leaks")  # per-layer lists in a history entry


def log_paths(checkpoint: Path) -> tuple[Path, Path]:
    """(CSV, TensorBoard folder) beside ``checkpoint``."""
    return (
        checkpoint.with_name(f"{checkpoint.stem}.epochs.csv"),
        checkpoint.with_name(f"{checkpoint.stem}.tensorboard"),
    )


def _flat(entry: dict) -> dict[str, object]:
    row = {key: entry.get(key) for key in BASE_COLUMNS}
    for series in SERIES:
        for index, value in enumerate(entry.get(series) or []):
            row[f"{series[:-1]}_{index}"] = value
    return row


def write_epoch_csv(history: list[dict], checkpoint: Path) -> Path:
    """The whole history as CSV, one row per epoch (per-layer series as numbered columns)."""
    rows = [_flat(entry) for entry in history]
    columns = list(BASE_COLUMNS)
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row.get(key) is None else row[key] for key in columns})
    return atomic_write_text(log_paths(checkpoint)[0], buffer.getvalue())


def write_tensorboard(entry: dict, step: int, checkpoint: Path) -> Path | None:
    """One epoch's scalars as TensorBoard events (None when tensorboard is not installed)."""
    if importlib.util.find_spec("tensorboard") is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    folder = log_paths(checkpoint)[1]
    with SummaryWriter(log_dir=str(folder)) as writer:
        for key, value in _flat(entry).items():
            if key not in ("stage", "epoch") and value is not None:
                writer.add_scalar(f"{entry['stage']}/{key}", float(value), step)
    return folder
