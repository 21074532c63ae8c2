"""Deploying a trained Fashion-MNIST DIET-SNN to Loihi fixed point, step by step, in one table.

    .venv/bin/python benchmarks/deploy_fashion_mnist.py [--checkpoint runs/table1/diet.pt]
        [--finetune-epochs 1] [--lava-images 10] [--test-limit N] [--train-limit N]
        [--device cpu]

Rows: the float DIET-SNN with its own soft reset and with Loihi's hard reset (full test set);
the quantized network on the bit-exact emulator before hardware-aware fine-tuning; the
fine-tuned model (float, hard reset) and its quantized network on the emulator; then Lava's
fixed-point CPU simulation of the deployed network on the first --lava-images test images
beside the emulator on the same images: accuracy, whether spikes (layer by layer) and readout
potentials are identical, and images/s of each (runtime build excluded, reported apart).
The float rows, fine-tuning and the emulator run on --device (the "runs on" column names it
when it is not the CPU); quantization and Lava always run on the CPU.

Fine-tuning goes through ``pipeline.run_finetune`` into ``<workdir>/<stem>.hw.pt`` and resumes
from there on a rerun. Prints the Markdown table, writes the figures as JSON next to the
fine-tuned checkpoint and appends a dated entry to benchmarks/RESULTS.md. Exit status 1 if Lava
and the emulator disagree anywhere.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from bench_device import add_device_option, parse_device, synchronize
from results_log import RESULTS, append_results

from dietsnn_deploy.atomic import atomic_write_text
from dietsnn_deploy.data import make_loader
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.network import DeployedNetwork
from dietsnn_deploy.spine.neurons import get_neuron_model
from dietsnn_deploy.spine.settings import RunSettings
from dietsnn_deploy.training.checkpoints import load_checkpoint
from dietsnn_deploy.training.config import TrainConfig
from dietsnn_deploy.training.loop import evaluate
from dietsnn_deploy.training.pipeline import calibration_images, run_finetune
from dietsnn_deploy.training.quantize import quantize
from hw_sim.emulator import Emulator
from hw_sim.host import encode_drive

HEADING = "## Deploying a Fashion-MNIST DIET-SNN to Loihi fixed point"
TABLE_HEAD = "| step | runs on | images | accuracy | images/s | notes |\n|---|---|---|---|---|---|"
CALIBRATION_IMAGES = 512  # as run_finetune and the export command use
CPU = torch.device("cpu")


@dataclass
class Row:
    """One line of the table; ``images_per_second`` None where speed is not the point."""

    step: str
    runs_on: str
    images: int
    accuracy: float
    images_per_second: float | None = None
    notes: str = ""

    def markdown(self) -> str:
        speed = "—" if self.images_per_second is None else f"{self.images_per_second:.3g}"
        return (
            f"| {self.step} | {self.runs_on} | {self.images} | {100 * self.accuracy:.2f}% |"
            f" {speed} | {self.notes} |"
        )


@dataclass
class EmulatorRun:
    """Predictions, the last batch's spike record and timings of one emulator pass."""

    predictions: torch.Tensor
    record: object  # SpikeRecord of the last batch (all images when they fit one batch)
    build_seconds: float
    run_seconds: float


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    lava_matches: bool | None = None
    details: dict = field(default_factory=dict)


def emulate(
    net: DeployedNetwork,
    images: torch.Tensor,
    batch_size: int = 256,
    device: torch.device = CPU,
) -> EmulatorRun:
    """Classify ``images`` (pixels in [0, 1]) on the emulator on ``device``, timing its setup
    apart; predictions on the CPU, the record on ``device``."""
    start = time.perf_counter()
    emulator = Emulator(net, device=device)
    synchronize(device)
    built = time.perf_counter()
    readouts, record = [], None
    for first in range(0, len(images), batch_size):
        drive = encode_drive(net.encoder, images[first : first + batch_size])
        record = emulator.run(drive, record=True)
        readouts.append(record.readout.cpu())
    synchronize(device)
    done = time.perf_counter()
    predictions = torch.cat(readouts).argmax(dim=1)
    return EmulatorRun(predictions, record, built - start, done - built)


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predictions == labels).double().mean())


def float_accuracy(
    model, loader, reset: str, timesteps: int, device: torch.device
) -> tuple[float, float]:
    """(accuracy, images/s) of the float SNN with the given reset, run for ``timesteps`` on
    ``device`` (the model is moved there)."""
    model.neuron_model = get_neuron_model(model.neuron_model.name, reset)
    model.to(device)
    start = time.perf_counter()
    result = evaluate(model, loader, RunSettings(timesteps, device))
    return result.accuracy, len(loader.dataset) / (time.perf_counter() - start)


