"""A network trained with lava-dl's slayer and exported by it, for tests.

lava-dl 0.6's ``slayer/__init__`` imports its object-detection subpackage, which needs
torchvision (CUDA-only on PyPI here, so not installed); nothing below uses it, so
:func:`import_slayer` registers an empty module in its place before importing slayer.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import h5py
import torch

from dietsnn_deploy.data import make_loader
from dietsnn_deploy.spine.network import SpikeInput
from hw_sim.host import spike_drive

#: slayer's CUBA parameters of lava-dl's NMNIST tutorial
NEURON = {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03, "tau_grad": 0.03,
          "scale_grad": 3, "requires_grad": False}  # fmt: skip


def import_slayer():
    name = "lava.lib.dl.slayer.object_detection"
    sys.modules.setdefault(name, types.ModuleType(name))
    import lava.lib.dl.slayer as slayer

    return slayer


def digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixels in [0, 1] (N, 1, 8, 8), labels) of one split of scikit-learn's digits."""
    loader = make_loader("digits", split, 4096, normalization=((0.0,), (1.0,)))
    batches = list(loader)
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def rate_spikes(images: torch.Tensor, timesteps: int, seed: int) -> torch.Tensor:
    """The spikes our tool draws for ``images`` under ``seed``, in slayer's (N, 64, T) layout."""
    drive = spike_drive(SpikeInput((64,)), images, timesteps, seed=seed).drive  # (T, N, 64)
    return drive.permute(1, 2, 0).float()


class SlayerNet(torch.nn.Module):
    """Dense 64 → 64 → 10 of slayer CUBA blocks, exported as lava-dl's tutorials do;
    ``delay``: the hidden block learns an axonal delay per neuron."""

    def __init__(self, delay: bool = False) -> None:
        super().__init__()
        slayer = import_slayer()
        self.blocks = torch.nn.ModuleList(
            [
                slayer.block.cuba.Dense(NEURON, 64, 64, weight_norm=True, delay=delay),
                slayer.block.cuba.Dense(NEURON, 64, 10, weight_norm=True),
            ]
        )

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            spikes = block(spikes)
        return spikes

    def delay_shift(self, on: bool) -> None:
        """slayer trains with each block's output one step late (``delay_shift``); without it
        its steps are the delay-free schedule of a deployed network."""
        for block in self.blocks:
            block.delay_shift = on

    def export_hdf5(self, path: str | Path) -> None:
        with h5py.File(path, "w") as f:
            layers = f.create_group("layer")
            for index, block in enumerate(self.blocks):
                block.export_hdf5(layers.create_group(str(index)))


def train_slayer(timesteps: int, epochs: int, seed: int = 0, delay: bool = False) -> SlayerNet:
    """Train on the digits training split with slayer's own loss and assistant."""
    slayer = import_slayer()
    torch.manual_seed(seed)
    images, labels = digits("train")
    net = SlayerNet(delay)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.003)
    loss = slayer.loss.SpikeRate(true_rate=0.5, false_rate=0.05, reduction="sum")
    assistant = slayer.utils.Assistant(net, loss, optimizer, slayer.utils.LearningStats(),
                                       classifier=slayer.classifier.Rate.predict)  # fmt: skip
    for epoch in range(epochs):
        order = torch.randperm(len(images))
        for start in range(0, len(images), 32):
            batch = order[start : start + 32]
            spikes = rate_spikes(images[batch], timesteps, seed=1000 + 100 * epoch + start)
            assistant.train(spikes, labels[batch])
    return net
