"""Bit-exact, batched PyTorch emulation of Lava's fixed-point run of a :class:`DeployedNetwork`.

Integer rules, read off lava-nc 0.10.0 / lava-dl 0.6.0 (``PyLifModelBitAcc``,
``PyDenseModelBitAcc``, ``PyConvModelFixed``, ``netx.hdf5``, ``netx.utils``)::

    conv:   a_in = wrap24(conv2d(s, W))                        wrap24(x) = (x + 2²³) mod 2²⁴ − 2²³
    dense:  a_in = floor(Σ_active W_eff / 2**s)                 W_eff, s from lava_dense_weights
    LIF:    u = wrap1(a_in << 6)                                 (iDecay = 4096: u has no memory)
            v = trunc0(v · (4096 − v_decay) / 4096) + u + (bias << 6),  clipped to ±(2²³ − 1)
            spike = v > (threshold << 6);  v[spike] = 0

``wrap1`` is Lava's single 24-bit wrap of the current (x − 2²⁴ if x > 2²³, x + 2²⁴ if
x ≤ −2²³); ``trunc0`` rounds toward zero. Only the input layer has a bias: the host's constant
drive (bias_mant). Layers run in the delay-free schedule (layer k at step t sees layer k−1's
spikes of step t), which is what Lava's pipelined ``reset_interval`` run gives once re-aligned.

Speed: each layer's synaptic input is computed for all T steps and the whole batch in one
conv/matmul, then the neurons step through T elementwise. Float convs and matmuls are exact
here: inputs are spike counts ≥ 0 and every partial sum is bounded by the layer's largest
per-neuron L1 weight norm; float32 is used when that bound is below 2²⁴ (all integers up to
2²⁴ are float32-exact, whatever the summation order), float64 (exact to 2⁵³) otherwise.
A pool folded into a layer (``pool = k``: kernel ``kron(W, ones(k, k))``) is computed as a
k×k sum-pool of the spikes followed by the original kernel, the same integers with k² fewer
multiplies. The 24-bit wraps are skipped where that L1 bound proves them to be the identity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dietsnn_deploy.deployed import (
    BIAS_MAX,
    DECAY_UNITY,
    STATE_SHIFT,
    V_LIMIT,
    ConvLayer,
    DenseLayer,
    DeployedNetwork,
    FlattenLayer,
    InputLayer,
    Neuron,
    SpikeRecord,
)
from dietsnn_deploy.errors import DeployError
from hw_sim.host import encode_drive

U_WRAP = 2**23  # the current u wraps once at ±2²³ (24-bit register)
FLOAT32_EXACT = 2**24  # largest magnitude below which every integer is a float32
CHUNK_ELEMENTS = 2**24  # rows per conv/matmul call are chosen to keep inputs ≲ 64 MB


def lava_dense_weights(weight: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer dense weights as Lava applies them, and the shift ``s`` of the sum (a_in = Σ >> s).

    netx ``optimize_weight_bits``: mixed-sign weights are clipped to [−256, 254]; the matrix is
    scaled by ``2**s`` (s from its largest magnitude), ``num_weight_bits`` follows from the
    common power-of-two factor, weight exponent −s. Lava's Dense then re-derives the sign mode
    (there ``max ≤ 0`` already counts as inhibitory), clips to 8 bits and truncates the low
    ``8 − num_weight_bits (+1 if mixed)`` bits. For mixed-sign matrices with a positive maximum
    and for excitatory ones this is the identity on Σ W·s; inhibitory ones can lose precision.
    """
    w = np.asarray(weight).astype(np.int64)
    if w.size == 0 or not np.any(w):
        raise DeployError("dense weights are all zero: netx cannot scale them (int(inf))")
    w_max, w_min = int(w.max()), int(w.min())
    if (w_max > 254 and w_min < 0) or (w_min < -256 and w_max > 0):
        w = np.clip(w, -256, 254)
        w_max, w_min = int(w.max()), int(w.min())
    signed = int(w_max >= 0 and w_min < 0)  # netx: mixed unless max < 0 or min ≥ 0
    if w_max < 0:
        scale = -256 / w_min
    elif w_min >= 0:
        scale = 255 / w_max
    else:
        scale = min(127 / w_max if w_max > 0 else np.inf, -128 / w_min)
    shift = int(np.floor(np.log2(scale))) + signed
    if shift < 0:
        raise DeployError(
            f"dense weights span [{w_min}, {w_max}]: Lava would shift them to zero "
            "(store them within 8 bits)"
        )
    # largest n ≤ 8 with every weight divisible by 2**n: trailing zeros of the bitwise OR
    either = int(np.bitwise_or.reduce(w, axis=None))
    common_bits = min(8, (either & -either).bit_length() - 1)
    num_weight_bits = 8 - shift - (common_bits - signed)
    w = w << shift
    if w.min() >= 0:  # Lava Dense's own sign mode, on the shifted weights
        mixed, inhibitory, (lo, hi) = 0, False, (0, 255)
    elif w.max() <= 0:
        mixed, inhibitory, (lo, hi) = 0, True, (-255, 0)
    else:
        mixed, inhibitory, (lo, hi) = 1, False, (-256, 255)
    magnitude = -np.clip(w, lo, hi) if inhibitory else np.clip(w, lo, hi)
    truncate = 8 - num_weight_bits + mixed
    magnitude = (magnitude >> truncate) << truncate
    return (-magnitude if inhibitory else magnitude), shift


