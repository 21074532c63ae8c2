"""Quantize a trained DIET-SNN (VGG family) to Loihi fixed point: a :class:`DeployedNetwork`.

Binary spikes between layers let every layer keep its own integer scale ``s`` (integer units
per float unit)::

    W_int = 2·round(W·s / 2)  clipped to [−256, 254]     8-bit mixed-sign mantissas (even)
    threshold = round(θ·s·k²)                          vThMant, 17 bit (k = folded pool side)
    v_decay = round(4096·(1 − λ))                       12-bit membrane decay

``s = 254 / max|W|`` uses the full weight range unless the threshold would not fit 17 bits.
A k×k average pool on spikes before a layer is folded into it exactly: the kernel is repeated
over each k×k window (stride and padding × k) and, instead of dividing the weights by k², the
threshold is multiplied by k². The first conv stays on the host (analog input); its drive
``round(s0·conv1(x))`` must fit the 13-bit bias, so ``s0 = 4095 / max|conv1(x)|`` over the
calibration images. The readout integrates without leak and must never reach its threshold:
its scale keeps ``T·max_row Σ|W_int| < 2^17`` (checked on the rounded weights) so
``|v| < threshold << 6`` for any input.

Each layer's report also gives its worst-case per-step input ``max(Σ W⁺, Σ |W⁻|)`` over a
neuron's fan-in (spikes are 0/1): Loihi's ``a_in`` port is int16, Lava's simulator is not, so
a bound above 2^15 − 1 marks a layer that could saturate on the chip but not in simulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from dietsnn_deploy.deployed import (
    BIAS_MAX,
    DECAY_UNITY,
    THRESHOLD_MAX,
    WEIGHT_MAX,
    WEIGHT_MIN,
    ConvLayer,
    DenseLayer,
    DeployedNetwork,
    FlattenLayer,
    HostEncoder,
    InputLayer,
    LayerQuantization,
    Neuron,
)
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.models import DietNet, DietVGG


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
            shape = (module.out_channels, shape[1] // pool, shape[2] // pool)
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
        return module.parametrizations.weight.original.detach()
    return module.weight.detach()


def quantize_weights(weight: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """Even 8-bit mantissas ``2·round(w·s/2)`` clipped to [−256, 254]; returns (W_int, share
    of weights that were clipped)."""
    scaled = np.round(weight * scale / 2.0) * 2.0
    saturated = float(np.mean((scaled < WEIGHT_MIN) | (scaled > WEIGHT_MAX)))
    return np.clip(scaled, WEIGHT_MIN, WEIGHT_MAX).astype(np.int64), saturated


def fold_pool(weight: np.ndarray, pool: int) -> np.ndarray:
    """Repeat each weight over its pool window: conv kernels (O, I, kh, kw) grow to (kh·k,
    kw·k); dense weights on a flattened (C, H, W) input grow to (C, H·k, W·k)."""
    if pool == 1:
        return weight
    return weight.repeat(pool, axis=-2).repeat(pool, axis=-1)


def v_decay_of(leak: float, layer: str) -> int:
    """12-bit decay of a leak λ ∈ [0, 1]: round(4096·(1 − λ))."""
    if not 0.0 <= leak <= 1.0:
        raise DeployError(f"layer {layer}: leak {leak:.4f} is outside [0, 1]")
    return round(DECAY_UNITY * (1.0 - leak))


def _threshold_of(model: DietNet, key: str) -> float:
    """A spiking layer's float threshold, refused unless positive and finite."""
    threshold = float(model.threshold[f"t{key}"].detach())
    if not 0 < threshold < float("inf"):
        raise DeployError(f"layer {key}: threshold {threshold:.4g} is not positive and finite")
    return threshold


def _readout_fits(weight: np.ndarray, scale: float, pool: int, timesteps: int) -> bool:
    """True if T·max_row Σ|W_int| (pool-folded) stays below 2^17 at ``scale``."""
    w_int, _ = quantize_weights(weight, scale)
    return timesteps * int(np.abs(w_int).sum(axis=1).max()) * pool**2 <= THRESHOLD_MAX


@dataclass(frozen=True)
class LayerScale:
    """The scale a layer's float quantities are multiplied by, and its folded pool side."""

    scale: float
    pool: int


def layer_scales(model: DietNet, drive_max: float) -> list[LayerScale]:
    """Per-synapse scales (host conv first): full 8-bit weight range, bounded so thresholds
    fit 17 bits and the readout can never reach its threshold."""
    scales = []
    for index, syn in enumerate(synapses(model)):
        weight = raw_weight(syn.module).double()
        if index == 0:
            _threshold_of(model, syn.key)
            scales.append(LayerScale(BIAS_MAX / drive_max, 1))
            continue
        w_max = float(weight.abs().max())
        if not 0 < w_max < float("inf"):
            raise DeployError(f"layer {syn.key or 'readout'}: all weights are zero (or not finite)")
        scale = WEIGHT_MAX / w_max
        if syn.key is None:
            row_sum = float(weight.abs().sum(1).max()) * syn.pool**2
            scale = min(scale, (THRESHOLD_MAX - 1) / (model.timesteps * row_sum * 1.01))
            weight_np = weight.numpy()
            while not _readout_fits(weight_np, scale, syn.pool, model.timesteps):
                scale *= 0.99  # rounding added more than the 1 % margin
        else:
            threshold = _threshold_of(model, syn.key)
            scale = min(scale, THRESHOLD_MAX / (threshold * syn.pool**2))
        scales.append(LayerScale(scale, syn.pool))
    return scales


