"""Training commands: ``train`` and its stages, ``evaluate``, ``finetune``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dietsnn_deploy.cli.app import cli
from dietsnn_deploy.cli.options import graph_options

RECIPE = " (default: the dataset's recipe)"
ARCH_HELP = (
    "architecture: vgg4, vgg5, vgg9, vgg11, vgg16, resnet20, vgg-tiny, vgg5-slim "
    "(default: the recipe's for a new run, the checkpoint's for later stages)"
)
DATASET_HELP = (
    "dataset: digits, mnist, fashion-mnist, cifar10, cifar100, imagenet "
    "(default: digits for a new run, the checkpoint's for later stages)"
)


def _train_options(fn):
    """Options shared by ``train`` and its stage commands."""
    options = [
        click.option("--dataset", help=DATASET_HELP),
        click.option("--data-dir", default=None, help="folder of an on-disk dataset"),
        click.option("--arch", help=ARCH_HELP),
        click.option("--timesteps", "-T", type=click.IntRange(1), help="T" + RECIPE),
        click.option("--ann-epochs", type=click.IntRange(0), help="ANN epochs" + RECIPE),
        click.option(
            "--snn-epochs", type=click.IntRange(0), help="SNN (or fine-tuning) epochs" + RECIPE
        ),
        click.option("--batch-size", type=click.IntRange(1), help="ANN batch" + RECIPE),
        click.option("--snn-batch-size", type=click.IntRange(1), help="SNN batch" + RECIPE),
        click.option("--ann-lr", type=float, help="ANN learning rate" + RECIPE),
        click.option("--snn-lr", type=float, help="SNN weights' learning rate" + RECIPE),
        click.option(
            "--neuron-lr",
            type=click.FloatRange(0, min_open=True),
            help="learning rate of thresholds and leaks" + RECIPE,
        ),
        click.option("--dropout", default=0.2, show_default=True, type=click.FloatRange(0, 0.95)),
        click.option(
            "--percentile", default=99.7, show_default=True, type=click.FloatRange(0, 100)
        ),
        click.option("--threshold-scale", type=float, help="after conversion" + RECIPE),
        click.option(
            "--encoding",
            type=click.Choice(["direct", "poisson", "hybrid"]),
            help="input encoding: direct (DIET), poisson (Figure 3 ablation), hybrid (single-spike)"
            " (default: direct for a new SNN, the checkpoint's for later stages)",
        ),
        click.option(
            "--neuron",
            type=click.Choice(["lif", "if", "single-spike"]),
            default="lif",
            show_default=True,
            help="the neuron model; 'if' is the LIF with every leak at 1 (Figure 3 ablation)",
        ),
        click.option(
            "--surrogate",
            type=click.Choice(["triangle", "stdb"]),
            help="the spike's surrogate gradient: DIET's triangle or STDB's α·exp(−β·Δt)"
            " (default: triangle for a new SNN, the checkpoint's for later stages)",
        ),
        click.option(
            "--loss",
            type=click.Choice(["potential", "potential-time"]),
            help="CE on the readout potential, or plus CE on its crossing time (default: "
            "potential-time for single-spike, potential for LIF; later stages: the checkpoint's)",
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
            help="precision of the synaptic ops; potentials and loss stay fp32" + RECIPE,
        ),
        click.option(
            "--device",
            default="auto",
            show_default=True,
            help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@cli.command()
@_train_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
def train(output: str, **options) -> None:
    """ANN → conversion → DIET training, resuming finished or partial stages."""
    from dietsnn_deploy.services import train as service

    cfg = service.config(options)
    click.echo(service.recipe_line(cfg))
    click.echo(service.train_all(cfg, Path(output)))


@cli.command("train-ann")
@_train_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
def train_ann_cmd(output: str, **options) -> None:
    """Stage 1 only: train (or resume) the ANN."""
    from dietsnn_deploy.services import train as service

    cfg = service.config(options)
    click.echo(service.recipe_line(cfg))
    click.echo(service.train_ann(cfg, Path(output)))


@cli.command("convert")
@_train_options
@click.argument("ann_checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
def convert_cmd(ann_checkpoint: str, output: str, **options) -> None:
    """Stage 2 only: ANN → SNN with percentile thresholds."""
    from dietsnn_deploy.services import train as service

    click.echo(service.convert(service.config(options), Path(ann_checkpoint), Path(output)))


@cli.command("train-snn")
@_train_options
@click.argument("converted_checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
def train_snn_cmd(converted_checkpoint: str, output: str, **options) -> None:
    """Stage 3 only: DIET training (or an ablation of it) from a converted checkpoint."""
    from dietsnn_deploy.services import train as service

    cfg = service.config(options)
    click.echo(service.train_snn(cfg, Path(converted_checkpoint), Path(output)))


@cli.command()
@_train_options
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
def finetune(checkpoint: str, output: str, **options) -> None:
    """Hardware-aware fine-tuning: hard reset, quantized weights, leaks and thresholds."""
    from dietsnn_deploy.services import train as service

    click.echo(service.finetune(service.config(options), Path(checkpoint), Path(output)))


@cli.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--dataset", help="dataset (default: the checkpoint's)")
@click.option("--data-dir", default=None)
@click.option("--arch", help="architecture, for official DIET-SNN checkpoints")
@click.option("--timesteps", "-T", type=click.IntRange(1), help="override T")
@click.option("-n", "--limit", type=click.IntRange(1), help="first N test images")
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--device", default="cpu", show_default=True, help="where the model runs")
@click.option(
    "--energy",
    "energy_model",
    metavar="MODEL",
    help="also count the SNN's operations and price them with this energy model (paper-45nm, …)",
)
@graph_options
def evaluate(
    checkpoint,
    dataset,
    data_dir,
    arch,
    timesteps,
    limit,
    batch_size,
    as_json,
    device,
    energy_model,
    dt,
    mean,
    std,
) -> None:
    """Test accuracy and per-layer spike rates of a checkpoint (and, with --energy, its op
    counts and energy per image, counted on the float model)."""
    from dietsnn_deploy.services.train import evaluate_checkpoint, evaluation_text
    from hw_sim.energy_models import get_model

    report = evaluate_checkpoint(
        checkpoint,
        dataset=dataset,
        data_dir=data_dir,
        arch=arch,
        timesteps=timesteps,
        limit=limit,
        batch_size=batch_size,
        energy_model=None if energy_model is None else get_model(energy_model),
        progress=not as_json,
        device=device,
        graph={"dt": dt, "mean": mean, "std": std},
    )
    click.echo(json.dumps(report) if as_json else evaluation_text(report))
