"""Rate-coded (Poisson) input, as the DIET paper's Figure 3 baseline: at every step each pixel
spikes with probability min(|x|, 1), with the sign of x::

    frame[t] = sign(x) · [r[t] < |x|],   r[t] ~ U[0, 1) independent per pixel and step

Frames are in {−1, 0, 1}: the first layer accumulates (one add per non-zero input and synapse)
instead of multiplying."""

from __future__ import annotations

from typing import ClassVar

import torch

from dietsnn_deploy.spine.encodings.base import BINARY, Encoding


class Poisson(Encoding):
    name: ClassVar[str] = "poisson"

    def frames(self, x, steps, generator=None):
        rand = torch.rand((steps, *x.shape), generator=generator, device=x.device)
        return (rand < x.abs()).to(x.dtype) * torch.sign(x)

    def step_kinds(self, steps):
        return (BINARY,) * steps

    def signed_binary(self) -> bool:
        return True
