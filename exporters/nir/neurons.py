"""The neuron codec between our discrete-time LIF and NIR's continuous-time nodes.

NIR states each neuron as an ODE; a backend steps it with forward Euler at its ``dt``
(seconds). With DIET's step u ← λ·u + I::

    LIF  τ·dv/dt = (v_leak − v) + r·I   →  v ← (1 − dt/τ)·v + (dt/τ)·r·I
         written as τ = dt/(1 − λ), r = τ/dt, v_leak = 0        so λ = 1 − dt/τ, gain 1
    IF   dv/dt = r·I                     →  v ← v + dt·r·I        λ = 1: r = 1/dt
    I    dv/dt = r·I  (the readout)       →  v ← v + dt·r·I        r = 1/dt
    CubaLIF, τ_syn = dt                  →  the current forgets each step: a LIF on w_in·I

Reading, any ``r`` is accepted: the input gain g = (dt/τ)·r (LIF), dt·r (IF, I) or
(dt/τ_mem)·r·w_in (CubaLIF) multiplies the weights of the layer in front, which gives the same
spikes. Spikes where v > v_threshold; NIR resets to v_reset (hard), which must be 0 here.
``dt`` defaults to 1e-4 s, what snnTorch writes.
"""

from __future__ import annotations

import numpy as np

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.float_network import FloatNeuron

DEFAULT_DT = 1e-4  # seconds per step: snnTorch's hard-coded export dt
#: relative tolerance for "the same value in every neuron" and for τ_syn = dt
UNIFORM_RTOL = 1e-6


def neuron_node(neuron: FloatNeuron, shape: tuple[int, ...], dt: float):
    """The NIR node of a layer's neurons (parameters broadcast to the neuron ``shape``,
    float64 so that λ → τ → λ is exact)."""
    import nir

    ones = np.ones(shape, dtype=np.float64)
    threshold, reset = ones * neuron.threshold, ones * 0.0
    metadata = {"reset": neuron.reset}
    if neuron.leak >= 1.0:
        return nir.IF(r=ones / dt, v_threshold=threshold, v_reset=reset, metadata=metadata)
    tau = dt / (1.0 - neuron.leak)
    return nir.LIF(tau=ones * tau, r=ones * (tau / dt), v_leak=ones * 0.0,
                   v_threshold=threshold, v_reset=reset, metadata=metadata)  # fmt: skip


def readout_node(shape: tuple[int, ...], dt: float):
    """The integrating readout: I with r = 1/dt (v ← v + I)."""
    import nir

    return nir.I(r=np.full(shape, 1.0 / dt, dtype=np.float64))


def _uniform(node, field: str, name: str) -> float:
    """The single value of ``node.field`` (the same in every neuron), or a refusal."""
    values = np.asarray(getattr(node, field), dtype=np.float64).reshape(-1)
    if values.size == 0 or not np.isfinite(values).all():
        raise DeployError(f"NIR node '{name}': {field} is empty or not finite")
    first = float(values[0])
    if not np.allclose(values, first, rtol=UNIFORM_RTOL, atol=0.0):
        raise DeployError(
            f"NIR node '{name}': {field} differs across neurons; dietsnn-deploy holds one per layer"
        )
    return first


def _zero(node, field: str, name: str) -> None:
    if _uniform(node, field, name) != 0.0:
        raise DeployError(
            f"NIR node '{name}': {field} = {_uniform(node, field, name):g}; only 0 is supported"
            " (the chip's potential rests and resets at 0)"
        )


def _leak(tau: float, dt: float, name: str) -> float:
    leak = 1.0 - dt / tau
    if not 0.0 <= leak <= 1.0:
        raise DeployError(
            f"NIR node '{name}': τ = {tau:g} s gives leak 1 − dt/τ = {leak:g} at dt = {dt:g} s, "
            "outside [0, 1] (pass the dt the graph was made with: --dt)"
        )
    return leak


def read_neuron(node, name: str, dt: float, reset: str = "hard") -> tuple[FloatNeuron, float]:
    """(the layer's neurons, the input gain to fold into the weights in front) of a NIR LIF,
    IF or CubaLIF node stepped at ``dt``."""
    import nir

    _zero(node, "v_reset", name)
    threshold = _uniform(node, "v_threshold", name)
    r = _uniform(node, "r", name)
    if isinstance(node, nir.IF):
        leak, gain = 1.0, dt * r
    elif isinstance(node, nir.LIF):
        _zero(node, "v_leak", name)
        tau = _uniform(node, "tau", name)
        leak, gain = _leak(tau, dt, name), dt / tau * r
    elif isinstance(node, nir.CubaLIF):
        _zero(node, "v_leak", name)
        tau_syn = _uniform(node, "tau_syn", name)
        if not np.isclose(tau_syn, dt, rtol=UNIFORM_RTOL, atol=0.0):
            raise DeployError(
                f"NIR node '{name}': CubaLIF with τ_syn = {tau_syn:g} s keeps synaptic current "
                f"across steps at dt = {dt:g} s; only τ_syn = dt (a plain LIF) is supported"
            )
        tau = _uniform(node, "tau_mem", name)
        leak, gain = _leak(tau, dt, name), dt / tau * r * _uniform(node, "w_in", name)
    else:
        raise DeployError(f"NIR node '{name}': {type(node).__name__} is not a neuron we map")
    if not (np.isfinite(gain) and gain > 0):
        raise DeployError(f"NIR node '{name}': input gain {gain:g} is not positive")
    return FloatNeuron(leak, threshold, reset), gain


def readout_gain(node, name: str, dt: float) -> float:
    """The input gain of an integrating readout (I)."""
    import nir

    if isinstance(node, nir.I):
        return dt * _uniform(node, "r", name)
    if isinstance(node, nir.LI):
        raise DeployError(
            f"NIR node '{name}': a leaky readout (LI); ours integrates without leak (use I, or"
            " end the graph with the last Linear)"
        )
    raise DeployError(f"NIR node '{name}': {type(node).__name__} is not a readout we map")