def wrap24(x: torch.Tensor) -> torch.Tensor:
    """Lava's conv output clamp: signed 24-bit wrap-around (modulo 2²⁴)."""
    return torch.remainder(x + U_WRAP, 2 * U_WRAP) - U_WRAP


def wrap_current(u: torch.Tensor) -> torch.Tensor:
    """Lava's single wrap of the current: u − 2²⁴ above 2²³, u + 2²⁴ at or below −2²³."""
    u = torch.where(u > U_WRAP, u - 2 * U_WRAP, u)
    return torch.where(u <= -U_WRAP, u + 2 * U_WRAP, u)


def lif_step(
    v: torch.Tensor, current: torch.Tensor, neuron: Neuron
) -> tuple[torch.Tensor, torch.Tensor]:
    """One bit-accurate CUBA step (iDecay = 4096) on int64 state; returns (v, spikes).

    ``current`` is what enters v this step, already in v units: ``wrap_current(a_in << 6)``
    for a hidden layer, ``bias << 6`` for the input layer.
    """
    if neuron.v_decay:
        v = v * (DECAY_UNITY - neuron.v_decay)
        v = v.div_(DECAY_UNITY, rounding_mode="trunc").add_(current)
    else:
        v = v + current
    v = v.clamp_(-V_LIMIT, V_LIMIT)
    spikes = v > (neuron.threshold << STATE_SHIFT)
    return v.masked_fill_(spikes, 0), spikes


def _float_dtype(l1_bound: int) -> torch.dtype:
    return torch.float32 if l1_bound < FLOAT32_EXACT else torch.float64


def _sum_pool(x: torch.Tensor, k: int) -> torch.Tensor:
    """k×k, stride-k sum pool of (N, C, H, W) spike counts (exact: small integer sums)."""
    return F.avg_pool2d(x, k, divisor_override=1)


def _unfold_pool(weight: np.ndarray, k: int) -> np.ndarray | None:
    """The original kernel W if ``weight == kron(W, ones(k, k))`` on its last two dims, else None."""
    h, w = weight.shape[-2:]
    if h % k or w % k:
        return None
    original = weight[..., ::k, ::k]
    for dy in range(k):
        for dx in range(k):
            if not np.array_equal(weight[..., dy::k, dx::k], original):
                return None
    return original


