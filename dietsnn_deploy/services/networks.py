"""Load any network file as a :class:`DeployedNetwork`, through a registry of formats.

A file is recognised by its content, not its suffix: a netx file is HDF5 with a ``/layer``
group; a NIR graph is HDF5 with a ``/node`` group; a checkpoint is a ``torch.save`` archive
(ours, or the official DIET-SNN code's, given ``--arch`` and ``--dataset``). Checkpoints and
NIR graphs hold float models and are quantized on the fly. A new format is one
:class:`NetworkFormat` entry in :data:`FORMATS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dietsnn_deploy.data import check_name, dataset_info
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.encodings import get_encoding
from dietsnn_deploy.spine.network import DeployedNetwork, check_normalisation
from dietsnn_deploy.spine.settings import check_timesteps
from dietsnn_deploy.training.checkpoints import ModelInfo, load_checkpoint
from dietsnn_deploy.training.float_view import from_float_network
from dietsnn_deploy.training.models import DietNet
from dietsnn_deploy.training.pipeline import calibration_images
from dietsnn_deploy.training.quantize import A_IN_FITS, quantize
from exporters.hdf5 import is_hdf5, top_groups
from exporters.netx import read_netx
from exporters.nir import is_nir, read_nir


@dataclass(frozen=True)
class LoadOptions:
    """What a file may need to become a deployed network: the data (calibration images of a
    checkpoint), the architecture and dataset of an official checkpoint, and a T override."""

    data_dir: str | None = None
    arch: str | None = None
    dataset: str | None = None
    calibration: int = 512
    timesteps: int | None = None
    fit_a_in: str | None = None  # "worst" or "measured": scales that keep a_in within int16
    dt: float | None = None  # seconds per step of a NIR graph (default: its metadata, 1e-4)
    mean: tuple[float, ...] | None = None  # input normalisation of a NIR graph (per channel)
    std: tuple[float, ...] | None = None
    readout: str | None = None  # a netx file of another tool: "spikes" (default) or "potential"

    def __post_init__(self) -> None:
        if self.dataset is not None:
            check_name(self.dataset)  # an unknown name fails before any work
        if self.fit_a_in is not None and self.fit_a_in not in A_IN_FITS:
            raise DeployError(f"unknown a_in fit {self.fit_a_in!r}; choose from worst, measured")


@dataclass(frozen=True)
class NetworkFormat:
    """One file format: how to recognise a file of it and how to load it."""

    name: str
    recognise: Callable[[Path], bool]
    load: Callable[[Path, LoadOptions], DeployedNetwork]


def _is_netx(path: Path) -> bool:
    if not is_hdf5(path):
        return False
    groups = top_groups(path)
    return groups is None or "layer" in groups  # damaged: the netx reader says what is wrong


def _load_netx(path: Path, options: LoadOptions) -> DeployedNetwork:
    """Ours as written; another tool's with T, readout and dataset from the options."""
    net = read_netx(path, timesteps=options.timesteps, readout=options.readout)
    if not net.dataset and options.dataset:
        net.dataset = options.dataset
    return net


def load_model(path: str | Path, options: LoadOptions) -> tuple[DietNet, ModelInfo]:
    """(model, info) of a checkpoint (any stage) or a NIR graph (:func:`load_nir_model`)."""
    if is_nir(path):
        return load_nir_model(path, options)
    return load_checkpoint(path, arch=options.arch, dataset=options.dataset,
                           data_dir=options.data_dir)  # fmt: skip


