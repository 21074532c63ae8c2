"""Quantize a trained DIET-SNN (VGG family) to Loihi fixed point: a :class:`DeployedNetwork`.

Binary spikes between layers let every layer keep its own integer scale ``s`` (integer units
per float unit); the codec is the spine's (:mod:`dietsnn_deploy.spine.loihi`)::

    W_int = 2·round(W·s / 2)  clipped to [−256, 254]     8-bit mixed-sign mantissas (even)
    threshold = round(θ·s·k²)                          vThMant, 17 bit (k = folded pool side)
    v_decay = round(4096·(1 − λ))                       12-bit membrane decay

``s = 254 / max|W|`` uses the full weight range unless the threshold would not fit 17 bits.
A k×k average pool on spikes before a layer is folded into it exactly
(:mod:`dietsnn_deploy.spine.geometry`). The first conv stays on the host; its drive
``round(s0·conv1(frame))`` must fit the 13-bit bias, so ``s0 = 4095 / peak`` where the peak
is the largest |conv1| over the calibration images' analog frames and, for an encoding with
binary frames, the worst case those can give. The readout integrates without leak and must
never reach its threshold: its scale keeps ``T·max_row Σ|W_int| < 2^17`` (checked on the
rounded weights) so ``|v| < threshold << 6`` for any input.

Each layer's report also gives its worst-case per-step input (:meth:`ConvLayer.input_bound`):
Loihi's ``a_in`` port is int16, Lava's simulator is not, so a bound above 2^15 − 1 marks a
layer that could saturate on the chip but not in simulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine import geometry, loihi
from dietsnn_deploy.spine.encodings import BINARY
from dietsnn_deploy.spine.network import (
    ConvLayer,
    DenseLayer,
    DeployedNetwork,
    FlattenLayer,
    HostEncoder,
    InputLayer,
    LayerQuantization,
    Neuron,
)
from dietsnn_deploy.training.models import DietNet, DietVGG


@dataclass(frozen=True)
class Synapse:
    """One weighted layer of a VGG as deployed: its module, neuron key (None = readout),
    the pool side folded into its input, and the shape of the spikes it receives."""

    module: nn.Conv2d | nn.Linear
    key: str | None
    pool: int
    in_shape: tuple[int, ...]


def synapses(model: DietNet) -> list[Synapse]:
    """The weighted layers of a VGG in order, with pools attached to the layer they feed."""
    if not isinstance(model, DietVGG):
        raise DeployError(
            f"'{model.spec.name}' has residual additions, which netx cannot express;"
            " export supports the VGG family"
        )
    out: list[Synapse] = []
    shape: tuple[int, ...] = model.in_shape
    pool = 1
    for i, module in enumerate(model.features):
        if isinstance(module, nn.Conv2d):
            out.append(Synapse(module, str(i), pool, shape))
            shape = geometry.pooled_shape((module.out_channels, *shape[1:]), pool)
            pool = 1
        elif isinstance(module, nn.AvgPool2d):
            pool *= int(module.kernel_size)
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    keys = [str(len(model.features) + j) for j, m in enumerate(model.classifier[:-1])]
    keys = [k for k, m in zip(keys, model.classifier[:-1], strict=True) if isinstance(m, nn.Linear)]
    for index, module in enumerate(linears):
        key = keys[index] if index < len(keys) else None
        out.append(Synapse(module, key, pool, shape))
        shape, pool = (module.out_features,), 1
    return out


def raw_weight(module: nn.Module) -> torch.Tensor:
    """The float weight a layer stores (under hardware fine-tuning, before fake quantization)."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original.detach().cpu()
    return module.weight.detach().cpu()


