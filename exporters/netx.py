"""Write and read a :class:`DeployedNetwork` as a lava-dl netx HDF5 file.

Layout (what ``lava.lib.dl.netx.hdf5.Network`` reads; it ignores everything else):

- ``/layer/<i>`` for i = 0..N-1, one group per :attr:`DeployedNetwork.layers` entry, with
  ``type`` (``S10`` array of one ASCII string: input, conv, flatten, dense); ``shape`` (C, H, W)
  or (n,) for layers with neurons; conv ``weight`` (Cout, Cin, kH, kW), ``stride``,
  ``padding``, ``dilation`` as (H, W) and scalar ``groups``; dense ``weight`` (out, in); and a
  ``neuron`` group: ``type`` CUBA, ``iDecay`` 4096 (no current memory), ``vDecay``,
  ``vThMant``, ``refDelay`` 1, ``gradedSpike`` False (never ``messageBits``: netx breaks on it).
  The input layer stores no weight or bias: its drive is injected into ``bias_mant`` at run time.
- ``/dietsnn`` (ignored by netx): attributes ``format_version``, ``timesteps``,
  ``num_classes``, ``dataset``, ``arch``; group ``encoder`` (datasets ``weight``, ``stride``,
  ``padding``, ``mean``, ``std``, ``in_shape``; attribute ``drive_scale``); dataset
  ``layer_pool`` (one entry per layer, 1 where there is no pool); compound table
  ``quantization`` (one row per :class:`LayerQuantization`; column ``input_bound`` is −1
  when unknown, and files written before that column existed read as unknown).

A netx file without ``/dietsnn`` has no encoder, so :func:`read_netx` refuses it (it could
not turn images into drive); :func:`read_netx_layers` reads the layers of any such file.

Weights are checked against what netx and Lava do with them: 8-bit range [-256, 254]; even
values when a matrix mixes signs (Loihi's mixed-sign mantissa has no LSB); and every dense
matrix needs a positive weight. netx's ``optimize_weight_bits`` followed by Lava's Dense (sign
mode re-derived, 8-bit clip, truncation, weight exponent) reproduces any [-256, 254] matrix
with a positive entry exactly (checked on 23 000 random and edge-value matrices), but crashes
on an all-zero one and mis-scales about one in six without a positive entry.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from dietsnn_deploy.atomic import atomic_path
from dietsnn_deploy.deployed import (
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
    Layer,
    LayerQuantization,
    Neuron,
)
from dietsnn_deploy.errors import DeployError

FORMAT_VERSION = 1
METADATA_GROUP = "dietsnn"
SUPPORTED_TYPES = ("input", "conv", "flatten", "dense")

_QUANT_DTYPE = np.dtype(
    [
        ("name", h5py.string_dtype()),
        ("scale", "f8"),
        ("weight_rmse", "f8"),
        ("weight_saturated", "f8"),
        ("threshold", "i8"),
        ("v_decay", "i8"),
        ("input_bound", "i8"),
    ]
)
_UNKNOWN_BOUND = -1  # input_bound None in the file's integer column


# --- shape and value rules shared by writer and reader ------------------------------------------


def conv_output_shape(
    in_shape: tuple[int, int, int],
    weight_shape: tuple[int, ...],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> tuple[int, int, int]:
    """(Cout, H, W) of a cross-correlation as ``F.conv2d`` computes it (dilation 1)."""
    out_h = (in_shape[1] + 2 * padding[0] - weight_shape[2]) // stride[0] + 1
    out_w = (in_shape[2] + 2 * padding[1] - weight_shape[3]) // stride[1] + 1
    return (int(weight_shape[0]), int(out_h), int(out_w))


def check_weights(index: int, kind: str, weight: np.ndarray) -> None:
    """Refuse weights that the hardware cannot hold or that netx/Lava would load altered."""
    where = f"layer {index} ({kind})"
    if not np.issubdtype(weight.dtype, np.integer):
        raise DeployError(f"{where}: weights must be integers, got dtype {weight.dtype}")
    low, high = int(weight.min()), int(weight.max())
    if low < WEIGHT_MIN or high > WEIGHT_MAX:
        raise DeployError(
            f"{where}: weights span [{low}, {high}], outside the 8-bit range "
            f"[{WEIGHT_MIN}, {WEIGHT_MAX}]"
        )
    if low < 0 < high and np.any(weight % 2):
        raise DeployError(f"{where}: mixed-sign weights must be even (8-bit mixed mantissa)")
    if kind != "dense":
        return
    if high <= 0:
        raise DeployError(
            f"{where}: no positive weight; netx's optimize_weight_bits crashes on all-zero "
            "matrices and Lava's inhibitory mode mis-scales many non-positive ones"
        )


def _check_neuron(index: int, kind: str, neuron: Neuron) -> None:
    where = f"layer {index} ({kind})"
    if not 0 <= neuron.v_decay <= DECAY_UNITY:
        raise DeployError(f"{where}: v_decay {neuron.v_decay} outside [0, {DECAY_UNITY}]")
    if not 0 <= neuron.threshold <= THRESHOLD_MAX:
        raise DeployError(f"{where}: threshold {neuron.threshold} outside [0, {THRESHOLD_MAX}]")


def _check_encoder(encoder: HostEncoder, input_shape: tuple[int, int, int]) -> None:
    weight = np.asarray(encoder.weight)
    if weight.ndim != 4 or not np.all(np.isfinite(weight)):
        raise DeployError(f"encoder: weight must be a finite 4-d array, got shape {weight.shape}")
    in_channels = encoder.in_shape[0]
    if weight.shape[1] != in_channels:
        raise DeployError(
            f"encoder: weight has {weight.shape[1]} input channels, in_shape {encoder.in_shape}"
        )
    if len(encoder.mean) != in_channels or len(encoder.std) != in_channels:
        raise DeployError(f"encoder: mean and std need {in_channels} values each")
    if any(s == 0 for s in encoder.std):
        raise DeployError("encoder: std must be non-zero")
    if not np.isfinite(encoder.drive_scale) or encoder.drive_scale <= 0:
        raise DeployError(f"encoder: drive_scale must be positive, got {encoder.drive_scale}")
    out = conv_output_shape(encoder.in_shape, weight.shape, encoder.stride, encoder.padding)
    if out != tuple(input_shape):
        raise DeployError(
            f"layer 0 (input): shape {tuple(input_shape)} is not the encoder output {out}"
        )


def validate_layers(layers: list[Layer]) -> None:
    """Check the layer chain: input first, shapes consistent, weights and neurons in range,
    the last layer a non-spiking dense readout whose threshold is out of reach."""
    if len(layers) < 2 or not isinstance(layers[0], InputLayer):
        raise DeployError("network must start with an input layer and have at least 2 layers")
    readout = layers[-1]
    if not isinstance(readout, DenseLayer) or readout.neuron.spiking:
        raise DeployError(
            f"layer {len(layers) - 1}: the last layer must be a non-spiking dense readout"
        )
    if readout.neuron.threshold != THRESHOLD_MAX:
        raise DeployError(
            f"layer {len(layers) - 1} (dense): readout threshold must be {THRESHOLD_MAX} "
            f"(out of reach until v saturates), got {readout.neuron.threshold}"
        )
    previous: tuple[int, ...] = ()
    for index, layer in enumerate(layers):
        where = f"layer {index} ({layer.kind})"
        if isinstance(layer, InputLayer) and index > 0:
            raise DeployError(f"{where}: an input layer may only come first")
        if isinstance(layer, ConvLayer | DenseLayer) and layer.pool < 1:
            raise DeployError(f"{where}: pool must be at least 1, got {layer.pool}")
        if isinstance(layer, ConvLayer):
            _check_conv(index, layer, previous)
        elif isinstance(layer, FlattenLayer):
            if len(previous) != 3 or tuple(layer.in_shape) != previous:
                raise DeployError(f"{where}: in_shape {layer.in_shape} does not follow {previous}")
        elif isinstance(layer, DenseLayer):
            if layer.weight.ndim != 2:
                raise DeployError(f"{where}: weight must be 2-d, got shape {layer.weight.shape}")
            if len(previous) != 1 or layer.weight.shape[1] != previous[0]:
                raise DeployError(
                    f"{where}: weight {layer.weight.shape} does not take the previous output "
                    f"{previous} (dense needs a flatten or dense before it)"
                )
        elif len(layer.shape) != 3 or min(layer.shape) < 1:
            raise DeployError(f"{where}: shape must be positive (C, H, W), got {layer.shape}")
        if isinstance(layer, ConvLayer | DenseLayer):
            check_weights(index, layer.kind, layer.weight)
        if not isinstance(layer, FlattenLayer):
            _check_neuron(index, layer.kind, layer.neuron)
            if layer is not readout and not layer.neuron.spiking:
                raise DeployError(f"{where}: only the last layer may be non-spiking")
        previous = tuple(int(s) for s in layer.shape)


def _check_conv(index: int, layer: ConvLayer, previous: tuple[int, ...]) -> None:
    where = f"layer {index} (conv)"
    weight = layer.weight
    if weight.ndim != 4:
        raise DeployError(f"{where}: weight must be 4-d (Cout, Cin, kH, kW), got {weight.shape}")
    if len(previous) != 3 or tuple(layer.in_shape) != previous:
        raise DeployError(f"{where}: in_shape {layer.in_shape} does not follow {previous}")
    if weight.shape[1] != previous[0]:
        raise DeployError(
            f"{where}: weight takes {weight.shape[1]} channels, previous layer has {previous[0]}"
        )
    if min(layer.stride) < 1 or min(layer.padding) < 0:
        raise DeployError(f"{where}: bad stride {layer.stride} or padding {layer.padding}")
    out = conv_output_shape(layer.in_shape, weight.shape, layer.stride, layer.padding)
    if out != tuple(layer.shape) or min(out) < 1:
        raise DeployError(f"{where}: shape {tuple(layer.shape)} is not the conv output {out}")


def validate_network(net: DeployedNetwork) -> None:
    """Everything :func:`validate_layers` checks, plus encoder, timesteps and class count."""
    validate_layers(net.layers)
    _check_encoder(net.encoder, net.layers[0].shape)
    if net.timesteps < 1:
        raise DeployError(f"timesteps must be at least 1, got {net.timesteps}")
    if net.layers[-1].shape != (net.num_classes,):
        raise DeployError(
            f"num_classes {net.num_classes} does not match the readout size {net.layers[-1].shape}"
        )


# --- writer ------------------------------------------------------------------------------------


def _write_string(group: h5py.Group, name: str, value: str) -> None:
    group.create_dataset(name, (1,), "S10", [value.encode("ascii")])


def _write_neuron(group: h5py.Group, neuron: Neuron) -> None:
    cell = group.create_group("neuron")
    _write_string(cell, "type", "CUBA")
    cell.create_dataset("iDecay", data=DECAY_UNITY)
    cell.create_dataset("vDecay", data=int(neuron.v_decay))
    cell.create_dataset("vThMant", data=int(neuron.threshold))
    cell.create_dataset("refDelay", data=1)
    cell.create_dataset("gradedSpike", data=False)


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
    _write_neuron(group, layer.neuron)


def _write_metadata(root: h5py.Group, net: DeployedNetwork) -> None:
    meta = root.create_group(METADATA_GROUP)
    meta.attrs["format_version"] = FORMAT_VERSION
    meta.attrs["timesteps"] = int(net.timesteps)
    meta.attrs["num_classes"] = int(net.num_classes)
    meta.attrs["dataset"] = net.dataset
    meta.attrs["arch"] = net.arch
    enc = meta.create_group("encoder")
    enc.create_dataset("weight", data=np.asarray(net.encoder.weight))
    enc.create_dataset("stride", data=np.asarray(net.encoder.stride, dtype=np.int64))
    enc.create_dataset("padding", data=np.asarray(net.encoder.padding, dtype=np.int64))
    enc.create_dataset("mean", data=np.asarray(net.encoder.mean, dtype=np.float64))
    enc.create_dataset("std", data=np.asarray(net.encoder.std, dtype=np.float64))
    enc.create_dataset("in_shape", data=np.asarray(net.encoder.in_shape, dtype=np.int64))
    enc.attrs["drive_scale"] = float(net.encoder.drive_scale)
    pools = [getattr(layer, "pool", 1) for layer in net.layers]
    meta.create_dataset("layer_pool", data=np.asarray(pools, dtype=np.int64))
    rows = [
        (
            q.name,
            q.scale,
            q.weight_rmse,
            q.weight_saturated,
            q.threshold,
            q.v_decay,
            _UNKNOWN_BOUND if q.input_bound is None else q.input_bound,
        )
        for q in net.quantization
    ]
    meta.create_dataset("quantization", data=np.array(rows, dtype=_QUANT_DTYPE))


def write_netx(net: DeployedNetwork, path: str | os.PathLike) -> None:
    """Validate ``net`` and write it atomically as a netx HDF5 file ``netx.hdf5.Network`` loads."""
    validate_network(net)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        layers = f.create_group("layer")
        for index, layer in enumerate(net.layers):
            _write_layer(layers.create_group(str(index)), layer)
        _write_metadata(f, net)


# --- reader ------------------------------------------------------------------------------------


class _Fields:
    """Reads one HDF5 group's datasets with one-line DeployErrors naming the layer."""

    def __init__(self, group: h5py.Group, where: str) -> None:
        self.group = group
        self.where = where

    def fail(self, problem: str) -> DeployError:
        return DeployError(f"{self.where}: {problem}")

    def has(self, name: str) -> bool:
        return name in self.group

    def array(self, name: str) -> np.ndarray:
        item = self.group.get(name)
        if not isinstance(item, h5py.Dataset):
            raise self.fail(f"missing field '{name}'")
        try:
            return np.asarray(item[()])
        except (OSError, ValueError, TypeError) as exc:
            raise self.fail(f"unreadable field '{name}' ({exc})") from None

    def ints(self, name: str, sizes: tuple[int, ...] | None = None) -> np.ndarray:
        """Integer-valued array (floats must have no fraction); ``sizes`` lists allowed sizes."""
        value = self.array(name)
        if value.dtype.kind == "f":
            if not np.all(np.isfinite(value)) or np.any(value != np.round(value)):
                raise self.fail(f"'{name}' has non-integer values")
            value = value.astype(np.int64)
        elif value.dtype.kind not in "iub":
            raise self.fail(f"'{name}' must be numeric, got dtype {value.dtype}")
        value = value.astype(np.int64)
        if sizes is not None and value.size not in sizes:
            raise self.fail(f"'{name}' has {value.size} values, expected {sizes}")
        return value

    def scalar(self, name: str) -> int:
        return int(self.ints(name, sizes=(1,)).reshape(-1)[0])

    def pair(self, name: str) -> tuple[int, int]:
        value = self.ints(name, sizes=(1, 2)).reshape(-1)
        return (int(value[0]), int(value[-1]))

    def string(self, name: str) -> str:
        value = self.array(name).reshape(-1)
        if value.size != 1 or not isinstance(value[0], bytes | str):
            raise self.fail(f"'{name}' must be one string")
        text = value[0]
        return text.decode("ascii", "replace") if isinstance(text, bytes) else text

    def shape(self, length: int) -> tuple[int, ...]:
        value = self.ints("shape", sizes=(length,)).reshape(-1)
        if np.any(value < 1):
            raise self.fail(f"shape {tuple(value)} must be positive")
        return tuple(int(v) for v in value)


