"""The training pipeline as resumable stages, each ending in a checkpoint.

``train`` = ANN → conversion → DIET. Every stage writes its checkpoint after every epoch, so a
rerun with the same output path skips finished stages and continues an unfinished one from its
last completed epoch (the cosine schedule restarts over the epochs that remain).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from dietsnn_deploy.checkpoints import ModelInfo, load_checkpoint, save_checkpoint
from dietsnn_deploy.data import dataset_info, make_loader
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.models import DietNet, build_model
from dietsnn_deploy.training import convert, evaluate, train_ann, train_snn


@dataclass
class TrainConfig:
    """Options of the three stages (defaults follow the paper and the official code)."""

    dataset: str = "digits"
    arch: str = "vgg-tiny"
    data_dir: str | None = None
    timesteps: int = 5
    ann_epochs: int = 20
    snn_epochs: int = 5
    batch_size: int = 128
    snn_batch_size: int = 64
    ann_lr: float = 1e-3
    snn_lr: float = 1e-4
    neuron_lr: float | None = None  # thresholds and leaks; None: snn_lr
    weight_decay: float = 5e-4
    dropout: float = 0.2
    percentile: float = 99.7
    threshold_scale: float = 1.0
    calibration_images: int = 512
    encoding: str = "direct"
    neuron: str = "lif"  # "if" keeps every leak at 1
    train_threshold: bool = True
    train_leak: bool = True
    train_limit: int | None = None
    test_limit: int | None = None
    seed: int = 0
    precision: str = "fp32"
    progress: bool = True

    def __post_init__(self) -> None:
        """Refuse a learning rate that can't train (NaN, infinite, ≤ 0) before any work."""
        rates = {"ann_lr": self.ann_lr, "snn_lr": self.snn_lr, "neuron_lr": self.neuron_lr}
        for name, rate in rates.items():
            if rate is not None and not (math.isfinite(rate) and rate > 0):
                option = "--" + name.replace("_", "-")
                raise DeployError(f"{option} must be a finite number > 0, got {rate}")


def stage_paths(out: Path) -> dict[str, Path]:
    """Where each stage's checkpoint goes: ``<stem>.ann.pt``, ``<stem>.converted.pt``, out."""
    return {
        "ann": out.with_name(f"{out.stem}.ann{out.suffix}"),
        "converted": out.with_name(f"{out.stem}.converted{out.suffix}"),
        "snn": out,
    }


def _loaders(cfg: TrainConfig, batch_size: int, normalization=None):
    """Shuffled, augmented train batches and the test set (``normalization`` = (mean, std)
    overrides the dataset's, for checkpoints that were trained with another)."""
    train = make_loader(
        cfg.dataset,
        "train",
        batch_size,
        data_dir=cfg.data_dir,
        limit=cfg.train_limit,
        seed=cfg.seed,
        normalization=normalization,
    )
    test = make_loader(
        cfg.dataset,
        "test",
        256,
        data_dir=cfg.data_dir,
        limit=cfg.test_limit,
        normalization=normalization,
    )
    return train, test


def _completed(path: Path, stage: str) -> tuple[DietNet, ModelInfo] | None:
    if not path.exists():
        return None
    model, info = load_checkpoint(path)
    return (model, info) if info.stage == stage else None


def _start_stage(
    out: Path, stage: str, source: Path, needs: tuple[str, ...], command: str
) -> tuple[DietNet, ModelInfo, bool]:
    """Resume ``stage`` from ``out`` if it holds that stage, else start from ``source``,
    whose stage must be one of ``needs``. Returns (model, info, resumed)."""
    if out.exists():
        model, info = load_checkpoint(out)
        if info.stage == stage:
            return model, info, True
    model, info = load_checkpoint(source)
    if info.stage not in needs:
        raise DeployError(
            f"{source}: {command} needs a {' or '.join(needs)} checkpoint, not '{info.stage}'"
        )
    return model, info, False


def _saver(model: DietNet, info: ModelInfo, out: Path):
    """``on_epoch`` callback: record the epoch and write the checkpoint."""

    def save(entry: dict) -> None:
        info.history.append(entry)
        info.accuracy = entry["test_accuracy"]
        if entry["stage"] == "ann":
            info.ann_accuracy = info.accuracy
        save_checkpoint(model, info, out)

    return save


def run_ann(cfg: TrainConfig, out: Path) -> tuple[DietNet, ModelInfo]:
    """Stage 1, resuming from ``out`` if it holds a partial ANN run."""
    torch.manual_seed(cfg.seed)
    data = dataset_info(cfg.dataset, cfg.data_dir)
    done = _completed(out, "ann")
    if done is not None:
        model, info = done
        if info.arch != cfg.arch or info.dataset != cfg.dataset:
            raise DeployError(f"{out} holds {info.arch} on {info.dataset}; use another -o path")
    else:
        model = build_model(cfg.arch, data.in_shape, data.num_classes, cfg.dropout)
        info = ModelInfo(
            arch=cfg.arch,
            dataset=cfg.dataset,
            in_shape=data.in_shape,
            num_classes=data.num_classes,
            mean=data.mean,
            std=data.std,
            stage="ann",
            timesteps=cfg.timesteps,
            dropout=cfg.dropout,
        )
    if len(info.history) >= cfg.ann_epochs:
        if done is None:  # ann_epochs 0 and nothing on disk: no ANN checkpoint would exist
            raise DeployError(f"{out}: no ANN checkpoint to resume and ann_epochs is 0")
        return model, info
    train, test = _loaders(cfg, cfg.batch_size)
    train_ann(
        model,
        train,
        test,
        epochs=cfg.ann_epochs,
        lr=cfg.ann_lr,
        weight_decay=cfg.weight_decay,
        progress=cfg.progress,
        start_epoch=len(info.history),
        on_epoch=_saver(model, info, out),
        precision=cfg.precision,
    )
    return model, info


