"""The dataset registry: names, shapes, class counts, normalisation, augmentation and where
each dataset is looked for on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dietsnn_deploy.errors import DeployError

Split = Literal["train", "test"]
Shape3 = tuple[int, int, int]  # (channels, height, width)

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "imagenet")

#: Where each dataset is looked for when no data directory is given (relative paths are
#: taken from the working directory). Fashion-MNIST is Debian's dataset-fashion-mnist package.
DEFAULT_DATA_DIRS = {
    "mnist": "data/mnist",
    "fashion-mnist": "/usr/share/datasets/fashion-mnist",
    "cifar10": "data/cifar10",
    "cifar100": "data/cifar100",
    "imagenet": "data/imagenet",
}


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset: input shape, class count, normalisation."""

    name: str
    in_shape: Shape3
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class Augmentation:
    """Training augmentation: zero-pad by ``pad`` pixels and cut a random window of the original
    size; then, if ``flip``, mirror left-right with probability 1/2."""

    pad: int
    flip: bool


# Digits' mean/std are those of its train split (pixels / 16), computed once.
FIXED_INFO = {
    "digits": DatasetInfo("digits", (1, 8, 8), 10, (0.3054,), (0.3761,)),
    "mnist": DatasetInfo("mnist", (1, 28, 28), 10, (0.1307,), (0.3081,)),
    "fashion-mnist": DatasetInfo("fashion-mnist", (1, 28, 28), 10, (0.2860,), (0.3530,)),
    "cifar10": DatasetInfo(
        "cifar10", (3, 32, 32), 10, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    ),
    "cifar100": DatasetInfo(
        "cifar100", (3, 32, 32), 100, (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)
    ),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_RESIZE = 256  # shorter side after resizing
IMAGENET_CROP = 224  # side of the square crop fed to the network

AUGMENTATION = {
    "digits": Augmentation(pad=1, flip=False),
    "mnist": Augmentation(pad=2, flip=False),
    "fashion-mnist": Augmentation(pad=2, flip=False),
    "cifar10": Augmentation(pad=4, flip=True),
    "cifar100": Augmentation(pad=4, flip=True),
}

IMAGE_SPLIT_DIRS = {"train": "train", "test": "val"}


def check_name(name: str) -> None:
    if not isinstance(name, str) or name not in DATASETS:
        shown = repr(name) if len(str(name)) <= 40 else repr(str(name)[:40]) + "…"
        raise DeployError(f"unknown dataset {shown}; choose from {', '.join(DATASETS)}")


def check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise DeployError(f"unknown split '{split}'; choose from train, test")


def data_root(name: str, data_dir: str | Path | None) -> Path:
    return Path(data_dir if data_dir is not None else DEFAULT_DATA_DIRS[name])


def fixed_dataset_info(name: str) -> DatasetInfo | None:
    """The info of a dataset whose shape and classes are fixed (all but ImageNet), else None."""
    return FIXED_INFO.get(name)


def dataset_info(name: str, data_dir: str | Path | None = None) -> DatasetInfo:
    """Shape, class count and normalisation of dataset ``name``; only ImageNet reads the disk
    (its class count is the number of class folders under ``train/``)."""
    from dietsnn_deploy.data.imagefolder import image_folder_classes

    check_name(name)
    if name in FIXED_INFO:
        return FIXED_INFO[name]
    classes = image_folder_classes(data_root(name, data_dir) / "train")
    return DatasetInfo(
        name, (3, IMAGENET_CROP, IMAGENET_CROP), len(classes), IMAGENET_MEAN, IMAGENET_STD
    )
