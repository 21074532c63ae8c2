"""Simulate: classify test images with a deployed network on the emulator or on Lava."""

from __future__ import annotations

import time

import torch

from dietsnn_deploy.data import make_loader
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.network import DeployedNetwork
from dietsnn_deploy.spine.settings import resolve_device

BACKENDS = ("emulator", "lava")


def test_images(
    net: DeployedNetwork, dataset: str | None, data_dir: str | None, limit: int | None
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(pixels in [0, 1], labels, dataset name) of the first ``limit`` test images of the
    network's dataset (the host encoder normalises the pixels itself)."""
    dataset = dataset or net.dataset
    if not dataset:
        raise DeployError("the network names no dataset; pass --dataset")
    if net.dataset and dataset != net.dataset:
        raise DeployError(f"the network was trained on {net.dataset}, not {dataset}")
    channels = net.encoder.in_shape[0]
    loader = make_loader(
        dataset,
        "test",
        4096,
        data_dir=data_dir,
        limit=limit,
        normalization=((0.0,) * channels, (1.0,) * channels),
    )
    batches = list(loader)
    images, labels = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    if tuple(images.shape[1:]) != tuple(net.encoder.in_shape):
        raise DeployError(
            f"{dataset} images are {tuple(images.shape[1:])}, the network takes "
            f"{tuple(net.encoder.in_shape)}"
        )
    return images, labels, dataset


def _layer_names(net: DeployedNetwork) -> list[str]:
    return [f"{i}:{layer.kind}" for i, layer in enumerate(net.layers)]


def simulate(
    net: DeployedNetwork,
    *,
    dataset: str | None = None,
    data_dir: str | None = None,
    limit: int | None = None,
    backend: str = "emulator",
    batch_size: int = 256,
    progress: bool = True,
    seed: int = 0,
    saturate_a_in: bool = False,
    device: str = "cpu",
) -> dict:
    """Run test images through ``net`` on one backend; the report ``simulate --json`` prints:
    accuracy, predictions (dataset order), spike counts per layer, seconds per image, and with
    ``saturate_a_in`` the neuron-steps clipped to int16 per layer."""
    if backend not in BACKENDS:
        raise DeployError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "lava" and saturate_a_in:
        raise DeployError("Lava's simulator passes a_in beyond int16; saturate on the emulator")
    images, labels, dataset = test_images(net, dataset, data_dir, limit)
    start = time.perf_counter()
    saturated = None
    if backend == "lava":
        from hw_sim.lava.runner import run_lava

        result = run_lava(net, images, progress=progress, seed=seed)
        predictions = result.predictions
        counts = [None if s is None else int(s.sum()) for s in result.record.spikes]
    else:
        from hw_sim.emulator import classify

        result = classify(
            net,
            images,
            batch_size,
            progress,
            seed=seed,
            saturate_a_in=saturate_a_in,
            device=resolve_device(device),
        )
        predictions, counts, saturated = result.predictions, result.spike_counts, result.saturated
    seconds = time.perf_counter() - start
    names = _layer_names(net)
    report = {
        "backend": backend,
        "dataset": dataset,
        "images": len(labels),
        "timesteps": net.timesteps,
        "encoding": net.encoder.encoding,
        "seed": seed,
        "accuracy": float((predictions == labels).double().mean()),
        "predictions": [int(p) for p in predictions],
        "spike_counts": {n: c for n, c in zip(names, counts, strict=True) if c is not None},
        "seconds_per_image": seconds / len(labels),
    }
    if saturated is not None:
        report["a_in_saturated"] = {
            n: s for n, s in zip(names, saturated, strict=True) if s is not None
        }
    return report


def simulation_line(report: dict) -> str:
    return (
        f"{report['backend']}: accuracy {100 * report['accuracy']:.2f}% on {report['images']} "
        f"{report['dataset']} test images, {1000 * report['seconds_per_image']:.2f} ms/image"
    )


def simulation_text(report: dict) -> str:
    """The human-readable report: the accuracy line, spikes per layer, saturated steps."""
    lines = [simulation_line(report)]
    for name, count in report["spike_counts"].items():
        lines.append(f"  {name:>10}: {count / report['images']:.1f} spikes/image")
    for name, count in report.get("a_in_saturated", {}).items():
        lines.append(
            f"  {name:>10}: {count / report['images']:.1f} neuron-steps/image clipped to int16"
        )
    return "\n".join(lines)