def _read_neuron(layer: _Fields, spiking: bool) -> Neuron:
    group = layer.group.get("neuron")
    if not isinstance(group, h5py.Group):
        raise layer.fail("missing neuron group")
    cell = _Fields(group, layer.where)
    kind = cell.string("type")
    if kind != "CUBA":
        raise layer.fail(f"neuron type '{kind}' is not supported (only CUBA)")
    if cell.has("messageBits"):
        raise layer.fail("neuron/messageBits is not supported (netx fails to load it)")
    if cell.scalar("iDecay") != DECAY_UNITY:
        raise layer.fail(f"neuron iDecay must be {DECAY_UNITY} (no current memory)")
    return Neuron(v_decay=cell.scalar("vDecay"), threshold=cell.scalar("vThMant"), spiking=spiking)


def _read_layer(
    fields: _Fields, kind: str, previous: tuple[int, ...], pool: int, is_last: bool
) -> Layer:
    for unsupported in ("bias", "delay", "weight_rec"):
        if kind != "flatten" and fields.has(unsupported):
            raise fields.fail(f"'{unsupported}' is not supported")
    if kind == "input":
        return InputLayer(shape=fields.shape(3), neuron=_read_neuron(fields, spiking=True))
    if kind == "flatten":
        if len(previous) != 3:
            raise fields.fail(f"flatten needs a (C, H, W) input, previous output is {previous}")
        return FlattenLayer(in_shape=previous)
    neuron = _read_neuron(fields, spiking=not is_last)
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
        )
    if weight.ndim != 2:
        raise fields.fail(f"weight must be 2-d (out, in), got shape {weight.shape}")
    (size,) = fields.shape(1)
    if weight.shape[0] != size:
        raise fields.fail(f"weight has {weight.shape[0]} rows, shape says {size} neurons")
    return DenseLayer(weight=weight, neuron=neuron, pool=pool)


