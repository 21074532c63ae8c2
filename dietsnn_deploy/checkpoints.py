"""Checkpoints: our own format, and the official DIET-SNN code's (``module.``-prefixed).

Our format is a ``torch.save`` dict (tensors, numbers, strings and lists only, so it loads with
``weights_only=True``) with ``format = "dietsnn-deploy/1"``; the README documents every key.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dietsnn_deploy.atomic import atomic_path
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.models import ARCHITECTURES, DietNet, build_model

FORMAT = "dietsnn-deploy/1"
STAGES = ("ann", "converted", "snn", "hardware")


@dataclass
class ModelInfo:
    """Everything about a checkpoint except its weights."""

    arch: str
    dataset: str
    in_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    stage: str = "ann"
    timesteps: int = 5
    encoding: str = "direct"
    reset: str = "soft"
    dropout: float = 0.2
    ann_accuracy: float | None = None
    converted_accuracy: float | None = None
    accuracy: float | None = None
    initial_thresholds: list[float] = field(default_factory=list)
    initial_leaks: list[float] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    source: str = FORMAT


def save_checkpoint(model: DietNet, info: ModelInfo, path: str | os.PathLike) -> None:
    """Write model and info atomically (temp file in the same folder, then rename)."""
    payload = {k: v for k, v in asdict(info).items() if k != "source"}
    payload.update(
        format=FORMAT,
        in_shape=list(info.in_shape),
        mean=list(info.mean),
        std=list(info.std),
        thresholds=model.thresholds(),
        leaks=model.leaks(),
        state_dict={_plain_key(k): v.detach().cpu() for k, v in model.state_dict().items()},
    )
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _plain_key(key: str) -> str:
    """State-dict key without a parametrization's indirection (hardware fine-tuning)."""
    return key.replace(".parametrizations.weight.original", ".weight")


def _read(path: Path) -> dict:
    if not path.is_file():
        raise DeployError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or truncated files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DeployError(f"{path}: not a readable checkpoint ({reason[:120]})") from None
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise DeployError(f"{path}: not a DIET-SNN checkpoint (no state_dict)")
    if not isinstance(payload["state_dict"], dict):
        raise DeployError(f"{path}: state_dict is not a dict")
    for key, value in payload["state_dict"].items():
        if not isinstance(value, torch.Tensor):
            raise DeployError(f"{path}: state_dict entry '{key}' is not a tensor")
    return payload


def load_checkpoint(
    path: str | os.PathLike,
    *,
    arch: str | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
) -> tuple[DietNet, ModelInfo]:
    """Load ours or an official DIET-SNN checkpoint (the latter needs ``arch`` and ``dataset``).

    Raises DeployError for a missing, corrupt or truncated file, weights that do not fit the
    architecture, and NaN or infinite values.
    """
    path = Path(path)
    payload = _read(path)
    if payload.get("format") == FORMAT:
        info = _our_info(payload, path)
        state = payload["state_dict"]
    else:
        info, state = _official(payload, path, arch, dataset, data_dir)
    model = build_model(info.arch, info.in_shape, info.num_classes, info.dropout)
    missing, unexpected = _compare_keys(model, state)
    if missing or unexpected:
        raise DeployError(
            f"{path}: weights do not fit architecture '{info.arch}' on {info.in_shape}"
            f" (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for key, value in state.items():
        expected = model.state_dict()[key].shape
        if value.shape != expected:
            raise DeployError(
                f"{path}: '{key}' has shape {tuple(value.shape)}, architecture '{info.arch}'"
                f" expects {tuple(expected)}"
            )
        if not torch.isfinite(value).all():
            raise DeployError(f"{path}: '{key}' contains NaN or infinite values")
    model.load_state_dict(state)
    model.spiking = info.stage != "ann"
    model.timesteps = info.timesteps
    model.encoding = info.encoding
    model.reset_mode = info.reset
    model.eval()
    return model, info


def _compare_keys(model: DietNet, state: dict) -> tuple[list[str], list[str]]:
    own = set(model.state_dict())
    return sorted(own - set(state)), sorted(set(state) - own)


def _our_info(payload: dict, path: Path) -> ModelInfo:
    try:
        info = ModelInfo(
            arch=str(payload["arch"]),
            dataset=str(payload["dataset"]),
            in_shape=tuple(int(v) for v in payload["in_shape"]),
            num_classes=int(payload["num_classes"]),
            mean=tuple(float(v) for v in payload["mean"]),
            std=tuple(float(v) for v in payload["std"]),
            stage=str(payload["stage"]),
            timesteps=int(payload["timesteps"]),
            encoding=str(payload.get("encoding", "direct")),
            reset=str(payload.get("reset", "soft")),
            dropout=float(payload.get("dropout", 0.2)),
            ann_accuracy=payload.get("ann_accuracy"),
            converted_accuracy=payload.get("converted_accuracy"),
            accuracy=payload.get("accuracy"),
            initial_thresholds=list(payload.get("initial_thresholds", [])),
            initial_leaks=list(payload.get("initial_leaks", [])),
            history=list(payload.get("history", [])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DeployError(f"{path}: checkpoint field missing or malformed ({exc})") from None
    if info.arch not in ARCHITECTURES:
        raise DeployError(f"{path}: unknown architecture '{info.arch}'")
    if info.stage not in STAGES:
        raise DeployError(f"{path}: unknown stage '{info.stage}'")
    if info.timesteps < 1:
        raise DeployError(f"{path}: timesteps must be ≥ 1, got {info.timesteps}")
    return info


def _official(payload: dict, path: Path, arch, dataset, data_dir) -> tuple[ModelInfo, dict]:
    """Map an official DIET-SNN checkpoint onto our modules (VGG family only)."""
    if not arch or not dataset:
        raise DeployError(
            f"{path}: not a dietsnn-deploy checkpoint; if it comes from the official DIET-SNN"
            " code, pass --arch and --dataset"
        )
    from dietsnn_deploy.data import dataset_info  # data pulls numpy/sklearn; only needed here

    if ARCHITECTURES.get(arch) is None or ARCHITECTURES[arch].family != "vgg":
        raise DeployError(f"official checkpoints are supported for VGG architectures, not '{arch}'")
    data = dataset_info(dataset, data_dir)
    state = {k.removeprefix("module."): v for k, v in payload["state_dict"].items()}
    spiking = any(k.startswith("threshold.") for k in state)
    # The official code feeds MNIST-shaped data as pixels/255 without mean/std.
    mnist_like = data.in_shape[0] == 1 and dataset in ("mnist", "fashion-mnist")
    mean = (0.0,) if mnist_like else data.mean
    std = (1.0,) if mnist_like else data.std
    accuracy = payload.get("accuracy")
    info = ModelInfo(
        arch=arch,
        dataset=dataset,
        in_shape=data.in_shape,
        num_classes=data.num_classes,
        mean=mean,
        std=std,
        stage="snn" if spiking else "ann",
        timesteps=int(payload.get("timesteps", 5)) if spiking else 5,
        accuracy=float(accuracy) if isinstance(accuracy, int | float) else None,
        source="official DIET-SNN",
    )
    if spiking:
        state = {
            k: v.reshape(()) if k.startswith(("threshold.", "leak.")) else v
            for k, v in state.items()
        }
    else:
        model = build_model(arch, data.in_shape, data.num_classes)
        for key, value in model.state_dict().items():
            if key.startswith(("threshold.", "leak.")):
                state[key] = value
    if accuracy is not None and not (isinstance(accuracy, int | float) and math.isfinite(accuracy)):
        raise DeployError(f"{path}: accuracy field is not a number")
    return info, state
