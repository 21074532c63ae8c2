"""The deployed network: one typed, integer description of a spiking network on Loihi.

The quantizer produces it; the netx writer and reader, the emulator, the Lava runner and the op
counter consume it. Every layer states its equation, computes its own output shape, fan-out,
input bound and ANN cost from :mod:`.geometry`, and checks its own fields
(:meth:`DeployedNetwork.validate` runs them all along the chain). Units are Loihi's
(:mod:`.loihi`): weights are 8-bit mantissas, a potential ``v`` counts 2⁻⁶ weight units.

A neuron layer's step (Lava's ``PyLifModelBitAcc`` with ``iDecay = 4096``: no current memory;
variants of the neuron model are in :mod:`.neurons`)::

    v[t] = trunc0(v[t−1]·(4096 − v_decay)/4096) + (a_in[t] << 6)      v clipped to ±(2²³ − 1)
    spike[t] = v[t] > (threshold << 6);  v[t][spike] = 0                (hard reset)

where ``a_in[t]`` is the synaptic input of the spikes the previous layer emitted at step t
(the input layer receives the host's drive instead). A network may instead take binary spikes
from off chip (:class:`SpikeInput`, as lava-dl's slayer networks do): into its input layer's
``a_in``, or through the synapses of a first conv or dense layer.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import ClassVar, Literal

import numpy as np
import torch

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine import geometry
from dietsnn_deploy.spine.encodings import get_encoding
from dietsnn_deploy.spine.layers import (
    DIGEST_SKIPS_DEFAULT,
    REFRACTORY_MAX,
    SIMULATED_THRESHOLD_MAX,
    ConvLayer,
    DenseLayer,
    FlattenLayer,
    InputLayer,
    Layer,
    Neuron,
    Pair,
    Shape3,
    SynapticLayer,
    is_integer,
    validate_layers,
    where,
)
from dietsnn_deploy.spine.loihi import A_IN_MAX, BIAS_MAX, INPUT_SPIKE_DRIVE
from dietsnn_deploy.spine.record import SpikeRecord
from dietsnn_deploy.spine.settings import check_timesteps

__all__ = [
    "REFRACTORY_MAX",
    "SIMULATED_THRESHOLD_MAX",
    "ConvLayer",
    "DeployedNetwork",
    "DenseLayer",
    "FlattenLayer",
    "HostEncoder",
    "InputLayer",
    "Layer",
    "LayerQuantization",
    "Neuron",
    "Pair",
    "Shape3",
    "SpikeInput",
    "SynapticLayer",
    "check_normalisation",
    "validate_layers",
    "where",
]

#: Normalisation values beyond this magnitude are refused: no pixel scale needs them, and
#: they would turn every drive into ±4095 (or 0) without a word.
NORMALISATION_LIMIT = 1e6


def check_normalisation(mean, std, channels: int, where: str) -> None:
    """Refuse an input normalisation that is not one finite value per channel within ±1e6,
    with std > 0 (``where`` names its source in the message)."""
    if len(mean) != channels or len(std) != channels:
        raise DeployError(f"{where}: mean and std need {channels} values each")
    for name, values in (("mean", mean), ("std", std)):
        if not all(math.isfinite(v) and abs(v) <= NORMALISATION_LIMIT for v in values):
            raise DeployError(f"{where}: {name} {tuple(values)} must be finite and within ±1e6")
    if not all(s > 0 for s in std):
        raise DeployError(f"{where}: std {tuple(std)} must be positive")


@dataclass(frozen=True)
class HostEncoder:
    """The analog first layer, computed on the host from the encoded input frames.

    drive[t] = clip(round(drive_scale · conv2d(frame[t], weight)), ±4095), where the frames
    are what ``encoding`` (:mod:`dietsnn_deploy.spine.encodings`) makes of the normalised
    image (x − mean)/std, x = pixels in [0, 1]; the drive enters the input layer as
    bias_mant-scaled current. ``weight`` is float (Cout, Cin, kH, kW) in the model's units;
    ``drive_scale`` is drive units (bias_mant) per float unit.
    """

    weight: np.ndarray
    stride: Pair
    padding: Pair
    drive_scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    in_shape: Shape3
    encoding: str = "direct"

    @property
    def kernel(self) -> Pair:
        return (int(self.weight.shape[2]), int(self.weight.shape[3]))

    @property
    def out_shape(self) -> Shape3:
        return geometry.conv_output_shape(
            self.in_shape, self.weight.shape[0], self.kernel, self.stride, self.padding
        )

    @property
    def macs(self) -> int:
        """MACs of one analog frame through the host conv (eq. 16)."""
        return geometry.conv_macs(self.kernel, self.in_shape[0], self.out_shape)

    def fan_out_map(self) -> np.ndarray:
        """(H, W) fan-out of one input pixel per channel into the input layer."""
        return geometry.conv_fan_out_map(
            self.in_shape, self.out_shape, self.kernel, self.stride, self.padding
        )

    def check(self, input_shape: tuple[int, ...]) -> None:
        """Finite 4-d weight, channel counts, sane normalisation and drive scale, and an output
        of the input layer's shape."""
        weight = np.asarray(self.weight)
        if weight.ndim != 4 or weight.dtype.kind != "f" or not np.all(np.isfinite(weight)):
            raise DeployError(
                f"encoder: weight must be a finite float 4-d array, got {weight.shape}"
            )
        if len(self.in_shape) != 3 or min(self.in_shape) < 1:
            raise DeployError(f"encoder: in_shape must be positive (C, H, W), got {self.in_shape}")
        channels = self.in_shape[0]
        if weight.shape[1] != channels:
            raise DeployError(
                f"encoder: weight has {weight.shape[1]} input channels, in_shape {self.in_shape}"
            )
        check_normalisation(self.mean, self.std, channels, "encoder")
        if not (math.isfinite(self.drive_scale) and self.drive_scale > 0):
            raise DeployError(f"encoder: drive_scale must be positive, got {self.drive_scale}")
        if min(self.stride) < 1 or min(self.padding) < 0:
            raise DeployError(f"encoder: bad stride {self.stride} or padding {self.padding}")
        get_encoding(self.encoding)  # an unknown name is refused
        if self.out_shape != tuple(input_shape):
            raise DeployError(
                f"layer 0 (input): shape {tuple(input_shape)} is not the encoder output "
                f"{self.out_shape}"
            )


