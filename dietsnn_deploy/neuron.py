"""Leaky integrate-and-fire neuron of DIET-SNN as pure functions: state in, state out.

Per step t, for a layer with leak λ ∈ [0, 1] and threshold θ > 0 (the paper's eq. 9–10)::

    u[t] = λ·u[t-1] + I[t]              membrane potential, same units as the input current I
    z[t] = u[t]/θ − 1                   spike when z > 0, i.e. u > θ
    u[t] ← u[t] − θ·s[t]                soft reset (DIET-SNN);  u[t] ← u[t]·(1 − s[t])  hard (Loihi)

The spike's derivative is the surrogate γ·max(0, 1 − |z|) with γ = 0.3 (eq. 12); gradients
reach θ and λ through z and the recurrence, so one backward pass trains all three.
"""

from __future__ import annotations

from typing import Literal

import torch

SURROGATE_GAMMA = 0.3
Reset = Literal["soft", "hard"]


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


def lif_step(
    u: torch.Tensor,
    current: torch.Tensor,
    leak: torch.Tensor,
    threshold: torch.Tensor,
    reset: Reset = "soft",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step: returns (spike, u after reset)."""
    u = leak * u + current
    spike = spike_fn(u / threshold - 1.0)
    # The reset treats the spike as a constant (official code; eq. 14: ∂u/∂θ = −o).
    fired = spike.detach()
    u = u - threshold * fired if reset == "soft" else u * (1.0 - fired)
    return spike, u


def lif_scan(
    currents: torch.Tensor,
    u: torch.Tensor | None,
    leak: torch.Tensor,
    threshold: torch.Tensor,
    reset: Reset = "soft",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``lif_step`` over the leading time axis of ``currents`` (T, ...).

    ``currents`` may be an expanded view of one constant current (direct encoding); ``u`` is
    the potential carried in from earlier steps (``None`` = zeros). Returns (spikes (T, ...), u).
    """
    if u is None:
        u = torch.zeros_like(currents[0])
    spikes = []
    for current in currents:
        spike, u = lif_step(u, current, leak, threshold, reset)
        spikes.append(spike)
    return torch.stack(spikes), u