def _read_layers(f: h5py.File, pools: list[int] | None) -> list[Layer]:
    group = f.get("layer")
    if not isinstance(group, h5py.Group) or len(group) == 0:
        raise DeployError("not a netx file: no /layer group")
    count = len(group)
    if sorted(group.keys()) != sorted(str(i) for i in range(count)):
        raise DeployError(f"/layer must hold groups 0..{count - 1}, found {sorted(group.keys())}")
    if pools is not None and len(pools) != count:
        raise DeployError(f"/dietsnn/layer_pool has {len(pools)} entries for {count} layers")
    layers: list[Layer] = []
    previous: tuple[int, ...] = ()
    for index in range(count):
        item = group[str(index)]
        if not isinstance(item, h5py.Group):
            raise DeployError(f"layer {index}: not a group")
        fields = _Fields(item, f"layer {index}")
        kind = fields.string("type")
        if kind not in SUPPORTED_TYPES:
            raise DeployError(f"layer {index}: unsupported layer type '{kind}'")
        fields.where = f"layer {index} ({kind})"
        pool = 1 if pools is None else pools[index]
        layer = _read_layer(fields, kind, previous, pool, is_last=index == count - 1)
        layers.append(layer)
        previous = tuple(int(s) for s in layer.shape)
    validate_layers(layers)
    return layers