@dataclass(frozen=True)
class SpikeInput:
    """Binary spikes from off chip, s[t] ∈ {0, 1} of ``shape`` at every step t.

    Into an input layer they enter as drive through netx's input transform (what lava-dl
    sets as the input neurons' ``bias_mant`` each step)::

        drive[t] = drive_per_spike · s[t] + drive_bias        bias_mant units; u = drive << 6

    (netx's defaults 64 and 0: a spike is 1.0 at 6 fractional bits). When the network starts
    with a conv or dense layer they reach its synapses as they are (a_in = W·s), as lava-dl's
    ``netx.hdf5.Network`` takes them on ``net.inp``. ``shape`` is (C, H, W) or (features,).
    Where they come from is the run's choice (:func:`hw_sim.host.spike_drive`): Bernoulli
    draws of pixel intensities, or recorded rasters.
    """

    shape: tuple[int, ...]
    drive_per_spike: int = field(default=INPUT_SPIKE_DRIVE, metadata=DIGEST_SKIPS_DEFAULT)
    drive_bias: int = field(default=0, metadata=DIGEST_SKIPS_DEFAULT)
    encoding: ClassVar[str] = "spikes"

    @property
    def transformed(self) -> bool:
        """Whether the input transform differs from netx's default (64, 0)."""
        return (self.drive_per_spike, self.drive_bias) != (INPUT_SPIKE_DRIVE, 0)

    def drive(self, spikes: torch.Tensor) -> torch.Tensor:
        """The input layer's drive of binary spikes (the equation above), int64."""
        return spikes.to(torch.int64) * self.drive_per_spike + self.drive_bias

    def check(self, first: Layer) -> None:
        """A positive 1-d or 3-d shape that the first layer takes, and a transform whose drive
        stays within 13 bits (an input layer's only)."""
        if len(self.shape) not in (1, 3) or min(self.shape) < 1:
            raise DeployError(f"spike input: shape must be (C, H, W) or (n,), got {self.shape}")
        if isinstance(first, InputLayer) and tuple(first.shape) != tuple(self.shape):
            raise DeployError(f"spike input {self.shape} is not the input layer's {first.shape}")
        weight, bias = self.drive_per_spike, self.drive_bias
        if not (is_integer(weight) and is_integer(bias)):
            raise DeployError(f"spike input: transform ({weight}, {bias}) must be integers")
        if max(abs(bias), abs(weight + bias)) > BIAS_MAX:
            raise DeployError(
                f"spike input: drive {bias}…{weight + bias} of the transform (weight {weight}, "
                f"bias {bias}) exceeds the 13-bit bias range ±{BIAS_MAX}"
            )
        if self.transformed and not isinstance(first, InputLayer):
            raise DeployError("spike input: an input transform needs an input layer")

    def takes_images(self, image_shape: tuple[int, ...]) -> bool:
        """Whether images of ``image_shape`` (C, H, W) become these spikes: the same map, or
        its C-major flattening for a 1-d input."""
        if len(self.shape) == 3:
            return tuple(image_shape) == tuple(self.shape)
        return int(np.prod(image_shape)) == self.shape[0]


