"""Training runs and checkpoint evaluation, as the train commands ask for them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from dietsnn_deploy.data import make_loader
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.services.networks import LoadOptions, deploy_model, load_model
from dietsnn_deploy.services.outputs import check_outputs
from dietsnn_deploy.spine.settings import RunSettings, check_timesteps, resolve_device
from dietsnn_deploy.training import pipeline
from dietsnn_deploy.training.checkpoints import ModelInfo
from dietsnn_deploy.training.config import DEFAULT_DATASET, RECIPE_OPTIONS, TrainConfig
from dietsnn_deploy.training.distributed import join
from dietsnn_deploy.training.loop import evaluate
from dietsnn_deploy.training.pipeline import stage_paths


def config_threads(threads: int | None) -> None:
    """Set torch's CPU threads (None: leave torch's default)."""
    if threads:
        torch.set_num_threads(threads)


def config(options: dict) -> TrainConfig:
    """The :class:`TrainConfig` of a command's options (``threads`` sets torch's CPU threads);
    under torchrun this process joins the group here."""
    options = dict(options)
    threads = options.pop("threads", None)
    cfg = TrainConfig(**options)
    config_threads(threads)
    ranks = join(resolve_device(cfg.device))
    if not ranks.main:  # rank 0 alone reports (and writes, draws progress bars)
        cfg.progress = False
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (for the life of this rank)
    return cfg


def summary(info: ModelInfo) -> str:
    def pct(value):
        return "n/a" if value is None else f"{100 * value:.2f}%"

    return (
        f"{info.arch} on {info.dataset}, T={info.timesteps}: ANN {pct(info.ann_accuracy)}, "
        f"converted {pct(info.converted_accuracy)}, DIET-SNN {pct(info.accuracy)}"
    )


def recipe_line(cfg: TrainConfig) -> str:
    """The recipe a new run starts from, with the options given explicitly (what ``train``
    prints first)."""
    given = {name: getattr(cfg, name) for name in RECIPE_OPTIONS if getattr(cfg, name) is not None}
    return cfg.recipe.describe(cfg.dataset or DEFAULT_DATASET, given)


def train_all(cfg: TrainConfig, output: Path) -> str:
    """All three stages into ``output`` (and its stage checkpoints); the summary lines."""
    info = pipeline.run_all(cfg, output)
    paths = stage_paths(output)
    return (
        f"{summary(info)}\nstage checkpoints: {paths['ann']}, {paths['converted']}, {paths['snn']}"
    )


def train_ann(cfg: TrainConfig, output: Path) -> str:
    _, info = pipeline.run_ann(cfg, output)
    return f"ANN accuracy {100 * info.ann_accuracy:.2f}% -> {output}"


def convert(cfg: TrainConfig, source: Path, output: Path) -> str:
    check_outputs([source], [output])
    _, info = pipeline.run_convert(cfg, source, output)
    thresholds = ", ".join(f"{v:.3f}" for v in info.initial_thresholds)
    return f"converted accuracy {100 * info.converted_accuracy:.2f}% (thresholds {thresholds})"


def train_snn(cfg: TrainConfig, source: Path, output: Path) -> str:
    check_outputs([source], [output])
    _, info = pipeline.run_snn(cfg, source, output)
    return summary(info)


def finetune(cfg: TrainConfig, source: Path, output: Path) -> str:
    check_outputs([source], [output])
    _, info = pipeline.run_finetune(cfg, source, output)
    return f"hardware-aware {info.arch} on {info.dataset}: accuracy {100 * info.accuracy:.2f}%"


def evaluate_checkpoint(
    path: str | Path,
    *,
    dataset: str | None = None,
    data_dir: str | None = None,
    arch: str | None = None,
    timesteps: int | None = None,
    limit: int | None = None,
    batch_size: int = 256,
    energy_model=None,
    progress: bool = True,
    device: str = "cpu",
    graph: dict | None = None,
) -> dict:
    """Accuracy and per-layer spike rates of a checkpoint on its test set; with an
    ``energy_model`` also its op counts and energy per image (counted on the float model):
    the report ``evaluate --json`` prints. ``path`` may be a NIR graph (``graph``: its dt,
    mean and std options, :class:`LoadOptions`)."""
    from hw_sim.energy import energy
    from hw_sim.report import report_dict

    load = LoadOptions(data_dir=data_dir, arch=arch, dataset=dataset, timesteps=timesteps,
                       **(graph or {}))  # fmt: skip
    model, info = load_model(path, load)
    if dataset and dataset != info.dataset:
        raise DeployError(f"{path} was trained on {info.dataset}, not {dataset}")
    steps = info.timesteps if timesteps is None else check_timesteps(timesteps, "-T")
    loader = make_loader(
        info.dataset,
        "test",
        batch_size,
        data_dir=data_dir,
        limit=limit,
        normalization=(info.mean, info.std),
    )
    report = {
        "checkpoint": str(path),
        "arch": info.arch,
        "dataset": info.dataset,
        "stage": info.stage,
        "timesteps": steps if model.spiking else None,
        "images": len(loader.dataset),
    }
    if energy_model is not None:  # one pass gives accuracy, spike rates and op counts
        from dietsnn_deploy.services.measure import measure_float

        net = deploy_model(model, info, LoadOptions(data_dir=data_dir, timesteps=steps))
        measured = measure_float(
            model,
            net,
            loader,
            RunSettings(steps, resolve_device(device)),
            progress=progress,
            desc="evaluate",
        )
        report.update(accuracy=measured.accuracy, spike_rates=measured.spike_rates)
        report["energy"] = report_dict(measured.counts, energy(energy_model, measured.counts))
        return report
    settings = RunSettings(steps, resolve_device(device))
    result = evaluate(model.to(settings.device), loader, settings, progress=progress)
    report.update(accuracy=result.accuracy, spike_rates=result.spike_rates)
    return report


def evaluation_text(report: dict) -> str:
    """The accuracy line, spike rates per layer, and the op and energy totals if counted."""
    mode = "ANN" if report["timesteps"] is None else f"SNN, T={report['timesteps']}"
    lines = [
        f"{report['arch']} on {report['dataset']} ({mode}): accuracy "
        f"{100 * report['accuracy']:.2f}%"
    ]
    lines += [
        f"  layer {key:>6}: {rate:.3f} spikes/neuron" for key, rate in report["spike_rates"].items()
    ]
    if "energy" in report:
        total = report["energy"]["total"]
        ratio = "—" if total["ratio"] is None else f"{total['ratio']:.2f}×"
        host = []
        if total["host_macs"] or not total["host_acs"]:
            host.append(f"{total['host_macs']:,.0f} host MACs (first layer, once per image)")
        if total["host_acs"]:
            host.append(f"{total['host_acs']:,.0f} host ACs (first layer, binary input frames)")
        lines += [
            f"  ops per image: ANN {total['ann_macs']:,.0f} MACs; SNN {total['snn_acs']:,.0f} ACs"
            f" + {' + '.join(host)}",
            f"  energy per image ({report['energy']['model']}): ANN "
            f"{total['energy_ann_pj'] / 1e6:.4f} µJ, SNN {total['energy_snn_pj'] / 1e6:.4f} µJ,"
            f" E_ANN/E_SNN {ratio}",
        ]
    return "\n".join(lines)
