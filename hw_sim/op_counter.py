"""Event-driven operation counts of a deployed network, from the spikes that actually happen.

One row per neuron layer of the :class:`DeployedNetwork` (input, conv, dense, readout):

- ``synaptic_events`` (ACs): the accumulates this layer's synapses perform, i.e. for every spike
  of the layer feeding it, that neuron's true fan-out into this layer. Convs use the folded
  geometry that runs on chip (padding, stride and borders exact: the fan-out of an input
  pixel is the number of output positions whose window holds it — what an all-ones
  transposed conv gives — times the output channels); a dense layer's fan-out is its width;
  flatten is transparent. Fan-out is structural: zero weights still count.
- ``ann_macs``: eq. 16 of the paper for the same layer as an ANN, on the ORIGINAL geometry: a
  layer with ``pool = k`` was a k×-smaller kernel (conv) or k²×-narrower input (dense) on the
  pooled map, so its folded kernel / input width is divided back.
- ``host_macs``: the analog first layer (the host encoder's conv1), computed once per image
  because the input is static, the drive being reused at every step. Also its ``ann_macs``.
- ``neuron_updates`` = neurons × T; ``active_neuron_updates`` counts those with input in that
  step (≥ 1 synaptic event; the input layer's bias drive makes all of its updates active).
- ``spike_rate`` = spikes over all T steps / neurons (eq. 18).
- ``eq17_ops``: the paper's eq. 17 count of the same layer, the spike rate of the layer feeding
  it × its ANN MACs (0 for the analog first layer). Not an event count: after a k×k pool it is
  about k² times lower than ``synaptic_events`` (a pooled input of 1/k² counts as 1/k² of an
  op), and it ignores padding; it is what the paper's Table 3 reports, kept for comparison.

Counting needs only the geometry and a :class:`SpikeRecord`: :func:`counting_plan` reads it off
a deployed network, :func:`float_counting_plan` off the float PyTorch VGG (the same rows), whose
recorded spikes :func:`float_spike_record` lays out for the counter. Values are per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from dietsnn_deploy.deployed import (
    ConvLayer,
    DenseLayer,
    DeployedNetwork,
    FlattenLayer,
    InputLayer,
    Shape3,
    SpikeRecord,
)
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.models import DietNet, DietVGG
from dietsnn_deploy.quantize import synapses

Kind = Literal["input", "conv", "dense", "readout", "total"]

NOTES = (
    "host MACs of the analog first layer are counted once per image (static input: the drive "
    "is computed once and reused at every step)",
    "synaptic events = Σ spikes × structural fan-out on the folded (deployed) geometry; "
    "padding excluded, zero weights included",
    "ANN MACs (eq. 16) on the original, unfolded geometry",
    "input-layer neuron updates all count as active (bias drive at every step)",
)


def axis_fan_out(size_in: int, size_out: int, kernel: int, stride: int, padding: int):
    """For each input index, how many of the ``size_out`` windows (o·stride − padding, +kernel)
    contain it: one axis of the all-ones transposed conv."""
    counts = np.zeros(size_in, np.int64)
    for o in range(size_out):
        start = o * stride - padding
        counts[max(start, 0) : max(min(start + kernel, size_in), 0)] += 1
    return counts


@dataclass(frozen=True)
class ConvGeometry:
    """A conv layer's synapses as deployed (folded kernel, stride and padding)."""

    in_shape: Shape3
    out_shape: Shape3
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]

    def fan_out_map(self) -> np.ndarray:
        """(H_in, W_in) int64: output neurons reached by one input spike at each position."""
        (_, h_in, w_in), (c_out, h_out, w_out) = self.in_shape, self.out_shape
        rows = axis_fan_out(h_in, h_out, self.kernel[0], self.stride[0], self.padding[0])
        cols = axis_fan_out(w_in, w_out, self.kernel[1], self.stride[1], self.padding[1])
        return np.outer(rows, cols) * c_out


@dataclass(frozen=True)
class DenseGeometry:
    """A dense layer's synapses: every input neuron reaches all ``out_features``."""

    in_features: int
    out_features: int