def int16_note(net: DeployedNetwork) -> str:
    flagged = [q.name for q in net.quantization if q.exceeds_int16]
    return f"per-step input can exceed int16: {', '.join(flagged)}" if flagged else ""


def compare_layers(net: DeployedNetwork, lava_record, emulator_record) -> tuple[bool, str]:
    """(all identical, "layer i kind: yes/NO, …, readout: yes/NO")."""
    parts, same = [], True
    for index, (lava, emulated) in enumerate(
        zip(lava_record.spikes, emulator_record.spikes, strict=True)
    ):
        if lava is None or emulated is None:
            continue
        equal = bool(torch.equal(lava.cpu(), emulated.cpu()))
        same &= equal
        parts.append(f"{index}:{net.layers[index].kind} {'yes' if equal else 'NO'}")
    readout_equal = bool(torch.equal(lava_record.readout.cpu(), emulator_record.readout.cpu()))
    parts.append(f"readout {'yes' if readout_equal else 'NO'}")
    return same and readout_equal, ", ".join(parts)


def run(args: argparse.Namespace) -> Results:
    from hw_sim.lava.runner import run_lava

    device = torch.device(args.device)
    # the "runs on" column: unchanged on the CPU, the device named elsewhere
    on = "" if device.type == "cpu" else f" ({device})"
    checkpoint = Path(args.checkpoint)
    model, info = load_checkpoint(checkpoint)
    if info.stage == "ann":
        raise DeployError(f"{checkpoint} is an ANN checkpoint; this needs a trained SNN")
    results = Results()
    norm = (info.mean, info.std)
    channels = info.in_shape[0]
    test = make_loader(
        info.dataset, "test", 256, data_dir=args.data_dir, limit=args.test_limit, normalization=norm
    )
    raw = make_loader(
        info.dataset,
        "test",
        4096,
        data_dir=args.data_dir,
        limit=args.test_limit,
        normalization=((0.0,) * channels, (1.0,) * channels),
    )
    pixels = torch.cat([batch[0] for batch in raw])
    labels = torch.cat([batch[1] for batch in raw])
    count = len(labels)
    calibration = calibration_images(info, args.data_dir, CALIBRATION_IMAGES)
    trained_as = "hard" if info.reset == "hard" else "soft"
    print(TABLE_HEAD, flush=True)
    for reset in ("soft", "hard"):
        acc, speed = float_accuracy(model, test, reset, info.timesteps, device)
        note = "as trained" if reset == trained_as else "the chip's reset"
        results.rows.append(
            Row(f"float SNN, {reset} reset", f"PyTorch{on}", count, acc, speed, note)
        )
        print(results.rows[-1].markdown(), flush=True)

    def quantized_row(step: str) -> DeployedNetwork:
        """Quantize the model as it is now (on the CPU, where its calibration images are),
        classify the test set on the emulator, add a row."""
        net = quantize(
            model.cpu(),
            calibration,
            timesteps=info.timesteps,
            mean=info.mean,
            std=info.std,
            dataset=info.dataset,
        )
        run = emulate(net, pixels, device=device)
        speed = count / run.run_seconds
        row = Row(
            step, f"emulator{on}", count, accuracy(run.predictions, labels), speed, int16_note(net)
        )
        results.rows.append(row)
        print(row.markdown(), flush=True)
        return net

    net = quantized_row("quantized, before fine-tuning")

    if args.finetune_epochs > 0:
        del net
        cfg = TrainConfig(
            dataset=info.dataset,
            arch=info.arch,
            data_dir=args.data_dir,
            snn_epochs=args.finetune_epochs,
            snn_lr=args.finetune_lr,
            snn_batch_size=args.batch_size,
            train_limit=args.train_limit,
            test_limit=args.test_limit,
            device=args.device,
            progress=not args.quiet,
        )
        tuned_path = Path(args.workdir) / f"{checkpoint.stem}.hw.pt"
        start = time.perf_counter()
        model, tuned = run_finetune(cfg, checkpoint, tuned_path)
        epochs = [h for h in tuned.history if h["stage"] == "hardware"]
        results.details["finetune"] = {
            "checkpoint": str(tuned_path),
            "epochs": len(epochs),
            "seconds_this_run": time.perf_counter() - start,
            "fake_quantized_test_accuracy": [h["test_accuracy"] for h in epochs],
            "train_limit": args.train_limit,
        }
        acc, speed = float_accuracy(model, test, "hard", tuned.timesteps, device)
        results.rows.append(
            Row(
                f"hardware-aware fine-tuned ({len(epochs)} ep.), hard reset",
                f"PyTorch{on}",
                count,
                acc,
                speed,
                f"fake-quantized eval during fine-tuning {100 * epochs[-1]['test_accuracy']:.2f}%",
            )
        )
        print(results.rows[-1].markdown(), flush=True)
        net = quantized_row("quantized, after fine-tuning")
    results.details["quantization"] = [asdict(q) for q in net.quantization]

    if args.lava_images > 0:
        subset, subset_labels = pixels[: args.lava_images], labels[: args.lava_images]
        lava = run_lava(net, subset, progress=not args.quiet)  # Lava: always on the CPU
        emulated = emulate(net, subset, batch_size=len(subset), device=device)
        same, per_layer = compare_layers(net, lava.record, emulated.record)
        results.lava_matches = same
        lava_speed = len(subset) / lava.run_seconds
        emulator_speed = len(subset) / emulated.run_seconds
        which = "after" if args.finetune_epochs > 0 else "before"
        results.rows.append(
            Row(
                f"quantized ({which} fine-tuning), first {len(subset)} test images",
                "Lava fixed_pt",
                len(subset),
                accuracy(lava.predictions, subset_labels),
                lava_speed,
                f"runtime build {lava.build_seconds:.1f} s (not in images/s)",
            )
        )
        results.rows.append(
            Row(
                "same images",
                f"emulator{on}",
                len(subset),
                accuracy(emulated.predictions, subset_labels),
                emulator_speed,
                f"{emulator_speed / lava_speed:.3g}× Lava's speed; identical to Lava: {per_layer}",
            )
        )
        print("\n".join(row.markdown() for row in results.rows[-2:]), flush=True)
        results.details["lava"] = {
            "images": len(subset),
            "build_seconds": lava.build_seconds,
            "run_seconds": lava.run_seconds,
            "seconds_per_image": lava.run_seconds / len(subset),
            "emulator_build_seconds": emulated.build_seconds,
            "emulator_run_seconds": emulated.run_seconds,
            "predictions_equal": bool(torch.equal(lava.predictions, emulated.predictions)),
            "identical": same,
        }
    results.details["checkpoint"] = {
        "path": str(checkpoint),
        "arch": info.arch,
        "dataset": info.dataset,
        "timesteps": info.timesteps,
        "stage": info.stage,
    }
    results.details["device"] = str(device)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/table1/diet.pt")
    parser.add_argument("--workdir", default="runs/deploy", help="fine-tuned checkpoint + JSON")
    parser.add_argument("--finetune-epochs", type=int, default=1, help="0 skips fine-tuning")
    parser.add_argument("--finetune-lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=64, help="fine-tuning batch size")
    parser.add_argument("--train-limit", type=int, help="fine-tune on the first N train images")
    parser.add_argument("--test-limit", type=int, help="first N test images (default: all)")
    parser.add_argument("--lava-images", type=int, default=10, help="0 skips Lava")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", default=str(RESULTS), help="Markdown file to append to")
    parser.add_argument("--no-write", action="store_true", help="do not append to --results")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device_option(
        parser,
        "where the float SNN, fine-tuning and the emulator run: auto, cpu, cuda, cuda:N"
        " or mps (default: cpu; Lava always runs on the CPU)",
    )
    args = parser.parse_args()
    if min(args.finetune_epochs, args.lava_images) < 0:
        parser.error("--finetune-epochs and --lava-images must be ≥ 0")
    args.device = str(parse_device(parser, args.device))
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    try:
        results = run(args)
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - started
    table = TABLE_HEAD + "\n" + "\n".join(row.markdown() for row in results.rows)
    print("\n" + table)
    ckpt = results.details["checkpoint"]
    command = "python benchmarks/deploy_fashion_mnist.py " + " ".join(sys.argv[1:])
    device = results.details["device"]
    where = "" if device == "cpu" else f"; float rows, fine-tuning and emulator on {device}"
    entry = (
        f"### {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} — `{command.strip()}`\n\n"
        f"{ckpt['arch']} on {ckpt['dataset']}, T={ckpt['timesteps']}, from `{ckpt['path']}`"
        f" ({ckpt['stage']}). Float rows: PyTorch; emulator: the bit-exact batched PyTorch"
        f" emulator (batches of 256){where}; Lava: lava-nc 0.10.0 CPU simulation with the fixed_pt"
        " models, all images in one pipelined run. images/s exclude building the emulator or"
        f" Lava runtime. torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s),"
        f" 2-core machine shared with other jobs; wall time {wall / 60:.1f} min.\n\n"
        + table
        + "\n\n"
    )
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    record = {
        "command": command.strip(),
        "rows": [asdict(row) for row in results.rows],
        "wall_seconds": wall,
        **results.details,
    }
    json_path = workdir / f"{Path(args.checkpoint).stem}.deploy.json"
    atomic_write_text(json_path, json.dumps(record, indent=2))
    print(f"wrote {json_path}")
    if not args.no_write:
        append_results(entry, HEADING, Path(args.results))
        print(f"appended to {args.results}")
    if results.lava_matches is False:
        print("error: Lava and the emulator disagree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