def run_convert(cfg: TrainConfig, ann_path: Path, out: Path) -> tuple[DietNet, ModelInfo]:
    """Stage 2 from a finished ANN checkpoint."""
    done = _completed(out, "converted")
    if done is not None:
        return done
    model, info = load_checkpoint(ann_path)
    if info.stage != "ann":
        raise DeployError(
            f"{ann_path}: convert needs an ANN checkpoint, this one is '{info.stage}'"
        )
    images = calibration_images(info, cfg.data_dir, cfg.calibration_images)
    model.encoding = cfg.encoding  # thresholds are balanced on the input the SNN will see
    thresholds = convert(
        model,
        images,
        timesteps=cfg.timesteps,
        percentile=cfg.percentile,
        scale=cfg.threshold_scale,
        progress=cfg.progress,
    )
    model.timesteps = cfg.timesteps
    info.stage, info.timesteps, info.encoding = "converted", cfg.timesteps, cfg.encoding
    info.initial_thresholds, info.initial_leaks = thresholds, model.leaks()
    _, test = _loaders(cfg, cfg.snn_batch_size)
    info.converted_accuracy = info.accuracy = evaluate(
        model, test, progress=cfg.progress, desc="converted eval"
    ).accuracy
    save_checkpoint(model, info, out)
    return model, info


def run_snn(cfg: TrainConfig, converted_path: Path, out: Path) -> tuple[DietNet, ModelInfo]:
    """Stage 3 (DIET, or weights only / IF as the ablation flags say), resumable."""
    torch.manual_seed(cfg.seed)
    model, info, resumed = _start_stage(out, "snn", converted_path, ("converted",), "train-snn")
    if not resumed:
        info.stage = "snn"
        info.history = [h for h in info.history if h["stage"] == "ann"]
    model.encoding = info.encoding = cfg.encoding
    if cfg.neuron == "if":
        model.set_neuron_params(leaks=[1.0] * len(model.neuron_keys))
    done_epochs = sum(1 for h in info.history if h["stage"] != "ann")
    if done_epochs >= cfg.snn_epochs:
        if not resumed:  # snn_epochs 0: the converted SNN is the result
            save_checkpoint(model, info, out)
        return model, info
    train, test = _loaders(cfg, cfg.snn_batch_size)
    train_snn(
        model,
        train,
        test,
        epochs=cfg.snn_epochs,
        lr=cfg.snn_lr,
        neuron_lr=cfg.neuron_lr,
        train_threshold=cfg.train_threshold,
        train_leak=cfg.train_leak and cfg.neuron == "lif",
        progress=cfg.progress,
        start_epoch=done_epochs,
        on_epoch=_saver(model, info, out),
        precision=cfg.precision,
    )
    return model, info


def run_all(cfg: TrainConfig, out: Path) -> ModelInfo:
    """ANN → conversion → DIET, each stage resumed or skipped as its checkpoint says."""
    paths = stage_paths(out)
    run_ann(cfg, paths["ann"])
    run_convert(cfg, paths["ann"], paths["converted"])
    _, info = run_snn(cfg, paths["converted"], paths["snn"])
    return info


def calibration_images(info: ModelInfo, data_dir: str | None, count: int = 512) -> torch.Tensor:
    """The first ``count`` un-augmented training images, normalised as the checkpoint says:
    the same set for conversion, hardware fine-tuning and export (same host scale)."""
    loader = make_loader(
        info.dataset,
        "train",
        count,
        data_dir=data_dir,
        augment=False,
        shuffle=False,
        normalization=(info.mean, info.std),
    )
    images, _ = next(iter(loader))
    return images


def run_finetune(cfg: TrainConfig, source: Path, out: Path) -> tuple[DietNet, ModelInfo]:
    """Hardware-aware fine-tuning of a trained SNN checkpoint (see ``hardware_aware``)."""
    from dietsnn_deploy.hardware_aware import finetune_hardware

    if cfg.snn_epochs < 1:
        raise DeployError("finetune needs at least one epoch (--snn-epochs ≥ 1)")
    torch.manual_seed(cfg.seed)
    model, info, resumed = _start_stage(out, "hardware", source, ("snn", "converted"), "finetune")
    if not resumed:
        info.stage, info.reset = "hardware", "hard"
    model.reset_mode = "hard"
    done_epochs = sum(1 for h in info.history if h["stage"] == "hardware")
    if done_epochs >= cfg.snn_epochs:
        return model, info
    cfg.dataset = info.dataset
    train, test = _loaders(cfg, cfg.snn_batch_size, (info.mean, info.std))
    finetune_hardware(
        model,
        calibration_images(info, cfg.data_dir, cfg.calibration_images),
        train,
        test,
        epochs=cfg.snn_epochs,
        lr=cfg.snn_lr,
        neuron_lr=cfg.neuron_lr,
        progress=cfg.progress,
        start_epoch=done_epochs,
        on_epoch=_saver(model, info, out),
    )
    return model, info
