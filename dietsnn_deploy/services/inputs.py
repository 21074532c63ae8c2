"""What a run feeds a deployed network: a dataset's test images, or recorded spike rasters.

Images are pixels in [0, 1]; the host encoder normalises them itself, and a network that
takes spikes (:class:`~dietsnn_deploy.spine.network.SpikeInput`) rate-codes them
(:func:`hw_sim.host.spike_drive`). Rasters are a ``.npy`` array (N, T, *input shape) of 0/1
per sample, with optional labels (a ``.npy`` array (N,) of class indices).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dietsnn_deploy.data import dataset_info, make_loader
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.network import DeployedNetwork, HostEncoder
from dietsnn_deploy.spine.record import SpikeRasters


@dataclass(frozen=True)
class RunInputs:
    """The samples of a run, their labels (None: accuracy is unknown) and where they came
    from (a dataset name, or the rasters' file name)."""

    samples: torch.Tensor | SpikeRasters
    labels: torch.Tensor | None
    source: str


def load_test_images(
    net: DeployedNetwork, dataset: str | None, data_dir: str | None, limit: int | None
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(pixels in [0, 1], labels, dataset name) of the first ``limit`` test images of the
    network's dataset."""
    dataset = dataset or net.dataset
    if not dataset:
        raise DeployError("the network names no dataset; pass --dataset (or --spikes rasters)")
    if net.dataset and dataset != net.dataset:
        raise DeployError(f"the network was trained on {net.dataset}, not {dataset}")
    channels = dataset_info(dataset, data_dir).in_shape[0]
    loader = make_loader(
        dataset,
        "test",
        4096,
        data_dir=data_dir,
        limit=limit,
        normalization=((0.0,) * channels, (1.0,) * channels),
    )
    batches = list(loader)
    images, labels = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    shape = tuple(images.shape[1:])
    if isinstance(net.encoder, HostEncoder):
        if shape != tuple(net.encoder.in_shape):
            raise DeployError(
                f"{dataset} images are {shape}, the network takes {tuple(net.encoder.in_shape)}"
            )
    elif not net.encoder.takes_images(shape):
        raise DeployError(
            f"{dataset} images are {shape}, the network takes spikes {net.encoder.shape}"
        )
    return images, labels, dataset


def _load_array(path: str | Path, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DeployError(f"{what} file not found: {path}") from None
    except (OSError, ValueError, EOFError) as exc:
        problem = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise DeployError(f"{path}: not a readable .npy array ({problem})") from None


def load_rasters(
    net: DeployedNetwork, path: str | Path, labels_path: str | Path | None, limit: int | None
) -> RunInputs:
    """The first ``limit`` rasters of ``path`` (and their labels) for ``net``'s spike input."""
    if isinstance(net.encoder, HostEncoder):
        raise DeployError(
            f"--spikes needs a network that takes spikes; {net.arch or 'this one'} has a host "
            "encoder (pass --dataset)"
        )
    raster = _load_array(path, "spike raster")
    expected = (net.timesteps, *net.encoder.shape)
    if raster.ndim != len(expected) + 1 or tuple(raster.shape[1:]) != expected:
        raise DeployError(
            f"{path}: rasters are {raster.shape}, expected (N, {', '.join(map(str, expected))})"
        )
    if raster.dtype.kind not in "biuf" or not np.isin(raster, (0, 1)).all():
        raise DeployError(f"{path}: rasters must hold 0 or 1 only (binary spikes)")
    if len(raster) == 0:
        raise DeployError(f"{path}: holds no rasters")
    labels = None
    if labels_path is not None:
        values = _load_array(labels_path, "labels")
        if values.ndim != 1 or values.dtype.kind not in "iu" or len(values) != len(raster):
            raise DeployError(
                f"{labels_path}: labels must be {len(raster)} integers (N,), one per raster, got "
                f"{values.dtype} {values.shape}"
            )
        values = values[:limit]
        if values.min() < 0 or values.max() >= net.num_classes:
            raise DeployError(f"{labels_path}: labels outside [0, {net.num_classes - 1}]")
        labels = torch.from_numpy(values.astype(np.int64))
    spikes = torch.from_numpy(raster[:limit].astype(bool))
    return RunInputs(SpikeRasters(spikes), labels, Path(path).name)


def run_inputs(
    net: DeployedNetwork,
    *,
    dataset: str | None = None,
    data_dir: str | None = None,
    limit: int | None = None,
    spikes: str | Path | None = None,
    labels: str | Path | None = None,
) -> RunInputs:
    """Rasters from ``spikes`` (with ``labels``), or else the test images of the dataset."""
    if spikes is not None:
        if dataset is not None:
            raise DeployError("pass --spikes or --dataset, not both")
        return load_rasters(net, spikes, labels, limit)
    if labels is not None:
        raise DeployError("--labels goes with --spikes (a dataset brings its own labels)")
    images, targets, name = load_test_images(net, dataset, data_dir, limit)
    return RunInputs(images, targets, name)


def accuracy(predictions: torch.Tensor, labels: torch.Tensor | None) -> float | None:
    """The fraction of predictions that match the labels, or None without labels."""
    if labels is None:
        return None
    return float((predictions == labels).double().mean())
