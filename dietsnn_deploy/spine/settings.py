"""Run settings, passed down as values: how many timesteps, on which device, in which precision.

Nothing in the toolchain stores T on a model or mutates it: a run gets a :class:`RunSettings`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from dietsnn_deploy.errors import DeployError

#: Longest simulation accepted. DIET-SNNs run at T ≤ 25 and rate-coded baselines at a few
#: hundred; anything beyond this is a typo that would exhaust memory or run for days.
MAX_TIMESTEPS = 4096
PRECISIONS = ("fp32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_timesteps(value, what: str = "timesteps") -> int:
    """T itself, refused unless an integer (not a fraction, not a bool) in [1, MAX_TIMESTEPS]."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or isinstance(value, float)
        and (not math.isfinite(value) or value != int(value))
    ):
        raise DeployError(f"{what} must be a whole number, got {value!r}")
    if not 1 <= int(value) <= MAX_TIMESTEPS:
        raise DeployError(f"{what} must be between 1 and {MAX_TIMESTEPS}, got {value!r}")
    return int(value)


def available_memory() -> int | None:
    """Bytes of memory the system can still give (``MemAvailable``), None where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(needed: float, what: str, *, device: torch.device | None = None) -> None:
    """Refuse up front a run whose estimated need exceeds 90 % of the available memory (CPU
    runs; a GPU run's need is checked against the device's free memory)."""
    if device is not None and device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        available = int(free)
    else:
        available = available_memory()
    if available is not None and needed > 0.9 * available:
        raise DeployError(
            f"{what} needs about {needed / 2**30:.1f} GiB of memory, {available / 2**30:.1f} GiB "
            "is available; lower -T or the batch size"
        )


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA if present, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``;
    a device that is not there is refused."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeployError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise DeployError(f"device {name} is not available ({count} CUDA device(s) here)")
    elif device.type == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise DeployError("device mps is not available here")
    elif device.type != "cpu":
        raise DeployError(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


@dataclass(frozen=True)
class RunSettings:
    """How a network runs: ``timesteps`` T, the ``device`` its tensors live on, and the
    ``precision`` of its synaptic ops (membrane potentials, comparisons and losses stay fp32)."""

    timesteps: int = 5
    device: torch.device = torch.device("cpu")
    precision: str = "fp32"

    def __post_init__(self) -> None:
        check_timesteps(self.timesteps)
        if self.precision not in PRECISIONS:
            raise DeployError(
                f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}"
            )

    def with_timesteps(self, timesteps: int) -> RunSettings:
        return replace(self, timesteps=timesteps)

    def autocast(self):
        """Context in which conv and linear run at ``precision`` (a no-op for fp32)."""
        dtype = _AUTOCAST_DTYPES.get(self.precision)
        return torch.autocast(
            self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None
        )
