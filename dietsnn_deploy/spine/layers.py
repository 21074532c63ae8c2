"""The layers of a deployed network: neurons, the input layer, conv, flatten and dense layers,
each stating its equation, computing its own shapes, fan-out, input bound and ANN cost from
:mod:`.geometry`, and checking its own fields; :func:`validate_layers` checks the chain.
Units are Loihi's (:mod:`.loihi`): weights are 8-bit mantissas, a potential ``v`` counts 2⁻⁶
weight units."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine import geometry
from dietsnn_deploy.spine.loihi import (
    BIAS_MAX,
    DECAY_UNITY,
    DELAY_MAX,
    STATE_SHIFT,
    THRESHOLD_MAX,
    check_weight_mantissas,
)

Shape3 = geometry.Shape3
Pair = geometry.Pair

#: Largest threshold mantissa a simulator takes (``threshold << 6`` stays a 32-bit integer).
SIMULATED_THRESHOLD_MAX = 2**25 - 1

#: Longest refractory period a layer may ask for (steps; a single-spike layer's is T).
REFRACTORY_MAX = 2**16


#: Field metadata of a field added after files with digests were written: the digest skips it
#: while it holds its default, so those files keep their digests.
DIGEST_SKIPS_DEFAULT = {"digest": "skips default"}


def _optional(default):
    return field(default=default, metadata=DIGEST_SKIPS_DEFAULT)


def is_integer(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


@dataclass(frozen=True)
class Neuron:
    """Parameters of one layer's neurons (the netx ``neuron`` group).

    ``v_decay`` is the 12-bit membrane decay (0 = no leak, 4096 = full leak); ``threshold`` is
    vThMant (spike when ``v > threshold << 6``); ``spiking=False`` marks the readout
    integrator, whose threshold is set out of reach and whose potential gives the logits;
    ``model`` names the neuron model (:mod:`dietsnn_deploy.spine.neurons`) that steps it;
    ``refractory`` is its refractory period in steps after a spike (0: none; the netx field
    refDelay); ``i_decay`` is the 12-bit current decay (4096: the current has no memory, as
    our exporter writes; below it the synaptic current u carries over between steps).
    """

    v_decay: int
    threshold: int
    spiking: bool = True
    model: str = "lif"
    refractory: int = 0
    i_decay: int = _optional(DECAY_UNITY)

    def check(self, where: str, netx_exact: bool = True) -> None:
        """Integers in the 12-bit decay and (``netx_exact``) 17-bit threshold ranges; a
        simulator runs any non-negative threshold (netx itself writes 2^17 as a default)."""
        for name in ("v_decay", "i_decay"):
            value = getattr(self, name)
            if not is_integer(value) or not 0 <= value <= DECAY_UNITY:
                raise DeployError(f"{where}: {name} {value} outside [0, {DECAY_UNITY}]")
        high = THRESHOLD_MAX if netx_exact else SIMULATED_THRESHOLD_MAX
        if not is_integer(self.threshold) or not 0 <= self.threshold <= high:
            raise DeployError(f"{where}: threshold {self.threshold} outside [0, {high}]")
        if not is_integer(self.refractory) or not 0 <= self.refractory <= REFRACTORY_MAX:
            raise DeployError(
                f"{where}: refractory {self.refractory} outside [0, {REFRACTORY_MAX}]"
            )


@dataclass(frozen=True)
class InputLayer:
    """netx ``input`` layer: neurons driven by the host encoder's drive, or by spikes from off
    chip (no synapses); (C, H, W), or (n,) for spikes into a dense layer."""

    shape: Shape3 | tuple[int]
    neuron: Neuron
    kind: Literal["input"] = "input"

    def check(self, where: str, previous: tuple[int, ...], netx_exact: bool = True) -> None:
        if previous:
            raise DeployError(f"{where}: an input layer may only come first")
        if len(self.shape) not in (1, 3) or min(self.shape) < 1:
            raise DeployError(
                f"{where}: shape must be positive (C, H, W) or (n,), got {self.shape}"
            )


@dataclass(frozen=True)
class ConvLayer:
    """netx ``conv`` layer: a_in = conv2d(spikes, W), integer weights (Cout, Cin, kH, kW).

    ``pool`` is the side k of an average pool folded into this layer (1 = none): ``weight``
    is then ``fold_pool(W, k)`` of the original kernel W, stride and padding are k × the
    original ones, and the threshold was multiplied by k².
    ``bias`` is one bias_mant per output channel (Cout,), added as ``bias << 6`` to v every
    step, or None (what our exporter writes).
    """

    weight: np.ndarray
    stride: Pair
    padding: Pair
    in_shape: Shape3
    shape: Shape3
    neuron: Neuron
    pool: int = 1
    bias: np.ndarray | None = _optional(None)
    kind: Literal["conv"] = "conv"

    @property
    def kernel(self) -> Pair:
        return (int(self.weight.shape[2]), int(self.weight.shape[3]))

    def out_shape(self) -> Shape3:
        """The output map this layer's conv computes on ``in_shape``."""
        return geometry.conv_output_shape(
            self.in_shape, self.weight.shape[0], self.kernel, self.stride, self.padding
        )

    def fan_out_map(self) -> np.ndarray:
        """(H_in, W_in): neurons of this layer one input spike reaches (folded geometry)."""
        return geometry.conv_fan_out_map(
            self.in_shape, self.shape, self.kernel, self.stride, self.padding
        )

    def ann_macs(self) -> int:
        """Eq. 16 of the layer as the ANN had it: the unfolded kernel on the pooled map."""
        kh, kw = self.kernel
        return geometry.conv_macs((kh // self.pool, kw // self.pool), self.in_shape[0], self.shape)

    def bias_current(self) -> np.ndarray | None:
        """``bias << 6`` as it enters v each step, shaped to broadcast over (…, C, H, W)."""
        return _bias_current(self.bias, (1, 1))

    def input_bound(self) -> int:
        """Worst-case per-step |a_in| (spikes 0/1, borders exact)."""
        bound = geometry.input_bound(self.weight, conv=(self.in_shape, self.stride, self.padding))
        return round(bound)

    def check(self, where: str, previous: tuple[int, ...], netx_exact: bool = True) -> None:
        """Shapes against the previous output and the conv rule; with ``netx_exact``, weights
        that netx and Lava load unaltered (:func:`check_weight_mantissas`)."""
        weight = np.asarray(self.weight)
        if weight.ndim != 4:
            raise DeployError(
                f"{where}: weight must be 4-d (Cout, Cin, kH, kW), got {weight.shape}"
            )
        if len(previous) != 3 or tuple(self.in_shape) != previous:
            raise DeployError(f"{where}: in_shape {self.in_shape} does not follow {previous}")
        if weight.shape[1] != previous[0]:
            raise DeployError(
                f"{where}: weight takes {weight.shape[1]} channels, previous layer has {previous[0]}"
            )
        if min(self.stride) < 1 or min(self.padding) < 0:
            raise DeployError(f"{where}: bad stride {self.stride} or padding {self.padding}")
        _check_pool(where, self.pool)
        kh, kw = self.kernel
        if kh % self.pool or kw % self.pool:
            raise DeployError(
                f"{where}: kernel {kh}×{kw} is not divisible by its folded pool {self.pool}"
            )
        out = self.out_shape()
        if out != tuple(self.shape) or min(out) < 1:
            raise DeployError(f"{where}: shape {tuple(self.shape)} is not the conv output {out}")
        _check_weights(weight, where, dense=False, netx_exact=netx_exact)
        _check_bias(self.bias, self.shape[0], where)
        folded = geometry.unfold_conv(weight, self.stride, self.padding, self.pool, self.in_shape)
        if self.pool > 1 and folded is None:
            raise DeployError(
                f"{where}: weights, stride and padding are not a folded {self.pool}×"
                f"{self.pool} pool (pool {self.pool} does not fit the layer)"
            )


@dataclass(frozen=True)
class FlattenLayer:
    """netx ``flatten`` layer: C-major flatten of the previous (C, H, W) output."""

    in_shape: Shape3
    kind: Literal["flatten"] = "flatten"

    @property
    def shape(self) -> tuple[int]:
        return (int(np.prod(self.in_shape)),)

    def check(self, where: str, previous: tuple[int, ...], netx_exact: bool = True) -> None:
        if len(previous) != 3 or tuple(self.in_shape) != previous:
            raise DeployError(f"{where}: in_shape {self.in_shape} does not follow {previous}")


@dataclass(frozen=True)
class DenseLayer:
    """netx ``dense`` layer: a_in = W·spikes, integer weights (out, in).

    ``pool`` as in :class:`ConvLayer`: a k×k pool folded before the flatten repeats each
    weight over its window of the unpooled map, so ``in`` is k² × the ANN's input width.
    ``bias`` is one bias_mant per neuron (out,), as in :class:`ConvLayer`, or None.
    ``delay`` is each synapse's axonal delay (out, in) in steps, 0…62, added to the one step
    every synapse takes (a_in[t] = Σ_j W_ij · s_j[t − delay_ij]), or None (no delays).
    """

    weight: np.ndarray
    neuron: Neuron
    pool: int = 1
    bias: np.ndarray | None = _optional(None)
    delay: np.ndarray | None = _optional(None)
    kind: Literal["dense"] = "dense"

    @property
    def shape(self) -> tuple[int]:
        return (int(self.weight.shape[0]),)

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    def ann_macs(self) -> int:
        """Eq. 16 of the layer as the ANN had it: f_in / k² inputs."""
        return geometry.dense_macs(self.in_features // self.pool**2, self.shape[0])

    def input_bound(self) -> int:
        """Worst-case per-step |a_in| (spikes 0/1)."""
        return round(geometry.input_bound(self.weight))

    def check(self, where: str, previous: tuple[int, ...], netx_exact: bool = True) -> None:
        """Shapes against the previous output; weights as in :meth:`ConvLayer.check`."""
        weight = np.asarray(self.weight)
        if weight.ndim != 2:
            raise DeployError(f"{where}: weight must be 2-d, got shape {weight.shape}")
        flat = len(previous) == 1 or not netx_exact  # a simulator flattens a map itself
        if not flat or not previous or weight.shape[1] != int(np.prod(previous)):
            raise DeployError(
                f"{where}: weight {weight.shape} does not take the previous output "
                f"{previous} (dense needs a flatten or dense before it)"
            )
        _check_pool(where, self.pool)
        if self.in_features % self.pool**2:
            raise DeployError(f"{where}: {self.in_features} inputs do not fold a {self.pool}² pool")
        _check_weights(weight, where, dense=True, netx_exact=netx_exact)
        _check_bias(self.bias, self.shape[0], where)
        _check_delay(self.delay, weight.shape, self.pool, where)

    def bias_current(self) -> np.ndarray | None:
        """``bias << 6`` as it enters v each step, shaped to broadcast over (…, out)."""
        return _bias_current(self.bias, ())


Layer = InputLayer | ConvLayer | FlattenLayer | DenseLayer
SynapticLayer = ConvLayer | DenseLayer


def _check_weights(weight: np.ndarray, where: str, *, dense: bool, netx_exact: bool) -> None:
    if netx_exact:
        check_weight_mantissas(weight, where, dense=dense)
    elif not np.issubdtype(weight.dtype, np.integer) or weight.size == 0:
        raise DeployError(f"{where}: weights must be a non-empty integer array")


def _check_dense_pool(where: str, layer: DenseLayer, before: Layer | None) -> None:
    """A pool folded into a dense layer repeats each weight over its window of the flattened
    map: the map must be known (a flatten before it) and the weights must unfold."""
    k = layer.pool
    if not isinstance(before, FlattenLayer):
        raise DeployError(f"{where}: a folded pool needs the flatten of a map before it")
    channels, height, width = before.in_shape
    unfolded = None
    if height % k == 0 and width % k == 0:
        unfolded = geometry.unfold_pool(layer.weight.reshape(-1, channels, height, width), k)
    if unfolded is None:
        raise DeployError(f"{where}: weights are not a folded {k}×{k} pool (pool {k} does not fit)")


def _bias_current(bias: np.ndarray | None, spatial: tuple[int, ...]) -> np.ndarray | None:
    """``bias << 6`` (int64) per channel, with ``spatial`` trailing unit axes; None for None."""
    if bias is None:
        return None
    return (np.asarray(bias, np.int64) << STATE_SHIFT).reshape(-1, *spatial)


def _check_bias(bias, channels: int, where: str) -> None:
    """None, or one integer bias_mant per output channel within the 13-bit range."""
    if bias is None:
        return
    bias = np.asarray(bias)
    if not np.issubdtype(bias.dtype, np.integer) or bias.shape != (channels,):
        raise DeployError(
            f"{where}: bias must be {channels} integers (one per output channel), got "
            f"{bias.dtype} {bias.shape}"
        )
    if bias.size and (bias.max() > BIAS_MAX or bias.min() < -BIAS_MAX - 1):
        raise DeployError(f"{where}: bias outside the 13-bit range [{-BIAS_MAX - 1}, {BIAS_MAX}]")


def _check_delay(delay, shape: tuple[int, ...], pool: int, where: str) -> None:
    """None, or one integer delay in [0, DELAY_MAX] per synapse, without a folded pool."""
    if delay is None:
        return
    delay = np.asarray(delay)
    if not np.issubdtype(delay.dtype, np.integer) or delay.shape != tuple(shape):
        raise DeployError(
            f"{where}: delay must be integers of the weight's shape {tuple(shape)}, got "
            f"{delay.dtype} {delay.shape}"
        )
    if delay.size and (delay.min() < 0 or delay.max() > DELAY_MAX):
        raise DeployError(f"{where}: delays outside [0, {DELAY_MAX}] steps (netx clamps them)")
    if pool > 1:
        raise DeployError(f"{where}: a dense layer with delays cannot fold a pool")


def _check_pool(where: str, pool) -> None:
    if not is_integer(pool) or pool < 1:
        raise DeployError(f"{where}: pool must be an integer ≥ 1, got {pool}")


def where(index: int, layer: Layer) -> str:
    """How errors name a layer: ``layer 3 (dense)``."""
    return f"layer {index} ({layer.kind})"


def validate_layers(
    layers: list[Layer],
    *,
    netx_exact: bool = True,
    input_shape: tuple[int, ...] = (),
    readout: str = "potential",
    first_index: int = 0,
) -> None:
    """Check the layer chain: the first layer, every layer's own rules against the previous
    output, and a dense readout last.

    The first layer is the input layer, or (``input_shape``: spikes of that shape arrive from
    off chip) a conv or dense layer that takes them. With ``readout`` "potential" the readout
    is non-spiking and its threshold out of reach; with "spikes" it spikes, and its spike
    counts are the scores. ``netx_exact=False`` accepts any integer weights (what a simulator
    can run) instead of only those netx loads unaltered (what the exporter writes). Errors
    number the layers from ``first_index`` (a file's number of ``layers[0]``)."""
    if len(layers) < 2 and not (input_shape and layers):
        raise DeployError("network must have an input layer and a readout (2 layers at least)")
    if not isinstance(layers[0], InputLayer) and not input_shape:
        raise DeployError(
            "network must start with an input layer (a first conv or dense layer needs spike input)"
        )
    last = len(layers) - 1 + first_index
    final = layers[-1]
    spike_readout = readout == "spikes"
    if not isinstance(final, DenseLayer) or final.neuron.spiking != spike_readout:
        kind = "spiking" if spike_readout else "non-spiking"
        raise DeployError(f"layer {last}: the last layer must be a {kind} dense readout")
    if netx_exact and not spike_readout and final.neuron.threshold != THRESHOLD_MAX:
        raise DeployError(
            f"layer {last} (dense): readout threshold must be {THRESHOLD_MAX} "
            f"(out of reach until v saturates), got {final.neuron.threshold}"
        )
    previous: tuple[int, ...] = () if isinstance(layers[0], InputLayer) else tuple(input_shape)
    for index, layer in enumerate(layers):
        name = where(index + first_index, layer)
        layer.check(name, previous, netx_exact)
        if isinstance(layer, DenseLayer) and layer.pool > 1:
            _check_dense_pool(name, layer, layers[index - 1] if index else None)
        if not isinstance(layer, FlattenLayer):
            layer.neuron.check(name, netx_exact)
            if layer is not final and not layer.neuron.spiking:
                raise DeployError(f"{name}: only the last layer may be non-spiking")
        previous = tuple(int(s) for s in layer.shape)
