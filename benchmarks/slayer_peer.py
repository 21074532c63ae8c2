"""A network trained with lava-dl's slayer and exported by its own ``export_hdf5`` (a netx file
without our metadata), run through this tool: accuracy in slayer, on our emulator and on Lava,
and its energy.

    python benchmarks/slayer_peer.py [--dataset fashion-mnist] [--epochs 3] [--timesteps 16]
                                     [--hidden 128] [--lava-images 20] [--write]

The slayer network: Dense(F → hidden) → Dense(hidden → classes) of CUBA blocks (the neuron
parameters of lava-dl's NMNIST tutorial), trained with slayer's ``SpikeRate`` loss and
``Assistant`` on the spikes this tool draws from the pixels (rate coding, seeded image by
image), so slayer, the emulator and Lava see the same input spikes. slayer trains with each
block's output one step late (``delay_shift``); its accuracy is given with it and without it
(the delay-free schedule a deployment runs).

lava-dl 0.6's ``slayer/__init__`` imports its object-detection subpackage, which needs
torchvision (CUDA-only on PyPI here, so not installed); nothing here uses it, so
:func:`import_slayer` registers an empty module in its place before importing slayer.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

import h5py
import torch
from results_log import energy_line, lava_line, record_run
from run_cli import run_cli

from dietsnn_deploy.data import dataset_info, make_loader
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


def images(dataset: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixels in [0, 1] (N, C, H, W), labels) of one split of ``dataset``."""
    loader = make_loader(dataset, split, 4096, normalization=((0.0,), (1.0,)))
    batches = list(loader)
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixels, labels) of one split of scikit-learn's digits (8×8)."""
    return images("digits", split)


def rate_spikes(pixels: torch.Tensor, timesteps: int, seed: int, first: int = 0) -> torch.Tensor:
    """The spikes this tool draws for ``pixels`` (images number ``first``… of the run) under
    ``seed``, in slayer's (N, features, T) layout."""
    source = SpikeInput((int(pixels[0].numel()),))
    drive = spike_drive(source, pixels, timesteps, seed=seed, first_index=first).drive
    return drive.permute(1, 2, 0).float()  # (T, N, F) → (N, F, T)


class SlayerNet(torch.nn.Module):
    """Dense features → hidden → classes of slayer CUBA blocks, exported as lava-dl's
    tutorials do; ``delay``: the hidden block learns an axonal delay per neuron;
    ``input_block``: the spikes first pass a slayer Input block (CUBA neurons, threshold
    0.5), which netx builds as an input layer."""

    def __init__(
        self, features=64, hidden=64, classes=10, delay: bool = False, input_block: bool = False
    ) -> None:
        super().__init__()
        slayer = import_slayer()
        blocks = [
            slayer.block.cuba.Dense(NEURON, features, hidden, weight_norm=True, delay=delay),
            slayer.block.cuba.Dense(NEURON, hidden, classes, weight_norm=True),
        ]
        if input_block:
            blocks.insert(0, slayer.block.cuba.Input({**NEURON, "threshold": 0.5}))
        self.blocks = torch.nn.ModuleList(blocks)

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


def train_slayer(
    timesteps: int,
    epochs: int,
    seed: int = 0,
    delay: bool = False,
    dataset: str = "digits",
    hidden: int = 64,
    progress: bool = False,
    input_block: bool = False,
) -> SlayerNet:
    """Train on ``dataset``'s training split with slayer's own loss and assistant."""
    slayer = import_slayer()
    torch.manual_seed(seed)
    pixels, labels = images(dataset, "train")
    info = dataset_info(dataset)
    net = SlayerNet(int(pixels[0].numel()), hidden, info.num_classes, delay, input_block)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.003)
    loss = slayer.loss.SpikeRate(true_rate=0.5, false_rate=0.05, reduction="sum")
    assistant = slayer.utils.Assistant(net, loss, optimizer, slayer.utils.LearningStats(),
                                       classifier=slayer.classifier.Rate.predict)  # fmt: skip
    for epoch in range(epochs):
        order = torch.randperm(len(pixels))
        for start in range(0, len(pixels), 32):
            batch = order[start : start + 32]
            spikes = rate_spikes(pixels[batch], timesteps, seed=1000 + 100 * epoch + start)
            assistant.train(spikes, labels[batch])
        if progress:
            print(f"  epoch {epoch + 1}/{epochs} done", file=sys.stderr, flush=True)
    return net


def slayer_counts(net: SlayerNet, pixels, timesteps: int, seed: int, shift: bool, batch=1000):
    """(N, classes) spike counts of slayer's own forward on the spikes drawn under ``seed``,
    with or without its one-step block delay."""
    net.delay_shift(shift)
    counts = []
    with torch.no_grad():
        for start in range(0, len(pixels), batch):
            spikes = rate_spikes(pixels[start : start + batch], timesteps, seed, first=start)
            counts.append(net(spikes).sum(dim=-1).long())
    net.delay_shift(True)
    return torch.cat(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--lava-images", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7, help="seed of the test images' spikes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="append the figures to RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # torch's weight_norm deprecation, inside slayer
    started = time.perf_counter()
    net = train_slayer(args.timesteps, args.epochs, dataset=args.dataset, hidden=args.hidden,
                       progress=True)  # fmt: skip
    trained = time.perf_counter() - started
    pixels, labels = images(args.dataset, "test")
    T, seed = args.timesteps, args.seed
    shifted = slayer_counts(net, pixels, T, seed, shift=True)
    delay_free = slayer_counts(net, pixels, T, seed, shift=False)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "slayer.net"
        net.export_hdf5(path)
        run = [str(path), "-T", str(T), "--dataset", args.dataset, "--seed", str(seed)]
        emulated = json.loads(run_cli("simulate", *run, "--json"))
        lava = json.loads(run_cli("simulate", *run, "--backend", "lava", "-n",
                               str(args.lava_images), "--json"))  # fmt: skip
        subset = json.loads(run_cli("simulate", *run, "-n", str(args.lava_images), "--json"))
        report = Path(folder) / "energy.json"
        run_cli("energy", *run, "--json", str(report))
        energy = json.loads(report.read_text())["total"]
    ours = torch.tensor(emulated["predictions"])

    def accuracy(counts) -> float:
        return 100 * float((counts.argmax(dim=1) == labels).double().mean())

    agree = 100 * float((ours == delay_free.argmax(dim=1)).double().mean())
    lines = [
        f"slayer network Dense {pixels[0].numel()}→{args.hidden}→{labels.max() + 1} on "
        f"{args.dataset}, T={T}, rate-coded input, {args.epochs} epochs ({trained:.0f} s): "
        f"slayer {accuracy(shifted):.2f}% (as trained, one step per block), "
        f"{accuracy(delay_free):.2f}% (delay-free)",
        f"deployed from slayer's export_hdf5 file (emulator, full test set): "
        f"{100 * emulated['accuracy']:.2f}%; predictions agree with delay-free slayer's on "
        f"{agree:.2f}% of images",
        lava_line(lava, subset, args.lava_images),
        energy_line(energy),
    ]
    print("\n".join(lines))
    if args.write:
        record_run(
            lines, "slayer_peer.py", sys.argv[1:], "## lava-dl slayer → netx → our simulators"
        )


if __name__ == "__main__":
    main()
