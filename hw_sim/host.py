"""The host side of a deployed network: images → constant integer drive of the input layer.

Shared by the Lava runner and the emulator so that both feed identical drive. No Lava here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dietsnn_deploy.deployed import BIAS_MAX, HostEncoder
from dietsnn_deploy.errors import DeployError


def encode_drive(encoder: HostEncoder, images: torch.Tensor) -> torch.Tensor:
    """Drive (bias_mant units) of the input layer, int64 (N, Cout, H', W').

    ``drive = clip(round(drive_scale · conv2d((x − mean)/std, weight)), ±BIAS_MAX)`` where
    ``x`` is ``images`` (N, C, H, W): float pixels scaled to [0, 1], before mean/std (the
    encoder applies them). Computed in float64; ``round`` is torch's (half to even).
    """
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(encoder.in_shape):
        raise DeployError(
            f"images must be (N, {', '.join(map(str, encoder.in_shape))}), "
            f"got {tuple(images.shape)}"
        )
    x = images.detach().to(torch.float64)
    mean = torch.tensor(encoder.mean, dtype=torch.float64)[:, None, None]
    std = torch.tensor(encoder.std, dtype=torch.float64)[:, None, None]
    weight = torch.as_tensor(encoder.weight, dtype=torch.float64)
    current = F.conv2d((x - mean) / std, weight, stride=encoder.stride, padding=encoder.padding)
    drive = torch.round(current * encoder.drive_scale).clamp(-BIAS_MAX, BIAS_MAX)
    return drive.to(torch.int64)
