"""Write a :class:`DeployedNetwork` as a netx HDF5 file that lava-dl's ``netx.hdf5.Network``
loads as it is (layout in :mod:`exporters.netx`)."""

from __future__ import annotations

import os

import h5py
import numpy as np

from dietsnn_deploy.atomic import atomic_path
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.network import (
    ConvLayer,
    DenseLayer,
    DeployedNetwork,
    FlattenLayer,
    Layer,
    SpikeInput,
)
from dietsnn_deploy.spine.neurons import get_neuron_model
from exporters.netx.metadata import write_metadata


def _write_string(group: h5py.Group, name: str, value: str) -> None:
    group.create_dataset(name, (1,), "S10", [value.encode("ascii")])


def _write_neuron(group: h5py.Group, layer: Layer) -> None:
    cell = group.create_group("neuron")
    for name, value in get_neuron_model(layer.neuron.model).netx_fields(layer.neuron).items():
        if isinstance(value, str):
            _write_string(cell, name, value)
        else:
            cell.create_dataset(name, data=value)


def _write_layer(group: h5py.Group, layer: Layer) -> None:
    _write_string(group, "type", layer.kind)
    if isinstance(layer, FlattenLayer):
        return
    group.create_dataset("shape", data=np.asarray(layer.shape, dtype=np.int64))
    if isinstance(layer, ConvLayer):
        group.create_dataset("weight", data=layer.weight.astype(np.int16))  # 8-bit values
        group.create_dataset("stride", data=np.asarray(layer.stride, dtype=np.int64))
        group.create_dataset("padding", data=np.asarray(layer.padding, dtype=np.int64))
        group.create_dataset("dilation", data=np.ones(2, dtype=np.int64))
        group.create_dataset("groups", data=1)
    elif isinstance(layer, DenseLayer):
        group.create_dataset("weight", data=layer.weight.astype(np.int16))  # 8-bit values
        if layer.delay is not None:
            group.create_dataset("delay", data=_compact_delay(np.asarray(layer.delay)))
    if getattr(layer, "bias", None) is not None:
        group.create_dataset("bias", data=np.asarray(layer.bias, dtype=np.int64))
    _write_neuron(group, layer)


def _compact_delay(delay: np.ndarray) -> np.ndarray:
    """The 1-d form netx takes: one delay per output neuron, or one per input (netx reads no
    (out, in) matrix)."""
    if np.all(delay == delay[:, :1]):
        return delay[:, 0].astype(np.int64)
    if np.all(delay == delay[:1, :]) and delay.shape[0] != delay.shape[1]:
        return delay[0].astype(np.int64)  # (netx would read a square one as per output)
    raise DeployError("netx stores one delay per output neuron, or per input of a non-square layer")


def write_netx(net: DeployedNetwork, path: str | os.PathLike) -> None:
    """Validate ``net`` and write it atomically as a netx HDF5 file ``netx.hdf5.Network`` loads.

    A network that takes spikes into a first conv layer gets an input layer 0 holding only
    the spikes' ``shape`` (netx's way of stating the first conv's input; it builds no layer)."""
    net.validate()
    shape_only = net.synaptic_input and len(net.input_shape) == 3
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        layers = f.create_group("layer")
        if shape_only:
            group = layers.create_group("0")
            _write_string(group, "type", "input")
            group.create_dataset("shape", data=np.asarray(net.input_shape, dtype=np.int64))
        for index, layer in enumerate(net.layers, start=int(shape_only)):
            _write_layer(layers.create_group(str(index)), layer)
        source = net.encoder
        if isinstance(source, SpikeInput) and source.transformed:  # netx's input transform
            layers["0"].create_dataset("weight", data=source.drive_per_spike)
            layers["0"].create_dataset("bias", data=source.drive_bias)
        pools = [1] * shape_only + [getattr(layer, "pool", 1) for layer in net.layers]
        write_metadata(f, net, pools)
