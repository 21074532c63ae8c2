"""What a neuron model is: the template every model fills in (Lava's LIF template: one
step = subthreshold dynamics, then activation, then reset; variants override the last two).

Float side (training, PyTorch, differentiable): potentials in the model's float units.
Fixed-point side (emulator, int64): potentials ``v`` in 2⁻⁶ weight units (:mod:`..loihi`);
``current`` is what enters v this step, already shifted (``a_in << 6``).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch

from dietsnn_deploy.spine.network import Neuron
from dietsnn_deploy.spine.neurons.surrogate import SURROGATES, Surrogate

Reset = Literal["soft", "hard"]
FixedState = dict[str, torch.Tensor]


class NeuronModel:
    """One neuron model; ``reset`` selects the float model's reset (soft for DIET training,
    hard for hardware-aware fine-tuning, as the chip resets) and ``surrogate`` the spike's
    pseudo-derivative (:mod:`.surrogate`)."""

    name: ClassVar[str]

    def __init__(self, reset: Reset = "soft", surrogate: str = "triangle") -> None:
        self.reset = reset
        self.surrogate: Surrogate = SURROGATES[surrogate]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reset={self.reset!r}, surrogate={self.surrogate.name!r})"

    def with_reset(self, reset: Reset) -> NeuronModel:
        """The same model and surrogate with float ``reset``."""
        return type(self)(reset, self.surrogate.name)

    def with_surrogate(self, surrogate: str) -> NeuronModel:
        """The same model and reset with the ``surrogate`` gradient."""
        return type(self)(self.reset, surrogate)

    def refractory(self, timesteps: int) -> int:
        """The refractory period a deployed layer of this model needs at T steps (0: none)."""
        return 0

    # -- float scan (training) -------------------------------------------------------------
    def scan(
        self,
        currents: torch.Tensor,
        state,
        leak: torch.Tensor,
        threshold: torch.Tensor,
    ) -> tuple[torch.Tensor, object]:
        """Spikes (T, …) for input ``currents`` (T, …) from the neurons' ``state`` (what the
        last scan returned; None at the image start); returns (spikes, state after the last
        step). The state is the model's own (the LIF's: the potential u)."""
        raise NotImplementedError

    # -- fixed point (emulator) ------------------------------------------------------------
    def fixed_state(self, like: torch.Tensor, bias: torch.Tensor | None = None) -> FixedState:
        """The neurons' state at the start of an image: ``v`` = 0 (int64, shape of ``like``),
        and the layer's constant ``bias`` = bias_mant << 6 (broadcastable to ``like``) if any."""
        state = {"v": torch.zeros_like(like, dtype=torch.int64)}
        if bias is not None:
            state["bias"] = bias
        return state

    def subthreshold(self, state: FixedState, current: torch.Tensor, neuron: Neuron) -> None:
        raise NotImplementedError

    def activation(self, state: FixedState, neuron: Neuron) -> torch.Tensor:
        raise NotImplementedError

    def fixed_reset(self, state: FixedState, spikes: torch.Tensor, neuron: Neuron) -> None:
        raise NotImplementedError

    def fixed_step(self, state: FixedState, current: torch.Tensor, neuron: Neuron) -> torch.Tensor:
        """One bit-accurate step in place on ``state``; returns the spikes (bool)."""
        self.subthreshold(state, current, neuron)
        spikes = self.activation(state, neuron)
        self.fixed_reset(state, spikes, neuron)
        return spikes

    # -- netx codec (exporters) ------------------------------------------------------------
    def netx_fields(self, neuron: Neuron) -> dict[str, object]:
        """The datasets of the netx ``neuron`` group for ``neuron`` (name → value)."""
        raise NotImplementedError

    @classmethod
    def reads_netx(cls, fields) -> bool:
        """True if a netx ``neuron`` group with these datasets is this model's."""
        raise NotImplementedError

    @classmethod
    def from_netx(cls, fields, spiking: bool) -> Neuron:
        """The :class:`Neuron` a netx ``neuron`` group describes; ``fields`` reads the group
        (``string``, ``scalar``, ``has``, ``fail``: :class:`exporters.netx.fields.Fields`)."""
        raise NotImplementedError

    # -- hardware-aware rounding (fine-tuning) ---------------------------------------------
    def hardware(
        self, leak: torch.Tensor, threshold: torch.Tensor, unit: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(leak, threshold) as the chip will hold them, with straight-through gradients;
        ``unit`` is the layer's threshold unit (scale × k²)."""
        raise NotImplementedError
