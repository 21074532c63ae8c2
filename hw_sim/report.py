"""Op-count and energy reports: terminal table, JSON and CSV (written atomically); the PNG
plots are :mod:`hw_sim.plots`.

Energies are per image: pJ in JSON/CSV, µJ in the table. ``ratio`` is E_ANN / E_SNN (null in
JSON when the SNN side costs nothing).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from dietsnn_deploy.atomic import atomic_write_text
from dietsnn_deploy.errors import DeployError
from hw_sim.energy import EnergyReport, format_ratio, table3_ratio
from hw_sim.op_counts import LayerCounts, OpCounts
from hw_sim.plots import plot_layer_energy, plot_spike_rates

PJ_PER_UJ = 1e6


def _paired(counts: OpCounts, report: EnergyReport) -> list[tuple[LayerCounts, object]]:
    names = [c.name for c in counts.layers]
    if names != [e.name for e in report.layers]:
        raise DeployError(f"counts and energy report cover different layers: {names}")
    return list(zip(counts.layers, report.layers, strict=True))


def format_table(counts: OpCounts, report: EnergyReport) -> str:
    """Per-layer table (per image) with a total line and the model's name; a host ACs column
    appears when binary input frames cost the host accumulates."""
    total = counts.total()
    with_acs = total.host_acs > 0
    header = ("layer", "neurons", "spike rate", "ANN MACs", "SNN ACs", "host MACs",
              *(("host ACs",) if with_acs else ()), "E_ANN µJ", "E_SNN µJ", "ANN/SNN")  # fmt: skip

    def row(c: LayerCounts, ann_pj: float, snn_pj: float, ratio, rate: str) -> tuple[str, ...]:
        host_acs = (f"{c.host_acs:,.0f}" if c.host_acs else "",) if with_acs else ()
        return (
            c.name,
            f"{c.neurons:,}",
            rate,
            f"{c.ann_macs:,.0f}",
            f"{c.synaptic_events:,.0f}",
            f"{c.host_macs:,.0f}" if c.host_macs or c.kind == "total" else "",
            *host_acs,
            f"{ann_pj / PJ_PER_UJ:.4f}",
            f"{snn_pj / PJ_PER_UJ:.4f}",
            format_ratio(ratio),
        )

    rows = [
        row(c, e.ann_pj, e.snn_pj, e.ratio, f"{c.spike_rate:.4f}" if c.spiking else "—")
        for c, e in _paired(counts, report)
    ]
    rows.append(row(total, report.ann_pj, report.snn_pj, report.ratio, f"{total.spike_rate:.4f}"))
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
        "host_acs": c.host_acs,
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
               "eq17_ops", "host_macs", "host_acs", "neuron_updates", "active_neuron_updates", "energy_ann_pj",
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
