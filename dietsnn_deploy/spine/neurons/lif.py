"""DIET-SNN's leaky integrate-and-fire neuron, as one unit (the float reference scan here,
the fused one that training runs in :mod:`.lif_fused`).

Float (training), per step t, leak λ ∈ [0, 1], threshold θ > 0 (the paper's eq. 9–10)::

    u[t] = λ·u[t-1] + I[t]              membrane potential, in the units of the current I
    z[t] = u[t]/θ − 1                   spike s[t] = 1 when z > 0, i.e. u > θ
    u[t] ← u[t] − θ·s[t]                soft reset (DIET-SNN);  u[t] ← u[t]·(1 − s[t])  hard

The spike's derivative is the surrogate γ·max(0, 1 − |z|), γ = 0.3 (eq. 12), or STDB's
(:mod:`.surrogate`); the reset uses
the spike as a constant (the official code; eq. 14: ∂u/∂θ = −s), and gradients reach θ and λ
through z and the recurrence, so one backward pass trains all three.

Fixed point (Lava ``PyLifModelBitAcc``), ``u`` and ``v`` in 2⁻⁶ weight units, ``c[t]`` =
``a_in[t] << 6``, ``b`` = ``bias << 6`` (0 without a bias), ``decay``/``wrap`` of
:mod:`..loihi`::

    u[t] = wrap(decay(u[t-1], iDecay) + c[t])       iDecay = 4096 (our exporter's): u[t] = wrap(c[t])
    v[t] = decay(v[t-1], vDecay) + u[t] + b,  clipped to ±(2²³ − 1)
    s[t] = v[t] > vThMant << 6;   v[t] ← 0 where s[t]         (hard reset; u is not reset)

netx: a CUBA (or LOIHI, the same to netx) neuron group with iDecay, vDecay, vThMant, refDelay
1, gradedSpike False; our exporter writes iDecay 4096.
Hardware-aware rounding: λ → 1 − round(4096·(1 − λ))/4096, θ → round(θ·u)/u (straight-through).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from dietsnn_deploy.spine.loihi import (
    DECAY_UNITY,
    STATE_SHIFT,
    V_LIMIT,
    decay,
    fake_leak,
    fake_threshold,
    wrap_current,
)
from dietsnn_deploy.spine.network import Neuron
from dietsnn_deploy.spine.neurons.base import FixedState, NeuronModel, Reset
from dietsnn_deploy.spine.neurons.lif_fused import fused_lif_scan
from dietsnn_deploy.spine.neurons.surrogate import SURROGATE_GAMMA, SURROGATES, Surrogate, spike_fn

TRIANGLE = SURROGATES["triangle"]

#: netx neuron types that build Lava's LIF (netx treats the two alike)
NETX_TYPES = ("CUBA", "LOIHI")

__all__ = ["LIF", "SURROGATE_GAMMA", "lif_scan", "lif_step", "spike_fn"]


def lif_step(
    u: torch.Tensor,
    current: torch.Tensor,
    leak: torch.Tensor,
    threshold: torch.Tensor,
    reset: Reset = "soft",
    surrogate: Surrogate = TRIANGLE,
    since: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One float step: returns (spike, u after reset); ``since`` = steps since the last
    spike, for a surrogate that uses it."""
    u = leak * u + current
    spike = surrogate.spike(u / threshold - 1.0, since)
    fired = spike.detach()  # the reset treats the spike as a constant
    u = u - threshold * fired if reset == "soft" else u * (1.0 - fired)
    return spike, u


def steps_since(since: torch.Tensor, spike: torch.Tensor) -> torch.Tensor:
    """Steps since the last spike, for the next step: 1 after a spike, ``since`` + 1 otherwise
    (it is 0 at the image's first step)."""
    return torch.where(spike.detach() > 0, 1.0, since + 1.0)


