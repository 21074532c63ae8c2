"""The main job on the embedded digits data, end to end: train, fine-tune for the hardware,
export, classify on the emulator and on Lava, and report op counts and energy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from dietsnn_deploy.data import make_loader
from dietsnn_deploy.services.deploy import quantization_table
from dietsnn_deploy.services.measure import (
    EnergyRun,
    MeasureOptions,
    deployed_title,
    measure_float,
    measure_network,
    neuron_parameters,
    report_text,
    write_report_files,
)
from dietsnn_deploy.services.networks import LoadOptions, deploy_model, load_network
from dietsnn_deploy.services.simulate import simulate, simulation_line
from dietsnn_deploy.services.train import summary
from dietsnn_deploy.spine.network import DeployedNetwork
from dietsnn_deploy.spine.settings import RunSettings
from dietsnn_deploy.training.checkpoints import load_checkpoint
from dietsnn_deploy.training.config import TrainConfig
from dietsnn_deploy.training.pipeline import run_all, run_finetune, stage_paths
from exporters.netx import write_netx
from hw_sim.energy import energy
from hw_sim.energy_models import DEFAULT_MODEL, get_model


def run_demo(work: Path, lava_images: int, say: Callable[[str], None]) -> None:
    """Train (resuming finished stages), fine-tune, export ``work/digits.net``, classify, and
    end with the energy report; ``say`` prints each result as it comes."""
    torch.set_num_threads(1)  # the demo's layers are too small to gain from intra-op threads
    cfg = TrainConfig(dataset="digits")  # the digits recipe (dietsnn_deploy/training/recipes.py)
    checkpoint = work / "digits.pt"
    say(cfg.recipe.describe("digits"))
    say(summary(run_all(cfg, checkpoint)))
    _, tuned = run_finetune(cfg, stage_paths(checkpoint)["snn"], work / "digits.hw.pt")
    say(f"hardware-aware fine-tuning (hard reset, quantized): {100 * tuned.accuracy:.2f}%")
    net = load_network(work / "digits.hw.pt")
    write_netx(net, work / "digits.net")
    say(quantization_table(net))
    say(f"exported {work / 'digits.net'}")
    emulated = simulate(net, backend="emulator")
    say(simulation_line(emulated))
    on_lava = simulate(net, limit=lava_images, backend="lava")
    say(simulation_line(on_lava))
    same = on_lava["predictions"] == emulated["predictions"][:lava_images]
    say(f"Lava and emulator predictions on those {lava_images} images agree: {same}")
    demo_energy(work, net, say)


def demo_energy(work: Path, net: DeployedNetwork, say: Callable[[str], None]) -> None:
    """The demo's energy report: the deployed network on the emulator over the whole test set
    (table, JSON, CSV, plots under ``work/energy``), Fig. 2b from the fine-tuned checkpoint,
    and the totals of the float soft-reset DIET-SNN for comparison."""
    energy_model = get_model(DEFAULT_MODEL)
    out = work / "energy"
    tuned, tuned_info = load_checkpoint(work / "digits.hw.pt")
    say("")
    deployed = measure_network(net, MeasureOptions())
    run = EnergyRun(
        deployed,
        deployed_title(net, "emulator"),
        neuron_parameters(tuned, tuned_info, net),
    )
    say(report_text(run, energy_model))
    files = write_report_files(
        run,
        energy_model,
        json_path=out / "energy.json",
        csv_path=out / "energy.csv",
        plot_dir=out,
        context={"input": str(work / "digits.net")},
    )
    for line in files:
        say(line)
    soft, soft_info = load_checkpoint(work / "digits.pt")
    loader = make_loader("digits", "test", 256, normalization=(soft_info.mean, soft_info.std))
    soft_net = deploy_model(soft, soft_info, LoadOptions())
    floated = measure_float(soft, soft_net, loader, RunSettings(soft_info.timesteps))
    say(
        f"  {'network':<27}{'spikes from':>19}{'accuracy':>10}{'spike rate':>11}"
        f"{'ACs/image':>12}{'ANN/SNN':>10}"
    )
    for label, measured in (("float DIET-SNN (digits.pt)", floated), ("deployed", deployed)):
        total, report = measured.counts.total(), energy(energy_model, measured.counts)
        say(
            f"  {label:<27}{measured.counted_on:>19}{100 * measured.accuracy:>9.2f}%"
            f"{total.spike_rate:>11.4f}{total.synaptic_events:>12,.0f}{report.ratio:>9.2f}×"
        )
    say(f"energy report of the digits model: {out}/")
