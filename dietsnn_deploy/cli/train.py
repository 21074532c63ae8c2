"""Training commands: ``train`` and its stages, ``evaluate``, ``finetune``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dietsnn_deploy.cli.app import cli
from dietsnn_deploy.errors import DeployError

ARCH_HELP = "architecture: vgg4, vgg5, vgg9, vgg11, vgg16, resnet20, vgg-tiny, vgg5-slim"


def _train_options(fn):
    """Options shared by ``train`` and its stage commands."""
    options = [
        click.option("--dataset", default="digits", show_default=True, help="dataset name"),
        click.option("--data-dir", default=None, help="folder of an on-disk dataset"),
        click.option("--arch", default="vgg-tiny", show_default=True, help=ARCH_HELP),
        click.option("--timesteps", "-T", default=5, show_default=True, type=click.IntRange(1)),
        click.option("--ann-epochs", default=20, show_default=True, type=click.IntRange(0)),
        click.option("--snn-epochs", default=5, show_default=True, type=click.IntRange(0)),
        click.option("--batch-size", default=128, show_default=True, type=click.IntRange(1)),
        click.option("--snn-batch-size", default=64, show_default=True, type=click.IntRange(1)),
        click.option("--ann-lr", default=1e-3, show_default=True, type=float),
        click.option("--snn-lr", default=1e-4, show_default=True, type=float),
        click.option(
            "--neuron-lr",
            type=click.FloatRange(0, min_open=True),
            help="learning rate of thresholds and leaks (default: --snn-lr)",
        ),
        click.option("--dropout", default=0.2, show_default=True, type=click.FloatRange(0, 0.95)),
        click.option(
            "--percentile", default=99.7, show_default=True, type=click.FloatRange(0, 100)
        ),
        click.option("--threshold-scale", default=1.0, show_default=True, type=float),
        click.option(
            "--encoding",
            type=click.Choice(["direct", "poisson"]),
            default="direct",
            show_default=True,
            help="input encoding (Figure 3 ablation)",
        ),
        click.option(
            "--neuron",
            type=click.Choice(["lif", "if"]),
            default="lif",
            show_default=True,
            help="'if' keeps every leak at 1",
        ),
        click.option("--train-threshold/--fixed-threshold", default=True, show_default=True),
        click.option("--train-leak/--fixed-leak", default=True, show_default=True),
        click.option("--train-limit", type=click.IntRange(1), help="use the first N train images"),
        click.option("--test-limit", type=click.IntRange(1), help="use the first N test images"),
        click.option("--seed", default=0, show_default=True, type=int),
        click.option("--threads", type=click.IntRange(1), help="torch CPU threads"),
        click.option(
            "--precision",
            type=click.Choice(["fp32", "bf16", "fp16"]),
            default="fp32",
            show_default=True,
            help="precision of the synaptic ops (membrane potentials and loss stay fp32)",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _config(options: dict):
    from dietsnn_deploy.pipeline import TrainConfig

    threads = options.pop("threads", None)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return TrainConfig(**options)


@cli.command()
@_train_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
def train(output: str, **options) -> None:
    """ANN → conversion → DIET training, resuming finished or partial stages."""
    from dietsnn_deploy.pipeline import run_all, stage_paths

    cfg = _config(options)
    info = run_all(cfg, Path(output))
    paths = stage_paths(Path(output))
    click.echo(summary(info))
    click.echo(f"stage checkpoints: {paths['ann']}, {paths['converted']}, {paths['snn']}")


def summary(info) -> str:
    def pct(value):
        return "n/a" if value is None else f"{100 * value:.2f}%"

    return (
        f"{info.arch} on {info.dataset}, T={info.timesteps}: ANN {pct(info.ann_accuracy)}, "
        f"converted {pct(info.converted_accuracy)}, DIET-SNN {pct(info.accuracy)}"
    )


@cli.command("train-ann")
@_train_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
def train_ann_cmd(output: str, **options) -> None:
    """Stage 1 only: train (or resume) the ANN."""
    from dietsnn_deploy.pipeline import run_ann

    _, info = run_ann(_config(options), Path(output))
    click.echo(f"ANN accuracy {100 * info.ann_accuracy:.2f}% -> {output}")


@cli.command("convert")
@_train_options
@click.argument("ann_checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
def convert_cmd(ann_checkpoint: str, output: str, **options) -> None:
    """Stage 2 only: ANN → SNN with percentile thresholds."""
    from dietsnn_deploy.pipeline import run_convert

    cfg = _config(options)
    _, info = run_convert(cfg, Path(ann_checkpoint), Path(output))
    thresholds = ", ".join(f"{v:.3f}" for v in info.initial_thresholds)
    click.echo(f"converted accuracy {100 * info.converted_accuracy:.2f}% (thresholds {thresholds})")


@cli.command("train-snn")
@_train_options
@click.argument("converted_checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
def train_snn_cmd(converted_checkpoint: str, output: str, **options) -> None:
    """Stage 3 only: DIET training (or an ablation of it) from a converted checkpoint."""
    from dietsnn_deploy.pipeline import run_snn

    _, info = run_snn(_config(options), Path(converted_checkpoint), Path(output))
    click.echo(summary(info))


@cli.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--dataset", help="dataset (default: the checkpoint's)")
@click.option("--data-dir", default=None)
@click.option("--arch", help="architecture, for official DIET-SNN checkpoints")
@click.option("--timesteps", "-T", type=click.IntRange(1), help="override T")
@click.option("-n", "--limit", type=click.IntRange(1), help="first N test images")
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option(
    "--energy",
    "energy_model",
    metavar="MODEL",
    help="also count the SNN's operations and price them with this energy model (paper-45nm, …)",
)
def evaluate(
    checkpoint, dataset, data_dir, arch, timesteps, limit, batch_size, as_json, energy_model
) -> None:
    """Test accuracy and per-layer spike rates of a checkpoint (and, with --energy, its op
    counts and energy per image, counted on the float model)."""
    from dietsnn_deploy.checkpoints import load_checkpoint
    from dietsnn_deploy.data import make_loader
    from dietsnn_deploy.training import evaluate as run_eval

    if energy_model:
        from hw_sim.energy import get_model

        get_model(energy_model)  # an unknown name fails before any work
    model, info = load_checkpoint(checkpoint, arch=arch, dataset=dataset, data_dir=data_dir)
    if dataset and dataset != info.dataset:
        raise DeployError(f"{checkpoint} was trained on {info.dataset}, not {dataset}")
    if timesteps:
        model.timesteps = timesteps
    loader = make_loader(
        info.dataset,
        "test",
        batch_size,
        data_dir=data_dir,
        limit=limit,
        normalization=(info.mean, info.std),
    )
    if energy_model:  # one pass gives accuracy, spike rates and op counts
        from hw_sim.energy import energy
        from hw_sim.measure import measure_float
        from hw_sim.report import report_dict

        measured = measure_float(model, loader, progress=not as_json, desc="evaluate")
        accuracy, spike_rates = measured.accuracy, measured.spike_rates
        priced = energy(energy_model, measured.counts)
    else:
        result = run_eval(model, loader, progress=not as_json)
        accuracy, spike_rates = result.accuracy, result.spike_rates
    report = {
        "checkpoint": str(checkpoint),
        "arch": info.arch,
        "dataset": info.dataset,
        "stage": info.stage,
        "timesteps": model.timesteps if model.spiking else None,
        "images": len(loader.dataset),
        "accuracy": accuracy,
        "spike_rates": spike_rates,
    }
    if energy_model:
        report["energy"] = report_dict(measured.counts, priced)
    if as_json:
        click.echo(json.dumps(report))
        return
    mode = f"SNN, T={model.timesteps}" if model.spiking else "ANN"
    click.echo(f"{info.arch} on {info.dataset} ({mode}): accuracy {100 * accuracy:.2f}%")
    for key, rate in spike_rates.items():
        click.echo(f"  layer {key:>6}: {rate:.3f} spikes/neuron")
    if energy_model:
        click.echo(_energy_totals(measured.counts, priced))


def _energy_totals(counts, report) -> str:
    """Two lines: per-image op totals and energies (the first layer's MACs once per image)."""
    total = counts.total()
    ratio = "—" if report.ratio is None else f"{report.ratio:.2f}×"
    return (
        f"  ops per image: ANN {total.ann_macs:,.0f} MACs; SNN {total.synaptic_events:,.0f} ACs"
        f" + {total.host_macs:,.0f} host MACs (first layer, once per image)\n"
        f"  energy per image ({report.model}): ANN {report.ann_pj / 1e6:.4f} µJ,"
        f" SNN {report.snn_pj / 1e6:.4f} µJ, E_ANN/E_SNN {ratio}"
    )


@cli.command()
@_train_options
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
def finetune(checkpoint: str, output: str, **options) -> None:
    """Hardware-aware fine-tuning: hard reset, quantized weights, leaks and thresholds."""
    from dietsnn_deploy.pipeline import run_finetune

    _, info = run_finetune(_config(options), Path(checkpoint), Path(output))
    click.echo(f"hardware-aware {info.arch} on {info.dataset}: accuracy {100 * info.accuracy:.2f}%")
