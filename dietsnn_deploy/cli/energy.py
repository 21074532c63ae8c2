"""The ``energy`` command: op counts per layer and energy, ANN against SNN."""

from __future__ import annotations

import click

from dietsnn_deploy.cli.app import cli
from dietsnn_deploy.cli.deploy import is_netx, load_spiking, quantize_checkpoint, raw_test_images
from dietsnn_deploy.errors import DeployError


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
    if is_netx(network):
        if on_float or steps:
            flag = "--float" if on_float else "--sweep-timesteps"
            raise DeployError(f"{flag} needs a checkpoint (.pt), not a deployed .net file")
        from exporters.netx import read_netx

        net = read_netx(network)
        measured = measure_deployed(net, **options)
        title, neuron_params, sweep = deployed_title(net, backend), None, []
        notes = [
            "leak/threshold plot (Fig. 2b) needs the checkpoint (.pt): a .net file holds only "
            "the deployed integer thresholds and decays"
        ]
    else:
        model, info = load_spiking(network, data_dir, arch, dataset)
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
    energy_report(
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


def measure_deployed(net, *, dataset, data_dir, limit, backend, batch_size, progress=True):
    from hw_sim.measure import measure_deployed

    dataset = dataset or net.dataset
    if net.dataset and dataset != net.dataset:
        raise DeployError(f"the network was trained on {net.dataset}, not {dataset}")
    images, labels = raw_test_images(net, dataset, data_dir, limit)
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
        net = quantize_checkpoint(model, info, data_dir, calibration)
        return measure_deployed(net, **options)

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


def deployed_title(net, backend: str) -> str:
    return f"{net.arch} on {net.dataset}, {_deployed_on(backend)}, T={net.timesteps}"


def energy_report(
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
    from hw_sim.report import format_paper_convention, format_table

    report = energy(energy_model, measured.counts)
    click.echo(
        f"{title}: accuracy {100 * measured.accuracy:.2f}% on "
        f"{measured.counts.num_images} test images"
    )
    click.echo(format_table(measured.counts, report))
    click.echo(format_paper_convention(measured.counts))
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
