"""What the op counter needs to know about each neuron layer of a deployed network.

One row per neuron layer of the :class:`DeployedNetwork` (input, conv, dense, readout), read
off the network's own geometry (:mod:`dietsnn_deploy.spine.network`): each synapse's fan-out on
the folded geometry that runs on chip, and the ANN's MACs (eq. 16) on the original, unfolded
layers. The input row also carries the host conv's cost per analog frame and the fan-out of
an input pixel, which prices binary input frames (:mod:`dietsnn_deploy.spine.encodings`).
A network that takes spikes from off chip has no host row: its input layer (if any) is row 0,
else its first synaptic layer, whose source is the input spikes (:data:`INPUT_SPIKES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine import geometry
from dietsnn_deploy.spine.encodings import get_encoding
from dietsnn_deploy.spine.encodings.base import StepKind
from dietsnn_deploy.spine.network import (
    ConvLayer,
    DenseLayer,
    DeployedNetwork,
    FlattenLayer,
    HostEncoder,
    InputLayer,
)

Kind = Literal["input", "conv", "dense", "readout", "total"]

#: ``LayerGeometry.source`` of a layer fed by the spikes from off chip (SpikeRecord.input_spikes)
INPUT_SPIKES = -1


@dataclass(frozen=True)
class ConvGeometry:
    """A conv layer's synapses as deployed (folded kernel, stride and padding)."""

    in_shape: geometry.Shape3
    out_shape: geometry.Shape3
    kernel: geometry.Pair
    stride: geometry.Pair
    padding: geometry.Pair

    def fan_out_map(self) -> np.ndarray:
        """(H_in, W_in) int64: output neurons reached by one input spike at each position."""
        return geometry.conv_fan_out_map(
            self.in_shape, self.out_shape, self.kernel, self.stride, self.padding
        )


@dataclass(frozen=True)
class DenseGeometry:
    """A dense layer's synapses: every input neuron reaches all ``out_features``."""

    in_features: int
    out_features: int


@dataclass(frozen=True)
class LayerGeometry:
    """What the counter needs to know about one neuron layer.

    ``host_macs`` is the analog host conv's MACs per image (× the analog steps); for the input
    row, ``frames`` is the host conv's geometry on the input image (it prices binary frames)
    and ``step_kinds`` the encoding's kind of every step.
    """

    name: str
    kind: Kind
    index: int  # position in DeployedNetwork.layers and SpikeRecord.spikes
    shape: tuple[int, ...]
    source: int | None  # neuron layer whose spikes feed this one; None: the host; INPUT_SPIKES
    synapse: ConvGeometry | DenseGeometry | None
    ann_macs: int
    host_macs: int
    spiking: bool
    frames: ConvGeometry | None = None
    step_kinds: tuple[StepKind, ...] = ()

    @property
    def neurons(self) -> int:
        return int(np.prod(self.shape))


def _layer_name(name: str, readout: bool, pool: int) -> str:
    """``conv2``/``fc1``/``readout``, prefixed ``pool+`` when a pool is folded into it."""
    name = "readout" if readout else name
    return f"pool+{name}" if pool > 1 else name


def _host_row(net: DeployedNetwork) -> LayerGeometry:
    """The input layer of a host-encoded network: conv1, computed on the host."""
    encoder = net.encoder
    kinds = get_encoding(encoder.encoding).step_kinds(net.timesteps)
    analog_steps = sum(kind == "analog" for kind in kinds)
    return LayerGeometry(
        name="conv1",
        kind="input",
        index=0,
        shape=tuple(net.layers[0].shape),
        source=None,
        synapse=None,
        ann_macs=encoder.macs,
        host_macs=encoder.macs * analog_steps,
        spiking=net.layers[0].neuron.spiking,
        frames=ConvGeometry(
            encoder.in_shape, encoder.out_shape, encoder.kernel, encoder.stride, encoder.padding
        ),
        step_kinds=kinds,
    )


