"""Op-count and energy reports: terminal table, JSON, CSV and PNG plots (all written atomically).

Energies are per image: pJ in JSON/CSV, µJ in the table. ``ratio`` is E_ANN / E_SNN (null in
JSON when the SNN side costs nothing). Plots use matplotlib's Agg canvas, no pyplot state.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from dietsnn_deploy.atomic import atomic_write_bytes, atomic_write_text
from dietsnn_deploy.errors import DeployError
from hw_sim.energy import EnergyReport, table3_ratio
from hw_sim.op_counter import LayerCounts, OpCounts

PJ_PER_UJ = 1e6


def _paired(counts: OpCounts, report: EnergyReport) -> list[tuple[LayerCounts, object]]:
    names = [c.name for c in counts.layers]
    if names != [e.name for e in report.layers]:
        raise DeployError(f"counts and energy report cover different layers: {names}")
    return list(zip(counts.layers, report.layers, strict=True))


def _ratio_text(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}×"


def format_table(counts: OpCounts, report: EnergyReport) -> str:
    """Per-layer table (per image) with a total line and the model's name."""
    header = ("layer", "neurons", "spike rate", "ANN MACs", "SNN ACs", "host MACs",
              "E_ANN µJ", "E_SNN µJ", "ANN/SNN")  # fmt: skip
    rows = [
        (
            c.name,
            f"{c.neurons:,}",
            f"{c.spike_rate:.4f}" if c.kind != "readout" else "—",
            f"{c.ann_macs:,.0f}",
            f"{c.synaptic_events:,.0f}",
            f"{c.host_macs:,.0f}" if c.host_macs else "",
            f"{e.ann_pj / PJ_PER_UJ:.4f}",
            f"{e.snn_pj / PJ_PER_UJ:.4f}",
            _ratio_text(e.ratio),
        )
        for c, e in _paired(counts, report)
    ]
    total = counts.total()
    rows.append(
        (
            "total",
            f"{total.neurons:,}",
            f"{total.spike_rate:.4f}",
            f"{total.ann_macs:,.0f}",
            f"{total.synaptic_events:,.0f}",
            f"{total.host_macs:,.0f}",
            f"{report.ann_pj / PJ_PER_UJ:.4f}",
            f"{report.snn_pj / PJ_PER_UJ:.4f}",
            _ratio_text(report.ratio),
        )
    )
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def line(cells) -> str:
        return "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "-" * len(line(header))
    title = (
        f"energy model {report.model}; {counts.num_images} images, T = {counts.timesteps}; "
        "per image"
    )
    return "\n".join([title, line(header), rule, *map(line, rows[:-1]), rule, line(rows[-1])])


def _layer_record(c: LayerCounts, ann_pj: float, snn_pj: float, ratio) -> dict:
    return {
        "name": c.name,
        "kind": c.kind,
        "neurons": c.neurons,
        "spikes": c.spikes,
        "spike_rate": c.spike_rate,
        "ann_macs": c.ann_macs,
        "snn_acs": c.synaptic_events,
        "eq17_ops": c.eq17_ops,
        "host_macs": c.host_macs,
        "neuron_updates": c.neuron_updates,
        "active_neuron_updates": c.active_neuron_updates,
        "energy_ann_pj": ann_pj,
        "energy_snn_pj": snn_pj,
        "ratio": ratio,
        "spikes_per_step": list(c.spikes_per_step),
        "events_per_step": list(c.events_per_step),
    }


def report_dict(counts: OpCounts, report: EnergyReport) -> dict:
    """The JSON document: model, constants, per-layer rows and the total (per image)."""
    layers = []
    for c, e in _paired(counts, report):
        row = _layer_record(c, e.ann_pj, e.snn_pj, e.ratio)
        row["energy_snn_parts_pj"] = dict(e.snn_parts)
        layers.append(row)
    total = _layer_record(counts.total(), report.ann_pj, report.snn_pj, report.ratio)
    total.pop("kind")
    total["first_layer_share"] = counts.first_layer_share
    total["normalised_snn_ops"] = counts.normalised_snn_ops
    total["eq17"] = paper_convention(counts)
    return {
        "model": report.model,
        "constants": dict(report.constants),
        "sources": report.sources,
        "units": "per image; energy in pJ",
        "num_images": counts.num_images,
        "timesteps": counts.timesteps,
        "notes": list(counts.notes),
        "layers": layers,
        "total": total,
    }


def paper_convention(counts: OpCounts) -> dict:
    """The paper's Table 3 figures for these spikes: b counted by its eq. 17 (input spike rate ×
    ANN MACs) and the closed-form ratio under paper-45nm, whatever model the report uses."""
    b, c = counts.normalised_eq17_ops, counts.first_layer_share
    return {"normalised_snn_ops": b, "first_layer_share": c, "ratio_paper_45nm": table3_ratio(b, c)}


def format_paper_convention(counts: OpCounts) -> str:
    """One line comparing the exact b with the paper's eq. 17 b and its Table 3 ratio."""
    paper = paper_convention(counts)
    return (
        f"paper's Table 3 convention (eq. 17: input spike rate × ANN MACs): "
        f"b = {paper['normalised_snn_ops']:.4f} (exact events: {counts.normalised_snn_ops:.4f}), "
        f"c = {paper['first_layer_share']:.4f} → E_ANN/E_SNN {paper['ratio_paper_45nm']:.2f}× "
        "under paper-45nm"
    )


def write_json(
    path: str | Path, counts: OpCounts, report: EnergyReport, context: dict | None = None
) -> Path:
    """:func:`report_dict`, preceded by ``context`` (what was measured, how; JSON values)."""
    doc = report_dict(counts, report)
    clash = sorted(set(context or {}) & set(doc))
    if clash:
        raise DeployError(f"report context would overwrite {', '.join(clash)}")
    return atomic_write_text(path, json.dumps({**(context or {}), **doc}, indent=2) + "\n")


CSV_COLUMNS = ("name", "kind", "neurons", "spikes", "spike_rate", "ann_macs", "snn_acs",
               "eq17_ops", "host_macs", "neuron_updates", "active_neuron_updates", "energy_ann_pj",
               "energy_snn_pj", "ratio")  # fmt: skip


def write_csv(path: str | Path, counts: OpCounts, report: EnergyReport) -> Path:
    """One row per layer plus a ``total`` row; columns :data:`CSV_COLUMNS`."""
    doc = report_dict(counts, report)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in [*doc["layers"], {**doc["total"], "kind": "total"}]:
        writer.writerow({k: "" if row[k] is None else row[k] for k in CSV_COLUMNS})
    return atomic_write_text(path, buffer.getvalue())


def _save(fig: Figure, path: str | Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


def plot_spike_rates(path: str | Path, counts: OpCounts) -> Path:
    """Per-layer spike rate, spikes per neuron over all T (the paper's Fig. 2a)."""
    rows = [c for c in counts.layers if c.kind != "readout"]
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
    ratio = _ratio_text(report.ratio)
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


def write_all(out_dir: str | Path, counts: OpCounts, report: EnergyReport) -> dict[str, Path]:
    """Table (txt), JSON, CSV and the two count/energy plots into ``out_dir``."""
    out = Path(out_dir)
    stem = f"energy-{report.model}"
    return {
        "table": atomic_write_text(out / f"{stem}.txt", format_table(counts, report) + "\n"),
        "json": write_json(out / f"{stem}.json", counts, report),
        "csv": write_csv(out / f"{stem}.csv", counts, report),
        "spike_rates": plot_spike_rates(out / "spike-rates.png", counts),
        "layer_energy": plot_layer_energy(out / f"{stem}-layers.png", report),
    }
