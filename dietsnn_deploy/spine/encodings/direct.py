"""Direct input (DIET-SNN): the analog image at every step. The first layer's output is the
same at each of the T steps, so it is computed once per image (MACs once), and the deployed
input layer gets a constant drive."""

from __future__ import annotations

from typing import ClassVar

from dietsnn_deploy.spine.encodings.base import ANALOG, REPEAT, Encoding


class Direct(Encoding):
    name: ClassVar[str] = "direct"
    static: ClassVar[bool] = True

    def frames(self, x, steps, generator=None):
        return None

    def step_kinds(self, steps):
        return (ANALOG,) + (REPEAT,) * (steps - 1)
