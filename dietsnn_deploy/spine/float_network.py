"""The float spiking network before quantization, as graphs exchange it (NIR): a chain of
synaptic layers, each with the average pool in front of it and its neurons behind it.

Per step t, for layer l with input spikes s_{l−1}[t] (s₀[t] = the encoded image, e.g. the
normalised image x at every step for direct input)::

    I_l[t] = W_l ⋆ pool_k(s_{l−1}[t])                conv (stride, padding) or dense (flattened)
    u_l[t] = λ_l·u_l[t−1] + I_l[t]                   leak λ ∈ [0, 1]; λ = 1 is IF
    s_l[t] = [u_l[t] > θ_l];  u_l ← u_l − θ_l·s_l (soft) or u_l·(1 − s_l) (hard)
    V[t]   = V[t−1] + I_L[t]                         the last layer: an integrating readout

Units: u, θ and I in the units of the layer's input current (weights × inputs); no scale
changes here (the quantizer, :mod:`dietsnn_deploy.training.quantize`, sets the integer ones).
The network checks its own shapes and values when built, like a NIR node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine import geometry
from dietsnn_deploy.spine.neurons import RESETS

Pair = tuple[int, int]


@dataclass(frozen=True)
class FloatNeuron:
    """One layer's neurons: u ← λ·u + I, spike where u > θ, then the reset (module doc)."""

    leak: float
    threshold: float
    reset: str = "hard"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.leak) and 0.0 <= self.leak <= 1.0):
            raise DeployError(f"leak {self.leak} is outside [0, 1]")
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise DeployError(f"threshold {self.threshold} is not positive and finite")
        if self.reset not in RESETS:
            raise DeployError(f"unknown reset {self.reset!r}; choose from {', '.join(RESETS)}")


@dataclass(frozen=True)
class FloatLayer:
    """A synaptic layer: ``weight`` (O, I, kh, kw) for a conv or (O, I) for a dense layer
    (float64), the k×k average pool (stride k) applied to its input, and its neurons (None:
    the readout)."""

    name: str
    weight: np.ndarray
    neuron: FloatNeuron | None
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    pool: int = 1

    @property
    def is_conv(self) -> bool:
        return self.weight.ndim == 4

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of this layer's neurons for input spikes of ``in_shape`` (before the pool)."""
        if self.pool > 1:
            if len(in_shape) != 3:
                raise DeployError(f"{self.name}: a pool needs a (C, H, W) input, not {in_shape}")
            in_shape = geometry.pooled_shape(in_shape, self.pool)
        if self.is_conv:
            if len(in_shape) != 3 or in_shape[0] != self.weight.shape[1]:
                raise DeployError(
                    f"{self.name}: weight {self.weight.shape} does not take {in_shape}"
                )
            kernel = (int(self.weight.shape[2]), int(self.weight.shape[3]))
            out = geometry.conv_output_shape(in_shape, self.weight.shape[0], kernel, self.stride,
                                             self.padding)  # fmt: skip
            if min(out[1:]) < 1:
                raise DeployError(f"{self.name}: the conv leaves no output for input {in_shape}")
            return out
        if int(np.prod(in_shape)) != self.weight.shape[1]:
            raise DeployError(
                f"{self.name}: dense weight {self.weight.shape} does not take {in_shape} "
                f"({int(np.prod(in_shape))} inputs)"
            )
        return (int(self.weight.shape[0]),)


@dataclass(frozen=True)
class FloatNetwork:
    """The chain (module doc): the first layer is a conv on the image (it runs on the host when
    deployed), every layer but the last spikes, the last is the readout. ``metadata`` holds what
    a graph says beyond the equations (dt, T, encoding, normalisation, its producer)."""

    in_shape: tuple[int, int, int]
    layers: tuple[FloatLayer, ...]
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.layers) < 2:
            raise DeployError("a network needs at least one spiking layer and a readout")
        if not self.layers[0].is_conv or self.layers[0].pool != 1:
            raise DeployError(f"{self.layers[0].name}: the first layer must be a conv on the image")
        for index, layer in enumerate(self.layers):
            if not np.isfinite(layer.weight).all():
                raise DeployError(f"{layer.name}: weights are not finite")
            readout = index == len(self.layers) - 1
            if (layer.neuron is None) != readout:
                where = "the last layer must be" if readout else "only the last layer may be"
                raise DeployError(f"{layer.name}: {where} the (non-spiking) readout")
        self.shapes()

    def shapes(self) -> list[tuple[int, ...]]:
        """Each layer's neuron shape, checked along the chain."""
        shapes, shape = [], tuple(self.in_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
            shapes.append(shape)
        return shapes

    @property
    def num_classes(self) -> int:
        return int(self.layers[-1].weight.shape[0])

    @property
    def reset(self) -> str:
        """The reset every spiking layer shares (a mixed network is refused)."""
        resets = {layer.neuron.reset for layer in self.layers[:-1]}
        if len(resets) != 1:
            raise DeployError(f"layers mix resets {sorted(resets)}; one reset per network")
        return resets.pop()
