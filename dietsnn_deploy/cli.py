"""The ``dietsnn-deploy`` command line: train, evaluate, and (with the deploy tools) export,
simulate and measure. Bad input ends with one ``error:`` line and exit status 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Train DIET-SNNs and deploy them to Loihi fixed point."""


@cli.command()
@_train_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
def train(output: str, **options) -> None:
    """ANN → conversion → DIET training, resuming finished or partial stages."""
    from dietsnn_deploy.pipeline import run_all, stage_paths

    cfg = _config(options)
    info = run_all(cfg, Path(output))
    paths = stage_paths(Path(output))
    click.echo(_summary(info))
    click.echo(f"stage checkpoints: {paths['ann']}, {paths['converted']}, {paths['snn']}")


def _summary(info) -> str:
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
    click.echo(_summary(info))


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


def _is_netx(path: str) -> bool:
    """True for a netx (HDF5) file, False for anything else; DeployError if it is missing."""
    file = Path(path)
    if not file.is_file():
        raise DeployError(f"file not found: {file}")
    with open(file, "rb") as handle:
        return handle.read(8) == b"\x89HDF\r\n\x1a\n"


def _load_any(path: str, data_dir, arch=None, dataset=None, calibration: int = 512):
    """A deployed network from a netx file, or quantized from a checkpoint on the fly."""
    from exporters.netx import read_netx

    if _is_netx(path):
        return read_netx(path)
    model, info = _load_spiking(path, data_dir, arch, dataset)
    return _quantize_checkpoint(model, info, data_dir, calibration)


def _load_spiking(path: str, data_dir, arch=None, dataset=None):
    """(model, info) of a checkpoint that holds an SNN (converted or trained)."""
    from dietsnn_deploy.checkpoints import load_checkpoint

    model, info = load_checkpoint(path, arch=arch, dataset=dataset, data_dir=data_dir)
    if info.stage == "ann":
        raise DeployError(f"{path} is an ANN checkpoint; convert and train it first")
    return model, info


def _quantize_checkpoint(model, info, data_dir, calibration: int = 512):
    """The deployed network of a loaded SNN checkpoint, at the model's current T."""
    from dietsnn_deploy.pipeline import calibration_images
    from dietsnn_deploy.quantize import quantize

    images = calibration_images(info, data_dir, calibration)
    return quantize(model, images, mean=info.mean, std=info.std, dataset=info.dataset)


def _quantization_table(net) -> str:
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

    net = _load_any(checkpoint, data_dir, arch, dataset, calibration)
    output = Path(output or Path(checkpoint).with_suffix(".net"))
    write_netx(net, output)
    click.echo(_quantization_table(net))
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
    net = _load_any(network, data_dir)
    report = _simulate(net, dataset, data_dir, limit, backend, batch_size, not as_json)
    report["network"] = str(network)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(_simulation_line(report))
    for name, count in report["spike_counts"].items():
        click.echo(f"  {name:>10}: {count / report['images']:.1f} spikes/image")


def _simulation_line(report: dict) -> str:
    return (
        f"{report['backend']}: accuracy {100 * report['accuracy']:.2f}% on {report['images']} "
        f"{report['dataset']} test images, {1000 * report['seconds_per_image']:.2f} ms/image"
    )


def _simulate(net, dataset, data_dir, limit, backend: str, batch_size: int, progress: bool):
    """Run test images through ``net`` on one backend; the report ``simulate --json`` prints."""
    import time

    dataset = dataset or net.dataset
    if net.dataset and dataset != net.dataset:
        raise DeployError(f"the network was trained on {net.dataset}, not {dataset}")
    images, labels = _raw_test_images(net, dataset, data_dir, limit)
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


def _raw_test_images(net, dataset: str, data_dir, limit):
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


def _timestep_list(text: str | None) -> list[int]:
    """``"1,2,3,5"`` → [1, 2, 3, 5]; DeployError for anything else."""
    if text is None:
        return []
    try:
        steps = [int(item) for item in text.split(",")]
    except ValueError:
        steps = []
    if not steps or min(steps) < 1:
        raise DeployError(f"--sweep-timesteps wants integers ≥ 1 separated by commas, got {text!r}")
    return steps