def counting_plan(net: DeployedNetwork) -> list[LayerGeometry]:
    """The geometry of every neuron layer of ``net``, named conv1 (host) … readout."""
    net.validate(netx_exact=False)
    layers = net.layers
    plan: list[LayerGeometry] = []
    if isinstance(net.encoder, HostEncoder):
        plan.append(_host_row(net))
    elif isinstance(layers[0], InputLayer):  # spikes into its a_in: no synapse, no ANN cost
        plan.append(
            LayerGeometry("input", "input", 0, tuple(layers[0].shape), None, None, 0, 0,
                          layers[0].neuron.spiking)
        )  # fmt: skip
    convs, denses = int(isinstance(net.encoder, HostEncoder)), 0  # the host's conv is conv1
    source = 0 if plan else INPUT_SPIKES
    for index, layer in enumerate(layers[len(plan) :], start=len(plan)):
        if isinstance(layer, FlattenLayer):
            continue
        readout = index == len(layers) - 1
        if isinstance(layer, ConvLayer):
            convs += 1
            name = _layer_name(f"conv{convs}", readout, layer.pool)
            synapse: ConvGeometry | DenseGeometry = ConvGeometry(
                tuple(layer.in_shape), tuple(layer.shape), layer.kernel, tuple(layer.stride),
                tuple(layer.padding),
            )  # fmt: skip
            kind: Kind = "readout" if readout else "conv"
        elif isinstance(layer, DenseLayer):
            denses += 1
            name = _layer_name(f"fc{denses}", readout, layer.pool)
            synapse = DenseGeometry(layer.in_features, layer.shape[0])
            kind = "readout" if readout else "dense"
        else:
            raise DeployError(f"layer {index}: unsupported kind {getattr(layer, 'kind', layer)}")
        plan.append(
            LayerGeometry(
                name=name,
                kind=kind,
                index=index,
                shape=tuple(layer.shape),
                source=source,
                synapse=synapse,
                ann_macs=layer.ann_macs(),
                host_macs=0,
                spiking=layer.neuron.spiking,
            )
        )
        source = index
    return plan


_STEP_PRICE = {"analog": "analog (host MACs)", "binary": "binary (host ACs)",
               "repeat": "the drive reused (no host work)"}  # fmt: skip


def network_notes(net: DeployedNetwork, plan: Sequence[LayerGeometry]) -> tuple[str, ...]:
    """The counting conventions particular to ``net``: how each input step is priced, which
    layers fire at most once per image, and how the readout is read."""
    if isinstance(net.encoder, HostEncoder):
        notes = [_encoding_note(net, plan)]
    elif net.synaptic_input:
        notes = [
            f"input: binary spikes from off chip into {plan[0].name}'s synapses; each costs "
            "that layer's fan-out in synaptic events (no host work)"
        ]
    else:
        notes = ["input: binary spikes from off chip into the input layer's a_in (no host work)"]
    single = [g.name for g in plan if net.layers[g.index].neuron.model == "single-spike"]
    if single:
        notes.append(
            f"single-spike neurons ({', '.join(single)}) fire at most once per image (refractory "
            "until the image ends): their spike rate is ≤ 1 by construction"
        )
    if net.readout == "spikes":
        notes.append("readout: class scores are the readout layer's spike counts over T steps")
    return tuple(notes)


def _encoding_note(net: DeployedNetwork, plan: Sequence[LayerGeometry]) -> str:
    runs: list[tuple[StepKind, int, int]] = []  # (kind, first step, last step), 1-based
    for step, kind in enumerate(plan[0].step_kinds, start=1):
        if runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1], step)
        else:
            runs.append((kind, step, step))
    steps = ", ".join(
        f"step {a}" + (f"–{b}" if b > a else "") + f" {_STEP_PRICE[kind]}" for kind, a, b in runs
    )
    return f"input encoding {net.encoder.encoding}: {steps}"
