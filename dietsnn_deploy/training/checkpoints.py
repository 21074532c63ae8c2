"""Checkpoints: our own format, and the official DIET-SNN code's (``module.``-prefixed).

Our format is a ``torch.save`` dict (tensors, numbers, strings and lists only, so it loads with
``weights_only=True``) with ``format = "dietsnn-deploy/2"`` and a ``digest`` of the rest, checked
on load (``dietsnn-deploy/1`` files, without one, still load); the README documents every key
and :mod:`.checkpoint_schema` checks each one on the way in.
"""

from __future__ import annotations

import math
import os
import pickle
import zipfile
from dataclasses import asdict
from pathlib import Path

import torch

from dietsnn_deploy.atomic import atomic_path
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.encodings import get_encoding
from dietsnn_deploy.spine.neurons import get_neuron_model
from dietsnn_deploy.spine.settings import check_timesteps
from dietsnn_deploy.training.checkpoint_schema import (
    FORMAT,
    FORMATS,
    STAGES,
    ModelInfo,
    check_dataset_shape,
    check_digest,
    check_state,
    payload_digest,
    read_info,
)
from dietsnn_deploy.training.models import ARCHITECTURES, DietNet, build_model

__all__ = ["FORMAT", "STAGES", "ModelInfo", "load_checkpoint", "save_checkpoint"]


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
    payload["digest"] = payload_digest(payload)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _plain_key(key: str) -> str:
    """State-dict key without a parametrization's indirection (hardware fine-tuning)."""
    return key.replace(".parametrizations.weight.original", ".weight")


def _refusal(exc: Exception) -> str:
    """Why torch refused a file, in our words."""
    text = str(exc)
    if "Weights only load failed" in text or isinstance(exc, pickle.UnpicklingError):
        return (
            "refused: loading it would run code (it pickles objects other than tensors and "
            "plain data); this tool only reads weights-only checkpoints"
        )
    if isinstance(exc, zipfile.BadZipFile | EOFError) or "zip archive" in text or not text:
        return "damaged or truncated (not a complete torch.save file)"
    return " ".join(text.split())[:120]


def _read(path: Path) -> dict:
    if not path.is_file():
        raise DeployError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt, truncated or unsafe files
        raise DeployError(f"{path}: not a readable checkpoint ({_refusal(exc)})") from None
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise DeployError(f"{path}: not a DIET-SNN checkpoint (no state_dict)")
    if not isinstance(payload["state_dict"], dict):
        raise DeployError(f"{path}: state_dict is not a dict")
    for key, value in payload["state_dict"].items():
        if not isinstance(value, torch.Tensor):
            raise DeployError(f"{path}: state_dict entry '{str(key)[:60]}' is not a tensor")
    return payload


def load_checkpoint(
    path: str | os.PathLike,
    *,
    arch: str | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
) -> tuple[DietNet, ModelInfo]:
    """Load ours or an official DIET-SNN checkpoint (the latter needs ``arch`` and ``dataset``).

    Raises DeployError for a missing, corrupt, truncated or unsafe file, a field that does not
    mean what it says, weights that do not fit the architecture, and NaN or infinite values.
    The model comes back in eval mode, spiking unless it is an ANN, with the checkpoint's
    encoding and neuron model; its T is ``info.timesteps``, for the caller to run it with.
    """
    path = Path(path)
    payload = _read(path)
    if payload.get("format") in FORMATS:
        check_digest(payload, path)
        info = read_info(payload, path)
        state = payload["state_dict"]
    else:
        info, state = _official(payload, path, arch, dataset, data_dir)
    model = build_model(info.arch, info.in_shape, info.num_classes, info.dropout)
    check_state(state, model.state_dict(), path, info.arch)
    check_dataset_shape(info, path)
    model.load_state_dict(state)
    model.spiking = info.stage != "ann"
    model.encoding = get_encoding(info.encoding)
    model.neuron_model = get_neuron_model(info.neuron, info.reset, info.surrogate)
    model.eval()
    return model, info


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
    state = {str(k).removeprefix("module."): v for k, v in payload["state_dict"].items()}
    spiking = any(k.startswith("threshold.") for k in state)
    # The official code feeds MNIST-shaped data as pixels/255 without mean/std.
    mnist_like = data.in_shape[0] == 1 and dataset in ("mnist", "fashion-mnist")
    accuracy = payload.get("accuracy")
    if accuracy is not None and not (
        isinstance(accuracy, int | float)
        and not isinstance(accuracy, bool)
        and math.isfinite(accuracy)
    ):
        raise DeployError(f"{path}: accuracy field is not a number")
    timesteps = payload.get("timesteps", 5) if spiking else 5
    info = ModelInfo(
        arch=arch,
        dataset=dataset,
        in_shape=data.in_shape,
        num_classes=data.num_classes,
        mean=(0.0,) if mnist_like else data.mean,
        std=(1.0,) if mnist_like else data.std,
        stage="snn" if spiking else "ann",
        timesteps=check_timesteps(timesteps, f"{path}: timesteps"),
        accuracy=None if accuracy is None else float(accuracy),
        source="official DIET-SNN",
    )
    if spiking:
        state = {
            k: v.reshape(()) if k.startswith(("threshold.", "leak.")) and v.numel() == 1 else v
            for k, v in state.items()
        }
    else:
        model = build_model(arch, data.in_shape, data.num_classes)
        for key, value in model.state_dict().items():
            if key.startswith(("threshold.", "leak.")):
                state[key] = value
    return info, state
