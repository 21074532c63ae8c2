"""The ``--device`` option of the benchmark scripts (shared): parse it, wait for the device
before reading a clock, fork its random number generator."""

from __future__ import annotations

import argparse
import contextlib

import torch

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.settings import resolve_device

DEVICE_HELP = "where torch runs: auto, cpu, cuda, cuda:N or mps (default: cpu)"


def add_device_option(parser: argparse.ArgumentParser, help: str = DEVICE_HELP) -> None:
    parser.add_argument("--device", default="cpu", help=help)


def parse_device(parser: argparse.ArgumentParser, name: str) -> torch.device:
    """The device ``name`` names (``resolve_device``); a usage error if it is not there."""
    try:
        return resolve_device(name)
    except DeployError as exc:
        parser.error(f"--device: {exc}")


def synchronize(device: torch.device) -> None:
    """Wait until the device has finished its queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def fork_rng(device: torch.device):
    """``torch.random.fork_rng`` over the CPU generator and ``device``'s own (random draws made
    on the device come from it)."""
    if device.type == "cpu":
        return torch.random.fork_rng(devices=[])
    if device.type in ("cuda", "mps"):
        return torch.random.fork_rng(devices=[device], device_type=device.type)
    return contextlib.nullcontext()  # pragma: no cover - resolve_device admits no other type
