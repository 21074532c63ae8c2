"""A network trained in snnTorch, exported by snnTorch's own ``export_to_nir``, deployed to Loihi
fixed point by this tool: accuracy in snnTorch, on our emulator and on Lava, and its energy.

    python benchmarks/snntorch_peer.py [--dataset fashion-mnist] [--epochs 3] [--lava-images 20]
                                       [--device cpu] [--write]

The snnTorch network: Conv2d → Leaky → AvgPool2d → Conv2d → Leaky → AvgPool2d → Flatten →
Linear, no bias, T steps of the static image (direct input), trained with snnTorch's surrogate
on the cross-entropy of the last Linear summed over T. Its Leaky neurons reset to zero
(``reset_mechanism="zero"``: NIR's hard reset) and carry their β and threshold per neuron,
which snnTorch 1.0.0's exporter needs to infer a conv layer's shape (with ``ignore_dims=[0]``).
Images are pixels in [0, 1], so the import is told ``--mean 0 --std 1``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_device import add_device_option, parse_device
from results_log import energy_line, lava_line, record_run
from run_cli import run_cli

from dietsnn_deploy.data import dataset_info, make_loader

RAW = ((0.0,), (1.0,))  # pixels in [0, 1]


def snntorch_net(in_shape: tuple[int, int, int], classes: int, widths=(16, 32), beta=0.9):
    """The snnTorch network of the module doc for images of ``in_shape``."""
    import snntorch as snn

    def leaky(shape):
        return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.ones(shape),
                         reset_mechanism="zero", init_hidden=True)  # fmt: skip

    channels, height, width = in_shape
    layers: list[torch.nn.Module] = []
    for out in widths:
        layers += [torch.nn.Conv2d(channels, out, 3, padding=1, bias=False),
                   leaky((out, height, width)), torch.nn.AvgPool2d(2)]  # fmt: skip
        channels, height, width = out, height // 2, width // 2
    layers += [torch.nn.Flatten(), torch.nn.Linear(channels * height * width, classes, bias=False)]
    return torch.nn.Sequential(*layers)


def _reset(net) -> None:
    import snntorch as snn

    for module in net.modules():
        if isinstance(module, snn.Leaky):
            module.reset_mem()


def snntorch_logits(net, images: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Σ_t of the last Linear over ``timesteps`` steps of the static images (a fresh state)."""
    _reset(net)
    return sum(net(images) for _ in range(timesteps))


def train_snntorch(net, loader, timesteps: int, epochs: int, lr: float = 2e-3, device="cpu"):
    net.to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(epochs):
        for images, labels in loader:
            loss = torch.nn.functional.cross_entropy(
                snntorch_logits(net, images.to(device), timesteps), labels.to(device)
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return net.cpu().eval()


def export_snntorch(net, in_shape, path: Path) -> None:
    """snnTorch's own exporter, then ``nir.write``."""
    import nir
    from snntorch.export_nir import export_to_nir

    _reset(net)
    graph = export_to_nir(net, torch.zeros((1, *in_shape)), ignore_dims=[0])
    nir.write(path, graph)


def snntorch_accuracy(net, dataset: str, timesteps: int, limit=None) -> tuple[float, torch.Tensor]:
    loader = make_loader(dataset, "test", 256, limit=limit, normalization=RAW)
    predictions, labels = [], []
    with torch.no_grad():
        for images, target in loader:
            predictions.append(snntorch_logits(net, images, timesteps).argmax(1))
            labels.append(target)
    predictions = torch.cat(predictions)
    return float((predictions == torch.cat(labels)).float().mean()), predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=5)
    parser.add_argument("--lava-images", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="append the figures to RESULTS.md")
    add_device_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = parse_device(parser, args.device)
    info = dataset_info(args.dataset)
    started = time.perf_counter()
    net = snntorch_net(info.in_shape, info.num_classes)
    train = make_loader(args.dataset, "train", 128, normalization=RAW, seed=0)
    net = train_snntorch(net, train, args.timesteps, args.epochs, device=device)
    trained = time.perf_counter() - started
    theirs, predictions = snntorch_accuracy(net, args.dataset, args.timesteps)
    with tempfile.TemporaryDirectory() as folder:
        graph, deployed = Path(folder) / "snntorch.nir", Path(folder) / "snntorch.net"
        export_snntorch(net, info.in_shape, graph)
        norm = ["--dataset", args.dataset, "--mean", "0", "--std", "1", "-T", str(args.timesteps)]
        run_cli("export", str(graph), "-o", str(deployed), *norm)
        emulated = json.loads(run_cli("simulate", str(deployed), "--json"))
        lava = json.loads(run_cli("simulate", str(deployed), "--backend", "lava", "-n",
                               str(args.lava_images), "--json"))  # fmt: skip
        subset = json.loads(
            run_cli("simulate", str(deployed), "-n", str(args.lava_images), "--json")
        )
        report = Path(folder) / "energy.json"
        run_cli("energy", str(deployed), "--json", str(report))
        energy = json.loads(report.read_text())["total"]
    agree = float((torch.tensor(emulated["predictions"]) == predictions).float().mean())
    lines = [
        f"snnTorch network on {args.dataset}, T={args.timesteps}, {args.epochs} epochs "
        f"({trained:.0f} s): snnTorch float {100 * theirs:.2f}%",
        f"deployed (emulator, full test set): {100 * emulated['accuracy']:.2f}%; predictions "
        f"agree with snnTorch's on {100 * agree:.2f}% of images",
        lava_line(lava, subset, args.lava_images),
        energy_line(energy),
    ]
    print("\n".join(lines))
    if args.write:
        record_run(lines, "snntorch_peer.py", sys.argv[1:], "## snnTorch → NIR → Loihi fixed point")


if __name__ == "__main__":
    main()
