"""The single-spike neuron of the hybrid-input network: DIET's LIF that, once it has fired,
stays silent for the rest of the image. Lava's LIF template with activation and reset
replaced.

Float (training), f = "has fired" (a constant for the gradient, like the reset)::

    u[t] = (λ·u[t-1] + I[t]) · (1 − f[t-1])          integrates only until the first spike
    s[t] = H(u[t]/θ − 1) · (1 − f[t-1])              the model's surrogate (triangle or STDB)
    u[t] ← 0 where s[t];   f[t] = f[t-1] + s[t]       afterwards u stays 0 (v held at reset)

Fixed point (our Lava refractory model, ``hw_sim/lava/processes.py``), P = the refractory
period in steps (P ≥ T: silent until the image ends), step t counted from 1::

    active = end < t
    v[t] = active ? the LIF's v[t] (current, bias) : v[t−1]     held; u integrates always
    s[t] = active ∧ v[t] > vThMant << 6;   v ← 0, end ← t + P where s[t]

netx: a CUBA group whose ``refDelay`` is P > 1 (the LIF writes 1); Lava's netx ignores the
field, so only a runner that honours it (ours) may run such a file.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import torch

from dietsnn_deploy.spine.network import Neuron
from dietsnn_deploy.spine.neurons.base import FixedState
from dietsnn_deploy.spine.neurons.lif import LIF, TRIANGLE
from dietsnn_deploy.spine.neurons.surrogate import Surrogate


def single_spike_scan(currents: torch.Tensor, state, leak, threshold,
                      surrogate: Surrogate = TRIANGLE):  # fmt: skip
    """Spikes (T, …) of single-spike neurons for ``currents`` (T, …) from ``state`` = (u,
    fired, steps since the image start) or None; returns (spikes, state). A neuron that can
    still fire has never fired, so STDB's Δt is the time since the image start."""
    if state is None:
        u = torch.zeros_like(currents[0])
        fired = torch.zeros_like(u)
        since = torch.zeros_like(u)
    else:
        u, fired, since = state
    spikes = []
    for current in currents:
        alive = 1.0 - fired
        u = (leak * u + current) * alive
        spike = surrogate.spike(u / threshold - 1.0, since) * alive
        fired = fired + spike.detach()
        u = u * (1.0 - spike.detach())
        since = since + 1.0
        spikes.append(spike)
    return torch.stack(spikes), (u, fired, since)


class SingleSpike(LIF):
    """LIF whose neurons fire at most once per image (module doc)."""

    name: ClassVar[str] = "single-spike"

    def scan(self, currents, state, leak, threshold):
        return single_spike_scan(currents, state, leak, threshold, self.surrogate)

    def refractory(self, timesteps: int) -> int:
        """Silent from its spike to the end of the image: T steps."""
        return timesteps

    # -- fixed point: the LIF's subthreshold step, held while refractory ---------------------
    def fixed_state(self, like: torch.Tensor, bias: torch.Tensor | None = None) -> FixedState:
        state = super().fixed_state(like, bias)
        state["end"] = torch.zeros_like(state["v"])  # last refractory step (0: never fired)
        state["t"] = torch.zeros((), dtype=torch.int64)
        return state

    def subthreshold(self, state: FixedState, current: torch.Tensor, neuron: Neuron) -> None:
        state["t"] += 1
        held = state["v"]
        super().subthreshold(state, current, neuron)
        state["active"] = state["end"] < state["t"]
        state["v"] = torch.where(state["active"], state["v"], held)

    def activation(self, state: FixedState, neuron: Neuron) -> torch.Tensor:
        return super().activation(state, neuron) & state["active"]

    def fixed_reset(self, state: FixedState, spikes: torch.Tensor, neuron: Neuron) -> None:
        super().fixed_reset(state, spikes, neuron)
        state["end"] = torch.where(spikes, state["t"] + neuron.refractory, state["end"])

    # -- netx ------------------------------------------------------------------------------
    def netx_fields(self, neuron: Neuron) -> dict[str, object]:
        return {**super().netx_fields(neuron), "refDelay": int(neuron.refractory)}

    @classmethod
    def reads_netx(cls, fields) -> bool:
        return fields.has("refDelay") and fields.scalar("refDelay") > 1

    @classmethod
    def from_netx(cls, fields, spiking: bool) -> Neuron:
        neuron = super().from_netx(fields, spiking)
        return replace(neuron, model=cls.name, refractory=fields.scalar("refDelay"))