@dataclass(frozen=True)
class LayerGeometry:
    """What the counter needs to know about one neuron layer."""

    name: str
    kind: Kind
    index: int  # position in DeployedNetwork.layers and SpikeRecord.spikes
    shape: tuple[int, ...]
    source: int | None  # index of the neuron layer whose spikes feed this one
    synapse: ConvGeometry | DenseGeometry | None
    ann_macs: int
    host_macs: int
    spiking: bool

    @property
    def neurons(self) -> int:
        return int(np.prod(self.shape))


def _conv_ann_macs(layer: ConvLayer, name: str) -> int:
    c_out, c_in, kh, kw = layer.weight.shape
    if kh % layer.pool or kw % layer.pool:
        raise DeployError(f"{name}: kernel {kh}×{kw} not divisible by its folded pool {layer.pool}")
    _, h_out, w_out = layer.shape
    return (kh // layer.pool) * (kw // layer.pool) * c_in * h_out * w_out * c_out


def _dense_ann_macs(layer: DenseLayer, name: str) -> int:
    f_out, f_in = layer.weight.shape
    if f_in % layer.pool**2:
        raise DeployError(f"{name}: {f_in} inputs not divisible by its folded pool {layer.pool}²")
    return f_in // layer.pool**2 * f_out


def _layer_name(name: str, readout: bool, pool: int) -> str:
    """``conv2``/``fc1``/``readout``, prefixed ``pool+`` when a pool is folded into it."""
    name = "readout" if readout else name
    return f"pool+{name}" if pool > 1 else name


def counting_plan(net: DeployedNetwork) -> list[LayerGeometry]:
    """The geometry of every neuron layer of ``net``, named conv1 (host) … readout."""
    layers = net.layers
    if not layers or not isinstance(layers[0], InputLayer):
        raise DeployError("deployed network must start with an input layer")
    first = layers[0]
    c_out, c_in, kh, kw = net.encoder.weight.shape
    if c_out != first.shape[0]:
        raise DeployError(f"host encoder has {c_out} channels, input layer {first.shape[0]}")
    host_macs = kh * kw * c_in * first.shape[1] * first.shape[2] * c_out
    plan = [
        LayerGeometry(
            name="conv1",
            kind="input",
            index=0,
            shape=tuple(first.shape),
            source=None,
            synapse=None,
            ann_macs=host_macs,
            host_macs=host_macs,
            spiking=first.neuron.spiking,
        )
    ]
    convs, denses, source = 1, 0, 0
    for index, layer in enumerate(layers[1:], start=1):
        if isinstance(layer, FlattenLayer):
            continue
        readout = index == len(layers) - 1
        if isinstance(layer, ConvLayer):
            convs += 1
            name = _layer_name(f"conv{convs}", readout, layer.pool)
            kernel = tuple(layer.weight.shape[2:])
            synapse = ConvGeometry(
                in_shape=tuple(layer.in_shape),
                out_shape=tuple(layer.shape),
                kernel=kernel,
                stride=tuple(layer.stride),
                padding=tuple(layer.padding),
            )
            macs = _conv_ann_macs(layer, name)
            kind: Kind = "readout" if readout else "conv"
        elif isinstance(layer, DenseLayer):
            denses += 1
            name = _layer_name(f"fc{denses}", readout, layer.pool)
            synapse = DenseGeometry(int(layer.weight.shape[1]), int(layer.weight.shape[0]))
            macs = _dense_ann_macs(layer, name)
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
                ann_macs=macs,
                host_macs=0,
                spiking=layer.neuron.spiking,
            )
        )
        source = index
    return plan


def _conv_out_shape(in_shape: tuple[int, ...], channels: int, kernel, stride, padding) -> Shape3:
    height = (in_shape[1] + 2 * padding[0] - kernel[0]) // stride[0] + 1
    width = (in_shape[2] + 2 * padding[1] - kernel[1]) // stride[1] + 1
    return (channels, height, width)


