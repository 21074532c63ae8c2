"""The training pipeline as resumable stages, each ending in a checkpoint.

``train`` = ANN → conversion → DIET. Every stage writes its checkpoint after every epoch, so a
rerun with the same output path skips finished stages and continues an unfinished one from its
last completed epoch (the cosine schedule restarts over the epochs that remain). A stage that
starts from a checkpoint takes its architecture, dataset, normalisation and T from it; options
that would contradict them are refused, not ignored.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dietsnn_deploy.data import dataset_info, make_loader
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.encodings import get_encoding
from dietsnn_deploy.spine.neurons import get_neuron_model
from dietsnn_deploy.training.checkpoints import ModelInfo, load_checkpoint, save_checkpoint
from dietsnn_deploy.training.config import DEFAULT_DATASET, DEFAULT_LOSS, NEURON_MODEL, TrainConfig
from dietsnn_deploy.training.distributed import barrier, current
from dietsnn_deploy.training.logs import write_epoch_csv, write_tensorboard
from dietsnn_deploy.training.loop import evaluate
from dietsnn_deploy.training.models import DietNet, build_model
from dietsnn_deploy.training.objectives import OBJECTIVES, Objective
from dietsnn_deploy.training.stages import convert, train_ann, train_snn


def stage_paths(out: Path) -> dict[str, Path]:
    """Where each stage's checkpoint goes: ``<stem>.ann.pt``, ``<stem>.converted.pt``, out."""
    return {
        "ann": out.with_name(f"{out.stem}.ann{out.suffix}"),
        "converted": out.with_name(f"{out.stem}.converted{out.suffix}"),
        "snn": out,
    }


def _loaders(cfg: TrainConfig, info: ModelInfo, batch_size: int):
    """Shuffled, augmented train batches and the test set of the checkpoint's dataset, with
    its normalisation."""
    normalization = (info.mean, info.std)
    ranks = current()
    train = make_loader(
        info.dataset,
        "train",
        batch_size,
        data_dir=cfg.data_dir,
        limit=cfg.train_limit,
        seed=cfg.seed,
        normalization=normalization,
        rank=ranks.rank,
        world=ranks.world,
        pin_memory=cfg.settings.device.type == "cuda",
    )
    test = make_loader(
        info.dataset,
        "test",
        256,
        data_dir=cfg.data_dir,
        limit=cfg.test_limit,
        normalization=normalization,
    )
    return train, test


def _resumable(path: Path, stage: str) -> tuple[DietNet, ModelInfo] | None:
    """(model, info) of ``path`` if it holds ``stage`` (a partial or finished run), else None."""
    if not path.exists():
        return None
    model, info = load_checkpoint(path)
    return (model, info) if info.stage == stage else None


def _check_options(cfg: TrainConfig, info: ModelInfo, path: Path) -> None:
    """Refuse --dataset / --arch that contradict the checkpoint a stage starts from."""
    for option, given, held in (
        ("dataset", cfg.dataset, info.dataset),
        ("arch", cfg.arch, info.arch),
    ):
        if given is not None and given != held:
            raise DeployError(
                f"{path} holds {info.arch} on {info.dataset}; --{option} {given} does not apply"
            )


def _start_stage(
    cfg: TrainConfig, out: Path, stage: str, source: Path, needs: tuple[str, ...], command: str
) -> tuple[DietNet, ModelInfo, bool]:
    """Resume ``stage`` from ``out`` if it holds that stage, else start from ``source``,
    whose stage must be one of ``needs``. Returns (model, info, resumed)."""
    done = _resumable(out, stage)
    if done is not None:
        _check_options(cfg, done[1], out)
        return (*done, True)
    model, info = load_checkpoint(source)
    if info.stage not in needs:
        wanted = " or ".join("an ANN" if stage == "ann" else f"a {stage}" for stage in needs)
        raise DeployError(f"{source}: {command} needs {wanted} checkpoint, not '{info.stage}'")
    _check_options(cfg, info, source)
    return model, info, False


def _saver(model: DietNet, info: ModelInfo, out: Path):
    """``on_epoch`` callback (rank 0): record the epoch, write the checkpoint and the logs."""

    def save(entry: dict) -> None:
        info.history.append(entry)
        info.accuracy = entry["test_accuracy"]
        if entry["stage"] == "ann":
            info.ann_accuracy = info.accuracy
        save_checkpoint(model, info, out)
        write_epoch_csv(info.history, out)
        write_tensorboard(entry, len(info.history), out)

    return save


def _seed(cfg: TrainConfig) -> None:
    """Dropout and initialisation draw from a per-rank seed (the data order does not)."""
    torch.manual_seed(cfg.seed + current().rank)


def _synced(model: DietNet, info: ModelInfo, out: Path) -> tuple[DietNet, ModelInfo]:
    """After a stage: every rank waits for rank 0's checkpoint, and the others read it back
    (their ``info`` saw no epoch records: rank 0 alone keeps them)."""
    barrier()
    return (model, info) if current().main else load_checkpoint(out)


def _save_on_main(model: DietNet, info: ModelInfo, out: Path) -> None:
    """Rank 0 writes the checkpoint; every rank waits until it is there."""
    if current().main:
        save_checkpoint(model, info, out)
    barrier()


def _learning_rule(cfg: TrainConfig, model: DietNet, info: ModelInfo) -> Objective:
    """Surrogate and loss of an SNN stage: the options, else the checkpoint's (recorded in
    ``info`` and set on ``model``); returns the loss."""
    info.surrogate = cfg.surrogate or info.surrogate
    info.loss = cfg.loss or info.loss
    model.neuron_model = model.neuron_model.with_surrogate(info.surrogate)
    return OBJECTIVES[info.loss]