def load_nir_model(path: str | Path, options: LoadOptions) -> tuple[DietNet, ModelInfo]:
    """A NIR graph as a spiking model. What the graph does not say comes from the options, or
    from the metadata dietsnn-deploy writes: the dataset, T and the input normalisation
    (refused when neither gives them); the encoding is direct unless the metadata says."""
    graph = read_nir(path, options.dt)
    metadata = graph.metadata
    dataset = options.dataset or metadata.get("dataset")
    if not dataset:
        raise DeployError(f"{path}: a NIR graph names no dataset; pass --dataset")
    data = dataset_info(str(dataset), options.data_dir)
    mean = options.mean or _floats(metadata.get("mean"))
    std = options.std or _floats(metadata.get("std"))
    if mean is None or std is None:
        raise DeployError(
            f"{path}: the graph carries no input normalisation; pass --mean and --std (per "
            "channel; --mean 0 --std 1 for pixels in [0, 1] as they are)"
        )
    timesteps = options.timesteps or metadata.get("timesteps")
    if timesteps is None:
        raise DeployError(f"{path}: the graph carries no number of steps; pass -T")
    if graph.in_shape != data.in_shape or graph.num_classes != data.num_classes:
        raise DeployError(
            f"{path}: the graph takes {graph.in_shape} to {graph.num_classes} classes; "
            f"{dataset} is {data.in_shape} with {data.num_classes}"
        )
    model = from_float_network(graph, name=f"NIR graph {Path(path).name}")
    encoding = str(metadata.get("encoding", "direct"))
    model.encoding = get_encoding(encoding)
    info = ModelInfo(
        arch=model.spec.name, dataset=str(dataset), in_shape=graph.in_shape,
        num_classes=graph.num_classes, mean=tuple(mean), std=tuple(std),
        stage="hardware" if graph.reset == "hard" else "snn",
        timesteps=check_timesteps(int(timesteps), "-T"), encoding=encoding, reset=graph.reset,
        source="NIR graph",
    )  # fmt: skip
    check_normalisation(mean, std, graph.in_shape[0], f"{path}: --mean/--std")
    return model, info


def _floats(value) -> tuple[float, ...] | None:
    return None if value is None else tuple(float(v) for v in np.asarray(value).reshape(-1))


def load_spiking(path: str | Path, options: LoadOptions) -> tuple[DietNet, ModelInfo]:
    """(model, info) of a checkpoint that holds an SNN (converted or trained), or a NIR graph."""
    model, info = load_model(path, options)
    if info.stage == "ann":
        raise DeployError(f"{path} is an ANN checkpoint; convert and train it first")
    if options.dataset and options.dataset != info.dataset:
        raise DeployError(f"{path} was trained on {info.dataset}, not {options.dataset}")
    return model, info


def deploy_model(model: DietNet, info: ModelInfo, options: LoadOptions) -> DeployedNetwork:
    """The deployed network of a loaded SNN at its checkpoint's T (or ``options.timesteps``),
    its host scale set on the first ``options.calibration`` training images."""
    if options.readout is not None:
        raise DeployError("--readout applies to netx files of other tools, not to models")
    images = calibration_images(info, options.data_dir, options.calibration)
    return quantize(
        model,
        images,
        timesteps=options.timesteps or info.timesteps,
        mean=info.mean,
        std=info.std,
        dataset=info.dataset,
        fit_a_in=options.fit_a_in,
    )


def _load_checkpoint(path: Path, options: LoadOptions) -> DeployedNetwork:
    model, info = load_spiking(path, options)
    return deploy_model(model, info, options)


def _load_nir(path: Path, options: LoadOptions) -> DeployedNetwork:
    model, info = load_nir_model(path, options)
    return deploy_model(model, info, options)


NETX_SUFFIXES = (".net", ".h5", ".hdf5")
FORMATS: tuple[NetworkFormat, ...] = (
    NetworkFormat("netx", _is_netx, _load_netx),
    NetworkFormat("nir", is_nir, _load_nir),
    NetworkFormat("checkpoint", lambda path: not is_hdf5(path), _load_checkpoint),
)


def network_format(path: str | Path) -> NetworkFormat:
    """The format of the file at ``path`` (DeployError if it is missing or none reads it)."""
    path = Path(path)
    if not path.is_file():
        raise DeployError(f"file not found: {path}")
    if path.suffix.lower() in NETX_SUFFIXES and not is_hdf5(path):
        raise DeployError(
            f"{path}: not an HDF5 file, so not a netx network (damaged or another format)"
        )
    for candidate in FORMATS:
        if candidate.recognise(path):
            return candidate
    raise DeployError(f"{path}: an HDF5 file that is neither a netx network nor a known format")


def load_network(path: str | Path, options: LoadOptions | None = None) -> DeployedNetwork:
    """The deployed network in the file at ``path``, whatever its format."""
    path = Path(path)
    return network_format(path).load(path, options or LoadOptions())
