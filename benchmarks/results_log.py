"""Appending dated entries to benchmarks/RESULTS.md (shared by the benchmark scripts)."""

from __future__ import annotations

import datetime
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def append_results(entry: str, heading: str, path: Path = RESULTS) -> None:
    """Append ``entry`` under ``heading`` (adding the heading when it is not the last ``##``
    section); never rewrites what is already in the file."""
    text = path.read_text() if path.exists() else ""
    sections = [line.strip() for line in text.splitlines() if line.startswith("## ")]
    prefix = "# Benchmark results\n" if not text else ("" if text.endswith("\n") else "\n")
    if not sections or sections[-1] != heading:
        prefix += f"\n{heading}\n\n"
    with path.open("a") as handle:
        handle.write(prefix + entry)


def lava_line(lava: dict, emulated: dict, count: int) -> str:
    """How Lava's ``simulate --json`` report on the first ``count`` images compares with the
    emulator's on the same images."""
    return (
        f"Lava on the first {count}: {100 * lava['accuracy']:.2f}% (emulator on the same: "
        f"{100 * emulated['accuracy']:.2f}%; identical predictions: "
        f"{lava['predictions'] == emulated['predictions']}, identical spike counts: "
        f"{lava['spike_counts'] == emulated['spike_counts']})"
    )


def energy_line(total: dict) -> str:
    """The ``total`` row of an ``energy --json`` report, per image."""
    return (
        f"energy (paper-45nm, per image): E_ANN {total['energy_ann_pj'] / 1e6:.3f} µJ, "
        f"E_SNN {total['energy_snn_pj'] / 1e6:.3f} µJ, E_ANN/E_SNN {total['ratio']:.2f}×, "
        f"spike rate {total['spike_rate']:.3f}, {total['snn_acs']:,.0f} synaptic events"
    )


def record_run(lines: list[str], script: str, argv: list[str], heading: str) -> None:
    """Append ``lines`` as one dated entry, headed by the command that produced them."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    command = " ".join(["python", f"benchmarks/{script}", *argv])
    entry = f"### {stamp} — `{command}`\n\n" + "\n".join(f"- {line}" for line in lines) + "\n"
    append_results(entry, heading)
