"""Surrogate gradients of the spike: a Heaviside step forward, a pseudo-derivative backward.

Two, each one small unit, chosen by name (``--surrogate``, recorded in the checkpoint):

* ``triangle`` — DIET-SNN's eq. 12: ∂s/∂z = γ·max(0, 1 − |z|), z = u/θ − 1, γ = 0.3. The
  gradient depends on how near the potential is to the threshold.
* ``stdb`` — spike-time-dependent backpropagation (the official DIET-SNN ``STDB`` activation):
  ∂s/∂z = α·exp(−β·Δt), α = 0.3, β = 0.01, where Δt is the number of steps since the neuron's
  last spike. The gradient depends on time, not on the potential. The official code starts
  Δt at 1000 for a neuron that hasn't fired, so such a neuron gets ≈ α·e⁻¹⁰ ≈ 0: a
  single-spike neuron has no gradient before its one spike and can't learn. Here Δt counts
  from the start of the image until the first spike (a choice, documented in the README).
"""

from __future__ import annotations

from typing import ClassVar

import torch

SURROGATE_GAMMA = 0.3  # γ of the triangle (eq. 12)
STDB_ALPHA = 0.3  # α of STDB (the official default)
STDB_BETA = 0.01  # β of STDB, per step (the official default)


class _Spike(torch.autograd.Function):
    """Heaviside step of z = u/θ − 1 with the triangle surrogate gradient."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(z)
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad_spike: torch.Tensor) -> torch.Tensor:  # noqa: D102
        (z,) = ctx.saved_tensors
        return grad_spike * SURROGATE_GAMMA * torch.clamp(1.0 - z.abs(), min=0.0)


class _TimedSpike(torch.autograd.Function):
    """Heaviside step of z with the STDB gradient α·exp(−β·Δt)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, since: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(since)
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad_spike: torch.Tensor):  # noqa: D102
        (since,) = ctx.saved_tensors
        return grad_spike * STDB_ALPHA * torch.exp(-STDB_BETA * since), None


def spike_fn(z: torch.Tensor) -> torch.Tensor:
    """Binary spike where z > 0, differentiable through the triangle surrogate."""
    return _Spike.apply(z)


class Surrogate:
    """A spike function with a pseudo-derivative: ``spike(z, since)`` for z = u/θ − 1 and
    ``since`` = steps since the last spike (or the image start), both of one shape."""

    name: ClassVar[str]
    uses_time: ClassVar[bool] = False  # whether ``since`` matters (the scans skip it if not)

    def spike(self, z: torch.Tensor, since: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


class Triangle(Surrogate):
    name: ClassVar[str] = "triangle"

    def spike(self, z, since=None):
        return _Spike.apply(z)


class STDB(Surrogate):
    name: ClassVar[str] = "stdb"
    uses_time: ClassVar[bool] = True

    def spike(self, z, since=None):
        if since is None:
            raise ValueError("the STDB surrogate needs the steps since the last spike")
        return _TimedSpike.apply(z, since)


SURROGATES: dict[str, Surrogate] = {s.name: s for s in (Triangle(), STDB())}
