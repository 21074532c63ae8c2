"""What Loihi's int16 ``a_in`` port does to a deployed network: accuracy on the emulator with
Lava's simulator arithmetic (inputs pass intact) and with the chip's port (each step's input
clipped to [−2¹⁵, 2¹⁵ − 1]), the neuron-steps clipped per layer, and the same for networks
quantized to fit the port (``--fit-a-in worst`` and ``measured``).

    python benchmarks/a_in_saturation.py model.hw.pt [-n N] [--device cpu] [--write]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time

import torch
from bench_device import add_device_option, parse_device
from results_log import append_results

from dietsnn_deploy.services.inputs import load_test_images
from dietsnn_deploy.services.networks import LoadOptions, deploy_model, load_spiking
from dietsnn_deploy.spine.loihi import A_IN_MAX
from hw_sim.counting_plan import counting_plan
from hw_sim.emulator import classify

FITS = (None, "measured", "worst")


def study(path: str, limit: int | None, data_dir: str | None, device: torch.device) -> list[dict]:
    """One row per quantization: accuracies without and with saturation, clipped steps."""
    model, info = load_spiking(path, LoadOptions(data_dir=data_dir))
    rows = []
    for fit in FITS:
        net = deploy_model(model, info, LoadOptions(data_dir=data_dir, fit_a_in=fit))
        images, labels, _ = load_test_images(net, None, data_dir, limit)
        names = {g.index: g.name for g in counting_plan(net)}
        neurons = {g.index: g.neurons for g in counting_plan(net)}
        accuracy = {}
        started = time.perf_counter()
        for saturate in (False, True):
            result = classify(net, images, progress=False, saturate_a_in=saturate, device=device)
            accuracy[saturate] = float((result.predictions == labels).double().mean())
            if saturate:
                clipped = {
                    names[i]: (n, n / (neurons[i] * net.timesteps * len(labels)))
                    for i, n in enumerate(result.saturated)
                    if n is not None
                }
        rows.append(
            {
                "fit": fit or "none",
                "accuracy": accuracy[False],
                "accuracy_saturated": accuracy[True],
                "clipped": clipped,
                "bounds": {q.name: q.input_bound for q in net.quantization},
                "scales": {q.name: q.scale for q in net.quantization},
                "images": len(labels),
                "seconds": time.perf_counter() - started,
            }
        )
    return rows


def tables(rows: list[dict]) -> str:
    layers = list(rows[0]["clipped"])
    head = "| quantization | accuracy (simulator: a_in intact) | accuracy (chip: int16 a_in) | "
    head += " | ".join(f"{name} clipped" for name in layers) + " |"
    lines = [head, "|" + "---|" * (3 + len(layers))]
    for row in rows:
        cells = [
            f"{n / row['images']:,.1f}/image ({100 * share:.3f}%)"
            for n, share in row["clipped"].values()
        ]
        lines.append(
            f"| {row['fit']} | {100 * row['accuracy']:.2f}% | "
            f"{100 * row['accuracy_saturated']:.2f}% | " + " | ".join(cells) + " |"
        )
    names = list(rows[0]["bounds"])
    lines += ["", "| quantization | " + " | ".join(f"{n} worst-case \\|a_in\\| (scale)" for n in names)
              + " |", "|" + "---|" * (1 + len(names))]  # fmt: skip
    for row in rows:
        cells = [
            f"{row['bounds'][n]:,}{' > int16' if (row['bounds'][n] or 0) > A_IN_MAX else ''} "
            f"({row['scales'][n]:.1f})"
            for n in names
        ]
        lines.append(f"| {row['fit']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a trained (ideally hardware fine-tuned) checkpoint")
    parser.add_argument("-n", "--limit", type=int, help="first N test images (default all)")
    parser.add_argument("--data-dir")
    add_device_option(
        parser, "where the emulator runs: auto, cpu, cuda, cuda:N or mps (default: cpu)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="append the tables to RESULTS.md")
    args = parser.parse_args()
    device = parse_device(parser, args.device)
    torch.set_num_threads(args.threads)
    rows = study(args.checkpoint, args.limit, args.data_dir, device)
    text = tables(rows)
    print(text)
    if args.write:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        command = " ".join(["python", "benchmarks/a_in_saturation.py", *sys.argv[1:]])
        entry = (
            f"### {stamp} — `{command}`\n\n{rows[0]['images']} test images; clipped = "
            "neuron-steps whose one-step synaptic input left int16 (share of all the layer's "
            "neuron-steps).\n\n" + text + "\n"
        )
        append_results(entry, "## Loihi's int16 a_in port: saturation study")


if __name__ == "__main__":
    main()
