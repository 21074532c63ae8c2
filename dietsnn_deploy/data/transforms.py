"""Image transforms on uint8 / float batches, written with torch ops (no torchvision)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def channel_tensor(values: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)[:, None, None]


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
