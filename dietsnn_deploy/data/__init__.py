"""Datasets for training and evaluating DIET-SNNs: the registry (:mod:`.registry`), file
readers (:mod:`.readers`, :mod:`.imagefolder`), transforms (:mod:`.transforms`) and loaders
(:mod:`.loaders`).

Small datasets (digits, MNIST, Fashion-MNIST, CIFAR) are held in memory as one uint8 tensor and
served a whole batch at a time (index, augment and normalise with vectorised torch ops), which
keeps the loader cheap on two cores. ImageNet is an ImageFolder tree decoded lazily with PIL.
No torchvision: the few transforms needed are written here with torch ops.
"""

from dietsnn_deploy.data.loaders import InMemoryImages, load_dataset, make_loader, set_epoch
from dietsnn_deploy.data.readers import read_idx
from dietsnn_deploy.data.registry import (
    DATASETS,
    DEFAULT_DATA_DIRS,
    Augmentation,
    DatasetInfo,
    check_name,
    dataset_info,
    fixed_dataset_info,
)
from dietsnn_deploy.data.transforms import normalise, random_crop, random_flip, resize_shorter_side

__all__ = [
    "DATASETS",
    "DEFAULT_DATA_DIRS",
    "Augmentation",
    "DatasetInfo",
    "check_name",
    "InMemoryImages",
    "dataset_info",
    "fixed_dataset_info",
    "load_dataset",
    "make_loader",
    "normalise",
    "random_crop",
    "random_flip",
    "read_idx",
    "resize_shorter_side",
    "set_epoch",
]
