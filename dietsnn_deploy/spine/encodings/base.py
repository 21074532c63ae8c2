"""What an input encoding is. Images arrive normalised, x = (pixels − mean)/std, (B, C, H, W).

``frames(x, T, generator)`` gives what the first layer receives at each of the T steps,
(T, B, C, H, W), or None for a static encoding (x itself at every step, computed once).
``step_kinds(T)`` says how each step's first-layer work is priced: ``analog`` (a full conv of
real values: MACs), ``binary`` (frames in {−1, 0, 1}: one accumulate per non-zero input and
synapse) or ``repeat`` (the previous step's result reused: no work).

Deployed runs draw random frames image by image from :func:`image_generator`, so an image's
frames do not depend on the batch it is in: Lava (all images in one run) and the emulator
(batches) see the same input.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch

StepKind = Literal["analog", "binary", "repeat"]
ANALOG: StepKind = "analog"
BINARY: StepKind = "binary"
REPEAT: StepKind = "repeat"

_SEED_STRIDE = 1_000_003  # a prime: seeds of (seed, image) pairs do not collide for images < it


def image_generator(seed: int, image: int) -> torch.Generator:
    """The generator of image number ``image`` (its index in the dataset) under ``seed``."""
    return torch.Generator().manual_seed(seed * _SEED_STRIDE + image)


class Encoding:
    """One input encoding (module doc)."""

    name: ClassVar[str]
    static: ClassVar[bool] = False  # True: the same analog frame at every step

    def frames(
        self, x: torch.Tensor, steps: int, generator: torch.Generator | None = None
    ) -> torch.Tensor | None:
        raise NotImplementedError

    def step_kinds(self, steps: int) -> tuple[StepKind, ...]:
        raise NotImplementedError

    def signed_binary(self) -> bool:
        """True if binary frames carry −1 as well as +1 (the drive bound is then Σ|W|)."""
        return False
