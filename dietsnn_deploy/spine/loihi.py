"""Loihi's fixed-point formats and the one codec from float DIET-SNN quantities to them.

Units. A layer's integer ``scale`` s is weight units per float unit: a float weight W becomes
the mantissa W·s, a float threshold θ the mantissa θ·s (× k² behind a folded k×k pool). The
neuron's potential ``v`` counts in units of 2⁻⁶ weight unit: Lava adds ``a_in << 6`` (and
``bias << 6``) each step and compares with ``threshold << 6``.

Codec (each written once; every function takes NumPy arrays or torch tensors alike)::

    weight      W_int  = 2·round(W·s / 2), clipped to [−256, 254]   8-bit mixed-sign, even
    threshold   vThMant = round(θ·u),  u = s·k²                      17-bit unsigned
    decay       vDecay = round(4096·(1 − λ))                         12-bit; λ = 1 − vDecay/4096
    drive       bias_mant = clip(round(c·s₀), ±4095)                 13-bit signed (host input)

State arithmetic (Lava's ``PyLifModelBitAcc``, int64 tensors)::

    decay(x, d) = trunc0(x·(4096 − d)/4096)          the 12-bit decay of u (iDecay) and v (vDecay)
    wrap(u)     = u − 2²⁴ if u > 2²³, u + 2²⁴ if u ≤ −2²³          the 24-bit current register

The straight-through faces (``fake_*``) return the value the chip will use in the forward pass
and pass the identity's gradient backward (hardware-aware training).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from dietsnn_deploy.errors import DeployError

DECAY_UNITY = 4096  # 12-bit decays: v ← v·(4096 − v_decay)/4096
STATE_SHIFT = 6  # a_in, bias and threshold enter v shifted left by 6 bits
#: netx's input transform weight by default: an input spike is 1.0 at 6 fractional bits of
#: bias_mant (lava-dl drives an input layer with bias_mant = weight · input + bias)
INPUT_SPIKE_DRIVE = 1 << STATE_SHIFT
WEIGHT_MIN, WEIGHT_MAX = -256, 254  # 8-bit mixed-sign mantissas (even values)
THRESHOLD_MAX = 2**17 - 1  # vThMant, 17-bit unsigned
BIAS_MAX = 4095  # bias_mant, 13-bit signed on hardware (−4096 … 4095)
#: Longest axonal delay netx keeps (steps beyond a plain synapse's one; it clamps longer ones,
#: and Loihi 2 holds 6 bits)
DELAY_MAX = 62
V_LIMIT = 2**23 - 1  # v is clipped to ±V_LIMIT (24-bit state)
U_WRAP = 2**23  # the current u wraps at ±2²³ (24-bit register)
A_IN_MIN, A_IN_MAX = -(2**15), 2**15 - 1  # the neuron's a_in port is int16 on hardware
ODD_MIXED_MIN, ODD_MIXED_MAX = -128, 127  # odd mixed-sign weights: stored ×2, exponent −1

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def decay(state: torch.Tensor, d: int) -> torch.Tensor:
    """trunc0(state·(4096 − d)/4096): a 12-bit decay d of an int64 state, rounded toward 0."""
    if d == 0:
        return state
    return (state * (DECAY_UNITY - d)).div_(DECAY_UNITY, rounding_mode="trunc")


def wrap_current(u: torch.Tensor) -> torch.Tensor:
    """Lava's single wrap of the current: u − 2²⁴ above 2²³, u + 2²⁴ at or below −2²³."""
    u = torch.where(u > U_WRAP, u - 2 * U_WRAP, u)
    return torch.where(u <= -U_WRAP, u + 2 * U_WRAP, u)


def weight_mantissa(weight: Array, scale: float) -> Array:
    """Even 8-bit mantissas ``2·round(W·s/2)`` clipped to [−256, 254] (float dtype kept)."""
    return ((weight * scale / 2).round() * 2).clip(WEIGHT_MIN, WEIGHT_MAX)


def weight_saturation(weight: np.ndarray, scale: float) -> float:
    """Share of weights whose even mantissa falls outside the 8-bit range before clipping."""
    scaled = (weight * scale / 2).round() * 2
    return float(np.mean((scaled < WEIGHT_MIN) | (scaled > WEIGHT_MAX)))