def float_counting_plan(model: DietNet) -> list[LayerGeometry]:
    """The plan :func:`counting_plan` gives the deployed network, read off a float VGG without
    quantizing it: same names, shapes, folded geometry and ANN MACs. Row ``index`` is the
    position of the layer's synapse in ``quantize.synapses(model)``, the layout of
    :func:`float_spike_record`. Direct input only (the first layer's MACs are counted once)."""
    if not isinstance(model, DietVGG):
        raise DeployError(
            f"op counting supports the VGG family; '{model.spec.name}' has residual additions"
        )
    if model.encoding != "direct":
        raise DeployError(
            f"op counting needs direct (static) input; this model uses {model.encoding} encoding"
        )
    syns = synapses(model)
    first = syns[0].module
    kernel = tuple(first.kernel_size)
    shape = _conv_out_shape(
        syns[0].in_shape, first.out_channels, kernel, first.stride, first.padding
    )
    host_macs = kernel[0] * kernel[1] * first.in_channels * int(np.prod(shape))
    plan = [LayerGeometry("conv1", "input", 0, shape, None, None, host_macs, host_macs, True)]
    convs, denses = 1, 0
    for index, syn in enumerate(syns[1:], start=1):
        readout, k, module = syn.key is None, syn.pool, syn.module
        if tuple(syn.in_shape) != tuple(shape):
            raise DeployError(f"layer {index}: receives {syn.in_shape}, previous layer is {shape}")
        if isinstance(module, torch.nn.Conv2d):
            convs += 1
            kh, kw = module.kernel_size
            kernel = (kh * k, kw * k)
            stride = tuple(v * k for v in module.stride)
            padding = tuple(v * k for v in module.padding)
            out = _conv_out_shape(shape, module.out_channels, kernel, stride, padding)
            synapse: ConvGeometry | DenseGeometry = ConvGeometry(
                tuple(shape), out, kernel, stride, padding
            )
            macs = kh * kw * module.in_channels * int(np.prod(out))
            name, kind = _layer_name(f"conv{convs}", readout, k), "conv"
        else:
            denses += 1
            in_features = int(np.prod(shape))
            if module.in_features * k * k != in_features:
                raise DeployError(
                    f"layer {index}: {module.in_features} inputs after a {k}× pool do not fit "
                    f"{in_features} spiking neurons"
                )
            out = (module.out_features,)
            synapse = DenseGeometry(in_features, module.out_features)
            macs = module.in_features * module.out_features
            name, kind = _layer_name(f"fc{denses}", readout, k), "dense"
        plan.append(
            LayerGeometry(
                name=name,
                kind="readout" if readout else kind,
                index=index,
                shape=out,
                source=index - 1,
                synapse=synapse,
                ann_macs=macs,
                host_macs=0,
                spiking=not readout,
            )
        )
        shape = out
    return plan


def float_spike_record(model: DietNet, spikes: dict[str, torch.Tensor]) -> SpikeRecord:
    """A float model's recorded spikes (``SNNOutput.spikes``: key → (T, B, …)) laid out as
    :func:`float_counting_plan` indexes them (the readout has none)."""
    keys = [syn.key for syn in synapses(model)]
    missing = [key for key in keys if key is not None and key not in spikes]
    if missing:
        raise DeployError(f"no recorded spikes for layer(s) {', '.join(missing)}")
    return SpikeRecord(spikes=[None if key is None else spikes[key] for key in keys], readout=None)


@dataclass(frozen=True)
class LayerCounts:
    """Per-image operation counts of one neuron layer (see module doc for each field)."""

    name: str
    kind: Kind
    neurons: int
    timesteps: int
    spikes: float
    synaptic_events: float
    eq17_ops: float
    ann_macs: float
    host_macs: float
    neuron_updates: float
    active_neuron_updates: float
    spikes_per_step: tuple[float, ...]
    events_per_step: tuple[float, ...]

    @property
    def spike_rate(self) -> float:
        """Spikes per neuron over all T steps (eq. 18)."""
        return self.spikes / self.neurons if self.neurons else 0.0