def _read_encoder(meta: h5py.Group) -> HostEncoder:
    group = meta.get("encoder")
    if not isinstance(group, h5py.Group):
        raise DeployError("/dietsnn: missing encoder group")
    enc = _Fields(group, "/dietsnn/encoder")
    weight = enc.array("weight")
    if weight.dtype.kind != "f":
        raise enc.fail(f"weight must be float, got dtype {weight.dtype}")
    if "drive_scale" not in group.attrs:
        raise enc.fail("missing attribute 'drive_scale'")
    in_shape = enc.ints("in_shape", sizes=(3,)).reshape(-1)
    return HostEncoder(
        weight=weight,
        stride=enc.pair("stride"),
        padding=enc.pair("padding"),
        drive_scale=float(group.attrs["drive_scale"]),
        mean=tuple(float(v) for v in enc.array("mean").reshape(-1)),
        std=tuple(float(v) for v in enc.array("std").reshape(-1)),
        in_shape=(int(in_shape[0]), int(in_shape[1]), int(in_shape[2])),
    )


def _read_quantization(meta: h5py.Group) -> list[LayerQuantization]:
    table = _Fields(meta, "/dietsnn").array("quantization")
    columns = set(table.dtype.names or ())
    if columns not in (set(_QUANT_DTYPE.names), set(_QUANT_DTYPE.names) - {"input_bound"}):
        raise DeployError("/dietsnn: quantization table has the wrong columns")
    rows = []
    for row in table.reshape(-1):
        name = row["name"]
        bound = int(row["input_bound"]) if "input_bound" in columns else _UNKNOWN_BOUND
        rows.append(
            LayerQuantization(
                name=name.decode() if isinstance(name, bytes) else str(name),
                scale=float(row["scale"]),
                weight_rmse=float(row["weight_rmse"]),
                weight_saturated=float(row["weight_saturated"]),
                threshold=int(row["threshold"]),
                v_decay=int(row["v_decay"]),
                input_bound=None if bound == _UNKNOWN_BOUND else bound,
            )
        )
    return rows


