"""Datasets and batch loaders: in-memory image tensors for the small datasets, PIL-decoded
folders for ImageNet; batches are indexed, augmented and normalised whole."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    SequentialSampler,
    Subset,
)

from dietsnn_deploy.data.imagefolder import ImageFolder, image_folder_classes
from dietsnn_deploy.data.readers import IDX_HINTS, load_cifar, load_digits, load_idx_pair
from dietsnn_deploy.data.registry import (
    AUGMENTATION,
    IMAGE_SPLIT_DIRS,
    Augmentation,
    DatasetInfo,
    Split,
    check_name,
    check_split,
    data_root,
    dataset_info,
)
from dietsnn_deploy.data.transforms import channel_tensor, normalise, random_crop, random_flip
from dietsnn_deploy.errors import DeployError


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
        self._mean = channel_tensor(info.mean)
        self._std = channel_tensor(info.std)
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
    check_name(name)
    check_split(split)
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
        root = data_root(name, data_dir)
        classes = image_folder_classes(root / "train")
        return ImageFolder(root / IMAGE_SPLIT_DIRS[split], classes, info, augment, seed)
    pixel_max = 255.0
    if name == "digits":
        pixels, labels = load_digits(split)
        pixel_max = 16.0
    elif name in IDX_HINTS:
        pixels, labels = load_idx_pair(name, data_root(name, data_dir), split)
    else:
        pixels, labels = load_cifar(name, data_root(name, data_dir), split)
    if len(labels) == 0:
        where = "" if name == "digits" else f" in {data_root(name, data_dir)}"
        raise DeployError(f"{name}: the {split} split{where} holds no images")
    augmentation = AUGMENTATION[name] if augment else None
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
    rank: int = 0,
    world: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """Batches of (images (B, C, H, W), labels (B,)) from ``name``'s ``split``.

    ``augment`` and ``shuffle`` default to ``split == 'train'``; ``limit`` keeps the first N
    samples; ``seed`` fixes the shuffle order (the same on every rank) and the augmentation
    draws (``seed + rank``); ``normalization`` as in :func:`load_dataset`. A shuffled loader
    serves rank ``rank`` of ``world`` its shard of every epoch (a ``DistributedSampler``:
    call ``loader.sampler.set_epoch(e)``-style through :func:`set_epoch` each epoch).
    ImageNet's decoding runs in worker processes; ``pin_memory`` for a GPU run.
    """
    if batch_size < 1:
        raise DeployError(f"batch size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise DeployError(f"limit must be at least 1, got {limit}")
    augment = split == "train" if augment is None else augment
    shuffle = split == "train" if shuffle is None else shuffle
    base = load_dataset(name, split, data_dir, augment, seed + rank, normalization)
    dataset = base if limit is None else Subset(base, range(min(limit, len(base))))
    order = (
        DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        if shuffle
        else SequentialSampler(dataset)
    )
    if isinstance(base, InMemoryImages):
        # The sampler yields lists of indices and the dataset answers each with a whole batch.
        batches = BatchSampler(order, batch_size, drop_last=False)
        return DataLoader(dataset, batch_size=None, sampler=batches, pin_memory=pin_memory)
    workers = min(8, os.cpu_count() or 1)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=order, num_workers=workers, pin_memory=pin_memory
    )


def set_epoch(loader, epoch: int) -> None:
    """Tell a shuffled loader's distributed sampler which epoch begins (new order)."""
    sampler = getattr(loader, "sampler", None)
    while sampler is not None and not hasattr(sampler, "set_epoch"):
        sampler = getattr(sampler, "sampler", None)
    if sampler is not None:
        sampler.set_epoch(epoch)
