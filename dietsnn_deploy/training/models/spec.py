"""An architecture as data: what the model classes are built from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ArchSpec:
    """An architecture by name: VGG feature widths ('A' = 2×2 average pool) and classifier."""

    name: str
    family: Literal["vgg", "resnet"]
    features: tuple[int | str, ...] = ()
    classifier: tuple[int, ...] = ()  # hidden widths; the class layer is added
    description: str = ""