def _stage_epochs(info: ModelInfo, stages: tuple[str, ...]) -> int:
    return sum(1 for h in info.history if h["stage"] in stages)


def run_ann(cfg: TrainConfig, out: Path) -> tuple[DietNet, ModelInfo]:
    """Stage 1, resuming from ``out`` if it holds a partial ANN run."""
    _seed(cfg)
    cfg = cfg.for_dataset(cfg.dataset or DEFAULT_DATASET)
    dataset, arch = cfg.dataset, cfg.arch
    done = _resumable(out, "ann")
    if done is not None:
        model, info = done
        if info.arch != arch or info.dataset != dataset:
            raise DeployError(f"{out} holds {info.arch} on {info.dataset}; use another -o path")
    else:
        data = dataset_info(dataset, cfg.data_dir)
        model = build_model(arch, data.in_shape, data.num_classes, cfg.dropout)
        info = ModelInfo(
            arch=arch,
            dataset=dataset,
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
    train, test = _loaders(cfg, info, cfg.batch_size)
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
        settings=cfg.settings,
    )
    return _synced(model, info, out)


def run_convert(cfg: TrainConfig, ann_path: Path, out: Path) -> tuple[DietNet, ModelInfo]:
    """Stage 2 from a finished ANN checkpoint, at ``cfg.timesteps`` with ``cfg.encoding``."""
    model, info, resumed = _start_stage(cfg, out, "converted", ann_path, ("ann",), "convert")
    if resumed:
        return model, info
    cfg = cfg.for_dataset(info.dataset)
    images = calibration_images(info, cfg.data_dir, cfg.calibration_images)
    # thresholds are balanced on the input the SNN will see
    encoding = cfg.encoding or "direct"
    model.encoding = get_encoding(encoding)
    model.neuron_model = get_neuron_model(NEURON_MODEL[cfg.neuron], "soft")
    info.surrogate, info.loss = "triangle", DEFAULT_LOSS[cfg.neuron]
    _learning_rule(cfg, model, info)
    thresholds = convert(
        model,
        images,
        timesteps=cfg.timesteps,
        percentile=cfg.percentile,
        scale=cfg.threshold_scale,
        progress=cfg.progress,
    )
    info.stage, info.timesteps, info.encoding = "converted", cfg.timesteps, encoding
    info.neuron = model.neuron_model.name
    info.initial_thresholds, info.initial_leaks = thresholds, model.leaks()
    _, test = _loaders(cfg, info, cfg.snn_batch_size)
    info.converted_accuracy = info.accuracy = evaluate(
        model, test, cfg.settings, progress=cfg.progress, desc="converted eval"
    ).accuracy
    _save_on_main(model, info, out)
    return model, info


def run_snn(cfg: TrainConfig, converted_path: Path, out: Path) -> tuple[DietNet, ModelInfo]:
    """Stage 3 (DIET, or weights only / IF as the ablation flags say), resumable, at the
    converted checkpoint's T."""
    _seed(cfg)
    model, info, resumed = _start_stage(
        cfg, out, "snn", converted_path, ("converted",), "train-snn"
    )
    cfg = cfg.for_dataset(info.dataset)
    if not resumed:
        info.stage = "snn"
        info.history = [h for h in info.history if h["stage"] == "ann"]
    info.encoding = cfg.encoding or info.encoding
    model.encoding = get_encoding(info.encoding)
    if cfg.neuron == "if":
        model.set_neuron_params(leaks=[1.0] * len(model.neuron_keys))
    objective = _learning_rule(cfg, model, info)
    done_epochs = len(info.history) - _stage_epochs(info, ("ann",))
    if done_epochs >= cfg.snn_epochs:
        if not resumed:  # snn_epochs 0: the converted SNN is the result
            _save_on_main(model, info, out)
        return model, info
    train, test = _loaders(cfg, info, cfg.snn_batch_size)
    train_snn(
        model,
        train,
        test,
        epochs=cfg.snn_epochs,
        lr=cfg.snn_lr,
        neuron_lr=cfg.neuron_lr,
        train_threshold=cfg.train_threshold,
        train_leak=cfg.train_leak and cfg.neuron != "if",
        progress=cfg.progress,
        start_epoch=done_epochs,
        on_epoch=_saver(model, info, out),
        settings=cfg.settings.with_timesteps(info.timesteps),
        objective=objective,
    )
    return _synced(model, info, out)


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
    from dietsnn_deploy.training.hardware_aware import finetune_hardware

    _seed(cfg)
    model, info, resumed = _start_stage(
        cfg, out, "hardware", source, ("snn", "converted"), "finetune"
    )
    cfg = cfg.for_dataset(info.dataset, finetune=True)
    if cfg.snn_epochs < 1:
        raise DeployError("finetune needs at least one epoch (--snn-epochs ≥ 1)")
    if not resumed:
        info.stage, info.reset = "hardware", "hard"
    objective = _learning_rule(cfg, model, info)
    done_epochs = _stage_epochs(info, ("hardware",))
    if done_epochs >= cfg.snn_epochs:
        return model, info
    train, test = _loaders(cfg, info, cfg.snn_batch_size)
    finetune_hardware(
        model,
        calibration_images(info, cfg.data_dir, cfg.calibration_images),
        train,
        test,
        epochs=cfg.snn_epochs,
        settings=cfg.settings.with_timesteps(info.timesteps),
        lr=cfg.snn_lr,
        neuron_lr=cfg.neuron_lr,
        progress=cfg.progress,
        start_epoch=done_epochs,
        on_epoch=_saver(model, info, out),
        objective=objective,
    )
    return _synced(model, info, out)
