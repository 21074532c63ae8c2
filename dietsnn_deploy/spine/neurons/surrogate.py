"""DIET-SNN's surrogate spike: a Heaviside step forward, γ·max(0, 1 − |z|) backward (eq. 12),
z = u/θ − 1, γ = 0.3."""

from __future__ import annotations

import torch

SURROGATE_GAMMA = 0.3


class _Spike(torch.autograd.Function):
    """Heaviside step of z = u/θ − 1 with the piecewise-linear surrogate gradient."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(z)
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad_spike: torch.Tensor) -> torch.Tensor:  # noqa: D102
        (z,) = ctx.saved_tensors
        return grad_spike * SURROGATE_GAMMA * torch.clamp(1.0 - z.abs(), min=0.0)


def spike_fn(z: torch.Tensor) -> torch.Tensor:
    """Binary spike where z > 0, differentiable through the γ-surrogate."""
    return _Spike.apply(z)
