"""hw_sim.host.encode_drive: the host encoder's integer drive, exactly as HostEncoder states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.network import HostEncoder
from hw_sim.host import encode_drive


def _encoder(
    weight, stride=(1, 1), padding=(0, 0), drive_scale=10.0, mean=0.5, std=0.25, shape=(1, 1, 6)
):
    return HostEncoder(
        np.asarray(weight, dtype=float), stride, padding, drive_scale, (mean,), (std,), shape
    )


def test_normalises_scales_rounds_half_even_and_clips():
    encoder = _encoder(np.ones((1, 1, 1, 1)))
    pixels = torch.tensor([0.5, 0.6, 0.5625, 0.6875, 1000.0, -1000.0]).reshape(1, 1, 1, 6)
    # 10 · (x − 0.5) / 0.25 = 0, 4, 2.5 → 2, 7.5 → 8, then ±4095 (13-bit bias_mant).
    drive = encode_drive(encoder, pixels)
    assert drive.dtype == torch.int64
    assert drive.flatten().tolist() == [0, 4, 2, 8, 4095, -4095]


def test_stride_and_padding_follow_conv2d():
    encoder = _encoder(
        np.ones((2, 1, 2, 2)) * [[[[1.0]]], [[[-1.0]]]], (2, 2), (1, 1), 3.0, 0.0, 1.0, (1, 2, 2)
    )
    drive = encode_drive(encoder, torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
    # Padding 1 and stride 2: each 2×2 window covers exactly one pixel.
    assert drive.tolist() == [[[[3, 6], [9, 12]], [[-3, -6], [-9, -12]]]]


def test_wrong_image_shape_is_refused():
    with pytest.raises(DeployError, match=r"images must be \(N, 1, 1, 6\)"):
        encode_drive(_encoder(np.ones((1, 1, 1, 1))), torch.zeros(2, 1, 6))
