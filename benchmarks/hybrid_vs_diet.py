"""The single-spike hybrid network beside the DIET-SNN: accuracy, average spike rate, exact
synaptic events and E_ANN/E_SNN under two energy models, for the float models and the
deployed ones (emulator, full test set), with Lava on a subset.

    python benchmarks/hybrid_vs_diet.py --diet DIET.pt DIET.hw.pt --hybrid HYB.pt HYB.hw.pt
                                        [--lava-images 20] [--models paper-45nm,loihi] [--write]

Each pair is (the trained float SNN, its hardware fine-tuned checkpoint). Float rows count the
float model's spikes (``evaluate --energy``); deployed rows quantize the fine-tuned checkpoint
and run the emulator (``energy``); the Lava column runs the same deployed network on Lava's
CPU simulator for the first N test images and says whether its predictions equal the
emulator's. Everything goes through the installed ``dietsnn-deploy`` command.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

from results_log import append_results
from run_cli import run_cli


def _row(accuracy: float, total: dict) -> dict:
    """One table row from a report's totals: on-chip synaptic events are the accumulates of
    every layer after the first; the first layer's MACs and ACs run on the host."""
    return {"accuracy": accuracy, "rate": total["spike_rate"], "events": total["snn_acs"],
            "host": total["host_macs"] + total["host_acs"], "ratio": total["ratio"]}  # fmt: skip


def float_row(checkpoint: str, model: str) -> dict:
    report = json.loads(run_cli("evaluate", checkpoint, "--energy", model, "--json"))
    total = report["energy"]["total"]
    return _row(report["accuracy"], total)


def deployed_row(checkpoint: str, model: str, folder: Path) -> dict:
    out = folder / f"{Path(checkpoint).stem}.{model}.json"
    run_cli("energy", checkpoint, "--model", model, "--json", str(out))
    report = json.loads(out.read_text())
    total = report["total"]
    return _row(report["accuracy"], total)


def lava_check(checkpoint: str, images: int, folder: Path) -> tuple[float, bool]:
    net = folder / f"{Path(checkpoint).stem}.net"
    run_cli("export", checkpoint, "-o", str(net))
    lava = json.loads(
        run_cli("simulate", str(net), "--backend", "lava", "-n", str(images), "--json")
    )
    emulated = json.loads(run_cli("simulate", str(net), "-n", str(images), "--json"))
    same = lava["predictions"] == emulated["predictions"]
    return lava["accuracy"], same and lava["spike_counts"] == emulated["spike_counts"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--diet", nargs=2, required=True, metavar=("FLOAT", "HARDWARE"))
    parser.add_argument("--hybrid", nargs=2, required=True, metavar=("FLOAT", "HARDWARE"))
    parser.add_argument("--models", default="paper-45nm,loihi")
    parser.add_argument("--lava-images", type=int, default=20)
    parser.add_argument("--write", action="store_true", help="append the table to RESULTS.md")
    args = parser.parse_args()
    models = args.models.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, (float_pt, hardware_pt) in (("DIET-SNN", args.diet), ("hybrid", args.hybrid)):
            measured = {m: float_row(float_pt, m) for m in models}
            first = measured[models[0]]
            rows.append((name, "float", first, {m: r["ratio"] for m, r in measured.items()}, ""))
            deployed = {m: deployed_row(hardware_pt, m, folder) for m in models}
            first = deployed[models[0]]
            lava_acc, agree = lava_check(hardware_pt, args.lava_images, folder)
            lava = f"{100 * lava_acc:.1f}% ({'=' if agree else '≠'} emulator)"
            rows.append(
                (name, "deployed", first, {m: r["ratio"] for m, r in deployed.items()}, lava)
            )
    header = ("| network | model | accuracy | avg spike rate | on-chip synaptic events / image | host ops / image | "
              + " | ".join(f"E_ANN/E_SNN {m}" for m in models)
              + f" | Lava, first {args.lava_images} |")  # fmt: skip
    lines = [header, "|" + "---|" * (7 + len(models))]
    for name, kind, row, ratios, lava in rows:
        cells = [name, kind, f"{100 * row['accuracy']:.2f}%", f"{row['rate']:.3f}",
                 f"{row['events']:,.0f}", f"{row['host']:,.0f}", *(f"{ratios[m]:.2f}×" for m in models), lava]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    diet_events = rows[1][2]["events"]
    hybrid_events = rows[3][2]["events"]
    gap = 100 * (rows[1][2]["accuracy"] - rows[3][2]["accuracy"])
    summary = (f"deployed: hybrid {gap:+.2f} points below DIET-SNN (target ≤ 1.5), "
               f"{diet_events / hybrid_events:.2f}× fewer synaptic events (target ≥ 2)")  # fmt: skip
    print("\n".join(lines))
    print(summary)
    if args.write:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        command = " ".join(["python", "benchmarks/hybrid_vs_diet.py", *sys.argv[1:]])
        entry = f"### {stamp} — `{command}`\n\n" + "\n".join(lines) + f"\n\n{summary}\n"
        append_results(entry, "## Hybrid single-spike network beside the DIET-SNN (Fashion-MNIST)")


if __name__ == "__main__":
    main()
