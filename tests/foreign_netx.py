"""netx files as other tools write them (no ``/dietsnn`` group), for tests.

The layout is lava-dl slayer's ``export_hdf5``: ``type`` as an S10 string, ``shape``, float32
weights holding integers, ``inFeatures``/``outFeatures`` on dense layers, a ``neuron`` group
(``type``, ``iDecay``, ``vDecay``, ``vThMant``, ``refDelay``, ``gradedSpike``), optional
``bias``; a first conv layer's input shape comes from an ``input`` layer with a ``shape``
and no neuron. ``random_foreign(kind, seed)`` builds one of:

- ``"dense"``: spikes (64,) → dense 32 (bias, iDecay 1024) → dense 10 (spiking readout)
- ``"conv"``:  input (1, 8, 8) shape only → conv 3×3 stride 1 pad 1 (4 ch, LOIHI type, bias)
  → flatten → dense 24 (iDecay 2048) → dense 10
- ``"input"``: input layer of neurons (1, 8, 8; v_decay 2048, threshold 60) with the input
  transform weight 48, bias −4 → conv 3×3 stride 2 (6 ch) → flatten → dense 10
- ``"flatten"``: input (1, 8, 8) shape only → flatten → dense 20 → dense 10 (the map's
  spikes reach the first dense layer flattened, in netx's C-major order)
- ``"delay"``: spikes (64,) → dense 32 with axonal delays 0–4 per output neuron → dense 10
  with delays 0–3 per input (iDecay 1024)

with odd, mixed-sign weights, for spikes rate-coded from 8×8 digits.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

KINDS = ("dense", "conv", "input", "flatten", "delay")


def _string(group: h5py.Group, name: str, value: str) -> None:
    group.create_dataset(name, (1,), "S10", [value.encode("ascii")])


def _neuron(group, *, threshold: int, v_decay: int, i_decay: int = 4096, kind="CUBA"):
    cell = group.create_group("neuron")
    _string(cell, "type", kind)
    for name, value in (("iDecay", i_decay), ("vDecay", v_decay), ("vThMant", threshold),
                        ("refDelay", 1), ("gradedSpike", False)):  # fmt: skip
        cell.create_dataset(name, data=value)


def _odd(rng: np.random.Generator, shape, high: int) -> np.ndarray:
    """Odd integers in [−high, high] of both signs, as float32 (slayer writes floats)."""
    weight = 2 * rng.integers(-(high // 2), high // 2, size=shape) + 1
    return weight.astype(np.float32)


def _dense(layers, index, rng, inputs, outputs, *, threshold, v_decay, i_decay=4096, bias=False,
           delay=None):  # fmt: skip
    group = layers.create_group(str(index))
    _string(group, "type", "dense")
    group.create_dataset("shape", data=np.array([outputs]))
    group.create_dataset("inFeatures", data=inputs)
    group.create_dataset("outFeatures", data=outputs)
    group.create_dataset("weight", data=_odd(rng, (outputs, inputs), 60))
    if bias:
        group.create_dataset("bias", data=rng.integers(-8, 9, size=outputs).astype(np.float32))
    if delay is not None:
        group.create_dataset("delay", data=delay.astype(np.float32))  # slayer writes floats
    _neuron(group, threshold=threshold, v_decay=v_decay, i_decay=i_decay)


def _conv(layers, index, rng, in_shape, channels, stride, *, threshold, kind="CUBA", bias=False):
    c, h, w = in_shape
    padding = 1 if stride == 1 else 0
    out = (channels, (h + 2 * padding - 3) // stride + 1, (w + 2 * padding - 3) // stride + 1)
    group = layers.create_group(str(index))
    _string(group, "type", "conv")
    group.create_dataset("shape", data=np.array(out))
    for name, value in (("stride", [stride, stride]), ("padding", [padding, padding]),
                        ("dilation", [1, 1]), ("groups", 1)):  # fmt: skip
        group.create_dataset(name, data=np.array(value))
    group.create_dataset("weight", data=_odd(rng, (channels, c, 3, 3), 60))
    if bias:
        group.create_dataset("bias", data=rng.integers(-8, 9, size=channels).astype(np.float32))
    _neuron(group, threshold=threshold, v_decay=300, kind=kind)
    return out


def _flatten(layers, index):
    _string(layers.create_group(str(index)), "type", "flatten")


#: the input layer's transform of the "input" kind: drive = 48·s − 4 (netx's default: 64·s)
INPUT_TRANSFORM = (48, -4)
INPUT_NEURON = {"threshold": 60, "v_decay": 2048}


def _input(layers, shape, *, neurons: bool):
    group = layers.create_group("0")
    _string(group, "type", "input")
    group.create_dataset("shape", data=np.array(shape))
    if neurons:
        _neuron(group, **INPUT_NEURON)  # one spike of 48 − 4 does not fire, two in a row do
        group.create_dataset("weight", data=float(INPUT_TRANSFORM[0]))  # slayer writes floats
        group.create_dataset("bias", data=float(INPUT_TRANSFORM[1]))


def random_foreign(kind: str, seed: int, path: str | Path) -> Path:
    """Write a network of ``kind`` (module doc) with weights drawn under ``seed``."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    with h5py.File(path, "w") as f:
        layers = f.create_group("layer")
        if kind == "dense":
            _dense(layers, 0, rng, 64, 32, threshold=40, v_decay=123, i_decay=1024, bias=True)
            _dense(layers, 1, rng, 32, 10, threshold=30, v_decay=123)
        elif kind == "conv":
            _input(layers, (1, 8, 8), neurons=False)
            out = _conv(layers, 1, rng, (1, 8, 8), 4, 1, threshold=60, kind="LOIHI", bias=True)
            _flatten(layers, 2)
            _dense(layers, 3, rng, int(np.prod(out)), 24, threshold=120, v_decay=200,
                   i_decay=2048)  # fmt: skip
            _dense(layers, 4, rng, 24, 10, threshold=40, v_decay=200)
        elif kind == "input":
            _input(layers, (1, 8, 8), neurons=True)
            out = _conv(layers, 1, rng, (1, 8, 8), 6, 2, threshold=50)
            _flatten(layers, 2)
            _dense(layers, 3, rng, int(np.prod(out)), 10, threshold=60, v_decay=100)
        elif kind == "flatten":
            _input(layers, (1, 8, 8), neurons=False)
            _flatten(layers, 1)
            _dense(layers, 2, rng, 64, 20, threshold=40, v_decay=123, bias=True)
            _dense(layers, 3, rng, 20, 10, threshold=30, v_decay=123)
        elif kind == "delay":
            _dense(layers, 0, rng, 64, 32, threshold=40, v_decay=123,
                   delay=rng.integers(0, 5, size=32))  # fmt: skip
            _dense(layers, 1, rng, 32, 10, threshold=30, v_decay=123, i_decay=1024,
                   delay=rng.integers(0, 4, size=32))  # fmt: skip
        else:
            raise ValueError(f"unknown kind {kind!r}; choose from {KINDS}")
    return path