def host_drive_max(model: DietNet, images: torch.Tensor) -> float:
    """Largest |conv1(x)| over the calibration images (float units)."""
    first = synapses(model)[0]
    with torch.no_grad():
        peak = float(first.module(images).abs().max())
    if not np.isfinite(peak) or peak <= 0:
        raise DeployError(
            f"layer {first.key} (host conv): calibration images give no drive"
            " (weights or images all zero, or NaN)"
        )
    return peak


def input_bound(layer: ConvLayer | DenseLayer) -> int:
    """Worst-case per-step |a_in| of a layer: max over its neurons of max(Σ W⁺, Σ |W⁻|) over
    the fan-in, since each input spikes 0 or 1 times per step (conv: border neurons see
    fewer inputs, so the sums come from convolving an all-ones input)."""
    weight = np.asarray(layer.weight).astype(np.float64)
    bounds = []
    for part in (np.maximum(weight, 0), np.maximum(-weight, 0)):
        if isinstance(layer, ConvLayer):
            ones = torch.ones((1, *layer.in_shape), dtype=torch.float64)
            sums = F.conv2d(
                ones, torch.from_numpy(part), stride=layer.stride, padding=layer.padding
            )
            bounds.append(float(sums.max()))
        else:
            bounds.append(float(part.sum(axis=1).max()))
    return round(max(bounds))


def quantize(
    model: DietNet,
    calibration: torch.Tensor,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    dataset: str = "",
) -> DeployedNetwork:
    """The deployed integer network of a trained SNN; ``calibration`` = normalised images
    that set the host drive's scale."""
    if model.encoding != "direct":
        raise DeployError("only direct-input models deploy (the first layer runs on the host)")
    syns = synapses(model)
    scales = layer_scales(model, host_drive_max(model, calibration))
    first = syns[0].module
    encoder = HostEncoder(
        weight=first.weight.detach().numpy().astype(np.float64),
        stride=tuple(first.stride),
        padding=tuple(first.padding),
        drive_scale=scales[0].scale,
        mean=tuple(mean),
        std=tuple(std),
        in_shape=tuple(model.in_shape),
    )
    with torch.no_grad():
        drive = scales[0].scale * first(calibration).double()
    layers: list = []
    report: list[LayerQuantization] = []
    shape = (first.out_channels, *model.in_shape[1:])
    for syn, ls in zip(syns, scales, strict=True):
        neuron = _neuron(model, syn, ls)
        name = f"t{syn.key}" if syn.key is not None else "readout"
        if syn is syns[0]:
            layers.append(InputLayer(shape=shape, neuron=neuron))
            clipped = float((drive.abs() > BIAS_MAX).double().mean())
            peak = int(torch.round(drive).abs().clamp(max=BIAS_MAX).max())
            report.append(
                LayerQuantization("input " + name, ls.scale, 0.0, clipped, *_nq(neuron), peak)
            )
            continue
        weight = raw_weight(syn.module).numpy().astype(np.float64)
        w_int, saturated = quantize_weights(weight, ls.scale)
        rmse = float(np.sqrt(np.mean((w_int / ls.scale - weight) ** 2)))
        if isinstance(syn.module, nn.Conv2d):
            layers.append(_conv_layer(syn, w_int, shape, neuron))
            shape = layers[-1].shape
        else:
            if len(shape) == 3:
                layers.append(FlattenLayer(in_shape=shape))
                w_int = fold_pool(w_int.reshape(-1, *_pooled(shape, syn.pool)), syn.pool)
                w_int = w_int.reshape(w_int.shape[0], -1)
            layers.append(DenseLayer(weight=w_int, neuron=neuron, pool=syn.pool))
            shape = (w_int.shape[0],)
        bound = input_bound(layers[-1])
        report.append(LayerQuantization(name, ls.scale, rmse, saturated, *_nq(neuron), bound))
    return DeployedNetwork(
        encoder=encoder,
        layers=layers,
        timesteps=model.timesteps,
        num_classes=model.num_classes,
        dataset=dataset,
        arch=model.spec.name,
        quantization=report,
    )


def _nq(neuron: Neuron) -> tuple[int, int]:
    return neuron.threshold, neuron.v_decay


def _pooled(shape: tuple[int, ...], pool: int) -> tuple[int, ...]:
    return (shape[0], shape[1] // pool, shape[2] // pool)


def _neuron(model: DietNet, syn: Synapse, ls: LayerScale) -> Neuron:
    if syn.key is None:
        return Neuron(v_decay=0, threshold=THRESHOLD_MAX, spiking=False)
    leak, threshold = model.neuron(syn.key)
    v_decay = v_decay_of(float(leak.detach()), syn.key)
    threshold_int = round(float(threshold.detach()) * ls.scale * ls.pool**2)
    if threshold_int < 1:
        raise DeployError(f"layer {syn.key}: threshold rounds to {threshold_int} (< 1)")
    if threshold_int > THRESHOLD_MAX:
        raise DeployError(f"layer {syn.key}: threshold {threshold_int} exceeds 17 bits")
    return Neuron(v_decay=v_decay, threshold=threshold_int)


def _conv_layer(syn: Synapse, w_int: np.ndarray, in_shape, neuron: Neuron) -> ConvLayer:
    conv, k = syn.module, syn.pool
    stride = tuple(int(s) * k for s in conv.stride)
    padding = tuple(int(p) * k for p in conv.padding)
    weight = fold_pool(w_int, k)
    height = (in_shape[1] + 2 * padding[0] - weight.shape[2]) // stride[0] + 1
    width = (in_shape[2] + 2 * padding[1] - weight.shape[3]) // stride[1] + 1
    return ConvLayer(
        weight=weight,
        stride=stride,
        padding=padding,
        in_shape=tuple(in_shape),
        shape=(conv.out_channels, height, width),
        neuron=neuron,
        pool=k,
    )