def quantize_weights(weight: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """Integer mantissas of ``weight`` at ``scale`` and the share of weights that were clipped."""
    mantissa = loihi.weight_mantissa(weight, scale).astype(np.int64)
    return mantissa, loihi.weight_saturation(weight, scale)


def _threshold_of(model: DietNet, key: str) -> float:
    """A spiking layer's float threshold, refused unless positive and finite."""
    threshold = float(model.threshold[f"t{key}"].detach())
    if not 0 < threshold < float("inf"):
        raise DeployError(f"layer {key}: threshold {threshold:.4g} is not positive and finite")
    return threshold


def _readout_fits(weight: np.ndarray, scale: float, pool: int, timesteps: int) -> bool:
    """True if T·max_row Σ|W_int| (pool-folded) stays below 2^17 at ``scale``."""
    w_int, _ = quantize_weights(weight, scale)
    return timesteps * int(np.abs(w_int).sum(axis=1).max()) * pool**2 <= loihi.THRESHOLD_MAX


@dataclass(frozen=True)
class LayerScale:
    """The scale a layer's float quantities are multiplied by, and its folded pool side."""

    scale: float
    pool: int

    @property
    def threshold_unit(self) -> float:
        """Threshold mantissa units per float unit: s·k²."""
        return self.scale * self.pool**2


A_IN_FITS = ("worst", "measured")


def layer_scales(
    model: DietNet,
    drive_max: float,
    timesteps: int,
    *,
    fit_a_in: str | None = None,
    calibration: torch.Tensor | None = None,
) -> list[LayerScale]:
    """Per-synapse scales (host conv first): full 8-bit weight range, bounded so thresholds
    fit 17 bits and the readout can never reach its threshold in ``timesteps`` steps.

    ``fit_a_in`` also bounds each synaptic layer's scale so that one step's input fits the
    chip's int16 ``a_in`` port: ``worst`` at the worst case over any spikes (checked on the
    rounded weights, :meth:`ConvLayer.input_bound`), ``measured`` at the largest input the
    float model receives on the ``calibration`` images (which can still be exceeded)."""
    if fit_a_in is not None and fit_a_in not in A_IN_FITS:
        raise DeployError(f"unknown a_in fit {fit_a_in!r}; choose from {', '.join(A_IN_FITS)}")
    measured = _measured_inputs(model, calibration, timesteps) if fit_a_in == "measured" else {}
    scales = []
    for index, syn in enumerate(synapses(model)):
        weight = raw_weight(syn.module).double()
        if index == 0:
            _threshold_of(model, syn.key)
            scales.append(LayerScale(loihi.BIAS_MAX / drive_max, 1))
            continue
        w_max = float(weight.abs().max())
        if not 0 < w_max < float("inf"):
            raise DeployError(f"layer {syn.key or 'readout'}: all weights are zero (or not finite)")
        scale = loihi.WEIGHT_MAX / w_max
        if syn.key is None:
            row_sum = float(weight.abs().sum(1).max()) * syn.pool**2
            scale = min(scale, (loihi.THRESHOLD_MAX - 1) / (timesteps * row_sum * 1.01))
        else:
            threshold = _threshold_of(model, syn.key)
            scale = min(scale, loihi.THRESHOLD_MAX / (threshold * syn.pool**2))
        if fit_a_in == "measured" and measured.get(index, 0.0) > 0:
            scale = min(scale, loihi.A_IN_MAX / (measured[index] * syn.pool**2))
        weight_np = weight.numpy()
        while (shrink := _shrink(syn, weight_np, scale, timesteps, fit_a_in == "worst")) < 1:
            scale *= shrink
        scales.append(LayerScale(scale, syn.pool))
    return scales


def _shrink(syn: Synapse, weight: np.ndarray, scale: float, timesteps: int, worst_a_in: bool):
    """1 if the rounded weights at ``scale`` keep the readout out of reach (readout) and, with
    ``worst_a_in``, every step's input within int16; else the factor to scale down by
    (rounding can push a bound just past its limit: at least 1 % at a time)."""
    factor = 1.0
    if syn.key is None and not _readout_fits(weight, scale, syn.pool, timesteps):
        factor = 0.99
    if worst_a_in:
        w_int, _ = quantize_weights(weight, scale)
        bound = _synaptic_layer(syn, w_int, Neuron(0, 0)).input_bound()
        if bound > loihi.A_IN_MAX:
            factor = min(factor, 0.99, 0.999 * loihi.A_IN_MAX / bound)
    return factor


def _measured_inputs(model: DietNet, images: torch.Tensor | None, timesteps: int):
    """Largest |W·x| each synapse (by index) computes while the float SNN runs on ``images``
    (x = the pooled spikes it receives), in float units."""
    if images is None:
        raise DeployError("a measured a_in fit needs calibration images")
    syns = synapses(model)
    peaks: dict[int, float] = {}

    def hook(index):
        def record(module, inputs, output):
            peaks[index] = max(peaks.get(index, 0.0), float(output.detach().abs().max()))

        return record

    handles = [s.module.register_forward_hook(hook(i)) for i, s in enumerate(syns) if i > 0]
    try:
        with torch.no_grad():
            model.eval()
            model.run_snn(images, timesteps, generator=torch.Generator().manual_seed(0))
    finally:
        for handle in handles:
            handle.remove()
    return peaks


def host_drive_max(model: DietNet, images: torch.Tensor, timesteps: int) -> float:
    """Largest |conv1(frame)| the host can produce (float units): over the calibration images'
    analog frames, and at worst case for binary frames (:func:`geometry.input_bound`)."""
    first = synapses(model)[0]
    encoding = model.encoding
    with torch.no_grad():
        frames = encoding.frames(images, timesteps, torch.Generator().manual_seed(0))
        analog = (
            images
            if frames is None
            else frames[
                [t for t, kind in enumerate(encoding.step_kinds(timesteps)) if kind != BINARY]
            ].flatten(0, 1)
        )
        peak = float(first.module(analog).abs().max()) if len(analog) else 0.0
    if BINARY in encoding.step_kinds(timesteps):
        weight = first.module.weight.detach().cpu().double().numpy()
        bound = geometry.input_bound(
            weight,
            conv=(model.in_shape, first.module.stride, first.module.padding),
            signed_input=encoding.signed_binary(),
        )
        peak = max(peak, float(bound))
    if not np.isfinite(peak) or peak <= 0:
        raise DeployError(
            f"layer {first.key} (host conv): calibration images give no drive"
            " (weights or images all zero, or NaN)"
        )
    return peak


def quantize(
    model: DietNet,
    calibration: torch.Tensor,
    *,
    timesteps: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    dataset: str = "",
    fit_a_in: str | None = None,
) -> DeployedNetwork:
    """The deployed integer network of a trained SNN run for ``timesteps`` steps;
    ``calibration`` = normalised images that set the host drive's scale (and, with
    ``fit_a_in="measured"``, the measured inputs; see :func:`layer_scales`)."""
    syns = synapses(model)
    drive_max = host_drive_max(model, calibration, timesteps)
    scales = layer_scales(model, drive_max, timesteps, fit_a_in=fit_a_in, calibration=calibration)
    first = syns[0].module
    encoder = HostEncoder(
        weight=first.weight.detach().cpu().numpy().astype(np.float64),
        stride=tuple(first.stride),
        padding=tuple(first.padding),
        drive_scale=scales[0].scale,
        mean=tuple(mean),
        std=tuple(std),
        in_shape=tuple(model.in_shape),
        encoding=model.encoding.name,
    )
    with torch.no_grad():
        frames = model.encoding.frames(calibration, timesteps, torch.Generator().manual_seed(0))
        seen = calibration if frames is None else frames.flatten(0, 1)
        drive = scales[0].scale * first(seen).double()
    layers: list = []
    report: list[LayerQuantization] = []
    shape = encoder.out_shape
    for syn, ls in zip(syns, scales, strict=True):
        neuron = _neuron(model, syn, ls, timesteps)
        name = f"t{syn.key}" if syn.key is not None else "readout"
        if syn is syns[0]:
            layers.append(InputLayer(shape=shape, neuron=neuron))
            clipped = float((drive.abs() > loihi.BIAS_MAX).double().mean())
            peak = int(torch.round(drive).abs().clamp(max=loihi.BIAS_MAX).max())
            report.append(
                LayerQuantization("input " + name, ls.scale, 0.0, clipped, *_nq(neuron), peak)
            )
            continue
        weight = raw_weight(syn.module).numpy().astype(np.float64)
        w_int, saturated = quantize_weights(weight, ls.scale)
        rmse = float(np.sqrt(np.mean((w_int / ls.scale - weight) ** 2)))
        if isinstance(syn.module, nn.Linear) and len(shape) == 3:
            layers.append(FlattenLayer(in_shape=shape))
        layers.append(_synaptic_layer(syn, w_int, neuron))
        shape = layers[-1].shape
        bound = layers[-1].input_bound()
        report.append(LayerQuantization(name, ls.scale, rmse, saturated, *_nq(neuron), bound))
    return DeployedNetwork(
        encoder=encoder,
        layers=layers,
        timesteps=timesteps,
        num_classes=model.num_classes,
        dataset=dataset,
        arch=model.spec.name,
        quantization=report,
    )


def _nq(neuron: Neuron) -> tuple[int, int]:
    return neuron.threshold, neuron.v_decay


def _neuron(model: DietNet, syn: Synapse, ls: LayerScale, timesteps: int) -> Neuron:
    name = model.neuron_model.name
    if syn.key is None:  # the readout integrates: a plain LIF without leak or reach
        return Neuron(v_decay=0, threshold=loihi.THRESHOLD_MAX, spiking=False)
    leak, threshold = model.neuron(syn.key)
    leak = loihi.check_leak(float(leak.detach()), f"layer {syn.key}")
    threshold_int = int(loihi.threshold_mantissa(np.float64(threshold.detach()), ls.threshold_unit))
    if threshold_int < 1:
        raise DeployError(f"layer {syn.key}: threshold rounds to {threshold_int} (< 1)")
    if threshold_int > loihi.THRESHOLD_MAX:
        raise DeployError(f"layer {syn.key}: threshold {threshold_int} exceeds 17 bits")
    return Neuron(
        v_decay=int(loihi.v_decay(np.float64(leak))),
        threshold=threshold_int,
        model=name,
        refractory=model.neuron_model.refractory(timesteps),
    )


def _synaptic_layer(syn: Synapse, w_int: np.ndarray, neuron: Neuron) -> ConvLayer | DenseLayer:
    """The deployed conv or dense layer of ``syn`` with integer weights ``w_int`` (original
    geometry): the pool in front of it folded in (:mod:`dietsnn_deploy.spine.geometry`)."""
    k, in_shape = syn.pool, tuple(syn.in_shape)
    if isinstance(syn.module, nn.Linear):
        if len(in_shape) == 3:  # after the flatten of a (pooled) map
            unfolded = w_int.reshape(-1, *geometry.pooled_shape(in_shape, k))
            w_int = geometry.fold_pool(unfolded, k).reshape(w_int.shape[0], -1)
        return DenseLayer(weight=w_int, neuron=neuron, pool=k)
    conv = syn.module
    stride, padding = geometry.fold_stride_padding(conv.stride, conv.padding, k)
    weight = geometry.fold_pool(w_int, k)
    kernel = (int(weight.shape[2]), int(weight.shape[3]))
    return ConvLayer(
        weight=weight,
        stride=stride,
        padding=padding,
        in_shape=in_shape,
        shape=geometry.conv_output_shape(in_shape, conv.out_channels, kernel, stride, padding),
        neuron=neuron,
        pool=k,
    )
