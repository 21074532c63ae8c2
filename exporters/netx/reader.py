"""Read a netx HDF5 file back into a :class:`DeployedNetwork` (or its layers alone).

Every field is checked against its meaning on the way in (:class:`~.fields.Fields`), the
network then validates itself, and a file of ours must match the digest it was written with.
Any failure is one DeployError line naming the file's place; HDF5's lazy errors on damaged
files are turned into the same.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import h5py
import numpy as np

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.network import (
    ConvLayer,
    DenseLayer,
    DeployedNetwork,
    FlattenLayer,
    InputLayer,
    Layer,
    validate_layers,
)
from dietsnn_deploy.spine.neurons import neuron_from_netx
from exporters.hdf5 import DAMAGE_ERRORS, is_hdf5
from exporters.netx.fields import Fields
from exporters.netx.metadata import (
    check_digest,
    metadata_fields,
    read_encoder,
    read_pools,
    read_quantization,
    read_version,
)

SUPPORTED_TYPES = ("input", "conv", "flatten", "dense")


def _read_neuron(layer: Fields, spiking: bool):
    group = layer.group.get("neuron")
    if not isinstance(group, h5py.Group):
        raise layer.fail("missing neuron group")
    return neuron_from_netx(Fields(group, layer.where), spiking)


def _read_layer(fields: Fields, kind: str, previous: tuple[int, ...], pool: int, last: bool):
    for unsupported in ("delay", "weight_rec"):
        if kind != "flatten" and fields.has(unsupported):
            raise fields.fail(f"'{unsupported}' is not supported")
    if kind == "input":
        if fields.has("bias"):
            raise fields.fail("an input layer's bias is not supported (netx never applies it)")
        return InputLayer(shape=fields.shape(3), neuron=_read_neuron(fields, spiking=True))
    if kind == "flatten":
        if len(previous) != 3:
            raise fields.fail(f"flatten needs a (C, H, W) input, previous output is {previous}")
        return FlattenLayer(in_shape=previous)
    neuron = _read_neuron(fields, spiking=not last)
    weight = fields.ints("weight")
    if kind == "conv":
        if weight.ndim != 4:
            raise fields.fail(f"weight must be 4-d (Cout, Cin, kH, kW), got shape {weight.shape}")
        if fields.pair("dilation") != (1, 1) or fields.scalar("groups") != 1:
            raise fields.fail("only dilation 1 and groups 1 are supported")
        if len(previous) != 3:
            raise fields.fail(f"conv needs a (C, H, W) input, previous output is {previous}")
        return ConvLayer(
            weight=weight,
            stride=fields.pair("stride"),
            padding=fields.pair("padding"),
            in_shape=previous,
            shape=fields.shape(3),
            neuron=neuron,
            pool=pool,
            bias=_read_bias(fields, weight.shape[0]),
        )
    if weight.ndim != 2:
        raise fields.fail(f"weight must be 2-d (out, in), got shape {weight.shape}")
    (size,) = fields.shape(1)
    if weight.shape[0] != size:
        raise fields.fail(f"weight has {weight.shape[0]} rows, shape says {size} neurons")
    return DenseLayer(weight=weight, neuron=neuron, pool=pool, bias=_read_bias(fields, size))


def _read_bias(fields: Fields, channels: int):
    """The layer's bias_mant per output channel (one value applies to all), or None. A conv
    bias per neuron is refused: netx would take it in Lava's (W, H, C) order."""
    if not fields.has("bias"):
        return None
    bias = fields.ints("bias", sizes=(1, channels)).reshape(-1)
    return np.full(channels, int(bias[0]), np.int64) if bias.size == 1 else bias


def _layer_count(f: h5py.File) -> int:
    group = f.get("layer")
    if not isinstance(group, h5py.Group) or len(group) == 0:
        raise DeployError("not a netx file: no /layer group")
    count = len(group)
    if sorted(group.keys()) != sorted(str(i) for i in range(count)):
        raise DeployError(
            f"/layer must hold groups 0..{count - 1}, found {sorted(group.keys())[:8]}"
        )
    return count


def _read_layers(f: h5py.File, pools: list[int] | None) -> list[Layer]:
    count = _layer_count(f)
    layers: list[Layer] = []
    previous: tuple[int, ...] = ()
    for index in range(count):
        item = f["layer"][str(index)]
        if not isinstance(item, h5py.Group):
            raise DeployError(f"layer {index}: not a group")
        fields = Fields(item, f"layer {index}")
        kind = fields.string("type")
        if kind not in SUPPORTED_TYPES:
            raise DeployError(f"layer {index}: unsupported layer type '{kind}'")
        fields.where = f"layer {index} ({kind})"
        pool = 1 if pools is None else pools[index]
        layer = _read_layer(fields, kind, previous, pool, last=index == count - 1)
        layers.append(layer)
        previous = tuple(int(s) for s in layer.shape)
    validate_layers(layers)
    return layers


@contextmanager
def _open(path: str | os.PathLike):
    """The file opened read-only; damage found while reading becomes a DeployError."""
    if not is_hdf5(path):
        raise DeployError(
            f"{path}: not a readable HDF5 file (no HDF5 signature, so not a netx file)"
        )
    try:
        f = h5py.File(path, "r")
    except DAMAGE_ERRORS as exc:
        raise DeployError(f"{path}: not a readable HDF5 file ({_first_line(exc)})") from None
    try:
        with f:
            yield f
    except (*DAMAGE_ERRORS, TypeError, OverflowError) as exc:
        raise DeployError(f"corrupt netx file {path}: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def read_netx_layers(path: str | os.PathLike) -> list[Layer]:
    """The validated layers of any netx file of the supported kinds (pool 1 when unknown)."""
    with _open(path) as f:
        meta = metadata_fields(f)
        pools = None if meta is None else read_pools(meta, _layer_count(f))
        return _read_layers(f, pools)


def read_netx(path: str | os.PathLike) -> DeployedNetwork:
    """Rebuild the :class:`DeployedNetwork` that :func:`write_netx` wrote, validating it.

    Raises DeployError for anything that is not such a file, including a plain netx file
    without the ``/dietsnn`` metadata (no encoder: images cannot be turned into drive).
    """
    with _open(path) as f:
        meta = metadata_fields(f)
        if meta is None:
            raise DeployError(
                f"{path}: no /dietsnn group, so no encoder or timesteps to run images "
                "(read_netx_layers reads the layers alone)"
            )
        version = read_version(meta)
        net = DeployedNetwork(
            encoder=read_encoder(meta, version),
            layers=_read_layers(f, read_pools(meta, _layer_count(f))),
            timesteps=meta.attr_int("timesteps"),
            num_classes=meta.attr_int("num_classes"),
            dataset=meta.attr_string("dataset"),
            arch=meta.attr_string("arch"),
            quantization=read_quantization(meta),
        )
        net.validate()
        check_digest(meta, net, version)
    return net
