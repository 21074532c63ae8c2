"""Geometry of the deployed synapses, each rule written once: conv output size, pool folding,
fan-out, fan-in bounds and the ANN's MAC count.

Shapes are (C, H, W) for maps and (n,) for vectors. Convs are cross-correlations as
``F.conv2d`` computes them (dilation 1, one group).

Pool folding. A k×k, stride-k average pool on spikes followed by a conv (kernel K, stride s,
padding p) is the same linear map as one conv with kernel ``kron(K, ones(k, k))``, stride s·k
and padding p·k, whose output is k² times larger: the threshold is multiplied by k² instead of
dividing the weights. Before a dense layer, each weight is repeated over its k×k window of the
unpooled (C, H, W) input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

Shape3 = tuple[int, int, int]  # (channels, height, width)
Pair = tuple[int, int]  # (height, width)


def conv_output_shape(
    in_shape: Sequence[int], out_channels: int, kernel: Pair, stride: Pair, padding: Pair
) -> Shape3:
    """(C_out, H_out, W_out) with H_out = ⌊(H + 2·p − k) / s⌋ + 1 (likewise W)."""
    height = (in_shape[1] + 2 * padding[0] - kernel[0]) // stride[0] + 1
    width = (in_shape[2] + 2 * padding[1] - kernel[1]) // stride[1] + 1
    return (int(out_channels), int(height), int(width))


def pooled_shape(shape: Sequence[int], pool: int) -> Shape3:
    """(C, H/k, W/k): the map a k×k, stride-k pool makes of ``shape``."""
    return (int(shape[0]), int(shape[1]) // pool, int(shape[2]) // pool)


def fold_pool(weight: np.ndarray, pool: int) -> np.ndarray:
    """Repeat each weight over its k×k window on the last two axes: a conv kernel (O, I, kh,
    kw) grows to (O, I, kh·k, kw·k); a dense weight viewed as (O, C, H, W) grows to (O, C,
    H·k, W·k)."""
    if pool == 1:
        return weight
    return weight.repeat(pool, axis=-2).repeat(pool, axis=-1)


def fold_stride_padding(stride: Pair, padding: Pair, pool: int) -> tuple[Pair, Pair]:
    """Stride and padding of a conv once a k×k pool before it is folded in: both × k."""
    return (
        (int(stride[0]) * pool, int(stride[1]) * pool),
        (int(padding[0]) * pool, int(padding[1]) * pool),
    )


def unfold_pool(weight: np.ndarray, pool: int) -> np.ndarray | None:
    """The original weight W if ``weight == fold_pool(W, pool)`` on its last two axes, else
    None (the inverse of :func:`fold_pool`)."""
    height, width = weight.shape[-2:]
    if pool == 1:
        return weight
    if height % pool or width % pool:
        return None
    original = weight[..., ::pool, ::pool]
    return original if np.array_equal(fold_pool(original, pool), weight) else None


def unfold_conv(
    weight: np.ndarray, stride: Pair, padding: Pair, pool: int, in_shape: Sequence[int]
) -> tuple[np.ndarray, Pair, Pair] | None:
    """The original (kernel, stride, padding) of a conv with a k×k pool folded in, when the
    folding is exact (kernel a :func:`fold_pool`, map, stride and padding divisible by k) —
    then conv(x, folded) = conv(sum_pool_k(x), original) — else None."""
    original = unfold_pool(weight, pool)
    sides = (*in_shape[1:], *stride, *padding)
    if original is None or any(int(n) % pool for n in sides):
        return None
    return (
        original,
        (int(stride[0]) // pool, int(stride[1]) // pool),
        (int(padding[0]) // pool, int(padding[1]) // pool),
    )


def axis_fan_out(size_in: int, size_out: int, kernel: int, stride: int, padding: int):
    """For each input index, how many of the ``size_out`` windows [o·s − p, o·s − p + k)
    contain it: one axis of an all-ones transposed conv (padding excluded)."""
    counts = np.zeros(size_in, np.int64)
    for o in range(size_out):
        start = o * stride - padding
        counts[max(start, 0) : max(min(start + kernel, size_in), 0)] += 1
    return counts


def conv_fan_out_map(
    in_shape: Sequence[int], out_shape: Sequence[int], kernel: Pair, stride: Pair, padding: Pair
) -> np.ndarray:
    """(H_in, W_in) int64: output neurons one input spike at each position reaches (fan-out),
    over all output channels; the same for every input channel."""
    rows = axis_fan_out(in_shape[1], out_shape[1], kernel[0], stride[0], padding[0])
    cols = axis_fan_out(in_shape[2], out_shape[2], kernel[1], stride[1], padding[1])
    return np.outer(rows, cols) * int(out_shape[0])


def fan_in_l1(weight: np.ndarray) -> int:
    """Largest Σ|W| over one neuron's fan-in (conv: over a whole kernel, borders ignored),
    the bound on any partial sum of its input when each input is at most 1."""
    flat = np.abs(np.asarray(weight, dtype=np.int64)).reshape(weight.shape[0], -1)
    return int(flat.sum(axis=1).max()) if flat.size else 0


def input_bound(
    weight: np.ndarray,
    *,
    conv: tuple[Sequence[int], Pair, Pair] | None = None,
    signed_input: bool = False,
) -> float:
    """Worst-case per-step |input| of a layer: the largest over its neurons of the most one
    step's inputs can deliver. With inputs in {0, 1} that is max(Σ W⁺, Σ |W⁻|) over the
    fan-in; with inputs in {−1, 0, 1} (``signed_input``) it is Σ |W|. ``conv`` = (in_shape,
    stride, padding) makes border neurons see only the inputs inside the map."""
    weight = np.asarray(weight, dtype=np.float64)
    parts = [np.abs(weight)] if signed_input else [np.maximum(weight, 0), np.maximum(-weight, 0)]
    bounds = []
    for part in parts:
        if conv is None:
            bounds.append(float(part.reshape(part.shape[0], -1).sum(axis=1).max()))
            continue
        in_shape, stride, padding = conv
        ones = torch.ones((1, *in_shape), dtype=torch.float64)
        sums = F.conv2d(ones, torch.from_numpy(part), stride=tuple(stride), padding=tuple(padding))
        bounds.append(float(sums.max()))
    return max(bounds)


def conv_macs(kernel: Pair, in_channels: int, out_shape: Sequence[int]) -> int:
    """The ANN's multiply-accumulates of a conv (the paper's eq. 16): k_h·k_w·C_in·H·W·C_out,
    padding positions included."""
    return int(kernel[0] * kernel[1] * in_channels * np.prod(out_shape))


def dense_macs(in_features: int, out_features: int) -> int:
    """The ANN's multiply-accumulates of a dense layer (eq. 16): f_in·f_out."""
    return int(in_features * out_features)