@cli.command("energy")
@click.argument("network", type=click.Path(dir_okay=False))
@click.option("--dataset", help="dataset (default: the network's)")
@click.option("--data-dir", default=None)
@click.option("-n", "--limit", type=click.IntRange(1), help="first N test images (default all)")
@click.option(
    "--model",
    "model_name",
    default="paper-45nm",
    show_default=True,
    help="energy model: paper-45nm, horowitz-int8, horowitz-fp16, loihi, paper-45nm+memory",
)
@click.option(
    "--backend",
    type=click.Choice(["emulator", "lava"]),
    default="emulator",
    show_default=True,
    help="where the deployed network runs (same spikes, same counts)",
)
@click.option(
    "--float",
    "on_float",
    is_flag=True,
    help="count on a checkpoint's float PyTorch SNN (its own reset) instead of quantizing it",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="write JSON here")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="write CSV here")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False), help="write PNGs here")
@click.option(
    "--sweep-timesteps",
    metavar="T1,T2,…",
    help="checkpoints: also measure at these T and plot accuracy and energy against T",
)
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1))
@click.option("--arch", help="architecture, for official DIET-SNN checkpoints")
@click.option("--calibration", default=512, show_default=True, type=click.IntRange(1))
@click.option("--threads", type=click.IntRange(1), help="torch CPU threads")
def energy_cmd(
    network,
    dataset,
    data_dir,
    limit,
    model_name,
    backend,
    on_float,
    json_path,
    csv_path,
    plot_dir,
    sweep_timesteps,
    batch_size,
    arch,
    calibration,
    threads,
) -> None:
    """Op counts and energy per layer, ANN against SNN, from the spikes of test images.

    NETWORK is a .net file (deployed; run on --backend) or a checkpoint (quantized on the
    fly, or with --float counted on the float PyTorch model)."""
    from hw_sim.energy import get_model

    energy_model = get_model(model_name)
    steps = _timestep_list(sweep_timesteps)
    if dataset:
        from dietsnn_deploy.data import dataset_info

        dataset_info(dataset, data_dir)  # an unknown name fails before any work
    if threads:
        import torch

        torch.set_num_threads(threads)
    if on_float and backend == "lava":
        raise DeployError("--float counts the PyTorch model; --backend is for deployed networks")
    options = dict(
        dataset=dataset, data_dir=data_dir, limit=limit, backend=backend, batch_size=batch_size
    )
    if _is_netx(network):
        if on_float or steps:
            flag = "--float" if on_float else "--sweep-timesteps"
            raise DeployError(f"{flag} needs a checkpoint (.pt), not a deployed .net file")
        from exporters.netx import read_netx

        net = read_netx(network)
        measured = _measure_deployed(net, **options)
        title, neuron_params, sweep = _deployed_title(net, backend), None, []
        notes = [
            "leak/threshold plot (Fig. 2b) needs the checkpoint (.pt): a .net file holds only "
            "the deployed integer thresholds and decays"
        ]
    else:
        model, info = _load_spiking(network, data_dir, arch, dataset)
        if dataset and dataset != info.dataset:
            raise DeployError(f"{network} was trained on {info.dataset}, not {dataset}")
        measure_at = _checkpoint_measurer(model, info, on_float, calibration, options)
        measured = measure_at(model.timesteps)
        source = (
            f"float PyTorch SNN ({model.reset_mode} reset)" if on_float else _deployed_on(backend)
        )
        title = f"{info.arch} on {info.dataset}, {source}, T={model.timesteps}"
        sweep = _sweep(steps, measure_at, measured, model, energy_model)
        neuron_params, notes = _neuron_params(model, info)
    _energy_report(
        measured,
        energy_model,
        title,
        json_path,
        csv_path,
        plot_dir,
        context={"input": str(network)},
        neuron_params=neuron_params,
        sweep=sweep,
        notes=notes if plot_dir else [],
    )


def _measure_deployed(net, *, dataset, data_dir, limit, backend, batch_size, progress=True):
    from hw_sim.measure import measure_deployed

    dataset = dataset or net.dataset
    if net.dataset and dataset != net.dataset:
        raise DeployError(f"the network was trained on {net.dataset}, not {dataset}")
    images, labels = _raw_test_images(net, dataset, data_dir, limit)
    return measure_deployed(
        net, images, labels, backend=backend, batch_size=batch_size, progress=progress
    )


