"""Readers of the on-disk dataset formats: scikit-learn's digits, IDX (MNIST, Fashion-MNIST)
and the python-version CIFAR batches. Each returns (uint8 pixels (N, C, H, W), int64 labels)
and refuses a damaged or empty file with one line naming it."""

from __future__ import annotations

import gzip
import math
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from dietsnn_deploy.data.registry import FIXED_INFO, Split
from dietsnn_deploy.errors import DeployError

_IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_HINTS = {
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


def load_digits(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
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
        f"{name}: no {base}(.gz) in {root} (expected IDX files {expected}; {IDX_HINTS[name]})"
    )


def load_idx_pair(name: str, root: Path, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    image_base, label_base = _IDX_FILES[split]
    image_path = _find_idx(name, root, image_base, split)
    label_path = _find_idx(name, root, label_base, split)
    images = read_idx(image_path, _IDX_IMAGES_MAGIC)
    labels = read_idx(label_path, _IDX_LABELS_MAGIC)
    _, height, width = FIXED_INFO[name].in_shape
    if images.shape[1:] != (height, width):
        raise DeployError(
            f"{image_path}: images are {images.shape[1]}x{images.shape[2]}, "
            f"expected {height}x{width}"
        )
    _check_labels(label_path, labels, len(images), FIXED_INFO[name].num_classes)
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


def load_cifar(name: str, root: Path, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
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
        _check_labels(path, batch_labels, len(data), FIXED_INFO[name].num_classes)
        images.append(data)
        labels.append(batch_labels)
    return (
        torch.from_numpy(np.concatenate(images)),
        torch.from_numpy(np.concatenate(labels).astype(np.int64)),
    )
