"""The ``/dietsnn`` group of a netx file: everything netx ignores but a rerun needs.

Attributes ``format_version`` (2), ``timesteps``, ``num_classes``, ``dataset``, ``arch``,
``readout`` ("potential", or "spikes"; absent in older files: potential) and ``digest``
(:meth:`DeployedNetwork.digest` of the network as written, checked on read: a file altered
afterwards is refused). Group ``encoder``: datasets ``weight``, ``stride``, ``padding``,
``mean``, ``std``, ``in_shape``; attributes ``drive_scale`` and ``encoding``; or, for a
network that takes spikes, attribute ``encoding`` "spikes" and dataset ``shape``.
Dataset ``layer_pool`` (one entry per layer of the file, 1 where no pool is folded in). Compound table
``quantization`` (one row per :class:`LayerQuantization`; ``input_bound`` −1 when unknown).

Version 1 files (no digest, no encoding: direct input) are still read.
"""

from __future__ import annotations

import h5py
import numpy as np

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.network import (
    READOUTS,
    DeployedNetwork,
    HostEncoder,
    LayerQuantization,
    SpikeInput,
)
from exporters.netx.fields import Fields

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
METADATA_GROUP = "dietsnn"

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


def write_metadata(root: h5py.Group, net: DeployedNetwork, pools: list[int]) -> None:
    """The ``/dietsnn`` group of ``net``; ``pools`` has one entry per layer of the file."""
    meta = root.create_group(METADATA_GROUP)
    meta.attrs["format_version"] = FORMAT_VERSION
    meta.attrs["timesteps"] = int(net.timesteps)
    meta.attrs["num_classes"] = int(net.num_classes)
    meta.attrs["dataset"] = net.dataset
    meta.attrs["arch"] = net.arch
    meta.attrs["readout"] = net.readout
    meta.attrs["digest"] = net.digest()
    enc = meta.create_group("encoder")
    enc.attrs["encoding"] = net.encoder.encoding
    if isinstance(net.encoder, SpikeInput):
        enc.create_dataset("shape", data=np.asarray(net.encoder.shape, dtype=np.int64))
    else:
        _write_host_encoder(enc, net.encoder)
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


def _write_host_encoder(enc: h5py.Group, encoder: HostEncoder) -> None:
    enc.create_dataset("weight", data=np.asarray(encoder.weight, dtype=np.float64))
    enc.create_dataset("stride", data=np.asarray(encoder.stride, dtype=np.int64))
    enc.create_dataset("padding", data=np.asarray(encoder.padding, dtype=np.int64))
    enc.create_dataset("mean", data=np.asarray(encoder.mean, dtype=np.float64))
    enc.create_dataset("std", data=np.asarray(encoder.std, dtype=np.float64))
    enc.create_dataset("in_shape", data=np.asarray(encoder.in_shape, dtype=np.int64))
    enc.attrs["drive_scale"] = float(encoder.drive_scale)


def metadata_fields(f: h5py.File) -> Fields | None:
    """The ``/dietsnn`` group's fields, or None when the file has none (another tool's)."""
    meta = f.get(METADATA_GROUP)
    if meta is None:
        return None
    if not isinstance(meta, h5py.Group):
        raise DeployError(f"/{METADATA_GROUP} is not a group")
    return Fields(meta, f"/{METADATA_GROUP}")


def read_version(meta: Fields) -> int:
    version = meta.attr_int("format_version")
    if version not in READABLE_VERSIONS:
        raise DeployError(
            f"/dietsnn: format_version {version} is not one this tool reads {READABLE_VERSIONS}"
        )
    return version


def read_pools(meta: Fields, count: int) -> list[int]:
    pools = [int(v) for v in meta.ints("layer_pool").reshape(-1)]
    if len(pools) != count:
        raise DeployError(f"/dietsnn/layer_pool has {len(pools)} entries for {count} layers")
    return pools


def read_readout(meta: Fields) -> str:
    """How the file's network is read out (potential for files older than the attribute)."""
    if "readout" not in meta.group.attrs:
        return "potential"
    readout = meta.attr_string("readout")
    if readout not in READOUTS:
        raise meta.fail(f"readout {readout!r} is not one of {', '.join(READOUTS)}")
    return readout


def read_encoder(meta: Fields, version: int) -> HostEncoder | SpikeInput:
    group = meta.group.get("encoder")
    if not isinstance(group, h5py.Group):
        raise DeployError("/dietsnn: missing encoder group")
    enc = Fields(group, "/dietsnn/encoder")
    if version >= 2 and enc.attr_string("encoding") == SpikeInput.encoding:
        shape = enc.ints("shape", sizes=(1, 3)).reshape(-1)
        return SpikeInput(tuple(int(v) for v in shape))
    weight = enc.array("weight")
    if weight.dtype.kind != "f":
        raise enc.fail(f"weight must be float, got dtype {weight.dtype}")
    in_shape = enc.ints("in_shape", sizes=(3,)).reshape(-1)
    return HostEncoder(
        weight=weight,
        stride=enc.pair("stride"),
        padding=enc.pair("padding"),
        drive_scale=enc.attr_float("drive_scale"),
        mean=tuple(float(v) for v in enc.floats("mean").reshape(-1)),
        std=tuple(float(v) for v in enc.floats("std").reshape(-1)),
        in_shape=(int(in_shape[0]), int(in_shape[1]), int(in_shape[2])),
        encoding=enc.attr_string("encoding") if version >= 2 else "direct",
    )


def read_quantization(meta: Fields) -> list[LayerQuantization]:
    table = meta.array("quantization")
    columns = set(table.dtype.names or ())
    if columns not in (set(_QUANT_DTYPE.names), set(_QUANT_DTYPE.names) - {"input_bound"}):
        raise DeployError("/dietsnn: quantization table has the wrong columns")
    rows = []
    for row in table.reshape(-1):
        name = row["name"]
        bound = int(row["input_bound"]) if "input_bound" in columns else _UNKNOWN_BOUND
        rows.append(
            LayerQuantization(
                name=name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name),
                scale=float(row["scale"]),
                weight_rmse=float(row["weight_rmse"]),
                weight_saturated=float(row["weight_saturated"]),
                threshold=int(row["threshold"]),
                v_decay=int(row["v_decay"]),
                input_bound=None if bound == _UNKNOWN_BOUND else bound,
            )
        )
    return rows


def check_digest(meta: Fields, net: DeployedNetwork, version: int) -> None:
    """Refuse a version-2 file whose network differs from the one its digest was made of."""
    if version < 2:
        return
    stored = meta.attr_string("digest")
    if stored != net.digest():
        raise DeployError(
            "/dietsnn: checksum mismatch: the network's arrays or parameters changed after the "
            "file was written (damaged or edited); re-export it"
        )