def _chunks(x: torch.Tensor) -> list[torch.Tensor]:
    per_row = max(1, int(np.prod(x.shape[1:])))
    return list(torch.split(x, max(1, CHUNK_ELEMENTS // per_row)))


class _ConvSynapse:
    """wrap24(conv2d(spikes, W)) for a :class:`ConvLayer`, pooled input summed first."""

    def __init__(self, layer: ConvLayer) -> None:
        weight = np.asarray(layer.weight).astype(np.int64)
        self.pool, self.stride, self.padding = 1, tuple(layer.stride), tuple(layer.padding)
        k = layer.pool
        original = _unfold_pool(weight, k) if k > 1 else None
        divisible = all(n % k == 0 for n in (*layer.in_shape[1:], *layer.stride, *layer.padding))
        if original is not None and divisible:
            weight = original
            self.pool = k
            self.stride = tuple(s // k for s in layer.stride)
            self.padding = tuple(p // k for p in layer.padding)
        l1_bound = int(np.abs(weight).sum(axis=(1, 2, 3)).max()) * self.pool**2
        self.dtype = _float_dtype(l1_bound)
        self.wraps = l1_bound >= U_WRAP  # otherwise wrap24 is provably the identity
        self.bound = min(l1_bound, U_WRAP)  # |a_in| ≤ bound
        self.weight = torch.from_numpy(weight).to(self.dtype)

    def __call__(self, spikes: torch.Tensor) -> torch.Tensor:
        outputs = []
        for chunk in _chunks(spikes):
            x = chunk.to(self.dtype)
            if self.pool > 1:
                x = _sum_pool(x, self.pool)
            y = F.conv2d(x, self.weight, stride=self.stride, padding=self.padding)
            outputs.append(y.to(torch.int64))  # exact integers already (see module doc)
        a_in = torch.cat(outputs)
        return wrap24(a_in) if self.wraps else a_in


class _DenseSynapse:
    """floor(Σ_active W_eff / 2**s) for a :class:`DenseLayer`; pooled input summed first."""

    def __init__(self, layer: DenseLayer, in_shape: tuple[int, ...]) -> None:
        weight = np.asarray(layer.weight)
        self.pool, self.in_shape = 1, in_shape
        k = layer.pool
        if k > 1 and len(in_shape) == 3 and in_shape[1] % k == 0 and in_shape[2] % k == 0:
            original = _unfold_pool(weight.reshape(weight.shape[0], *in_shape), k)
            if original is not None:  # same value set, so Lava's transform is the same
                weight = original.reshape(weight.shape[0], -1)
                self.pool = k
        weight, self.shift = lava_dense_weights(weight)
        l1_bound = int(np.abs(weight).sum(axis=1).max()) * self.pool**2
        self.dtype = _float_dtype(l1_bound)
        self.bound = -(-l1_bound >> self.shift)  # |a_in| ≤ ceil(L1 / 2**s)
        self.weight_t = torch.from_numpy(weight.T.copy()).to(self.dtype)

    def __call__(self, spikes: torch.Tensor) -> torch.Tensor:
        outputs = []
        for chunk in _chunks(spikes):
            x = chunk.to(self.dtype)
            if self.pool > 1:
                x = _sum_pool(x.reshape(-1, *self.in_shape), self.pool)
            y = x.reshape(x.shape[0], -1) @ self.weight_t
            outputs.append(y.to(torch.int64))  # exact integers already (see module doc)
        return torch.cat(outputs) >> self.shift  # arithmetic shift = floor


def _check_neuron(index: int, neuron: Neuron) -> None:
    if not 0 <= neuron.v_decay <= DECAY_UNITY:
        raise DeployError(f"layer {index}: v_decay {neuron.v_decay} outside [0, {DECAY_UNITY}]")
    if neuron.threshold < 0:
        raise DeployError(f"layer {index}: negative threshold {neuron.threshold}")


class Emulator:
    """A :class:`DeployedNetwork` prepared for repeated emulation (weights converted once)."""

    def __init__(self, net: DeployedNetwork) -> None:
        layers = net.layers
        if not layers or not isinstance(layers[0], InputLayer):
            raise DeployError("deployed network must start with an input layer")
        if net.timesteps < 1:
            raise DeployError(f"timesteps must be ≥ 1, got {net.timesteps}")
        last = layers[-1]
        if isinstance(last, FlattenLayer) or last.neuron.spiking:
            raise DeployError("deployed network must end with a non-spiking readout layer")
        self.net = net
        self.synapses: list[_ConvSynapse | _DenseSynapse | None] = [None]
        shape: tuple[int, ...] = tuple(layers[0].shape)
        _check_neuron(0, layers[0].neuron)
        for index, layer in enumerate(layers[1:], start=1):
            self.synapses.append(self._synapse(index, layer, shape, layers[index - 1]))
            shape = tuple(layer.shape)
            if not isinstance(layer, FlattenLayer):
                _check_neuron(index, layer.neuron)

    @staticmethod
    def _synapse(index: int, layer, in_shape: tuple[int, ...], previous):
        if isinstance(layer, FlattenLayer):
            if tuple(layer.in_shape) != in_shape:
                raise DeployError(
                    f"layer {index}: flatten expects {layer.in_shape}, got {in_shape}"
                )
            return None
        if isinstance(layer, ConvLayer):
            if tuple(layer.in_shape) != in_shape:
                raise DeployError(f"layer {index}: conv expects {layer.in_shape}, got {in_shape}")
            return _ConvSynapse(layer)
        if isinstance(layer, DenseLayer):
            fan_in = int(np.prod(in_shape))
            if layer.weight.ndim != 2 or layer.weight.shape[1] != fan_in:
                raise DeployError(
                    f"layer {index}: dense weight {layer.weight.shape} does not take {fan_in} inputs"
                )
            unflat = tuple(previous.in_shape) if isinstance(previous, FlattenLayer) else in_shape
            return _DenseSynapse(layer, unflat)
        raise DeployError(f"layer {index}: unsupported layer kind {getattr(layer, 'kind', layer)}")

    def run(self, drive: torch.Tensor, *, record: bool = True) -> SpikeRecord:
        """Emulate one batch; ``drive`` is the host's int64 bias (B, *input shape)."""
        layers, steps = self.net.layers, self.net.timesteps
        drive = self._check_drive(drive)
        batch = drive.shape[0]
        bias_current = (drive << STATE_SHIFT).expand(steps, *drive.shape)
        spikes, _ = self._run_neurons(layers[0].neuron, bias_current)
        recorded: list[torch.Tensor | None] = [spikes if record else None]
        for layer, synapse in zip(layers[1:], self.synapses[1:], strict=True):
            if isinstance(layer, FlattenLayer):
                spikes = spikes.reshape(steps, batch, -1)
                recorded.append(None)
                continue
            a_in = synapse(spikes.reshape(steps * batch, *spikes.shape[2:]))
            current = a_in.reshape(steps, batch, *a_in.shape[1:]).bitwise_left_shift_(STATE_SHIFT)
            if synapse.bound << STATE_SHIFT >= U_WRAP:  # else the wrap is provably the identity
                current = wrap_current(current)
            spikes, v = self._run_neurons(layer.neuron, current)
            recorded.append(spikes if record and layer.neuron.spiking else None)
        return SpikeRecord(spikes=recorded, readout=v.reshape(batch, -1))

    def _check_drive(self, drive: torch.Tensor) -> torch.Tensor:
        expected = tuple(self.net.layers[0].shape)
        if not isinstance(drive, torch.Tensor) or drive.ndim != len(expected) + 1:
            raise DeployError(f"drive must be a tensor (B, {expected})")
        if tuple(drive.shape[1:]) != expected:
            raise DeployError(f"drive shape {tuple(drive.shape[1:])} != input layer {expected}")
        if drive.dtype.is_floating_point or drive.dtype == torch.bool:
            raise DeployError(f"drive must be integer (bias_mant), got {drive.dtype}")
        drive = drive.to(torch.int64)
        if drive.numel() and (drive.max() > BIAS_MAX or drive.min() < -BIAS_MAX - 1):
            raise DeployError(f"drive outside the 13-bit bias range [{-BIAS_MAX - 1}, {BIAS_MAX}]")
        return drive

    @staticmethod
    def _run_neurons(neuron: Neuron, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Step a layer through T steps of ``current`` (T, B, ...); returns (spikes, final v).

        The readout runs through the same rule: its threshold and reset apply as in Lava.
        """
        v = torch.zeros(current.shape[1:], dtype=torch.int64)
        spikes = torch.empty(current.shape, dtype=torch.bool)
        for t in range(current.shape[0]):
            v, spikes[t] = lif_step(v, current[t], neuron)
        return spikes, v


def emulate(net: DeployedNetwork, drive: torch.Tensor, *, record: bool = True) -> SpikeRecord:
    """Run one batch of host drive (B, *input shape), int64, through ``net``; see module doc."""
    return Emulator(net).run(drive, record=record)


@dataclass
class EmulatorResult:
    """Classification by the emulator: readout potentials and spike totals over all images.

    ``spike_counts[i]`` is layer i's spike total over all images and T steps (None for flatten
    and the readout); ``predictions`` is the argmax of ``readout`` (lowest index on ties).
    """

    predictions: torch.Tensor  # (N,) int64
    readout: torch.Tensor  # (N, num_classes) int64
    spike_counts: list[int | None]
    num_images: int


def classify(
    net: DeployedNetwork,
    images: torch.Tensor,
    batch_size: int = 256,
    progress: bool = True,
    on_batch: Callable[[SpikeRecord], None] | None = None,
) -> EmulatorResult:
    """Classify ``images`` (N, C, H, W), float pixels in [0, 1] before mean/std (the host
    encoder normalises them, see :func:`hw_sim.host.encode_drive`), in batches.

    ``on_batch(record)`` sees each batch's :class:`SpikeRecord` (e.g. an op counter's ``add``),
    so no caller has to hold all spikes.
    """
    if batch_size < 1:
        raise DeployError(f"batch_size must be ≥ 1, got {batch_size}")
    emulator = Emulator(net)
    readouts: list[torch.Tensor] = []
    counts: list[int | None] = [
        None if isinstance(layer, FlattenLayer) or not layer.neuron.spiking else 0
        for layer in net.layers
    ]
    starts = range(0, len(images), batch_size)
    # tqdm fixes multiprocessing's start method even when disabled, after which Lava cannot
    # be imported in this process: only build one when asked to show progress.
    for start in tqdm(starts, desc="emulate", unit="batch") if progress else starts:
        drive = encode_drive(net.encoder, images[start : start + batch_size])
        record = emulator.run(drive, record=True)
        readouts.append(record.readout)
        for i, spikes in enumerate(record.spikes):
            if spikes is not None:
                counts[i] += int(spikes.sum())
        if on_batch is not None:
            on_batch(record)
    readout = (
        torch.cat(readouts) if readouts else torch.zeros((0, net.num_classes), dtype=torch.int64)
    )
    return EmulatorResult(
        predictions=readout.argmax(dim=1),
        readout=readout,
        spike_counts=counts,
        num_images=len(images),
    )
