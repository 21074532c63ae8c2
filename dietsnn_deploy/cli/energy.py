"""The ``energy`` command: op counts per layer and energy, ANN against SNN."""

from __future__ import annotations

import click

from dietsnn_deploy.cli.app import cli
from dietsnn_deploy.cli.options import graph_options, spike_input_options
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
        raise DeployError(
            f"--sweep-timesteps wants integers ≥ 1 separated by commas, got {text!r:.60}"
        )
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
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**31),
              help="seed of random input frames (Poisson encoding)")  # fmt: skip
@click.option("--saturate-a-in", is_flag=True, help="emulator: model the chip's int16 a_in port")
@click.option("--threads", type=click.IntRange(1), help="torch CPU threads")
@click.option("--device", default="cpu", show_default=True, help="where the emulator runs")
@click.option("--timesteps", "-T", type=click.IntRange(1),
              help="T of a NIR graph, or of a netx file of another tool")  # fmt: skip
@graph_options
@spike_input_options
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
    seed,
    saturate_a_in,
    threads,
    device,
    timesteps,
    dt,
    mean,
    std,
    spikes,
    labels,
    readout,
) -> None:
    """Op counts and energy per layer, ANN against SNN, from the spikes of test images.

    NETWORK is a netx file (deployed; run on --backend) or a checkpoint (quantized on the
    fly, or with --float counted on the float PyTorch model). A netx file of another tool
    takes spikes: rate-coded from --dataset's pixels or --spikes rasters, for -T steps."""
    from dietsnn_deploy.services.measure import (
        MeasureOptions,
        measure_file,
        report_text,
        write_report_files,
    )
    from dietsnn_deploy.services.networks import LoadOptions
    from dietsnn_deploy.services.outputs import check_outputs
    from dietsnn_deploy.services.train import config_threads
    from hw_sim.energy_models import get_model

    energy_model = get_model(model_name)
    steps = _timestep_list(sweep_timesteps)
    check_outputs([network, spikes, labels], [json_path, csv_path, plot_dir])
    config_threads(threads)
    load = LoadOptions(data_dir=data_dir, arch=arch, dataset=dataset, calibration=calibration,
                       timesteps=timesteps, dt=dt, mean=mean, std=std,
                       readout=readout)  # fmt: skip
    options = MeasureOptions(
        dataset=dataset,
        data_dir=data_dir,
        limit=limit,
        backend=backend,
        batch_size=batch_size,
        seed=seed,
        saturate_a_in=saturate_a_in,
        device=device,
        spikes=spikes,
        labels=labels,
    )
    run = measure_file(network, energy_model, load, options, on_float=on_float, sweep_steps=steps)
    click.echo(report_text(run, energy_model))
    files = write_report_files(
        run,
        energy_model,
        json_path=json_path,
        csv_path=csv_path,
        plot_dir=plot_dir,
        context={"input": str(network)},
    )
    for line in files:
        click.echo(line)