def _checkpoint_measurer(model, info, on_float: bool, calibration: int, options: dict):
    """``measure_at(T)``: the checkpoint at T steps, counted on the float model or quantized
    at that T and run on the chosen backend."""
    from dietsnn_deploy.data import make_loader
    from hw_sim.measure import measure_float

    data_dir = options["data_dir"]
    if on_float:
        loader = make_loader(
            info.dataset,
            "test",
            options["batch_size"],
            data_dir=data_dir,
            limit=options["limit"],
            normalization=(info.mean, info.std),
        )

        def measure_at(steps: int):
            model.timesteps = steps
            return measure_float(model, loader, desc=f"count ops, T={steps}")

        return measure_at

    def measure_at(steps: int):
        model.timesteps = steps
        net = _quantize_checkpoint(model, info, data_dir, calibration)
        return _measure_deployed(net, **options)

    return measure_at


def _sweep(steps: list[int], measure_at, measured, model, energy_model) -> list:
    """Sweep points over ``steps`` (``measured`` is the run at the model's own T, reused),
    leaving ``model`` at its own T afterwards."""
    if not steps:
        return []
    from hw_sim.measure import sweep_timesteps

    own = model.timesteps
    try:
        return sweep_timesteps(
            steps, lambda t: measured if t == own else measure_at(t), energy_model
        )
    finally:
        model.timesteps = own


def _neuron_params(model, info) -> tuple:
    """(leak/threshold series for Fig. 2b or None, notes explaining a missing plot)."""
    from hw_sim.measure import neuron_parameters

    try:
        return neuron_parameters(model, info), []
    except DeployError as exc:
        return None, [f"leak/threshold plot (Fig. 2b) skipped: {exc}"]


def _deployed_on(backend: str) -> str:
    return "deployed (Loihi fixed point) on " + ("Lava" if backend == "lava" else "the emulator")


def _deployed_title(net, backend: str) -> str:
    return f"{net.arch} on {net.dataset}, {_deployed_on(backend)}, T={net.timesteps}"


def _energy_report(
    measured,
    energy_model,
    title: str,
    json_path,
    csv_path,
    plot_dir,
    *,
    context: dict,
    neuron_params=None,
    sweep=(),
    notes=(),
) -> None:
    """Print the per-layer table, the model's constants and the counting conventions; write
    the files asked for and say where."""
    from hw_sim.energy import energy
    from hw_sim.measure import format_sweep, sweep_record, write_outputs
    from hw_sim.report import format_table

    report = energy(energy_model, measured.counts)
    click.echo(
        f"{title}: accuracy {100 * measured.accuracy:.2f}% on "
        f"{measured.counts.num_images} test images"
    )
    click.echo(format_table(measured.counts, report))
    click.echo(energy_model.describe())
    click.echo("counting conventions:")
    for note in measured.counts.notes:
        click.echo(f"  - {note}")
    if sweep:
        click.echo(format_sweep(sweep, report.model))
    context = {
        **context,
        "title": title,
        "counted_on": measured.counted_on,
        "accuracy": measured.accuracy,
        "sweep": [sweep_record(p) for p in sweep],
    }
    written = write_outputs(
        measured.counts,
        report,
        json_path=json_path,
        csv_path=csv_path,
        plot_dir=plot_dir,
        context=context,
        neuron_params=neuron_params,
        sweep=sweep,
    )
    for what, path in written.items():
        click.echo(f"wrote {what}: {path}")
    for note in notes:
        click.echo(note)


