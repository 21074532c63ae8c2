"""PNG plots of op counts and energy (matplotlib's Agg canvas, no pyplot state), written
atomically: spike rate per layer (Fig. 2a), energy per layer, leak and threshold before and
after training (Fig. 2b), and accuracy and energy against T."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from dietsnn_deploy.atomic import atomic_write_bytes
from dietsnn_deploy.errors import DeployError
from hw_sim.energy import EnergyReport, format_ratio
from hw_sim.op_counts import OpCounts


def _save(fig: Figure, path: str | Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


def plot_spike_rates(path: str | Path, counts: OpCounts) -> Path:
    """Per-layer spike rate, spikes per neuron over all T (the paper's Fig. 2a)."""
    rows = [c for c in counts.layers if c.spiking]
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.bar([c.name for c in rows], [c.spike_rate for c in rows], color="tab:blue")
    ax.set_ylabel(f"spikes per neuron over T = {counts.timesteps}")
    ax.set_title(f"Spike rate per layer ({counts.num_images} images)")
    ax.tick_params(axis="x", rotation=30)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_layer_energy(path: str | Path, report: EnergyReport) -> Path:
    """ANN vs SNN energy per layer and image, bars on a log axis."""
    names = [e.name for e in report.layers]
    xs = range(len(names))
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    width = 0.4
    ax.bar([x - width / 2 for x in xs], [e.ann_pj for e in report.layers], width, label="ANN")
    ax.bar([x + width / 2 for x in xs], [e.snn_pj for e in report.layers], width, label="SNN")
    ax.set_yscale("log")
    ax.set_xticks(list(xs), names, rotation=30)
    ax.set_ylabel("energy per image (pJ)")
    ratio = format_ratio(report.ratio)
    ax.set_title(f"Energy per layer, {report.model}: E_ANN / E_SNN = {ratio}")
    ax.legend()
    ax.grid(axis="y", alpha=0.3, which="both")
    return _save(fig, path)


def plot_leak_threshold(
    path: str | Path,
    names: Sequence[str],
    before: Sequence[tuple[float, float]],
    after: Sequence[tuple[float, float]],
) -> Path:
    """Leak and threshold per layer before and after training (the paper's Fig. 2b);
    ``before`` and ``after`` hold one (leak, threshold) pair per name."""
    if not (len(names) == len(before) == len(after)) or not names:
        raise DeployError("plot_leak_threshold needs one (leak, threshold) pair per layer name")
    xs = list(range(len(names)))
    fig = Figure(figsize=(8, 6))
    ax_leak, ax_threshold = fig.subplots(2, 1, sharex=True)
    for ax, column, label in ((ax_leak, 0, "leak"), (ax_threshold, 1, "threshold")):
        ax.plot(xs, [p[column] for p in before], "o--", label="before training")
        ax.plot(xs, [p[column] for p in after], "s-", label="after training")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_threshold.set_xticks(xs, list(names), rotation=30)
    ax_leak.set_title("Leak and threshold per layer")
    return _save(fig, path)


def plot_timestep_sweep(path: str | Path, points: Sequence[tuple[int, float, float]]) -> Path:
    """Accuracy and E_ANN / E_SNN against T; ``points`` holds (T, accuracy, ratio)."""
    if not points:
        raise DeployError("plot_timestep_sweep needs at least one (T, accuracy, ratio) point")
    points = sorted(points)
    steps = [p[0] for p in points]
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.plot(steps, [p[1] for p in points], "o-", color="tab:blue")
    ax.set_xlabel("timesteps T")
    ax.set_ylabel("accuracy", color="tab:blue")
    ax_ratio = ax.twinx()
    ax_ratio.plot(steps, [p[2] for p in points], "s--", color="tab:red")
    ax_ratio.set_ylabel("E_ANN / E_SNN", color="tab:red")
    ax.set_xticks(steps)
    ax.grid(alpha=0.3)
    ax.set_title("Accuracy and energy advantage against T")
    return _save(fig, path)
