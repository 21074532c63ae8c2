"""ImageNet-style folders ``root/<class>/<image>``, decoded with PIL on access."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dietsnn_deploy.data.registry import IMAGENET_CROP, IMAGENET_RESIZE, DatasetInfo
from dietsnn_deploy.data.transforms import channel_tensor, normalise, resize_shorter_side
from dietsnn_deploy.errors import DeployError

_IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


def image_folder_classes(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise DeployError(
            f"imagenet: no folder {folder} (expected DIR/train/<class>/*.JPEG and "
            "DIR/val/<class>/*.JPEG; pass --data-dir)"
        )
    classes = sorted(entry.name for entry in folder.iterdir() if entry.is_dir())
    if not classes:
        raise DeployError(f"imagenet: no class folders in {folder}")
    return classes


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
        found = image_folder_classes(root)
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
        self._mean = channel_tensor(info.mean)
        self._std = channel_tensor(info.std)
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