@dataclass(frozen=True)
class OpCounts:
    """Per-image counts of every neuron layer, averaged over ``num_images``."""

    layers: tuple[LayerCounts, ...]
    num_images: int
    timesteps: int
    notes: tuple[str, ...] = NOTES

    def total(self) -> LayerCounts:
        """Sums over layers; ``neurons`` counts spiking layers only, so spike_rate is theirs."""

        def add(field: str) -> float:
            return sum(getattr(layer, field) for layer in self.layers)

        def add_steps(field: str) -> tuple[float, ...]:
            return tuple(float(x) for x in np.sum([getattr(c, field) for c in self.layers], 0))

        return LayerCounts(
            name="total",
            kind="total",
            neurons=sum(c.neurons for c in self.layers if c.kind != "readout"),
            timesteps=self.timesteps,
            spikes=add("spikes"),
            synaptic_events=add("synaptic_events"),
            eq17_ops=add("eq17_ops"),
            ann_macs=add("ann_macs"),
            host_macs=add("host_macs"),
            neuron_updates=add("neuron_updates"),
            active_neuron_updates=add("active_neuron_updates"),
            spikes_per_step=add_steps("spikes_per_step"),
            events_per_step=add_steps("events_per_step"),
        )

    @property
    def first_layer_share(self) -> float:
        """The paper's c: share of the ANN's MACs in the analog first layer."""
        total = sum(c.ann_macs for c in self.layers)
        return sum(c.host_macs for c in self.layers) / total if total else 0.0

    @property
    def normalised_snn_ops(self) -> float:
        """The paper's b: synaptic events per ANN MAC over the layers after the first."""
        return self._per_spiking_ann_mac("synaptic_events")

    @property
    def normalised_eq17_ops(self) -> float:
        """The paper's b as its eq. 17 counts it (Σ input spike rate × ANN MACs), per ANN MAC
        over the layers after the first."""
        return self._per_spiking_ann_mac("eq17_ops")

    def _per_spiking_ann_mac(self, field: str) -> float:
        rest = sum(c.ann_macs - c.host_macs for c in self.layers)
        return sum(getattr(c, field) for c in self.layers) / rest if rest else 0.0


class _LayerSpikes:
    """One batch of one layer's spikes and the reductions the counter needs, each made once
    (reductions run on a uint8 view: much faster than on bool)."""

    def __init__(self, spikes: torch.Tensor) -> None:
        spikes = spikes if spikes.dtype == torch.bool else spikes != 0
        self.steps, self.batch = spikes.shape[:2]
        self.bytes = spikes.view(torch.uint8)

    @cached_property
    def per_pixel(self) -> torch.Tensor:
        """(T, H, W) int64: spikes summed over batch and channels (3-D layers)."""
        return self.bytes.sum(dim=(1, 2), dtype=torch.int64)

    @cached_property
    def per_step(self) -> torch.Tensor:
        """(T,) int64 spike totals."""
        if self.bytes.ndim == 5:
            return self.per_pixel.sum(dim=(1, 2))
        return self.bytes.reshape(self.steps, -1).sum(dim=1, dtype=torch.int64)

    @cached_property
    def samples_with_spikes(self) -> torch.Tensor:
        """(T,) int64: samples with at least one spike in the step."""
        flat = self.bytes.reshape(self.steps, self.batch, -1)
        return flat.amax(dim=2).sum(dim=1, dtype=torch.int64)

    @cached_property
    def any_channel(self) -> torch.Tensor:
        """(T·B, 1, H, W) float: 1 where any channel spiked (3-D layers)."""
        h, w = self.bytes.shape[-2:]
        return self.bytes.amax(dim=2).reshape(self.steps * self.batch, 1, h, w).float()


