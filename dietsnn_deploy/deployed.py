"""The deployed network: one typed, integer description of a DIET-SNN on Loihi.

The quantizer produces it, the netx exporter writes it, the netx reader rebuilds it, and the
emulator, the Lava runner and the op counter consume it. Everything here is in Loihi's integer
units: weights are 8-bit mantissas, a neuron's potential ``v`` lives in units of ``2**-6`` of a
weight unit (Lava adds ``a_in << 6`` each step), thresholds and decays are the netx CUBA fields.

Neuron step (Lava ``PyLifModelBitAcc`` with ``iDecay = 4096``, so the current has no memory)::

    v[t] = trunc0(v[t-1] * (4096 - v_decay) / 4096) + (a_in[t] << 6) + (bias << 6)
    spike[t] = v[t] > (threshold << 6);  v[t][spike] = 0        (hard reset)

with ``v`` clipped to ±(2**23 − 1). A DIET-SNN layer with leak λ and threshold θ (float) maps
to ``v_decay = round(4096·(1 − λ))`` and ``threshold = round(θ·scale)`` with the layer's
integer ``scale`` (weight units per float unit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

#: Loihi's fixed-point limits used across the toolchain.
DECAY_UNITY = 4096  # 12-bit decays: v ← v·(4096 − v_decay)/4096
STATE_SHIFT = 6  # a_in, bias and threshold enter v shifted left by 6 bits
WEIGHT_MIN, WEIGHT_MAX = -256, 254  # 8-bit mixed-sign weights (even values)
THRESHOLD_MAX = 2**17 - 1  # vThMant, 17-bit unsigned
BIAS_MAX = 4095  # bias_mant, 13-bit signed on hardware
V_LIMIT = 2**23 - 1  # v is clipped to ±V_LIMIT (24-bit state)
A_IN_MAX = 2**15 - 1  # a neuron's a_in port is int16 on hardware (the simulator passes more)

Shape3 = tuple[int, int, int]  # (channels, height, width)


@dataclass(frozen=True)
class Neuron:
    """CUBA leaky integrate-and-fire neuron of one layer (netx ``neuron`` group).

    ``v_decay`` is the 12-bit membrane decay (0 = no leak, 4096 = full leak); ``threshold`` is
    vThMant (spike when ``v > threshold << 6``); ``spiking=False`` marks the readout
    integrator, whose threshold is set out of reach and whose potential gives the logits.
    """

    v_decay: int
    threshold: int
    spiking: bool = True


@dataclass(frozen=True)
class HostEncoder:
    """The analog first layer, computed on the host (direct input encoding).

    drive = clip(round(drive_scale · conv2d((x − mean)/std, weight)), ±BIAS_MAX), where ``x``
    is the image as pixels scaled to [0, 1], injected as the ``bias`` (bias_mant) of the netx
    ``input`` layer, constant over the T steps.
    ``weight`` is float (Cout, Cin, kH, kW) in the model's units; ``drive_scale`` is in
    drive units (bias_mant) per float unit.
    """

    weight: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]
    drive_scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    in_shape: Shape3


@dataclass(frozen=True)
class InputLayer:
    """netx ``input`` layer: neurons driven by the host encoder's constant drive."""

    shape: Shape3
    neuron: Neuron
    kind: Literal["input"] = "input"


@dataclass(frozen=True)
class ConvLayer:
    """netx ``conv`` layer: integer weights (Cout, Cin, kH, kW), cross-correlation as F.conv2d.

    ``pool`` is the side of an average pool that was folded into this layer (1 = none): the
    kernel is the original one expanded by ``kron(·, ones(pool, pool))`` with stride and
    padding multiplied by ``pool``, and the threshold multiplied by ``pool**2``.
    """

    weight: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]
    in_shape: Shape3
    shape: Shape3
    neuron: Neuron
    pool: int = 1
    kind: Literal["conv"] = "conv"


@dataclass(frozen=True)
class FlattenLayer:
    """netx ``flatten`` layer: C-major flatten of the previous (C, H, W) output."""

    in_shape: Shape3
    kind: Literal["flatten"] = "flatten"

    @property
    def shape(self) -> tuple[int]:
        return (int(np.prod(self.in_shape)),)


@dataclass(frozen=True)
class DenseLayer:
    """netx ``dense`` layer: integer weights (out, in); ``pool`` as in :class:`ConvLayer`
    (a pool folded before the flatten repeats each weight over its pool window)."""

    weight: np.ndarray
    neuron: Neuron
    pool: int = 1
    kind: Literal["dense"] = "dense"

    @property
    def shape(self) -> tuple[int]:
        return (int(self.weight.shape[0]),)


Layer = InputLayer | ConvLayer | FlattenLayer | DenseLayer


@dataclass(frozen=True)
class LayerQuantization:
    """How one layer was quantized: integer scale and what it cost.

    ``input_bound`` is the worst-case per-step |input| in weight units: for a synaptic layer
    the largest over its neurons of max(Σ W⁺, Σ |W⁻|) over the fan-in (spikes are 0 or 1, so
    that is the most one step can deliver), for the input layer the largest |drive| on the
    calibration images; ``None`` when unknown (files written before the field existed).
    """

    name: str
    scale: float  # integer units per float unit
    weight_rmse: float  # RMS error of weight/scale against the float weights (float units)
    weight_saturated: float  # fraction of weights clipped to the 8-bit range
    threshold: int
    v_decay: int
    input_bound: int | None = None

    @property
    def exceeds_int16(self) -> bool:
        """True if one step's input can overflow Loihi's int16 ``a_in`` port."""
        return self.input_bound is not None and self.input_bound > A_IN_MAX


@dataclass
class DeployedNetwork:
    """A DIET-SNN as it runs on Loihi: host encoder, then netx layers in order.

    ``layers[0]`` is the :class:`InputLayer`; the last layer is the non-spiking readout whose
    potential after ``timesteps`` steps gives the class scores.
    """

    encoder: HostEncoder
    layers: list[Layer]
    timesteps: int
    num_classes: int
    dataset: str = ""
    arch: str = ""
    quantization: list[LayerQuantization] = field(default_factory=list)

    @property
    def neuron_layers(self) -> list[tuple[int, Layer]]:
        """(index, layer) of every layer with neurons (all but flatten)."""
        return [(i, layer) for i, layer in enumerate(self.layers) if layer.kind != "flatten"]


@dataclass
class SpikeRecord:
    """What one run of a batch produced, layer by layer, in the delay-free schedule.

    ``spikes[i]`` is a bool tensor (T, B, *layers[i].shape) for every spiking layer ``i`` and
    ``None`` for flatten and the readout; step t of layer i is the step at which layer i+1
    receives those spikes. ``readout`` is the readout layer's potential ``v`` after T steps
    (B, num_classes), int64, in units of ``2**-6`` weight units.
    """

    spikes: list  # list[torch.Tensor | None]
    readout: object  # torch.Tensor (B, num_classes), int64
