"""Single-spike hybrid input (after Datta et al. 2021): the analog image at the first step,
then each pixel sends at most one spike, earlier the brighter it is.

With n = T − 1 binary steps and x the normalised image (x = (pixels − mean)/std)::

    frame[0] = x                                            analog: the first layer multiplies
    level    = ⌈min(|x|, 1) · n⌉ ∈ {0, …, n}                brightness in n levels (|x| ≥ 1: n)
    frame[t] = sign(x) · [t = n − level + 1]                 t = 1 … n; level 0 never fires

so |x| ≥ 1 (one standard deviation from the mean) fires at t = 1 and the dimmest non-zero
pixels at t = n. The sign keeps what normalisation made negative (darker than the mean) as a
−1 spike, so the first layer sees the image's contrast in both directions. Deterministic: no
generator is used, and the first layer's work is one analog frame (MACs) and n binary ones
(accumulates).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from dietsnn_deploy.spine.encodings.base import ANALOG, BINARY, Encoding


class Hybrid(Encoding):
    name: ClassVar[str] = "hybrid"

    def frames(self, x, steps, generator=None):
        binary = steps - 1
        frames = torch.zeros((steps, *x.shape), dtype=x.dtype, device=x.device)
        frames[0] = x
        if binary:
            level = torch.ceil(x.abs().clamp(max=1.0) * binary)
            fire_at = binary - level + 1  # in 1 … n, or n + 1 (never) for level 0
            times = torch.arange(1, steps, device=x.device, dtype=x.dtype)
            shape = (binary,) + (1,) * x.dim()
            frames[1:] = (times.view(shape) == fire_at).to(x.dtype) * torch.sign(x)
        return frames

    def step_kinds(self, steps):
        return (ANALOG,) + (BINARY,) * (steps - 1)

    def signed_binary(self) -> bool:
        return True
