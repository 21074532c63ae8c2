"""Deployment commands: ``export`` to netx and ``simulate`` on Lava or the emulator."""

from __future__ import annotations

import json

import click

from dietsnn_deploy.cli.app import cli
from dietsnn_deploy.cli.options import graph_options, spike_input_options


@cli.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="default: <checkpoint>.net (.nir with --format nir)")  # fmt: skip
@click.option("--format", "file_format", type=click.Choice(["netx", "nir"]),
              help="netx (Loihi fixed point, the default) or nir (the float graph; default for an "
              "output ending in .nir)")  # fmt: skip
@click.option("--allow-soft-reset", is_flag=True,
              help="nir: write a soft-reset model anyway (NIR runs it with a hard reset)")  # fmt: skip
@click.option("--timesteps", "-T", type=click.IntRange(1),
              help="T of a NIR graph that names none, or of a netx file of another tool (a "
              "checkpoint's own T by default)")  # fmt: skip
@graph_options
@click.option("--data-dir", default=None, help="dataset folder (calibration images)")
@click.option("--arch", help="architecture, for official DIET-SNN checkpoints")
@click.option("--dataset", help="dataset, for official DIET-SNN checkpoints")
@click.option("--calibration", default=512, show_default=True, type=click.IntRange(1))
@click.option(
    "--fit-a-in",
    type=click.Choice(["worst", "measured"]),
    help="choose scales so one step's input fits Loihi's int16 a_in port: at worst case, or "
    "as measured on the calibration images",
)
def export(checkpoint, output, file_format, allow_soft_reset, timesteps, dt, mean, std, data_dir,
           arch, dataset, calibration, fit_a_in) -> None:  # fmt: skip
    """Quantize a trained checkpoint (or a NIR graph) to Loihi fixed point and write a netx
    HDF5 file, or write a checkpoint's float network as a NIR graph (--format nir)."""
    from dietsnn_deploy.services import deploy
    from dietsnn_deploy.services.networks import LoadOptions

    options = LoadOptions(data_dir=data_dir, arch=arch, dataset=dataset, calibration=calibration,
                          fit_a_in=fit_a_in, timesteps=timesteps, dt=dt, mean=mean,
                          std=std)  # fmt: skip
    file_format = file_format or deploy.format_of(output)
    output = output or deploy.default_output(checkpoint, file_format)
    if file_format == "nir":
        graph, warning = deploy.export_nir(checkpoint, output, options,
                                           allow_soft_reset=allow_soft_reset)  # fmt: skip
        if warning:
            click.echo(warning, err=True)
        click.echo(deploy.nir_summary(graph, output))
        return
    net = deploy.export(checkpoint, output, options)
    click.echo(deploy.quantization_table(net))
    click.echo(deploy.export_summary(net, output))


@cli.command()
@click.argument("network", type=click.Path(dir_okay=False))
@click.option("--dataset", help="dataset (default: the network's)")
@click.option("--data-dir", default=None)
@click.option("-n", "--limit", type=click.IntRange(1), help="first N test images (default all)")
@click.option(
    "--backend", type=click.Choice(["emulator", "lava"]), default="emulator", show_default=True
)
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**31),
              help="seed of random input frames (Poisson encoding), drawn image by image")  # fmt: skip
@click.option(
    "--saturate-a-in",
    is_flag=True,
    help="emulator: clip each step's synaptic input to the chip's int16 a_in port, and count it",
)
@click.option("--device", default="cpu", show_default=True, help="where the emulator runs")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--timesteps", "-T", type=click.IntRange(1),
              help="T of a NIR graph, or of a netx file of another tool")  # fmt: skip
@graph_options
@spike_input_options
def simulate(network, dataset, data_dir, limit, backend, batch_size, seed, saturate_a_in, device,
             as_json, timesteps, dt, mean, std, spikes, labels, readout) -> None:  # fmt: skip
    """Classify test images (or spike rasters) with the deployed network on Lava or on the
    emulator. A netx file of another tool takes spikes: rate-coded from --dataset's pixels
    (under --seed) or --spikes rasters, for -T steps."""
    from dietsnn_deploy.services.networks import LoadOptions, load_network, network_format
    from dietsnn_deploy.services.simulate import simulate as run_simulation
    from dietsnn_deploy.services.simulate import simulation_text

    load = LoadOptions(data_dir=data_dir, dataset=dataset, timesteps=timesteps, dt=dt, mean=mean,
                       std=std, readout=readout)  # fmt: skip
    net = load_network(network, load)
    file = network if network_format(network).name == "netx" else None
    report = run_simulation(
        net,
        dataset=dataset,
        data_dir=data_dir,
        limit=limit,
        backend=backend,
        batch_size=batch_size,
        progress=not as_json,
        seed=seed,
        saturate_a_in=saturate_a_in,
        device=device,
        spikes=spikes,
        labels=labels,
        file=file,
    )
    report["network"] = str(network)
    click.echo(json.dumps(report) if as_json else simulation_text(report))
