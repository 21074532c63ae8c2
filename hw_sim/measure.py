"""Measure what a deployed network costs: run test images on the bit-exact emulator or on
Lava (the same spikes, hence the same counts), count the operations its spikes cause, and
price them with an energy model; sweep T; write the report files.

Spike records from elsewhere (a float model's, laid out on a deployed network's plan by
:mod:`dietsnn_deploy.services.measure`) are counted by the same :class:`OpCounter`, so the
rows of a float and a deployed network compare one to one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.network import DeployedNetwork
from dietsnn_deploy.spine.record import SpikeRasters
from hw_sim.emulator import classify
from hw_sim.energy import EnergyModel, EnergyReport, energy
from hw_sim.op_counter import OpCounter
from hw_sim.op_counts import OpCounts
from hw_sim.plots import (
    plot_layer_energy,
    plot_leak_threshold,
    plot_spike_rates,
    plot_timestep_sweep,
)
from hw_sim.report import write_csv, write_json

BACKENDS = ("emulator", "lava")


@dataclass(frozen=True)
class Measurement:
    """Per-image op counts of one run over ``counts.num_images`` test images, and its accuracy.

    ``counted_on`` says what produced the spikes ("emulator", "lava", "float (soft reset)");
    ``spike_rates`` holds spikes per neuron over all T per spiking layer, keyed by the plan's
    layer names for a deployed network and by neuron key ("0", "3", …) for a float model, as
    ``evaluate`` prints them. ``saturated`` counts, per layer name, the neuron-steps whose
    a_in the emulator clipped to int16 (None unless the run modelled that port).
    """

    counts: OpCounts
    accuracy: float | None  # None: the samples had no labels
    predictions: torch.Tensor  # (N,) int64
    counted_on: str
    spike_rates: dict[str, float]
    saturated: dict[str, int] | None = None


def measure_deployed(
    net: DeployedNetwork,
    images: torch.Tensor | SpikeRasters,
    labels: torch.Tensor | None,
    *,
    backend: str = "emulator",
    batch_size: int = 256,
    progress: bool = True,
    seed: int = 0,
    saturate_a_in: bool = False,
    device: torch.device | str = "cpu",
    file: str | Path | None = None,
) -> Measurement:
    """Classify ``images`` (N, C, H, W, pixels in [0, 1]) with ``net`` on ``backend`` and count
    the operations of the spikes that occur (a SpikeInput network may take rasters instead;
    without ``labels`` the accuracy is None). Lava runs all images in one pipelined run;
    random input frames are drawn under ``seed``; ``saturate_a_in`` (emulator only) clips each
    step's synaptic input to the chip's int16 port; ``file`` is the netx file ``net`` was read
    from (Lava loads it as it is)."""
    if backend not in BACKENDS:
        raise DeployError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if len(images) < 1 or (labels is not None and len(images) != len(labels)):
        count = "no" if labels is None else len(labels)
        raise DeployError(f"need ≥ 1 image and one label each, got {len(images)}/{count}")
    if backend == "lava" and saturate_a_in:
        raise DeployError("Lava's simulator passes a_in beyond int16; saturate on the emulator")
    counter = OpCounter.for_network(net)
    saturated = None
    if backend == "lava":
        from hw_sim.lava.runner import run_lava  # Lava is imported only when asked for

        result = run_lava(net, images, progress=progress, seed=seed, file=file)
        counter.add(result.record)
    else:
        result = classify(
            net,
            images,
            batch_size,
            progress,
            counter.add,
            seed=seed,
            saturate_a_in=saturate_a_in,
            device=device,
        )
        if result.saturated is not None:
            names = {g.index: g.name for g in counter.plan}
            saturated = {names[i]: n for i, n in enumerate(result.saturated) if n is not None}
    counts = counter.result()
    return Measurement(
        counts=counts,
        accuracy=None if labels is None else float((result.predictions == labels).double().mean()),
        predictions=result.predictions,
        counted_on=backend,
        spike_rates={c.name: c.spike_rate for c in counts.layers if c.spiking},
        saturated=saturated,
    )


@dataclass(frozen=True)
class SweepPoint:
    """Accuracy and per-image energy of one timestep count T."""

    timesteps: int
    accuracy: float
    snn_acs: float
    energy_ann_pj: float
    energy_snn_pj: float

    @property
    def ratio(self) -> float:
        """E_ANN / E_SNN."""
        return self.energy_ann_pj / self.energy_snn_pj if self.energy_snn_pj else float("nan")


def sweep_timesteps(
    steps: Sequence[int], measure_at: Callable[[int], Measurement], model: EnergyModel | str
) -> list[SweepPoint]:
    """``measure_at(T)`` for every T in ``steps`` (ascending, duplicates dropped), priced."""
    if not steps or min(steps) < 1:
        raise DeployError("a timestep sweep needs one or more T ≥ 1")
    points = []
    for step in sorted(set(steps)):
        measured = measure_at(step)
        report = energy(model, measured.counts)
        points.append(
            SweepPoint(
                timesteps=step,
                accuracy=measured.accuracy,
                snn_acs=measured.counts.total().synaptic_events,
                energy_ann_pj=report.ann_pj,
                energy_snn_pj=report.snn_pj,
            )
        )
    return points


def format_sweep(points: Sequence[SweepPoint], model_name: str) -> str:
    """One line per T: accuracy, synaptic events per image and the energy ratio."""
    lines = [f"timestep sweep ({model_name}; per image)", "   T  accuracy       SNN ACs  ANN/SNN"]
    for p in points:
        lines.append(
            f"{p.timesteps:>4}  {100 * p.accuracy:>7.2f}%  {p.snn_acs:>12,.0f}  {p.ratio:>6.2f}×"
        )
    return "\n".join(lines)


NeuronParameters = tuple[list[str], list[tuple[float, float]], list[tuple[float, float]]]


def sweep_record(point: SweepPoint) -> dict:
    """A sweep point as JSON values."""
    return {
        "timesteps": point.timesteps,
        "accuracy": point.accuracy,
        "snn_acs": point.snn_acs,
        "energy_ann_pj": point.energy_ann_pj,
        "energy_snn_pj": point.energy_snn_pj,
        "ratio": point.ratio,
    }


def write_outputs(
    counts: OpCounts,
    report: EnergyReport,
    *,
    json_path: str | Path | None = None,
    csv_path: str | Path | None = None,
    plot_dir: str | Path | None = None,
    context: dict | None = None,
    neuron_params: NeuronParameters | None = None,
    sweep: Sequence[SweepPoint] = (),
) -> dict[str, Path]:
    """Write whichever of JSON (``context`` first), CSV and PNG plots were asked for, each
    atomically; returns what was written, by description."""
    written: dict[str, Path] = {}
    if json_path is not None:
        written["JSON"] = write_json(json_path, counts, report, context)
    if csv_path is not None:
        written["CSV"] = write_csv(csv_path, counts, report)
    if plot_dir is not None:
        out = Path(plot_dir)
        written["spike rate per layer"] = plot_spike_rates(out / "spike-rates.png", counts)
        written["energy per layer"] = plot_layer_energy(
            out / f"energy-{report.model}-layers.png", report
        )
        if neuron_params is not None:
            written["leak and threshold per layer"] = plot_leak_threshold(
                out / "leak-threshold.png", *neuron_params
            )
        if sweep:
            written["accuracy and energy against T"] = plot_timestep_sweep(
                out / f"timestep-sweep-{report.model}.png",
                [(p.timesteps, p.accuracy, p.ratio) for p in sweep],
            )
    return written
