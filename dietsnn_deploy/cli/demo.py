"""The ``demo`` command: the main job on the embedded digits data."""

from __future__ import annotations

from pathlib import Path

import click

from dietsnn_deploy.cli.app import cli
from dietsnn_deploy.cli.deploy import (
    load_any,
    quantization_table,
    run_simulation,
    simulation_line,
)
from dietsnn_deploy.cli.energy import deployed_title, energy_report, measure_deployed
from dietsnn_deploy.cli.train import summary


@cli.command()
@click.option("--workdir", default="runs/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--lava-images", default=5, show_default=True, type=click.IntRange(1))
def demo(workdir: str, lava_images: int) -> None:
    """The main job on the embedded digits data: train a DIET-SNN end to end, fine-tune it
    for the hardware, export it to netx, classify on Lava and on the emulator, and report
    its op counts and energy (files under WORKDIR/energy)."""
    import torch

    from dietsnn_deploy.pipeline import TrainConfig, run_all, run_finetune, stage_paths
    from exporters.netx import write_netx

    torch.set_num_threads(1)  # the demo's layers are too small to gain from intra-op threads
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
    click.echo(summary(info))
    cfg.snn_epochs = 3
    _, tuned = run_finetune(cfg, stage_paths(checkpoint)["snn"], work / "digits.hw.pt")
    click.echo(f"hardware-aware fine-tuning (hard reset, quantized): {100 * tuned.accuracy:.2f}%")
    net = load_any(str(work / "digits.hw.pt"), None)
    write_netx(net, work / "digits.net")
    click.echo(quantization_table(net))
    click.echo(f"exported {work / 'digits.net'}")
    emulated = run_simulation(net, None, None, None, "emulator", 256, True)
    click.echo(simulation_line(emulated))
    on_lava = run_simulation(net, None, None, lava_images, "lava", 256, True)
    click.echo(simulation_line(on_lava))
    same = on_lava["predictions"] == emulated["predictions"][:lava_images]
    click.echo(f"Lava and emulator predictions on those {lava_images} images agree: {same}")
    demo_energy(work, net)


def demo_energy(work: Path, net) -> None:
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
    deployed = measure_deployed(
        net, dataset=None, data_dir=None, limit=None, backend="emulator", batch_size=256
    )
    energy_report(
        deployed,
        energy_model,
        deployed_title(net, "emulator"),
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
