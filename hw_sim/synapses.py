"""The emulator's synapses: Lava's integer arithmetic of conv and dense layers, batched.

Read off lava-nc 0.10.0 / lava-dl 0.6.0 (``PyDenseModelBitAcc``, ``PyConvModelFixed``,
``netx.utils``)::

    conv:   a_in = wrap24(conv2d(s, W))                        wrap24(x) = (x + 2²³) mod 2²⁴ − 2²³
    dense:  a_in = floor(Σ_active W_eff / 2**s)                 W_eff, s from lava_dense_weights
    dense with axonal delays (Lava's ``PyDelayDenseModelBitAcc``), per synapse delay D_ij:
            a_in[t] = Σ_d floor(Σ_{D_ij = d} W_eff_ij · s_j[t − d] / 2**s)   (each delay's sum
            is shifted on its own, and arrives d steps after a plain dense synapse's)

Float convs and matmuls are exact here: inputs are spike counts ≥ 0 and every partial sum is
bounded by the layer's largest per-neuron L1 weight norm (:func:`geometry.fan_in_l1`); float32
is used when that bound is below 2²⁴ (all integers up to 2²⁴ are float32-exact, whatever the
summation order), float64 (exact to 2⁵³) otherwise. A pool folded into a layer (``pool = k``)
is computed as a k×k sum-pool of the spikes followed by the original kernel
(:func:`geometry.unfold_pool`): the same integers with k² fewer multiplies. The 24-bit wrap is
skipped where that L1 bound proves it to be the identity.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine import geometry
from dietsnn_deploy.spine.loihi import U_WRAP, WEIGHT_MAX, WEIGHT_MIN
from dietsnn_deploy.spine.network import ConvLayer, DenseLayer

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
    if (w_max > WEIGHT_MAX and w_min < 0) or (w_min < WEIGHT_MIN and w_max > 0):
        w = np.clip(w, WEIGHT_MIN, WEIGHT_MAX)
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


def _float_dtype(l1_bound: int) -> torch.dtype:
    return torch.float32 if l1_bound < FLOAT32_EXACT else torch.float64


def sum_pool(x: torch.Tensor, k: int) -> torch.Tensor:
    """k×k, stride-k sum pool of (N, C, H, W) spike counts (exact: small integer sums)."""
    return F.avg_pool2d(x, k, divisor_override=1)


def _chunks(x: torch.Tensor) -> list[torch.Tensor]:
    per_row = max(1, int(np.prod(x.shape[1:])))
    return list(torch.split(x, max(1, CHUNK_ELEMENTS // per_row)))


class _StepwiseSynapse:
    """A synapse without memory: every step's input from that step's spikes alone."""

    def over_time(self, spikes: torch.Tensor) -> torch.Tensor:
        """a_in (T, B, ...) of spikes (T, B, ...)."""
        steps, batch = spikes.shape[:2]
        a_in = self(spikes.reshape(steps * batch, *spikes.shape[2:]))
        return a_in.reshape(steps, batch, *a_in.shape[1:])


class ConvSynapse(_StepwiseSynapse):
    """wrap24(conv2d(spikes, W)) for a :class:`ConvLayer`, pooled input summed first."""

    def __init__(self, layer: ConvLayer, device: torch.device | None = None) -> None:
        weight = np.asarray(layer.weight).astype(np.int64)
        self.pool, self.stride, self.padding = 1, tuple(layer.stride), tuple(layer.padding)
        original = geometry.unfold_conv(
            weight, layer.stride, layer.padding, layer.pool, layer.in_shape
        )
        if layer.pool > 1 and original is not None:
            weight, self.stride, self.padding = original
            self.pool = layer.pool
        l1_bound = geometry.fan_in_l1(weight) * self.pool**2
        self.dtype = _float_dtype(l1_bound)
        self.wraps = l1_bound >= U_WRAP  # otherwise wrap24 is provably the identity
        self.bound = min(l1_bound, U_WRAP)  # |a_in| ≤ bound
        self.weight = torch.from_numpy(weight).to(device=device, dtype=self.dtype)

    def __call__(self, spikes: torch.Tensor) -> torch.Tensor:
        outputs = []
        for chunk in _chunks(spikes):
            x = chunk.to(self.dtype)
            if self.pool > 1:
                x = sum_pool(x, self.pool)
            y = F.conv2d(x, self.weight, stride=self.stride, padding=self.padding)
            outputs.append(y.to(torch.int64))  # exact integers already (see module doc)
        a_in = torch.cat(outputs)
        return wrap24(a_in) if self.wraps else a_in


class DenseSynapse(_StepwiseSynapse):
    """floor(Σ_active W_eff / 2**s) for a :class:`DenseLayer`; pooled input summed first."""

    def __init__(
        self, layer: DenseLayer, in_shape: tuple[int, ...], device: torch.device | None = None
    ) -> None:
        weight = np.asarray(layer.weight)
        self.pool, self.in_shape = 1, in_shape
        k = layer.pool
        if k > 1 and len(in_shape) == 3 and in_shape[1] % k == 0 and in_shape[2] % k == 0:
            original = geometry.unfold_pool(weight.reshape(weight.shape[0], *in_shape), k)
            if original is not None:  # same value set, so Lava's transform is the same
                weight = original.reshape(weight.shape[0], -1)
                self.pool = k
        weight, self.shift = lava_dense_weights(weight)
        l1_bound = geometry.fan_in_l1(weight) * self.pool**2
        self.dtype = _float_dtype(l1_bound)
        self.bound = -(-l1_bound >> self.shift)  # |a_in| ≤ ceil(L1 / 2**s)
        self.weight_t = torch.from_numpy(weight.T.copy()).to(device=device, dtype=self.dtype)

    def __call__(self, spikes: torch.Tensor) -> torch.Tensor:
        outputs = []
        for chunk in _chunks(spikes):
            x = chunk.to(self.dtype)
            if self.pool > 1:
                x = sum_pool(x.reshape(-1, *self.in_shape), self.pool)
            y = x.reshape(x.shape[0], -1) @ self.weight_t
            outputs.append(y.to(torch.int64))  # exact integers already (see module doc)
        return torch.cat(outputs) >> self.shift  # arithmetic shift = floor


class DelayedDenseSynapse:
    """A :class:`DenseLayer` with axonal delays (module doc): one masked copy of W_eff per
    distinct delay d, whose floored sums arrive d steps late (those past step T are lost)."""

    def __init__(
        self, layer: DenseLayer, in_shape: tuple[int, ...], device: torch.device | None = None
    ) -> None:
        if layer.pool > 1:
            raise DeployError("a dense layer with delays cannot fold a pool")
        dense = DenseSynapse(layer, in_shape, device)
        self.shift, self.dtype = dense.shift, dense.dtype
        delay = torch.from_numpy(np.asarray(layer.delay, np.int64).T.copy()).to(device)
        self.groups = [
            (int(d), dense.weight_t * (delay == d).to(dense.dtype))
            for d in torch.unique(delay).tolist()
        ]
        self.bound = dense.bound + len(self.groups)  # each delay's floor may add one

    def over_time(self, spikes: torch.Tensor) -> torch.Tensor:
        """a_in (T, B, out) of spikes (T, B, in)."""
        steps, batch = spikes.shape[:2]
        x = spikes.reshape(steps, batch, -1).to(self.dtype)
        a_in = torch.zeros((steps, batch, self.groups[0][1].shape[1]), dtype=torch.int64,
                           device=spikes.device)  # fmt: skip
        for d, weight_t in self.groups:
            if d < steps:
                a_in[d:] += (x[: steps - d] @ weight_t).to(torch.int64) >> self.shift
        return a_in