def lif_scan(
    currents: torch.Tensor,
    state,
    leak: torch.Tensor,
    threshold: torch.Tensor,
    reset: Reset = "soft",
    surrogate: Surrogate = TRIANGLE,
):
    """Run :func:`lif_step` over the leading time axis of ``currents`` (T, ...).

    ``currents`` may be an expanded view of one constant current (direct encoding); ``state``
    is carried in from earlier steps (``None`` = zeros): the potential u, or (u, steps since
    the last spike) for a surrogate that uses time. Returns (spikes (T, ...), state).
    """
    timed = surrogate.uses_time
    if state is None:
        u = torch.zeros_like(currents[0])
        since = torch.zeros_like(u) if timed else None
    else:
        u, since = state if timed else (state, None)
    spikes = []
    for current in currents:
        spike, u = lif_step(u, current, leak, threshold, reset, surrogate, since)
        if timed:
            since = steps_since(since, spike)
        spikes.append(spike)
    return torch.stack(spikes), ((u, since) if timed else u)


class LIF(NeuronModel):
    """DIET-SNN's LIF neuron (module doc)."""

    name: ClassVar[str] = "lif"

    def scan(self, currents, state, leak, threshold):
        """The fused scan (:mod:`.lif_fused`, the triangle's gradient: :func:`lif_scan`'s
        spikes in less memory), or :func:`lif_scan` for a surrogate that uses time."""
        if self.surrogate.uses_time:
            return lif_scan(currents, state, leak, threshold, self.reset, self.surrogate)
        return fused_lif_scan(currents, state, leak, threshold, self.reset)

    # -- fixed point -----------------------------------------------------------------------
    def subthreshold(self, state: FixedState, current: torch.Tensor, neuron: Neuron) -> None:
        """u and v of the module doc. With iDecay = 4096, ``current`` arrives already wrapped
        (the emulator wraps all steps at once); otherwise u is state and wrapped here."""
        if neuron.i_decay != DECAY_UNITY:
            u = state.get("u")
            current = wrap_current(current if u is None else decay(u, neuron.i_decay) + current)
            state["u"] = current
        v = decay(state["v"], neuron.v_decay) + current
        if "bias" in state:
            v = v + state["bias"]
        state["v"] = v.clamp_(-V_LIMIT, V_LIMIT)

    def activation(self, state: FixedState, neuron: Neuron) -> torch.Tensor:
        return state["v"] > (neuron.threshold << STATE_SHIFT)

    def fixed_reset(self, state: FixedState, spikes: torch.Tensor, neuron: Neuron) -> None:
        state["v"].masked_fill_(spikes, 0)

    # -- netx ------------------------------------------------------------------------------
    def netx_fields(self, neuron: Neuron) -> dict[str, object]:
        return {
            "type": "CUBA",
            "iDecay": int(neuron.i_decay),
            "vDecay": int(neuron.v_decay),
            "vThMant": int(neuron.threshold),
            "refDelay": 1,
            "gradedSpike": False,
        }

    @classmethod
    def reads_netx(cls, fields) -> bool:
        return True  # the default: any CUBA group is refused or read here

    @classmethod
    def from_netx(cls, fields, spiking: bool) -> Neuron:
        kind = fields.string("type")
        if kind not in NETX_TYPES:
            raise fields.fail(f"neuron type '{kind}' is not supported (only CUBA and LOIHI)")
        if fields.has("messageBits"):
            raise fields.fail("neuron/messageBits is not supported (netx fails to load it)")
        if fields.has("gradedSpike") and fields.scalar("gradedSpike"):
            raise fields.fail("graded spikes are not supported (netx builds binary-spike LIF)")
        return Neuron(
            v_decay=fields.scalar("vDecay"),
            threshold=fields.scalar("vThMant"),
            spiking=spiking,
            i_decay=fields.scalar("iDecay"),
        )

    # -- hardware-aware rounding -----------------------------------------------------------
    def hardware(self, leak, threshold, unit):
        return fake_leak(leak), fake_threshold(threshold, unit)
