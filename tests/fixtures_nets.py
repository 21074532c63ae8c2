"""Small random but valid DeployedNetworks (and images) for tests.

``random_network(arch, seed)`` builds one of:

- ``"dense"``:  input → flatten → dense → readout
- ``"conv"``:   input → conv 3×3 → conv 3×3 stride 2 → flatten → dense → readout
- ``"pooled"``: input → conv with a folded 2×2 average pool (``pool=2``: the 3×3 kernel
  expanded to 6×6 by ``kron(·, ones(2, 2))``, stride 2, padding 2) → flatten → dense with a
  folded 2×2 pool (each weight repeated over its pool window) → readout

with a random :class:`HostEncoder` (3×3 conv, padding 1). Weights are even integers in the
8-bit range; each spiking layer's threshold is searched so that it fires on about
``target_rate`` of its neuron-steps (10–40 %) on ``random_images(16, in_shape, seed + 1)``,
using a minimal NumPy transcription of the LIF step in ``dietsnn_deploy/spine/network.py``.
"""

from __future__ import annotations

import os
from dataclasses import fields, is_dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dietsnn_deploy.spine.loihi import DECAY_UNITY, STATE_SHIFT, THRESHOLD_MAX, V_LIMIT
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
from hw_sim.host import encode_drive

ARCHS = ("dense", "conv", "pooled")