class OpCounter:
    """Accumulates counts over batches: ``counter.add(record)`` per batch, then ``result()``."""

    def __init__(self, plan: Sequence[LayerGeometry], timesteps: int) -> None:
        if timesteps < 1:
            raise DeployError(f"timesteps must be ≥ 1, got {timesteps}")
        self.plan, self.timesteps = list(plan), timesteps
        self.shapes = {g.index: g.shape for g in self.plan}
        self.fan_out = {
            g.index: torch.from_numpy(g.synapse.fan_out_map())
            for g in self.plan
            if isinstance(g.synapse, ConvGeometry)
        }
        zeros = [np.zeros(timesteps, np.int64) for _ in self.plan]
        self.spikes = [z.copy() for z in zeros]
        self.events = [z.copy() for z in zeros]
        self.active = [z.copy() for z in zeros]
        self.num_images = 0

    @classmethod
    def for_network(cls, net: DeployedNetwork) -> OpCounter:
        return cls(counting_plan(net), net.timesteps)

    def add(self, record: SpikeRecord) -> None:
        """Count one batch of spikes (T, B, *shape) per layer, bool or 0/1."""
        views: dict[int, _LayerSpikes] = {}

        def spikes(index: int) -> _LayerSpikes:
            if index not in views:
                views[index] = _LayerSpikes(self._spikes(record, index))
            return views[index]

        batch = spikes(self.plan[0].index).batch
        for row, geometry in enumerate(self.plan):
            if geometry.spiking:
                self.spikes[row] += spikes(geometry.index).per_step.numpy()
            if geometry.source is None:  # driven by the host's bias at every step
                self.active[row] += geometry.neurons * batch
                continue
            source = spikes(geometry.source)
            if source.batch != batch:
                raise DeployError(f"layer {geometry.source}: batch {source.batch}, not {batch}")
            events, active = self._synapse_counts(geometry, source)
            self.events[row] += events
            self.active[row] += active
        self.num_images += batch

    def _spikes(self, record: SpikeRecord, index: int) -> torch.Tensor:
        """Layer ``index``'s spikes (T, B, *shape), checked against the plan."""
        if index >= len(record.spikes) or record.spikes[index] is None:
            raise DeployError(f"spike record has no spikes for layer {index}")
        spikes, shape = record.spikes[index], self.shapes[index]
        if spikes.ndim != len(shape) + 2 or tuple(spikes.shape[2:]) != shape:
            raise DeployError(
                f"layer {index}: spikes {tuple(spikes.shape)} are not (T, B, {shape})"
            )
        if spikes.shape[0] != self.timesteps:
            raise DeployError(f"layer {index}: {spikes.shape[0]} steps, expected {self.timesteps}")
        return spikes

    def _synapse_counts(self, geometry: LayerGeometry, source: _LayerSpikes):
        """(events per step, active updates per step) for one batch of source spikes."""
        synapse = geometry.synapse
        if isinstance(synapse, DenseGeometry):
            events = source.per_step.numpy() * synapse.out_features
            return events, source.samples_with_spikes.numpy() * synapse.out_features
        events = (source.per_pixel * self.fan_out[geometry.index]).sum(dim=(1, 2)).numpy()
        window = torch.ones((1, 1, *synapse.kernel))
        reached = F.conv2d(
            source.any_channel, window, stride=synapse.stride, padding=synapse.padding
        )
        positions = (reached > 0).reshape(self.timesteps, -1).sum(dim=1).numpy()
        return events, positions * synapse.out_shape[0]

    def result(self) -> OpCounts:
        """Per-image averages of everything added so far."""
        if self.num_images == 0:
            raise DeployError("no spikes were counted (add at least one batch)")
        n = self.num_images
        rate = {
            g.index: float(spikes.sum()) / n / g.neurons
            for g, spikes in zip(self.plan, self.spikes, strict=True)
        }
        rows = []
        for g, spikes, events, active in zip(
            self.plan, self.spikes, self.events, self.active, strict=True
        ):
            rows.append(
                LayerCounts(
                    name=g.name,
                    kind=g.kind,
                    neurons=g.neurons,
                    timesteps=self.timesteps,
                    spikes=float(spikes.sum()) / n,
                    synaptic_events=float(events.sum()) / n,
                    eq17_ops=0.0 if g.source is None else rate[g.source] * g.ann_macs,
                    ann_macs=float(g.ann_macs),
                    host_macs=float(g.host_macs),
                    neuron_updates=float(g.neurons * self.timesteps),
                    active_neuron_updates=float(active.sum()) / n,
                    spikes_per_step=tuple(float(x) / n for x in spikes),
                    events_per_step=tuple(float(x) / n for x in events),
                )
            )
        return OpCounts(layers=tuple(rows), num_images=n, timesteps=self.timesteps)
