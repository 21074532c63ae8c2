"""An architecture as data: what the model classes are built from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Pair = tuple[int, int]


@dataclass(frozen=True)
class Conv:
    """A conv layer given in full (a bare width in ``features`` means 3×3, stride 1, pad 1)."""

    channels: int
    kernel: Pair = (3, 3)
    stride: Pair = (1, 1)
    padding: Pair = (1, 1)


@dataclass(frozen=True)
class Pool:
    """A k×k average pool of stride k that is always kept ('A' is a 2×2 pool dropped where the
    map is odd-sized)."""

    size: int = 2


@dataclass(frozen=True)
class ArchSpec:
    """An architecture: VGG features (a width = 3×3 conv, 'A' = 2×2 average pool, or
    :class:`Conv` and :class:`Pool` items) and hidden classifier widths, or a ResNet."""

    name: str
    family: Literal["vgg", "resnet"]
    features: tuple[int | str | Conv | Pool, ...] = ()
    classifier: tuple[int, ...] = ()  # hidden widths; the class layer is added
    description: str = ""
