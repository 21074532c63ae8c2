"""What a checkpoint holds besides weights, and the one place each field is checked.

:class:`ModelInfo` is the record; :func:`read_info` builds it from a loaded payload, refusing
any field whose value does not mean what the field says (wrong type, out of range, not finite,
unknown name) with one line naming the field; :func:`check_state` does the same for the weights
and neuron parameters. Every reader of checkpoints goes through these two.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dietsnn_deploy.data import DATASETS, fixed_dataset_info
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.encodings import ENCODINGS
from dietsnn_deploy.spine.network import NORMALISATION_LIMIT
from dietsnn_deploy.spine.neurons import NEURON_MODELS, RESETS, SURROGATES
from dietsnn_deploy.spine.settings import check_timesteps
from dietsnn_deploy.training.models import ARCHITECTURES
from dietsnn_deploy.training.objectives import OBJECTIVES

FORMAT = "dietsnn-deploy/2"  # written: carries a digest
FORMATS = ("dietsnn-deploy/1", FORMAT)  # read (version 1 has no digest)
STAGES = ("ann", "converted", "snn", "hardware")
MAX_SIDE = 4096  # largest image side or channel count a checkpoint may claim
MAX_CLASSES = 100_000


@dataclass
class ModelInfo:
    """Everything about a checkpoint except its weights (the README documents each key)."""

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
    neuron: str = "lif"
    surrogate: str = "triangle"
    loss: str = "potential"
    dropout: float = 0.2
    ann_accuracy: float | None = None
    converted_accuracy: float | None = None
    accuracy: float | None = None
    initial_thresholds: list[float] = field(default_factory=list)
    initial_leaks: list[float] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    source: str = FORMAT


class _Payload:
    """Typed access to a checkpoint dict; every failure names the path and the field."""

    def __init__(self, payload: dict, path: Path) -> None:
        self.payload, self.path = payload, path

    def fail(self, name: str, problem: str) -> DeployError:
        return DeployError(f"{self.path}: checkpoint field '{name}' {problem}")

    def get(self, name: str, default=None, required: bool = False):
        if name not in self.payload:
            if required:
                raise DeployError(f"{self.path}: checkpoint field missing or malformed: '{name}'")
            return default
        return self.payload[name]

    def choice(self, name: str, choices, default=None) -> str:
        value = self.get(name, default, required=default is None)
        if not isinstance(value, str) or value not in choices:
            shown = repr(value)[:40]
            raise DeployError(
                f"{self.path}: unknown {name} {shown}; expected one of {', '.join(choices)}"
            )
        return value

    def whole(self, name: str, low: int, high: int) -> int:
        value = self.get(name, required=True)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(name, f"must be a whole number in [{low}, {high}], got {value!r:.40}")
        return value

    def number(self, name: str, low: float, high: float, default=None, high_open=False) -> float:
        value = self.get(name, default, required=default is None)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or not low <= value <= high or (high_open and value == high):
            bracket = ")" if high_open else "]"
            raise self.fail(name, f"must be a number in [{low}, {high}{bracket}, got {value!r:.40}")
        return float(value)

    def optional_fraction(self, name: str) -> float | None:
        if self.get(name) is None:
            return None
        return self.number(name, 0.0, 1.0)

    def numbers(self, name: str, length: int | None, low: float, high: float, default=None):
        value = self.get(name, default, required=default is None)
        if not isinstance(value, list | tuple) or (length is not None and len(value) != length):
            want = f"{length} numbers" if length is not None else "a list of numbers"
            raise self.fail(name, f"must be {want}, got {str(value)[:40]}")
        for item in value:
            finite = isinstance(item, int | float) and not isinstance(item, bool)
            if not finite or not math.isfinite(item) or not low <= item <= high:
                raise self.fail(name, f"holds {item!r:.20}, not a number in [{low:g}, {high:g}]")
        return [float(v) for v in value]


def read_info(payload: dict, path: Path) -> ModelInfo:
    """The validated :class:`ModelInfo` of one of our checkpoints."""
    p = _Payload(payload, path)
    arch = p.get("arch", required=True)
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise DeployError(f"{path}: unknown architecture {str(arch)[:40]!r}")
    stage = p.get("stage", required=True)
    if not isinstance(stage, str) or stage not in STAGES:
        raise DeployError(f"{path}: unknown stage {str(stage)[:40]!r}")
    dataset = p.choice("dataset", DATASETS)
    in_shape = p.get("in_shape", required=True)
    if not (
        isinstance(in_shape, list | tuple)
        and len(in_shape) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) for v in in_shape)
        and all(1 <= v <= MAX_SIDE for v in in_shape)
    ):
        raise DeployError(f"{path}: checkpoint field missing or malformed: 'in_shape'")
    channels = in_shape[0]
    std = p.numbers("std", channels, -NORMALISATION_LIMIT, NORMALISATION_LIMIT)
    if min(std) <= 0:
        raise p.fail("std", f"must be positive, got {std}")
    timesteps = p.get("timesteps", required=True)
    info = ModelInfo(
        arch=arch,
        dataset=dataset,
        in_shape=tuple(in_shape),
        num_classes=p.whole("num_classes", 1, MAX_CLASSES),
        mean=tuple(p.numbers("mean", channels, -NORMALISATION_LIMIT, NORMALISATION_LIMIT)),
        std=tuple(std),
        stage=stage,
        timesteps=check_timesteps(timesteps, f"{path}: timesteps"),
        encoding=p.choice("encoding", tuple(ENCODINGS), "direct"),
        reset=p.choice("reset", RESETS, "soft"),
        neuron=p.choice("neuron", tuple(NEURON_MODELS), "lif"),
        surrogate=p.choice("surrogate", tuple(SURROGATES), "triangle"),
        loss=p.choice("loss", tuple(OBJECTIVES), "potential"),
        dropout=p.number("dropout", 0.0, 1.0, 0.2, high_open=True),
        ann_accuracy=p.optional_fraction("ann_accuracy"),
        converted_accuracy=p.optional_fraction("converted_accuracy"),
        accuracy=p.optional_fraction("accuracy"),
        initial_thresholds=p.numbers("initial_thresholds", None, 1e-30, math.inf, []),
        initial_leaks=p.numbers("initial_leaks", None, 0.0, 1.0, []),
        history=_history(p),
    )
    return info


def check_dataset_shape(info: ModelInfo, path: Path) -> None:
    """A known fixed-size dataset fixes the input shape and class count."""
    known = fixed_dataset_info(info.dataset)
    if known is not None and (tuple(info.in_shape), info.num_classes) != (
        known.in_shape,
        known.num_classes,
    ):
        raise DeployError(
            f"{path}: in_shape {tuple(info.in_shape)} with {info.num_classes} classes does not "
            f"fit {info.dataset} ({known.in_shape}, {known.num_classes} classes)"
        )


_HISTORY_NUMBERS = ("train_loss", "train_accuracy", "test_accuracy")


def _history(p: _Payload) -> list[dict]:
    """One dict per epoch: stage (str), epoch (int ≥ 1), finite losses and accuracies, and
    thresholds/leaks as None or lists of numbers."""
    history = p.get("history", [])
    if not isinstance(history, list):
        raise p.fail("history", "must be a list of epoch records")
    for index, entry in enumerate(history):
        where = f"history[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("stage"), str):
            raise p.fail(where, "must be a record with a 'stage' name")
        epoch = entry.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise p.fail(where, f"has epoch {str(epoch)[:20]}, not a whole number ≥ 1")
        for key in _HISTORY_NUMBERS:
            value = entry.get(key)
            if value is not None and not (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                raise p.fail(where, f"has {key} {str(value)[:20]}, not a finite number")
        for key in ("thresholds", "leaks"):
            values = entry.get(key)
            if values is not None and not (
                isinstance(values, list)
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
            ):
                raise p.fail(where, f"has {key} that are not a list of numbers")
    return history


def payload_digest(payload: dict) -> str:
    """SHA-256 of a checkpoint payload except its ``digest``, in a canonical form: keys sorted,
    tensors as dtype, shape and bytes, numbers by their exact repr."""
    hasher = hashlib.sha256()
    _feed(hasher, {k: v for k, v in payload.items() if k != "digest"})
    return hasher.hexdigest()


def _feed(hasher, value) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        hasher.update(f"tensor{tensor.dtype}{tuple(tensor.shape)}".encode())
        if tensor.dtype == torch.bfloat16:  # no NumPy dtype: hash its bits
            tensor = tensor.view(torch.int16)
        hasher.update(tensor.numpy().tobytes())
    elif isinstance(value, dict):
        hasher.update(f"dict{len(value)}".encode())
        for key in sorted(value, key=str):
            hasher.update(f"{key!r}:".encode())
            _feed(hasher, value[key])
    elif isinstance(value, list | tuple):
        hasher.update(f"seq{len(value)}".encode())
        for item in value:
            _feed(hasher, item)
    else:
        hasher.update(f"{type(value).__name__}:{value!r};".encode())


def check_digest(payload: dict, path: Path) -> None:
    """Refuse a version-2 checkpoint whose contents changed after it was written."""
    if payload.get("format") != FORMAT:
        return
    digest = payload.get("digest")
    if not isinstance(digest, str) or digest != payload_digest(payload):
        raise DeployError(
            f"{path}: checksum mismatch: the checkpoint changed after it was written (damaged "
            "or edited)"
        )


def check_state(state: dict, expected: dict[str, torch.Tensor], path: Path, arch: str) -> None:
    """Weights that fit the architecture (same keys and shapes), all finite; thresholds
    positive and leaks in [0, 1]."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise DeployError(
            f"{path}: weights do not fit architecture '{arch}'"
            f" (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise DeployError(
                f"{path}: '{key}' has shape {tuple(value.shape)}, architecture '{arch}'"
                f" expects {tuple(expected[key].shape)}"
            )
        if not value.is_floating_point():
            raise DeployError(f"{path}: '{key}' holds {value.dtype} values, not floats")
        if not torch.isfinite(value).all():
            raise DeployError(f"{path}: '{key}' contains NaN or infinite values")
        if key.startswith("threshold.") and not float(value) > 0:
            raise DeployError(f"{path}: '{key}' is {float(value):.4g}; thresholds must be > 0")
        if key.startswith("leak.") and not 0.0 <= float(value) <= 1.0:
            raise DeployError(f"{path}: '{key}' is {float(value):.4g}; leaks must be in [0, 1]")
