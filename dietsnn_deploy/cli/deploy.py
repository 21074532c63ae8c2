"""Deployment commands: ``export`` to netx and ``simulate`` on Lava or the emulator."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dietsnn_deploy.cli.app import cli
from dietsnn_deploy.errors import DeployError


def is_netx(path: str) -> bool:
    """True for a netx (HDF5) file, False for anything else; DeployError if it is missing."""
    file = Path(path)
    if not file.is_file():
        raise DeployError(f"file not found: {file}")
    with open(file, "rb") as handle:
        return handle.read(8) == b"\x89HDF\r\n\x1a\n"


def load_any(path: str, data_dir, arch=None, dataset=None, calibration: int = 512):
    """A deployed network from a netx file, or quantized from a checkpoint on the fly."""
    from exporters.netx import read_netx

    if is_netx(path):
        return read_netx(path)
    model, info = load_spiking(path, data_dir, arch, dataset)
    return quantize_checkpoint(model, info, data_dir, calibration)


def load_spiking(path: str, data_dir, arch=None, dataset=None):
    """(model, info) of a checkpoint that holds an SNN (converted or trained)."""
    from dietsnn_deploy.checkpoints import load_checkpoint

    model, info = load_checkpoint(path, arch=arch, dataset=dataset, data_dir=data_dir)
    if info.stage == "ann":
        raise DeployError(f"{path} is an ANN checkpoint; convert and train it first")
    return model, info


def quantize_checkpoint(model, info, data_dir, calibration: int = 512):
    """The deployed network of a loaded SNN checkpoint, at the model's current T."""
    from dietsnn_deploy.pipeline import calibration_images
    from dietsnn_deploy.quantize import quantize

    images = calibration_images(info, data_dir, calibration)
    return quantize(model, images, mean=info.mean, std=info.std, dataset=info.dataset)


def quantization_table(net) -> str:
    """Per-layer quantization summary, flagging layers whose per-step input can exceed int16."""
    lines = [
        f"{'layer':<12}{'scale':>10}{'weight RMSE':>13}{'saturated':>11}{'vThMant':>9}"
        f"{'vDecay':>8}{'max |in|':>10}"
    ]
    for q in net.quantization:
        bound = "?" if q.input_bound is None else str(q.input_bound)
        lines.append(
            f"{q.name:<12}{q.scale:>10.2f}{q.weight_rmse:>13.2e}{100 * q.weight_saturated:>10.2f}%"
            f"{q.threshold:>9d}{q.v_decay:>8d}{bound:>10}{'  > int16' if q.exceeds_int16 else ''}"
        )
    flagged = [q.name for q in net.quantization if q.exceeds_int16]
    if flagged:
        lines.append(
            f"warning: {', '.join(flagged)}: one step's input can exceed ±2^15, Loihi's int16 a_in"
            " port (Lava's simulator and the emulator pass it intact)"
        )
    return "\n".join(lines)


@cli.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="default: <checkpoint>.net")
@click.option("--data-dir", default=None, help="dataset folder (calibration images)")
@click.option("--arch", help="architecture, for official DIET-SNN checkpoints")
@click.option("--dataset", help="dataset, for official DIET-SNN checkpoints")
@click.option("--calibration", default=512, show_default=True, type=click.IntRange(1))
def export(checkpoint, output, data_dir, arch, dataset, calibration) -> None:
    """Quantize a trained checkpoint to Loihi fixed point and write a netx HDF5 file."""
    from exporters.netx import write_netx

    net = load_any(checkpoint, data_dir, arch, dataset, calibration)
    output = Path(output or Path(checkpoint).with_suffix(".net"))
    write_netx(net, output)
    click.echo(quantization_table(net))
    kinds = " → ".join(layer.kind for layer in net.layers)
    click.echo(f"wrote {output}: {kinds}, T={net.timesteps}")


def _layer_names(net) -> list[str]:
    return [f"{i}:{layer.kind}" for i, layer in enumerate(net.layers)]


@cli.command()
@click.argument("network", type=click.Path(dir_okay=False))
@click.option("--dataset", help="dataset (default: the network's)")
@click.option("--data-dir", default=None)
@click.option("-n", "--limit", type=click.IntRange(1), help="first N test images (default all)")
@click.option(
    "--backend", type=click.Choice(["emulator", "lava"]), default="emulator", show_default=True
)
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def simulate(network, dataset, data_dir, limit, backend, batch_size, as_json) -> None:
    """Classify test images with the deployed network on Lava or on the emulator."""
    net = load_any(network, data_dir)
    report = run_simulation(net, dataset, data_dir, limit, backend, batch_size, not as_json)
    report["network"] = str(network)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(simulation_line(report))
    for name, count in report["spike_counts"].items():
        click.echo(f"  {name:>10}: {count / report['images']:.1f} spikes/image")


def simulation_line(report: dict) -> str:
    return (
        f"{report['backend']}: accuracy {100 * report['accuracy']:.2f}% on {report['images']} "
        f"{report['dataset']} test images, {1000 * report['seconds_per_image']:.2f} ms/image"
    )


def run_simulation(net, dataset, data_dir, limit, backend: str, batch_size: int, progress: bool):
    """Run test images through ``net`` on one backend; the report ``simulate --json`` prints."""
    import time

    dataset = dataset or net.dataset
    if net.dataset and dataset != net.dataset:
        raise DeployError(f"the network was trained on {net.dataset}, not {dataset}")
    images, labels = raw_test_images(net, dataset, data_dir, limit)
    start = time.perf_counter()
    if backend == "lava":
        from hw_sim.lava_runner import run_lava

        result = run_lava(net, images, progress=progress)
        predictions = result.predictions
        counts = [None if s is None else int(s.sum()) for s in result.record.spikes]
    else:
        from hw_sim.emulator import classify

        result = classify(net, images, batch_size=batch_size, progress=progress)
        predictions, counts = result.predictions, result.spike_counts
    seconds = time.perf_counter() - start
    names = _layer_names(net)
    return {
        "backend": backend,
        "dataset": dataset,
        "images": len(labels),
        "timesteps": net.timesteps,
        "accuracy": float((predictions == labels).double().mean()),
        "predictions": [int(p) for p in predictions],
        "spike_counts": {n: c for n, c in zip(names, counts, strict=True) if c is not None},
        "seconds_per_image": seconds / len(labels),
    }


def raw_test_images(net, dataset: str, data_dir, limit):
    """Test images as float pixels in [0, 1] (the host encoder normalises them itself)."""
    from dietsnn_deploy.data import make_loader

    channels = net.encoder.in_shape[0]
    loader = make_loader(
        dataset,
        "test",
        4096,
        data_dir=data_dir,
        limit=limit,
        normalization=((0.0,) * channels, (1.0,) * channels),
    )
    import torch

    batches = list(loader)
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
