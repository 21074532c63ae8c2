"""Training losses, each one unit, chosen by name (``--loss``, recorded in the checkpoint).

Every loss reads the readout's per-step input ``potentials`` (T, B, classes) = W·o_t, the
increments of the non-spiking readout's membrane potential V(t) = Σ_{s≤t} W·o_s (an ANN is one
step). The prediction is always argmax_c V_c(T), as on the chip.

* ``potential`` — DIET-SNN's: cross-entropy on the final potential, CE(V(T), y).
* ``potential-time`` — the hybrid network's (after Datta et al. 2021, whose abstract names a
  cross-entropy on both the output neurons' membrane potential and their spike time)::

      L = CE(V(T), y) + CE(−τ, y)

  τ_c is the step (1 … T, or T + 1 for never) at which class c's potential first crosses the
  threshold θ = ½·max_c V_c(T) of its image (detached: half the winner's final potential),
  made differentiable by a soft crossing::

      p_c(t) = σ((V_c(t) − θ)/(κ·θ)),  κ = 0.1          "crossed at t"
      τ_c    = 1 + Σ_t Π_{s≤t} (1 − p_c(s))              expected first crossing, in steps

  As κ → 0, τ_c is exactly the first step with V_c > θ. The readout does not spike (it is
  read as a potential on the chip too): θ defines the output "spike" only for the loss, and
  rewarding the true class for getting there first trains an early, confident decision, which
  is what a network that spends each neuron's single spike needs.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

CROSSING_FRACTION = 0.5  # θ as a fraction of the winner's final potential
CROSSING_SOFTNESS = 0.1  # κ: width of the soft crossing, as a fraction of θ


def crossing_time(potentials: torch.Tensor, softness: float = CROSSING_SOFTNESS) -> torch.Tensor:
    """Soft first-crossing step τ (B, classes) ∈ [1, T + 1] of the cumulative potential over
    θ = ½·max_c V_c(T) (module doc); ``potentials`` (T, B, classes) are the increments."""
    cumulative = potentials.cumsum(0)
    final_max = cumulative[-1].max(dim=1, keepdim=True).values.detach()
    threshold = (CROSSING_FRACTION * final_max).clamp(min=1e-6)
    crossed = torch.sigmoid((cumulative - threshold) / (softness * threshold))
    not_yet = torch.cumprod(1.0 - crossed, dim=0)
    return 1.0 + not_yet.sum(0)


class Objective:
    """A loss on the readout's per-step potentials (T, B, classes) and the labels (B,)."""

    name: ClassVar[str]

    def __call__(self, potentials: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Potential(Objective):
    name: ClassVar[str] = "potential"

    def __call__(self, potentials, labels):
        return nn.functional.cross_entropy(potentials.sum(0), labels)


class PotentialTime(Objective):
    name: ClassVar[str] = "potential-time"

    def __call__(self, potentials, labels):
        time_loss = nn.functional.cross_entropy(-crossing_time(potentials), labels)
        return nn.functional.cross_entropy(potentials.sum(0), labels) + time_loss


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (Potential(), PotentialTime())}
