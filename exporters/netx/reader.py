"""Read a netx HDF5 file back into a :class:`DeployedNetwork` (or its layers alone).

Every field is checked against its meaning on the way in (:class:`~.fields.Fields`), the
network then validates itself, and a file of ours must match the digest it was written with.
Any failure is one DeployError line naming the file's place; HDF5's lazy errors on damaged
files are turned into the same.

A netx file of another tool (no ``/dietsnn``: lava-dl slayer's ``export_hdf5``, say) takes
binary spikes (:class:`SpikeInput`): into its input layer, or into the synapses of its first
layer when it has none (an input layer with a ``shape`` and no neuron only states the shape,
as netx reads it); the caller names T and how the readout is read (its spike counts, by
default).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import replace

import h5py
import numpy as np

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.loihi import INPUT_SPIKE_DRIVE
from dietsnn_deploy.spine.network import (
    READOUTS,
    ConvLayer,
    DenseLayer,
    DeployedNetwork,
    FlattenLayer,
    HostEncoder,
    InputLayer,
    Layer,
    SpikeInput,
    validate_layers,
)
from dietsnn_deploy.spine.neurons import neuron_from_netx
from dietsnn_deploy.spine.settings import check_timesteps
from exporters.hdf5 import DAMAGE_ERRORS, is_hdf5
from exporters.netx.fields import Fields
from exporters.netx.metadata import (
    check_digest,
    metadata_fields,
    read_encoder,
    read_pools,
    read_quantization,
    read_readout,
    read_version,
)

SUPPORTED_TYPES = ("input", "conv", "flatten", "dense")


def _read_neuron(layer: Fields, spiking: bool):
    group = layer.group.get("neuron")
    if not isinstance(group, h5py.Group):
        raise layer.fail("missing neuron group")
    return neuron_from_netx(Fields(group, layer.where), spiking)


def _read_layer(fields: Fields, kind: str, previous: tuple[int, ...], pool: int, spiking: bool):
    if kind in ("input", "conv") and fields.has("delay"):
        raise fields.fail(f"a {kind} layer's 'delay' is not supported (netx ignores it)")
    if kind != "flatten" and fields.has("weight_rec"):
        raise fields.fail("recurrent weights ('weight_rec') are not supported")
    if kind == "input":
        return InputLayer(shape=fields.shape(3, 1), neuron=_read_neuron(fields, spiking=True))
    if kind == "flatten":
        if len(previous) != 3:
            raise fields.fail(f"flatten needs a (C, H, W) input, previous output is {previous}")
        return FlattenLayer(in_shape=previous)
    neuron = _read_neuron(fields, spiking=spiking)
    weight = fields.ints("weight")
    if kind == "conv":
        if weight.ndim != 4:
            raise fields.fail(f"weight must be 4-d (Cout, Cin, kH, kW), got shape {weight.shape}")
        if fields.pair("dilation") != (1, 1) or fields.scalar("groups") != 1:
            raise fields.fail("only dilation 1 and groups 1 are supported")
        if len(previous) != 3:
            raise fields.fail(
                f"conv needs a (C, H, W) input, previous output is {previous or 'unknown'} "
                "(a first conv layer needs an input layer that states its shape)"
            )
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
    return DenseLayer(weight=weight, neuron=neuron, pool=pool, bias=_read_bias(fields, size),
                      delay=_read_delay(fields, weight.shape))  # fmt: skip


def _read_delay(fields: Fields, shape: tuple[int, int]) -> np.ndarray | None:
    """Each synapse's delay (out, in), int64, as netx expands the field: one value for all,
    one per output neuron (checked first, as netx does), or one per input; or None."""
    if not fields.has("delay"):
        return None
    delay = fields.ints("delay")
    if delay.ndim == 0:
        return np.full(shape, int(delay), np.int64)
    if delay.ndim == 1 and delay.size == shape[0]:
        return np.repeat(delay.reshape(-1, 1), shape[1], axis=1)
    if delay.ndim == 1 and delay.size == shape[1]:
        return np.repeat(delay.reshape(1, -1), shape[0], axis=0)
    raise fields.fail(
        f"delay of shape {delay.shape} fits neither the {shape[0]} outputs nor the {shape[1]} "
        "inputs (netx refuses it)"
    )


def _input_transform(fields: Fields) -> tuple[int, int] | None:
    """An input layer's (weight, bias): netx's transform of the input into the neurons'
    bias_mant (netx defaults 64 and 0, converted as netx does with int()); None when the
    layer has neither."""
    if not (fields.has("weight") or fields.has("bias")):
        return None
    values = []
    for name, default in (("weight", INPUT_SPIKE_DRIVE), ("bias", 0)):
        if not fields.has(name):
            values.append(default)
            continue
        value = fields.floats(name, size=1).reshape(-1)[0]
        if abs(value) > 2**31:
            raise fields.fail(f"input transform {name} {value} is out of range")
        values.append(int(value))
    return values[0], values[1]


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


def _read_layers(f: h5py.File, pools: list[int] | None, readout: str):
    """(layers, the shape of the spikes into layer 0 (``()`` when it is an input layer of
    neurons: it takes the drive), the input layer's transform (None: absent))."""
    count = _layer_count(f)
    layers: list[Layer] = []
    previous: tuple[int, ...] = ()
    spike_shape: tuple[int, ...] = ()
    transform = None
    for index in range(count):
        item = f["layer"][str(index)]
        if not isinstance(item, h5py.Group):
            raise DeployError(f"layer {index}: not a group")
        fields = Fields(item, f"layer {index}")
        kind = fields.string("type")
        if kind not in SUPPORTED_TYPES:
            raise DeployError(f"layer {index}: unsupported layer type '{kind}'")
        fields.where = f"layer {index} ({kind})"
        if index == 0 and kind == "input" and not fields.has("neuron"):
            previous = spike_shape = fields.shape(3)  # spikes straight into layer 1's synapses
            continue
        pool = 1 if pools is None else pools[index]
        last = index == count - 1
        spiking = not last or readout == "spikes"
        layer = _read_layer(fields, kind, previous, pool, spiking)
        if not layers and kind == "dense":  # spikes straight into its synapses
            spike_shape = (layer.in_features,)
        if kind == "input":
            transform = _input_transform(fields)
        layers.append(layer)
        previous = tuple(int(s) for s in layer.shape)
    skipped = count - len(layers)  # 1 after a shape-only input layer: name file layers
    validate_layers(layers, input_shape=spike_shape, readout=readout, first_index=skipped)
    return layers, spike_shape, transform


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


def read_netx_layers(path: str | os.PathLike, readout: str = "potential") -> list[Layer]:
    """The validated layers of any netx file of the supported kinds (pool 1 when unknown)."""
    with _open(path) as f:
        meta = metadata_fields(f)
        pools = None if meta is None else read_pools(meta, _layer_count(f))
        return _read_layers(f, pools, readout if meta is None else read_readout(meta))[0]


def _with_transform(encoder, transform: tuple[int, int] | None):
    """The file's input transform on a spike input; refused for a host encoder, whose drive
    netx would not transform either."""
    if transform is None:
        return encoder
    if isinstance(encoder, HostEncoder):
        raise DeployError(
            "layer 0 (input): an input transform (weight, bias) is not supported: this file's "
            "drive comes from its host encoder, and netx never applies the transform"
        )
    return replace(encoder, drive_per_spike=transform[0], drive_bias=transform[1])


def read_netx(
    path: str | os.PathLike, *, timesteps: int | None = None, readout: str | None = None
) -> DeployedNetwork:
    """Rebuild the :class:`DeployedNetwork` of a netx file, validating it.

    A file of ours (``/dietsnn`` metadata) is the network :func:`write_netx` wrote, checked
    against its digest; ``timesteps`` and ``readout`` are refused for it. A file of another
    tool becomes a :class:`SpikeInput` network run for ``timesteps`` steps (required) whose
    class scores are the readout's spike counts, or its potential (``readout``).
    """
    with _open(path) as f:
        meta = metadata_fields(f)
        if meta is None:
            return _read_foreign(f, path, timesteps, readout or "spikes")
        if timesteps is not None or readout is not None:
            raise DeployError(
                f"{path} is deployed at its own T and readout; -T and --readout apply to "
                "checkpoints and to netx files of other tools"
            )
        version = read_version(meta)
        layers, _, transform = _read_layers(
            f, read_pools(meta, _layer_count(f)), read_readout(meta)
        )
        net = DeployedNetwork(
            encoder=_with_transform(read_encoder(meta, version), transform),
            layers=layers,
            timesteps=meta.attr_int("timesteps"),
            num_classes=meta.attr_int("num_classes"),
            dataset=meta.attr_string("dataset"),
            arch=meta.attr_string("arch"),
            quantization=read_quantization(meta),
            readout=read_readout(meta),
        )
        net.validate()
        check_digest(meta, net, version)
    return net


def _read_foreign(f: h5py.File, path, timesteps: int | None, readout: str) -> DeployedNetwork:
    """A netx file without ``/dietsnn``, as a network taking binary spikes."""
    if readout not in READOUTS:
        raise DeployError(f"unknown readout {readout!r}; choose from {', '.join(READOUTS)}")
    if timesteps is None:
        raise DeployError(
            f"{path}: a netx file from another tool does not say how many steps it runs; pass -T"
        )
    layers, spike_shape, transform = _read_layers(f, None, readout)
    net = DeployedNetwork(
        encoder=_with_transform(SpikeInput(spike_shape or tuple(layers[0].shape)), transform),
        layers=layers,
        timesteps=check_timesteps(timesteps, "-T"),
        num_classes=int(layers[-1].shape[0]),
        arch=os.path.basename(os.fspath(path)),
        readout=readout,
    )
    net.validate()
    return net