def random_images(count: int, in_shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    """Uniform pixels in [0, 1], float32 (count, C, H, W)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((count, *in_shape), generator=generator)


def random_encoder(
    in_shape: tuple[int, int, int],
    channels: int,
    rng: np.random.Generator | int,
    drive_std: float = 60.0,
) -> HostEncoder:
    """3×3 conv encoder (padding 1) whose drive has a standard deviation near ``drive_std``
    on uniform pixels; ``rng`` is a NumPy generator or a seed."""
    rng = np.random.default_rng(rng)
    weight = rng.normal(0.0, 0.5, size=(channels, in_shape[0], 3, 3))
    encoder = HostEncoder(
        weight=weight,
        stride=(1, 1),
        padding=(1, 1),
        drive_scale=1.0,
        mean=tuple(float(m) for m in rng.uniform(0.3, 0.6, in_shape[0])),
        std=tuple(float(s) for s in rng.uniform(0.2, 0.4, in_shape[0])),
        in_shape=in_shape,
    )
    probe = encode_drive(replace(encoder, drive_scale=1000.0), random_images(8, in_shape, 0))
    return replace(encoder, drive_scale=1000.0 * drive_std / float(probe.double().std()))


def _even_weights(rng: np.random.Generator, shape: tuple[int, ...], low: int, high: int):
    """Even integers 2·U{low..high}, resampled until the matrix mixes signs."""
    while True:
        weight = 2 * rng.integers(low, high + 1, size=shape, dtype=np.int64)
        if weight.min() < 0 < weight.max():
            return weight


def _lif(current: np.ndarray, v_decay: int, threshold: int) -> np.ndarray:
    """Spikes (T, ...) of the deployed.py LIF step for per-step input ``current`` (T, ...)."""
    v = np.zeros(current.shape[1:], dtype=np.int64)
    spikes = np.zeros(current.shape, dtype=bool)
    for t in range(current.shape[0]):
        decayed = v * (DECAY_UNITY - v_decay)
        v = np.sign(decayed) * (np.abs(decayed) >> 12) + (current[t] << STATE_SHIFT)
        v = np.clip(v, -V_LIMIT, V_LIMIT)
        spikes[t] = v > (threshold << STATE_SHIFT)
        v[spikes[t]] = 0
    return spikes


def _tune(current: np.ndarray, v_decay: int, target: float) -> tuple[Neuron, np.ndarray]:
    """Neuron whose threshold gives the firing rate closest to ``target`` on ``current``."""
    low, high = 0, THRESHOLD_MAX
    while high - low > 1:  # rate falls as the threshold rises
        mid = (low + high) // 2
        if _lif(current, v_decay, mid).mean() > target:
            low = mid
        else:
            high = mid
    best = min((low, high), key=lambda th: abs(_lif(current, v_decay, th).mean() - target))
    return Neuron(v_decay=v_decay, threshold=int(best)), _lif(current, v_decay, best)


def _conv_current(spikes: np.ndarray, layer: ConvLayer) -> np.ndarray:
    t, b = spikes.shape[:2]
    x = torch.from_numpy(spikes.reshape(t * b, *spikes.shape[2:])).double()
    w = torch.from_numpy(layer.weight).double()
    out = F.conv2d(x, w, stride=layer.stride, padding=layer.padding)
    return out.round().long().numpy().reshape(t, b, *out.shape[1:])


def _dense_current(spikes: np.ndarray, weight: np.ndarray) -> np.ndarray:
    flat = spikes.reshape(*spikes.shape[:2], -1).astype(np.int64)
    return flat @ weight.T


def _conv_out(in_shape, kernel: int, stride: int, padding: int, channels: int):
    size = [(s + 2 * padding - kernel) // stride + 1 for s in in_shape[1:]]
    return (channels, size[0], size[1])


def random_network(
    arch: str,
    seed: int,
    *,
    in_shape: tuple[int, int, int] = (2, 8, 8),
    channels: int = 4,
    hidden: int = 12,
    num_classes: int = 4,
    timesteps: int = 5,
    target_rate: float = 0.25,
) -> DeployedNetwork:
    """A random valid network of kind ``arch`` (see module docstring), reproducible by seed."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    rng = np.random.default_rng(seed)
    encoder = random_encoder(in_shape, channels, rng)
    drive = encode_drive(encoder, random_images(16, in_shape, seed + 1)).numpy()
    current = np.broadcast_to(drive, (timesteps, *drive.shape))
    neuron, spikes = _tune(current, int(rng.integers(0, 1025)), target_rate)
    layers: list = [InputLayer(shape=tuple(drive.shape[1:]), neuron=neuron)]

    def add_conv(kernel: np.ndarray, stride: int, padding: int, pool: int) -> None:
        nonlocal spikes
        shape = layers[-1].shape
        draft = ConvLayer(
            weight=kernel,
            stride=(stride, stride),
            padding=(padding, padding),
            in_shape=shape,
            shape=_conv_out(shape, kernel.shape[-1], stride, padding, kernel.shape[0]),
            neuron=Neuron(0, 0),
            pool=pool,
        )
        neuron, spikes = _tune(
            _conv_current(spikes, draft), int(rng.integers(0, 1025)), target_rate
        )
        layers.append(replace(draft, neuron=neuron))

    def add_dense(weight: np.ndarray, pool: int) -> None:
        nonlocal spikes
        if layers[-1].kind != "dense" and layers[-1].kind != "flatten":
            layers.append(FlattenLayer(in_shape=layers[-1].shape))
        current = _dense_current(spikes, weight)
        neuron, spikes = _tune(current, int(rng.integers(0, 1025)), target_rate)
        layers.append(DenseLayer(weight=weight, neuron=neuron, pool=pool))

    if arch == "conv":
        add_conv(_even_weights(rng, (channels, channels, 3, 3), -30, 60), 1, 1, 1)
        add_conv(_even_weights(rng, (channels, channels, 3, 3), -30, 60), 2, 1, 1)
    if arch == "pooled":
        base = _even_weights(rng, (channels, channels, 3, 3), -30, 60)
        add_conv(np.kron(base, np.ones((2, 2), dtype=np.int64)), 2, 2, 2)
        c, h, w = layers[-1].shape
        small = _even_weights(rng, (hidden, c, h // 2, w // 2), -30, 60)
        add_dense(small.repeat(2, axis=2).repeat(2, axis=3).reshape(hidden, -1), 2)
    else:
        size = int(np.prod(layers[-1].shape))
        add_dense(_even_weights(rng, (hidden, size), -30, 60), 1)
    readout_weight = _even_weights(rng, (num_classes, hidden), -50, 50)
    layers.append(DenseLayer(readout_weight, Neuron(0, THRESHOLD_MAX, spiking=False)))
    quantization = [
        LayerQuantization(f"layer{i}", float(rng.uniform(10, 100)), 0.01, 0.0, n.threshold, 0)
        for i, n in enumerate(layer.neuron for layer in layers if layer.kind != "flatten")
    ]
    return DeployedNetwork(
        encoder=encoder,
        layers=layers,
        timesteps=timesteps,
        num_classes=num_classes,
        dataset="random",
        arch=arch,
        quantization=quantization,
    )


def assert_same_network(actual: DeployedNetwork, expected: DeployedNetwork) -> None:
    """Every field equal, arrays compared element-wise (dataclass == cannot compare arrays)."""
    assert _plain(actual) == _plain(expected)


def _plain(value):
    """Nested plain-Python form of a network: dataclasses → dicts, arrays → (dtype kind, list)."""
    if isinstance(value, np.ndarray):
        return (value.dtype.kind, value.shape, value.tolist())
    if is_dataclass(value):
        return {
            "type": type(value).__name__,
            **{f.name: _plain(getattr(value, f.name)) for f in fields(value)},
        }
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def child_processes() -> list[str]:
    """Command lines of this process's children except multiprocessing's resource tracker
    (a helper that lives as long as its parent); Lava's runtime processes show up here."""
    me, found = str(os.getpid()), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        parent = stat.rsplit(")", 1)[1].split()[1]
        if parent == me and "resource_tracker" not in command:
            found.append(f"{pid} {command or stat.split()[1]}")
    return found


def converted_digits(timesteps: int = 5, calibration: int = 256):
    """(model, info): a vgg-tiny digits SNN converted at ``timesteps`` (thresholds balanced on
    the first ``calibration`` training images; untrained weights, so it is fast to make), and
    its checkpoint info (stage ``converted``)."""
    from dietsnn_deploy.data import dataset_info
    from dietsnn_deploy.training.checkpoints import ModelInfo
    from dietsnn_deploy.training.models import build_model
    from dietsnn_deploy.training.pipeline import calibration_images
    from dietsnn_deploy.training.stages import convert

    data = dataset_info("digits")
    info = ModelInfo("vgg-tiny", "digits", data.in_shape, 10, data.mean, data.std, "converted",
                     timesteps=timesteps)  # fmt: skip
    torch.manual_seed(0)
    model = build_model("vgg-tiny", data.in_shape, 10)
    convert(model, calibration_images(info, None, calibration), timesteps=timesteps,
            progress=False)  # fmt: skip
    return model, info


def assert_records_agree(lava, emulated, net, rates=(0.01, 1.0)) -> list[torch.Tensor]:
    """Lava's and the emulator's :class:`SpikeRecord` hold the same spikes in every layer and
    the same readout, and every recorded layer fires on a fraction of its neuron-steps within
    ``rates`` (so agreement cannot come from silence). Returns the recorded spike tensors."""
    assert len(lava.spikes) == len(emulated.spikes) == len(net.layers)
    recorded = []
    for index, (theirs, ours) in enumerate(zip(lava.spikes, emulated.spikes, strict=True)):
        if theirs is None or ours is None:
            assert theirs is None and ours is None, f"layer {index}"
            continue
        name = f"layer {index} ({net.layers[index].kind})"
        assert torch.equal(theirs, ours), f"{name}: spikes differ"
        rate = ours.float().mean()
        assert rates[0] <= rate <= rates[1], f"{name}: rate {rate:.3f} outside {rates}"
        recorded.append(ours)
    assert torch.equal(lava.readout, emulated.readout)
    return recorded
