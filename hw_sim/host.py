"""The host side of a deployed network: images → the input layer's integer drive.

Shared by the Lava runner and the emulator so that both feed identical drive. No Lava here.
For every step t the host computes, in float64,

    x = (pixels − mean) / std                                 pixels scaled to [0, 1]
    drive[t] = clip(round(drive_scale · conv2d(frame[t], W)), ±4095)     bias_mant units

where the frames are the encoding's (:mod:`dietsnn_deploy.spine.encodings`): x itself once for
a static encoding, otherwise drawn image by image with :func:`image_generator` so that an
image's frames do not depend on the batch it is in. ``round`` is torch's (half to even).

A :class:`SpikeInput` network takes binary spikes instead (:func:`spike_drive`): rate-coded
from pixels p ∈ [0, 1], s[t] = [r[t] < p] with r[t] ~ U[0, 1) per pixel and step (the Poisson
encoding's draw on the unnormalised pixels), or recorded :class:`SpikeRasters`; an input layer
gets them through the input transform (:meth:`SpikeInput.drive`), a first conv or dense layer
as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.encodings import REPEAT, Poisson, get_encoding
from dietsnn_deploy.spine.encodings.base import image_generator
from dietsnn_deploy.spine.loihi import drive_mantissa
from dietsnn_deploy.spine.network import DeployedNetwork, HostEncoder, SpikeInput
from dietsnn_deploy.spine.record import HostDrive, SpikeRasters


def _normalised(encoder: HostEncoder, images: torch.Tensor) -> torch.Tensor:
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(encoder.in_shape):
        raise DeployError(
            f"images must be (N, {', '.join(map(str, encoder.in_shape))}), "
            f"got {tuple(images.shape)}"
        )
    x = images.detach().to(torch.float64)
    mean = torch.tensor(encoder.mean, dtype=torch.float64)[:, None, None]
    std = torch.tensor(encoder.std, dtype=torch.float64)[:, None, None]
    return (x - mean) / std


def _drive(encoder: HostEncoder, frames: torch.Tensor) -> torch.Tensor:
    """drive = clip(round(s₀ · conv2d(frames, W)), ±4095), int64, for (N, C, H, W) frames."""
    weight = torch.as_tensor(encoder.weight, dtype=torch.float64)
    current = F.conv2d(frames, weight, stride=encoder.stride, padding=encoder.padding)
    return drive_mantissa(current, encoder.drive_scale).to(torch.int64)


def _frames_by_image(encoding, x: torch.Tensor, timesteps: int, seed: int, first_index: int):
    """The encoding's frames (T, N, ...) of ``x`` (N, ...), image i drawn with the generator
    of image number ``first_index + i`` under ``seed`` (so not depending on its batch)."""
    return torch.cat(
        [
            encoding.frames(x[i : i + 1], timesteps, image_generator(seed, first_index + i))
            for i in range(len(x))
        ],
        dim=1,
    )


def encode_drive(encoder: HostEncoder, images: torch.Tensor) -> torch.Tensor:
    """The constant drive (N, Cout, H', W') of a static (direct) encoding, int64."""
    if not get_encoding(encoder.encoding).static:
        raise DeployError(f"the {encoder.encoding} encoding has no constant drive; use host_drive")
    return _drive(encoder, _normalised(encoder, images))


def host_drive(
    encoder: HostEncoder,
    images: torch.Tensor,
    timesteps: int,
    *,
    seed: int = 0,
    first_index: int = 0,
) -> HostDrive:
    """The drive of ``images`` (N, C, H, W) over ``timesteps`` steps; image i is image number
    ``first_index + i`` of the run, drawn under ``seed``."""
    encoding = get_encoding(encoder.encoding)
    x = _normalised(encoder, images)
    if len(x) == 0:
        raise DeployError("no images to encode")
    if encoding.static:
        return HostDrive(drive=_drive(encoder, x).unsqueeze(0))
    frames = _frames_by_image(encoding, x, timesteps, seed, first_index)
    kinds = encoding.step_kinds(timesteps)
    drive = []
    for step, kind in enumerate(kinds):
        drive.append(drive[-1] if kind == REPEAT else _drive(encoder, frames[step]))
    return HostDrive(drive=torch.stack(drive), frames=frames.float())


def spike_drive(
    source: SpikeInput,
    inputs: torch.Tensor | SpikeRasters,
    timesteps: int,
    *,
    seed: int = 0,
    first_index: int = 0,
) -> HostDrive:
    """The 0/1 input spikes (T, B, *shape) of rasters (B, T, *shape), or rate-coded from
    images (B, C, H, W) of pixels in [0, 1] (C-major flattened for a 1-d input), drawn image
    by image: image i is number ``first_index + i`` of the run under ``seed``; as the drive
    of synapses (the spikes themselves) and in ``spikes``."""
    shape = tuple(source.shape)
    if isinstance(inputs, SpikeRasters):
        spikes = inputs.spikes
        if tuple(spikes.shape[1:]) != (timesteps, *shape):
            raise DeployError(
                f"spike rasters are {tuple(spikes.shape[1:])} per sample, the network takes "
                f"(T={timesteps}, {', '.join(map(str, shape))})"
            )
        spikes = spikes.transpose(0, 1).to(torch.int64)
        return HostDrive(drive=spikes, spikes=spikes)
    if inputs.ndim != 4 or not source.takes_images(tuple(inputs.shape[1:])):
        raise DeployError(
            f"images {tuple(inputs.shape[1:])} do not make the network's spike input {shape}"
        )
    pixels = inputs.detach().to(torch.float64)
    if len(pixels) == 0:
        raise DeployError("no images to encode")
    if pixels.min() < 0 or pixels.max() > 1:
        raise DeployError("spike rates need pixels in [0, 1]")
    frames = _frames_by_image(Poisson(), pixels, timesteps, seed, first_index)
    spikes = frames.reshape(timesteps, len(pixels), *shape).to(torch.int64)
    return HostDrive(drive=spikes, spikes=spikes)


def network_drive(
    net: DeployedNetwork,
    inputs: torch.Tensor | SpikeRasters,
    *,
    seed: int = 0,
    first_index: int = 0,
) -> HostDrive:
    """What ``net``'s first layer receives for one batch: the host encoder's drive of images,
    or a SpikeInput network's spikes (:func:`spike_drive`)."""
    if isinstance(net.encoder, SpikeInput):
        host = spike_drive(net.encoder, inputs, net.timesteps, seed=seed, first_index=first_index)
        if net.synaptic_input:
            return host
        return HostDrive(drive=net.encoder.drive(host.spikes), spikes=host.spikes)
    if isinstance(inputs, SpikeRasters):
        raise DeployError(
            "spike rasters need a network that takes spikes (this one has a host encoder)"
        )
    return host_drive(net.encoder, inputs, net.timesteps, seed=seed, first_index=first_index)
