"""Simulate: classify test images with a deployed network on the emulator or on Lava."""

from __future__ import annotations

import time

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.services.inputs import accuracy, run_inputs
from dietsnn_deploy.spine.network import DeployedNetwork
from dietsnn_deploy.spine.settings import resolve_device

BACKENDS = ("emulator", "lava")


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
    spikes: str | None = None,
    labels: str | None = None,
    file: str | None = None,
) -> dict:
    """Run test images (or the spike rasters in ``spikes``, labelled by ``labels``) through
    ``net`` on one backend; the report ``simulate --json`` prints: accuracy (None without
    labels), predictions (sample order), spike counts per layer, seconds per sample, and with
    ``saturate_a_in`` the neuron-steps clipped to int16 per layer. ``file``: the netx file
    ``net`` was read from, which Lava then loads as it is."""
    if backend not in BACKENDS:
        raise DeployError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "lava" and saturate_a_in:
        raise DeployError("Lava's simulator passes a_in beyond int16; saturate on the emulator")
    inputs = run_inputs(
        net, dataset=dataset, data_dir=data_dir, limit=limit, spikes=spikes, labels=labels
    )
    images = inputs.samples
    start = time.perf_counter()
    saturated = None
    if backend == "lava":
        from hw_sim.lava.runner import run_lava

        result = run_lava(net, images, progress=progress, seed=seed, file=file)
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
        "dataset": inputs.source,
        "images": len(images),
        "inputs": "test images" if spikes is None else "spike rasters",
        "timesteps": net.timesteps,
        "encoding": net.encoder.encoding,
        "seed": seed,
        "readout": net.readout,
        "accuracy": accuracy(predictions, inputs.labels),
        "predictions": [int(p) for p in predictions],
        "spike_counts": {n: c for n, c in zip(names, counts, strict=True) if c is not None},
        "seconds_per_image": seconds / len(images),
    }
    if saturated is not None:
        report["a_in_saturated"] = {
            n: s for n, s in zip(names, saturated, strict=True) if s is not None
        }
    return report


def accuracy_text(value: float | None) -> str:
    """``93.15%``, or ``n/a (no labels)``."""
    return "n/a (no labels)" if value is None else f"{100 * value:.2f}%"


def simulation_line(report: dict) -> str:
    return (
        f"{report['backend']}: accuracy {accuracy_text(report['accuracy'])} on "
        f"{report['images']} {report['dataset']} {report['inputs']}, "
        f"{1000 * report['seconds_per_image']:.2f} ms/image"
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