def _open(path: str | os.PathLike) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise DeployError(f"netx file not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DeployError(f"not a readable HDF5 file: {path} ({exc})") from None


@contextmanager
def _corrupt_as_deploy_error(path: str | os.PathLike):
    """h5py reports damaged files lazily (while reading): turn that into a DeployError."""
    try:
        yield
    except (OSError, KeyError, RuntimeError) as exc:
        raise DeployError(f"corrupt netx file {path}: {exc}") from None


def _read_attr(meta: h5py.Group, name: str):
    if name not in meta.attrs:
        raise DeployError(f"/dietsnn: missing attribute '{name}'")
    return meta.attrs[name]


def read_netx_layers(path: str | os.PathLike) -> list[Layer]:
    """The validated layers of any netx file of the supported kinds (pool 1 when unknown)."""
    with _open(path) as f, _corrupt_as_deploy_error(path):
        meta = f.get(METADATA_GROUP)
        pools = None
        if isinstance(meta, h5py.Group):
            pools = [int(v) for v in _Fields(meta, "/dietsnn").ints("layer_pool").reshape(-1)]
        return _read_layers(f, pools)


def read_netx(path: str | os.PathLike) -> DeployedNetwork:
    """Rebuild the :class:`DeployedNetwork` written by :func:`write_netx`, validating it.

    Raises DeployError for anything that is not such a file, including a plain netx file
    without the ``/dietsnn`` metadata (no encoder: images cannot be turned into drive).
    """
    with _open(path) as f, _corrupt_as_deploy_error(path):
        meta = f.get(METADATA_GROUP)
        if not isinstance(meta, h5py.Group):
            raise DeployError(
                f"{path}: no /{METADATA_GROUP} group, so no encoder or timesteps to run images "
                "(read_netx_layers reads the layers alone)"
            )
        version = int(_read_attr(meta, "format_version"))
        if version != FORMAT_VERSION:
            raise DeployError(f"/dietsnn: format_version {version} is not {FORMAT_VERSION}")
        pools = [int(v) for v in _Fields(meta, "/dietsnn").ints("layer_pool").reshape(-1)]
        net = DeployedNetwork(
            encoder=_read_encoder(meta),
            layers=_read_layers(f, pools),
            timesteps=int(_read_attr(meta, "timesteps")),
            num_classes=int(_read_attr(meta, "num_classes")),
            dataset=str(_read_attr(meta, "dataset")),
            arch=str(_read_attr(meta, "arch")),
            quantization=_read_quantization(meta),
        )
    validate_network(net)
    return net