@cli.command()
@click.option("--workdir", default="runs/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--lava-images", default=5, show_default=True, type=click.IntRange(1))
def demo(workdir: str, lava_images: int) -> None:
    """The main job on the embedded digits data: train a DIET-SNN end to end, fine-tune it
    for the hardware, export it to netx, classify on Lava and on the emulator, and report
    its op counts and energy (files under WORKDIR/energy)."""
    from dietsnn_deploy.pipeline import TrainConfig, run_all, run_finetune, stage_paths
    from exporters.netx import write_netx

    work = Path(workdir)
    cfg = TrainConfig(
        dataset="digits",
        arch="vgg-tiny",
        timesteps=5,
        ann_epochs=30,
        ann_lr=3e-3,
        snn_epochs=8,
        batch_size=32,
        snn_batch_size=32,
    )
    checkpoint = work / "digits.pt"
    info = run_all(cfg, checkpoint)
    click.echo(_summary(info))
    cfg.snn_epochs = 3
    _, tuned = run_finetune(cfg, stage_paths(checkpoint)["snn"], work / "digits.hw.pt")
    click.echo(f"hardware-aware fine-tuning (hard reset, quantized): {100 * tuned.accuracy:.2f}%")
    net = _load_any(str(work / "digits.hw.pt"), None)
    write_netx(net, work / "digits.net")
    click.echo(_quantization_table(net))
    click.echo(f"exported {work / 'digits.net'}")
    emulated = _simulate(net, None, None, None, "emulator", 256, True)
    click.echo(_simulation_line(emulated))
    on_lava = _simulate(net, None, None, lava_images, "lava", 256, True)
    click.echo(_simulation_line(on_lava))
    same = on_lava["predictions"] == emulated["predictions"][:lava_images]
    click.echo(f"Lava and emulator predictions on those {lava_images} images agree: {same}")
    _demo_energy(work, net)


def _demo_energy(work: Path, net) -> None:
    """The demo's energy report: the deployed network on the emulator over the whole test set
    (table, JSON, CSV, plots under ``work/energy``), Fig. 2b from the fine-tuned checkpoint,
    and the totals of the float soft-reset DIET-SNN for comparison."""
    from dietsnn_deploy.checkpoints import load_checkpoint
    from dietsnn_deploy.data import make_loader
    from hw_sim.energy import DEFAULT_MODEL, energy, get_model
    from hw_sim.measure import measure_float, neuron_parameters

    energy_model = get_model(DEFAULT_MODEL)
    out = work / "energy"
    tuned, tuned_info = load_checkpoint(work / "digits.hw.pt")
    click.echo("")
    deployed = _measure_deployed(
        net, dataset=None, data_dir=None, limit=None, backend="emulator", batch_size=256
    )
    _energy_report(
        deployed,
        energy_model,
        _deployed_title(net, "emulator"),
        out / "energy.json",
        out / "energy.csv",
        out,
        context={"input": str(work / "digits.net")},
        neuron_params=neuron_parameters(tuned, tuned_info),
    )
    soft, soft_info = load_checkpoint(work / "digits.pt")
    loader = make_loader("digits", "test", 256, normalization=(soft_info.mean, soft_info.std))
    floated = measure_float(soft, loader)
    rows = []
    for label, measured in (("float DIET-SNN (digits.pt)", floated), ("deployed", deployed)):
        total, report = measured.counts.total(), energy(energy_model, measured.counts)
        rows.append(
            f"  {label:<27}{measured.counted_on:>19}{100 * measured.accuracy:>9.2f}%"
            f"{total.spike_rate:>11.4f}{total.synaptic_events:>12,.0f}{report.ratio:>9.2f}×"
        )
    click.echo(
        f"  {'network':<27}{'spikes from':>19}{'accuracy':>10}{'spike rate':>11}"
        f"{'ACs/image':>12}{'ANN/SNN':>10}"
    )
    click.echo("\n".join(rows))
    click.echo(f"energy report of the digits model: {out}/")


def main() -> None:
    """Entry point: run the CLI, turning bad input into one line and a non-zero exit."""
    try:
        cli.main(standalone_mode=False)
    except DeployError as exc:
        _fail(str(exc), 2)
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare group: show its help
        click.echo(exc.ctx.get_help() if exc.ctx else "")
        sys.exit(0)
    except click.ClickException as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if getattr(exc, "ctx", None) else ""
        _fail(exc.format_message() + hint, exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except OSError as exc:  # unreadable input, unwritable output, disk full
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}", 2)


def _fail(message: str, status: int) -> None:
    """One ``error:`` line on stderr (newlines folded), then exit with ``status``."""
    click.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(status)
