"""Load any network file as a :class:`DeployedNetwork`, through a registry of formats.

A file is recognised by its content, not its suffix: a netx file is HDF5 with a ``/layer``
group; a checkpoint is a ``torch.save`` archive (ours, or the official DIET-SNN code's, given
``--arch`` and ``--dataset``) and is quantized on the fly. A new format is one
:class:`NetworkFormat` entry in :data:`FORMATS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dietsnn_deploy.data import check_name
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.network import DeployedNetwork
from dietsnn_deploy.training.checkpoints import ModelInfo, load_checkpoint
from dietsnn_deploy.training.models import DietNet
from dietsnn_deploy.training.pipeline import calibration_images
from dietsnn_deploy.training.quantize import A_IN_FITS, quantize
from exporters.netx import is_hdf5, read_netx


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
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "layer" in f
    except OSError:
        return True  # damaged HDF5: let the netx reader say what is wrong with it


def _load_netx(path: Path, options: LoadOptions) -> DeployedNetwork:
    if options.timesteps is not None:
        raise DeployError(f"{path} is deployed at its own T; -T applies to checkpoints only")
    return read_netx(path)


def load_spiking(path: str | Path, options: LoadOptions) -> tuple[DietNet, ModelInfo]:
    """(model, info) of a checkpoint that holds an SNN (converted or trained)."""
    model, info = load_checkpoint(
        path, arch=options.arch, dataset=options.dataset, data_dir=options.data_dir
    )
    if info.stage == "ann":
        raise DeployError(f"{path} is an ANN checkpoint; convert and train it first")
    if options.dataset and options.dataset != info.dataset:
        raise DeployError(f"{path} was trained on {info.dataset}, not {options.dataset}")
    return model, info


def deploy_model(model: DietNet, info: ModelInfo, options: LoadOptions) -> DeployedNetwork:
    """The deployed network of a loaded SNN at its checkpoint's T (or ``options.timesteps``),
    its host scale set on the first ``options.calibration`` training images."""
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


NETX_SUFFIXES = (".net", ".h5", ".hdf5")
FORMATS: tuple[NetworkFormat, ...] = (
    NetworkFormat("netx", _is_netx, _load_netx),
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