def threshold_mantissa(threshold: Array, unit: float) -> Array:
    """vThMant = round(θ·unit), ``unit`` = the layer's scale × k² (folded pool side k).
    Scalars go in as ``np.float64``."""
    return (threshold * unit).round()


def v_decay(leak: Array) -> Array:
    """vDecay = round(4096·(1 − λ)) of a leak λ ∈ [0, 1]. Scalars go in as ``np.float64``."""
    return (DECAY_UNITY * (1 - leak)).round()


def leak_of(decay: Array) -> Array:
    """The leak λ = 1 − vDecay/4096 that a 12-bit decay stands for."""
    return 1 - decay / DECAY_UNITY


def drive_mantissa(current: Array, scale: float) -> Array:
    """bias_mant = clip(round(c·s₀), ±4095) of the host layer's float current c."""
    return (current * scale).round().clip(-BIAS_MAX, BIAS_MAX)


def straight_through(value: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """``quantized`` in the forward pass, the identity's gradient in the backward pass."""
    return value + (quantized - value).detach()


def fake_weight(weight: torch.Tensor, scale: float) -> torch.Tensor:
    """The float weight the chip computes with, W_int / s, with a straight-through gradient."""
    return straight_through(weight, weight_mantissa(weight, scale) / scale)


def fake_drive(current: torch.Tensor, scale: float) -> torch.Tensor:
    """The host layer's current as the chip receives it, bias_mant / s₀, straight-through."""
    return straight_through(current, drive_mantissa(current, scale) / scale)


def fake_threshold(threshold: torch.Tensor, unit: float) -> torch.Tensor:
    """vThMant / unit, with a straight-through gradient."""
    return straight_through(threshold, threshold_mantissa(threshold, unit) / unit)


def fake_leak(leak: torch.Tensor) -> torch.Tensor:
    """1 − vDecay/4096, with a straight-through gradient."""
    return straight_through(leak, leak_of(v_decay(leak)))


def check_leak(leak: float, where: str) -> float:
    """λ itself, refused unless finite and in [0, 1]."""
    if not 0.0 <= leak <= 1.0:  # also false for NaN
        raise DeployError(f"{where}: leak {leak:.4g} is outside [0, 1]")
    return leak


def check_weight_mantissas(weight: np.ndarray, where: str, *, dense: bool) -> None:
    """Refuse weights the chip cannot hold or that netx/Lava would load altered: integers in
    [−256, 254]; where a matrix mixes signs, even values (Loihi's mixed-sign 8-bit mantissa
    has no LSB) unless every value lies in [−128, 127] (netx then stores them doubled with
    weight exponent −1, and Lava's dense synapse shifts the sum back: exact); and, for a
    dense matrix, at least one positive weight (netx's ``optimize_weight_bits`` crashes on an
    all-zero matrix and Lava's inhibitory mode mis-scales many non-positive ones).
    """
    if not np.issubdtype(weight.dtype, np.integer):
        raise DeployError(f"{where}: weights must be integers, got dtype {weight.dtype}")
    if weight.size == 0:
        raise DeployError(f"{where}: weight matrix is empty")
    low, high = int(weight.min()), int(weight.max())
    if low < WEIGHT_MIN or high > WEIGHT_MAX:
        raise DeployError(
            f"{where}: weights span [{low}, {high}], outside the 8-bit range "
            f"[{WEIGHT_MIN}, {WEIGHT_MAX}]"
        )
    if low < 0 < high and np.any(weight % 2) and (low < ODD_MIXED_MIN or high > ODD_MIXED_MAX):
        raise DeployError(
            f"{where}: odd mixed-sign weights must lie in [{ODD_MIXED_MIN}, {ODD_MIXED_MAX}] "
            f"(got [{low}, {high}]); beyond it only even values fit the 8-bit mixed mantissa"
        )
    if dense and high <= 0:
        raise DeployError(
            f"{where}: no positive weight; netx's optimize_weight_bits crashes on all-zero "
            "matrices and Lava's inhibitory mode mis-scales many non-positive ones"
        )
