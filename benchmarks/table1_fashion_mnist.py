"""Table 1 of the DIET-SNN paper on Fashion-MNIST: ANN, plain conversion at T, weight-only SNN
training, and full DIET-SNN (weights + leak + threshold), with wall times.

    .venv/bin/python benchmarks/table1_fashion_mnist.py [--arch vgg5] [--ann-epochs 6]
        [--device cpu] ...

Stages are checkpointed under --workdir and resumed on a rerun. Prints a Markdown table and
writes the figures as JSON next to the checkpoints (with the device each stage ran on).
Training, conversion and evaluation run on --device.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
from bench_device import add_device_option, parse_device

from dietsnn_deploy.training.config import TrainConfig
from dietsnn_deploy.training.pipeline import run_ann, run_convert, run_snn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vgg5")
    parser.add_argument("--timesteps", type=int, default=5)
    parser.add_argument("--ann-epochs", type=int, default=6)
    parser.add_argument("--snn-epochs", type=int, default=1)
    parser.add_argument(
        "--snn-train-limit", type=int, help="train the SNN stages on the first N images only"
    )
    parser.add_argument(
        "--threshold-scale",
        type=float,
        default=1.0,
        help="SNN stages start from thresholds × this (the official code's scaling_factor); "
        "the ANN-SNN column is always the plain 99.7th-percentile conversion",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", default="runs/table1")
    parser.add_argument("--only", choices=["ann", "weights", "diet"], help="run one stage")
    add_device_option(
        parser,
        "where training and evaluation run: auto, cpu, cuda, cuda:N or mps (default: cpu;"
        " conversion runs on the CPU)",
    )
    args = parser.parse_args()
    device = parse_device(parser, args.device)
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    cfg = TrainConfig(
        dataset="fashion-mnist",
        arch=args.arch,
        timesteps=args.timesteps,
        ann_epochs=args.ann_epochs,
        snn_epochs=args.snn_epochs,
        device=str(device),
    )
    snn_cfg = replace(cfg, train_limit=args.snn_train_limit, threshold_scale=args.threshold_scale)
    ann_path, plain_path = work / "ann.pt", work / "converted.pt"
    scaled = args.threshold_scale != 1.0
    conv_path = work / f"converted-x{args.threshold_scale:g}.pt" if scaled else plain_path
    times: dict[str, float] = {}
    devices: dict[str, str] = {}
    results_path = work / "table1.json"
    results: dict = {}

    def timed(name: str, fn):
        start = time.perf_counter()
        out = fn()
        times[name] = time.perf_counter() - start
        devices[name] = str(device)
        return out

    if args.only in (None, "ann"):
        _, info = timed("ann", lambda: run_ann(cfg, ann_path))
        results["ann"] = info.ann_accuracy
        _, info = timed("convert", lambda: run_convert(cfg, ann_path, plain_path))
        results["converted"] = info.converted_accuracy
        if scaled:
            _, info = timed("convert-scaled", lambda: run_convert(snn_cfg, ann_path, conv_path))
            results[f"converted_x{args.threshold_scale:g}"] = info.converted_accuracy
    if args.only in (None, "weights"):
        weights_cfg = replace(snn_cfg, train_threshold=False, train_leak=False)
        _, info = timed("weights", lambda: run_snn(weights_cfg, conv_path, work / "weights.pt"))
        results["weights"] = info.accuracy
    if args.only in (None, "diet"):
        _, info = timed("diet", lambda: run_snn(snn_cfg, conv_path, work / "diet.pt"))
        results["diet"] = info.accuracy
        results["diet_leaks"] = info.history[-1]["leaks"]
        results["diet_thresholds"] = info.history[-1]["thresholds"]
    # Stages may run as parallel processes: merge with what the others wrote meanwhile.
    merged = json.loads(results_path.read_text()) if results_path.exists() else {}
    merged.setdefault("wall_seconds", {}).update(times)
    merged.setdefault("devices", {}).update(devices)
    merged.update({k: v for k, v in results.items()})
    results = merged
    work.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2))

    def pct(key: str) -> str:
        return f"{100 * results[key]:.2f}%" if results.get(key) is not None else "—"

    print(f"| arch | ANN | ANN-SNN (T={cfg.timesteps}) | weight optimisation | DIET-SNN |")
    print("|---|---|---|---|---|")
    print(f"| {args.arch} | {pct('ann')} | {pct('converted')} | {pct('weights')} | {pct('diet')} |")
    for key in (k for k in results if k.startswith("converted_x")):
        print(f"SNN stages start from thresholds {key.removeprefix('converted_')}: {pct(key)}")
    print("wall seconds:", {k: round(v) for k, v in results["wall_seconds"].items()})


if __name__ == "__main__":
    main()