#: How class scores are read: the readout's potential v after T steps (our exporter's
#: non-spiking integrator), or its spike count over T steps (lava-dl slayer's convention).
Readout = Literal["potential", "spikes"]
READOUTS: tuple[Readout, ...] = ("potential", "spikes")


@dataclass(frozen=True)
class LayerQuantization:
    """How one layer was quantized: integer scale and what it cost.

    ``input_bound`` is the worst-case per-step |input| in weight units: for a synaptic layer
    :meth:`ConvLayer.input_bound` / :meth:`DenseLayer.input_bound`, for the input layer the
    largest |drive| on the calibration images; ``None`` when unknown (older files).
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
    """A spiking network as it runs on Loihi: its input, then netx layers in order.

    With a :class:`HostEncoder`, ``layers[0]`` is the :class:`InputLayer` the host drives;
    with a :class:`SpikeInput`, the first layer is an input layer or a conv/dense layer the
    spikes reach through its synapses. The last layer is the readout: with ``readout``
    "potential" a non-spiking integrator whose v after ``timesteps`` steps gives the class
    scores, with "spikes" a spiking layer whose spike counts give them.
    """

    encoder: HostEncoder | SpikeInput
    layers: list[Layer]
    timesteps: int
    num_classes: int
    dataset: str = ""
    arch: str = ""
    quantization: list[LayerQuantization] = field(default_factory=list)
    readout: Readout = field(default="potential", metadata=DIGEST_SKIPS_DEFAULT)

    @property
    def synaptic_input(self) -> bool:
        """True when spikes enter through the first layer's synapses (no input layer)."""
        return not isinstance(self.layers[0], InputLayer)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """What each step's input is: the input layer's drive, or the spikes into layer 0."""
        if isinstance(self.encoder, SpikeInput):
            return tuple(self.encoder.shape)
        return tuple(self.layers[0].shape)

    def class_scores(self, record: SpikeRecord):
        """(B, num_classes) int64 scores of a run: the readout potential, or the readout's
        spike counts over the T steps (``readout`` "spikes")."""
        if self.readout == "spikes":
            return record.spikes[-1].sum(dim=0, dtype=torch.int64)
        return record.readout

    @property
    def neuron_layers(self) -> list[tuple[int, Layer]]:
        """(index, layer) of every layer with neurons (all but flatten)."""
        return [(i, layer) for i, layer in enumerate(self.layers) if layer.kind != "flatten"]

    def digest(self) -> str:
        """SHA-256 of everything that determines this network's results (every array, neuron
        parameter, encoder value, T, class count, names and the quantization report), in a
        canonical form: integer arrays as int64, float arrays and numbers as float64."""
        hasher = hashlib.sha256()
        _feed(hasher, self)
        return hasher.hexdigest()

    def validate(self, *, netx_exact: bool = True) -> None:
        """The layer chain (:func:`validate_layers`), the encoder, T and the class count."""
        if self.readout not in READOUTS:
            raise DeployError(f"unknown readout {self.readout!r}; choose from potential, spikes")
        spikes = isinstance(self.encoder, SpikeInput)
        validate_layers(
            self.layers,
            netx_exact=netx_exact,
            input_shape=self.encoder.shape if spikes else (),
            readout=self.readout,
        )
        self.encoder.check(self.layers[0] if spikes else self.layers[0].shape)
        check_timesteps(self.timesteps, "timesteps")
        if not is_integer(self.num_classes) or self.layers[-1].shape != (self.num_classes,):
            raise DeployError(
                f"num_classes {self.num_classes} does not match the readout size "
                f"{self.layers[-1].shape}"
            )


def _is_default(value, default) -> bool:
    return value is None if default is None else (value is not None and value == default)


def _feed(hasher, value) -> None:
    """Canonical bytes of ``value`` (dataclasses, sequences, arrays, numbers, strings)."""
    if isinstance(value, np.ndarray):
        kind = np.float64 if value.dtype.kind == "f" else np.int64
        hasher.update(f"array{value.shape}".encode())
        hasher.update(np.ascontiguousarray(value, dtype=kind).tobytes())
    elif is_dataclass(value):
        hasher.update(type(value).__name__.encode())
        for item in fields(value):
            held = getattr(value, item.name)
            if dict(item.metadata) == DIGEST_SKIPS_DEFAULT and _is_default(held, item.default):
                continue  # a field added later, at its default: digests written before hold
            hasher.update(item.name.encode())
            _feed(hasher, held)
    elif isinstance(value, list | tuple):
        hasher.update(f"seq{len(value)}".encode())
        for item in value:
            _feed(hasher, item)
    elif isinstance(value, np.generic):
        _feed(hasher, value.item())
    elif isinstance(value, float):
        hasher.update(f"f{value!r}".encode())
    else:
        hasher.update(f"{type(value).__name__}:{value!r};".encode())
