"""What flows into and out of a run of a :class:`~.network.DeployedNetwork`.

Into it, per batch: the input layer's integer drive (:class:`HostDrive`). Out of it: a
:class:`SpikeRecord`, from which the op counter works without knowing who produced it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class HostDrive:
    """The host's drive of the input layer for one batch, in bias_mant units (int64).

    ``drive`` is (1, B, *shape) for a static encoding (the same drive at every step) or
    (T, B, *shape) when it changes per step; ``frames`` are the encoded input frames the host
    conv saw, (T, B, C, H, W) float, or None for static input (kept for op counting);
    ``spikes`` are a SpikeInput network's binary input spikes (T, B, *input shape), of which
    the drive is made (None otherwise).
    """

    drive: torch.Tensor
    frames: torch.Tensor | None = None
    spikes: torch.Tensor | None = None

    @property
    def static(self) -> bool:
        return self.drive.shape[0] == 1 and self.frames is None

    @property
    def batch(self) -> int:
        return int(self.drive.shape[1])

    def at(self, step: int) -> torch.Tensor:
        """The drive (B, *shape) of step ``step`` (0-based)."""
        return self.drive[0 if self.static else step]

    def steps(self, timesteps: int) -> torch.Tensor:
        """The drive of every step, (T, B, *shape) (a view when static)."""
        if self.static:
            return self.drive.expand(timesteps, *self.drive.shape[1:])
        return self.drive

    def along_batch(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> HostDrive:
        """The same drive with ``fn`` applied to each tensor's batch-major layout (steps, B, …):
        selecting, spreading or joining samples keeps drive, frames and spikes together."""

        def apply(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else fn(tensor)

        return HostDrive(drive=fn(self.drive), frames=apply(self.frames), spikes=apply(self.spikes))


@dataclass
class SpikeRecord:
    """What one run of a batch produced, layer by layer, in the delay-free schedule.

    ``spikes[i]`` is a bool tensor (T, B, *layers[i].shape) for every spiking layer ``i`` and
    ``None`` for flatten and the readout; step t of layer i is the step at which layer i+1
    receives those spikes. ``readout`` is the readout layer's potential ``v`` after T steps
    (B, num_classes), int64, in units of 2⁻⁶ weight units (None for a float model's record).
    ``frames`` are the encoded input frames (T, B, C, H, W), None for static input;
    ``saturated[i]`` counts layer i's neuron-steps whose a_in was clipped to int16 (None
    where the run did not model the int16 port); ``input_spikes`` are the binary spikes a
    :class:`~.network.SpikeInput` network received, (T, B, *input shape) bool, else None.
    """

    spikes: list  # list[torch.Tensor | None]
    readout: object  # torch.Tensor (B, num_classes), int64, or None
    frames: torch.Tensor | None = None
    saturated: list | None = None
    input_spikes: torch.Tensor | None = None


@dataclass
class SpikeRasters:
    """Recorded input spikes, one raster per sample: ``spikes`` (N, T, *shape) bool.

    The input of a :class:`~.network.SpikeInput` network when it is not drawn from images;
    sliced like a tensor of images (``rasters[a:b]``) so that runs batch either alike.
    """

    spikes: torch.Tensor

    def __len__(self) -> int:
        return int(self.spikes.shape[0])

    def __getitem__(self, index: slice) -> SpikeRasters:
        return SpikeRasters(self.spikes[index])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.spikes.shape)
