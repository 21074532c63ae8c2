"""Datasets for training and evaluating DIET-SNNs: file readers, normalisation, augmentation.

Small datasets (digits, MNIST, Fashion-MNIST, CIFAR) are held in memory as one uint8 tensor and
served a whole batch at a time (index, augment and normalise with vectorised torch ops), which
keeps the loader cheap on two cores. ImageNet is an ImageFolder tree decoded lazily with PIL.
No torchvision: the few transforms needed are written here with torch ops.
"""

from __future__ import annotations

import gzip
import math
import pickle
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    Subset,
)

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
_FIXED_INFO = {
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

_AUGMENTATION = {
    "digits": Augmentation(pad=1, flip=False),
    "mnist": Augmentation(pad=2, flip=False),
    "fashion-mnist": Augmentation(pad=2, flip=False),
    "cifar10": Augmentation(pad=4, flip=True),
    "cifar100": Augmentation(pad=4, flip=True),
}

_IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_HINTS = {
    "mnist": "pass --data-dir",
    "fashion-mnist": "install dataset-fashion-mnist or pass --data-dir",
}

# name -> (subdirectory of the python-version archive, files per split, label key)
_CIFAR_LAYOUT = {
    "cifar10": (
        "cifar-10-batches-py",
        {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        "labels",
    ),
    "cifar100": ("cifar-100-python", {"train": ("train",), "test": ("test",)}, "fine_labels"),
}
_CIFAR_SIDE = 32

_IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
_IMAGE_SPLIT_DIRS = {"train": "train", "test": "val"}


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise DeployError(f"unknown dataset '{name}'; choose from {', '.join(DATASETS)}")


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise DeployError(f"unknown split '{split}'; choose from train, test")


def _data_root(name: str, data_dir: str | Path | None) -> Path:
    return Path(data_dir if data_dir is not None else DEFAULT_DATA_DIRS[name])


def dataset_info(name: str, data_dir: str | Path | None = None) -> DatasetInfo:
    """Shape, class count and normalisation of dataset ``name``; only ImageNet reads the disk
    (its class count is the number of class folders under ``train/``)."""
    _check_name(name)
    if name in _FIXED_INFO:
        return _FIXED_INFO[name]
    classes = _image_folder_classes(_data_root(name, data_dir) / "train")
    return DatasetInfo(
        name, (3, IMAGENET_CROP, IMAGENET_CROP), len(classes), IMAGENET_MEAN, IMAGENET_STD
    )


# --- transforms on uint8 / float image batches -------------------------------------------------


def random_crop(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad each image of a (B, C, H, W) batch by ``pad`` pixels on every side and cut an
    H×W window at an independent random offset per image."""
    batch, _, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad)).permute(0, 2, 3, 1)  # (B, H+2p, W+2p, C)
    top = torch.randint(0, 2 * pad + 1, (batch,), generator=generator)
    left = torch.randint(0, 2 * pad + 1, (batch,), generator=generator)
    rows = top[:, None] + torch.arange(height)  # (B, H)
    cols = left[:, None] + torch.arange(width)  # (B, W)
    picked = padded[torch.arange(batch)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return picked.permute(0, 3, 1, 2)


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image of a (B, C, H, W) batch left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def normalise(
    pixels: torch.Tensor, pixel_max: float, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """Map raw pixels (0..pixel_max) to ``(pixels / pixel_max − mean) / std`` per channel;
    ``mean`` and ``std`` have shape (C, 1, 1)."""
    return (pixels.float() / pixel_max - mean) / std


def _channel_tensor(values: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)[:, None, None]


# --- in-memory datasets -----------------------------------------------------------------------


class InMemoryImages(Dataset):
    """Images held as one uint8 tensor (N, C, H, W) with int64 labels (N,).

    ``ds[i]`` gives one normalised (C, H, W) float sample and its int label; ``ds[[i, j, ...]]``
    gives a whole batch (B, C, H, W) and labels (B,), which is what ``make_loader`` asks for, so
    there is no per-sample Python work. Augmentation draws from a generator seeded by ``seed``.
    """

    def __init__(
        self,
        pixels: torch.Tensor,
        labels: torch.Tensor,
        info: DatasetInfo,
        pixel_max: float = 255.0,
        augmentation: Augmentation | None = None,
        seed: int = 0,
    ) -> None:
        self.pixels = pixels
        self.labels = labels
        self.info = info
        self.pixel_max = pixel_max
        self.augmentation = augmentation
        self._mean = _channel_tensor(info.mean)
        self._std = _channel_tensor(info.std)
        self._generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index):
        if isinstance(index, list | tuple):
            return self._batch(index)
        images, labels = self._batch([int(index)])
        return images[0], int(labels[0])

    def _batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        picked = torch.as_tensor(indices, dtype=torch.long)
        images = self.pixels[picked]
        if self.augmentation is not None:
            images = random_crop(images, self.augmentation.pad, self._generator)
            if self.augmentation.flip:
                images = random_flip(images, self._generator)
        return normalise(images, self.pixel_max, self._mean, self._std), self.labels[picked]


def _load_digits(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8×8 digits (pixels 0..16), split 80/20 stratified with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    everything = np.arange(len(digits.target))
    train, test = train_test_split(
        everything, test_size=0.2, stratify=digits.target, random_state=0
    )
    chosen = np.sort(train if split == "train" else test)
    pixels = torch.from_numpy(digits.images[chosen].astype(np.uint8))[:, None]
    return pixels, torch.from_numpy(digits.target[chosen].astype(np.int64))


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an IDX file (gzip-compressed if it ends in .gz): a big-endian uint32 magic
    ``0x000008<ndim>``, ``ndim`` big-endian uint32 sizes, then the uint8 values."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DeployError(f"{path}: cannot read IDX file ({err})") from err
    if len(raw) < 4:
        raise DeployError(f"{path}: truncated IDX file ({len(raw)} bytes)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DeployError(f"{path}: bad IDX magic 0x{found:08x} (expected 0x{magic:08x})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DeployError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != math.prod(dims):
        raise DeployError(
            f"{path}: IDX data has {len(raw) - header} bytes but the header says "
            f"{'x'.join(map(str, dims))} = {math.prod(dims)}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _find_idx(name: str, root: Path, base: str, split: Split) -> Path:
    for candidate in (root / f"{base}.gz", root / base):
        if candidate.is_file():
            return candidate
    expected = ", ".join(f"{f}(.gz)" for f in _IDX_FILES[split])
    raise DeployError(
        f"{name}: no {base}(.gz) in {root} (expected IDX files {expected}; {_IDX_HINTS[name]})"
    )


def _load_idx_pair(name: str, root: Path, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    image_base, label_base = _IDX_FILES[split]
    image_path = _find_idx(name, root, image_base, split)
    label_path = _find_idx(name, root, label_base, split)
    images = read_idx(image_path, _IDX_IMAGES_MAGIC)
    labels = read_idx(label_path, _IDX_LABELS_MAGIC)
    _, height, width = _FIXED_INFO[name].in_shape
    if images.shape[1:] != (height, width):
        raise DeployError(
            f"{image_path}: images are {images.shape[1]}x{images.shape[2]}, "
            f"expected {height}x{width}"
        )
    _check_labels(label_path, labels, len(images), _FIXED_INFO[name].num_classes)
    return torch.from_numpy(images)[:, None], torch.from_numpy(labels.astype(np.int64))


def _check_labels(path: Path, labels: np.ndarray, count: int, num_classes: int) -> None:
    if len(labels) != count:
        raise DeployError(f"{path}: {len(labels)} labels for {count} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DeployError(f"{path}: labels outside 0..{num_classes - 1}")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and nothing else: CIFAR batches hold only dicts,
    lists, bytes and arrays, and refusing other globals keeps a hostile file from running code.
    (``_codecs.encode`` is how Python 3 writes bytes into a protocol-2 pickle.)"""

    _ALLOWED = {
        ("_codecs", "encode"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """One python-version CIFAR batch: a pickled dict with ``data`` (N×3072 uint8, channel
    planes of 32×32 in row order) and ``label_key`` (N ints). Keys may be bytes (as shipped)."""
    try:
        with open(path, "rb") as stream:
            batch = _ArrayUnpickler(stream, encoding="bytes").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as err:
        raise DeployError(f"{path}: cannot unpickle CIFAR batch ({err})") from err
    if not isinstance(batch, dict):
        raise DeployError(f"{path}: CIFAR batch is a {type(batch).__name__}, expected a dict")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    missing = [key for key in ("data", label_key) if key not in batch]
    if missing:
        raise DeployError(f"{path}: CIFAR batch lacks key(s) {', '.join(missing)}")
    data = np.asarray(batch["data"])
    row = 3 * _CIFAR_SIDE * _CIFAR_SIDE
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != row:
        raise DeployError(
            f"{path}: CIFAR data is {data.dtype} {data.shape}, expected uint8 (N, {row})"
        )
    labels = np.asarray(batch[label_key])
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DeployError(f"{path}: CIFAR {label_key} is not a list of integers")
    return data.reshape(-1, 3, _CIFAR_SIDE, _CIFAR_SIDE), labels


def _load_cifar(name: str, root: Path, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    subdir, files, label_key = _CIFAR_LAYOUT[name]
    folder = root / subdir if (root / subdir).is_dir() else root
    paths = [folder / file for file in files[split]]
    for path in paths:
        if not path.is_file():
            raise DeployError(
                f"{name}: no {path.name} in {folder} (expected the python-version batches "
                f"{', '.join(files[split])} in DIR or DIR/{subdir}; pass --data-dir)"
            )
    images, labels = [], []
    for path in paths:
        data, batch_labels = _read_cifar_batch(path, label_key)
        _check_labels(path, batch_labels, len(data), _FIXED_INFO[name].num_classes)
        images.append(data)
        labels.append(batch_labels)
    return (
        torch.from_numpy(np.concatenate(images)),
        torch.from_numpy(np.concatenate(labels).astype(np.int64)),
    )


# --- ImageNet-style folders -------------------------------------------------------------------


def _image_folder_classes(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise DeployError(
            f"imagenet: no folder {folder} (expected DIR/train/<class>/*.JPEG and "
            "DIR/val/<class>/*.JPEG; pass --data-dir)"
        )
    classes = sorted(entry.name for entry in folder.iterdir() if entry.is_dir())
    if not classes:
        raise DeployError(f"imagenet: no class folders in {folder}")
    return classes


def resize_shorter_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinearly resize a float (C, H, W) image (antialiased) so its shorter side is ``size``,
    keeping the aspect ratio."""
    height, width = image.shape[-2:]
    if min(height, width) == size:
        return image
    scale = size / min(height, width)
    target = (size, round(width * scale)) if height <= width else (round(height * scale), size)
    resized = F.interpolate(
        image[None], size=target, mode="bilinear", antialias=True, align_corners=False
    )
    return resized[0]


class ImageFolder(Dataset):
    """An ImageNet-style tree ``root/<class>/<image>`` decoded with PIL on access.

    Each image is resized so its shorter side is 256 and cropped to 224×224: at the centre, or
    (``augment``) at a random offset and mirrored with probability 1/2. Labels index ``classes``.
    """

    def __init__(
        self,
        root: Path,
        classes: list[str],
        info: DatasetInfo,
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        found = _image_folder_classes(root)
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DeployError(f"imagenet: {root} has classes not in train/: {', '.join(unknown)}")
        label_of = {name: label for label, name in enumerate(classes)}
        self.samples = [
            (path, label_of[folder])
            for folder in found
            for path in sorted((root / folder).iterdir())
            if path.suffix.lower() in _IMAGE_SUFFIXES
        ]
        if not self.samples:
            raise DeployError(f"imagenet: no .JPEG/.jpg/.png images under {root}")
        self.info = info
        self.augment = augment
        self._mean = _channel_tensor(info.mean)
        self._std = _channel_tensor(info.std)
        self._generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        image = resize_shorter_side(_decode_rgb(path), IMAGENET_RESIZE)
        height, width = image.shape[-2:]
        if self.augment:
            top = int(torch.randint(0, height - IMAGENET_CROP + 1, (1,), generator=self._generator))
            left = int(torch.randint(0, width - IMAGENET_CROP + 1, (1,), generator=self._generator))
        else:
            top, left = (height - IMAGENET_CROP) // 2, (width - IMAGENET_CROP) // 2
        image = image[:, top : top + IMAGENET_CROP, left : left + IMAGENET_CROP]
        if self.augment and torch.rand(1, generator=self._generator).item() < 0.5:
            image = image.flip(-1)
        return normalise(image, 255.0, self._mean, self._std), label


def _decode_rgb(path: Path) -> torch.Tensor:
    """Decode an image file to a float (3, H, W) tensor of 0..255 RGB values."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise DeployError(f"{path}: cannot decode image ({err})") from err
    return torch.from_numpy(pixels).permute(2, 0, 1)


# --- public entry points ----------------------------------------------------------------------


def load_dataset(
    name: str,
    split: Split,
    data_dir: str | Path | None = None,
    augment: bool = False,
    seed: int = 0,
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> Dataset:
    """Dataset ``name``'s ``split`` giving normalised float (C, H, W) images and int labels;
    ``augment`` adds the dataset's random crop (and flip for CIFAR/ImageNet), seeded by ``seed``;
    ``normalization`` = (mean, std) replaces the dataset's own (a checkpoint's, say)."""
    _check_name(name)
    _check_split(split)
    info = dataset_info(name, data_dir)
    if normalization is not None:
        mean, std = (tuple(float(v) for v in values) for values in normalization)
        if len(mean) != info.in_shape[0] or len(std) != info.in_shape[0] or min(std) <= 0:
            raise DeployError(
                f"{name}: normalisation mean {mean} / std {std} does not fit"
                f" {info.in_shape[0]} channel(s) with positive std"
            )
        info = replace(info, mean=mean, std=std)
    if name == "imagenet":
        root = _data_root(name, data_dir)
        classes = _image_folder_classes(root / "train")
        return ImageFolder(root / _IMAGE_SPLIT_DIRS[split], classes, info, augment, seed)
    pixel_max = 255.0
    if name == "digits":
        pixels, labels = _load_digits(split)
        pixel_max = 16.0
    elif name in _IDX_HINTS:
        pixels, labels = _load_idx_pair(name, _data_root(name, data_dir), split)
    else:
        pixels, labels = _load_cifar(name, _data_root(name, data_dir), split)
    augmentation = _AUGMENTATION[name] if augment else None
    return InMemoryImages(pixels, labels, info, pixel_max, augmentation, seed)


def make_loader(
    name: str,
    split: Split,
    batch_size: int,
    data_dir: str | Path | None = None,
    augment: bool | None = None,
    shuffle: bool | None = None,
    limit: int | None = None,
    seed: int = 0,
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> DataLoader:
    """Batches of (images (B, C, H, W), labels (B,)) from ``name``'s ``split``.

    ``augment`` and ``shuffle`` default to ``split == 'train'``; ``limit`` keeps the first N
    samples; ``seed`` fixes the shuffle order and the augmentation draws; ``normalization``
    as in :func:`load_dataset`.
    """
    if batch_size < 1:
        raise DeployError(f"batch size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise DeployError(f"limit must be at least 1, got {limit}")
    augment = split == "train" if augment is None else augment
    shuffle = split == "train" if shuffle is None else shuffle
    base = load_dataset(name, split, data_dir, augment, seed, normalization)
    dataset = base if limit is None else Subset(base, range(min(limit, len(base))))
    order = (
        RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
        if shuffle
        else SequentialSampler(dataset)
    )
    if isinstance(base, InMemoryImages):
        # The sampler yields lists of indices and the dataset answers each with a whole batch.
        batches = BatchSampler(order, batch_size, drop_last=False)
        return DataLoader(dataset, batch_size=None, sampler=batches)
    return DataLoader(dataset, batch_size=batch_size, sampler=order)
