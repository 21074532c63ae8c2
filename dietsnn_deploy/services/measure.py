"""Measure: op counts and energy of a network, ANN against SNN, from the spikes of test images.

A deployed network (a netx file, or a checkpoint quantized on the fly) runs on the emulator or
Lava; with ``on_float`` a checkpoint's float PyTorch SNN runs with its own reset. Either way
the spikes are counted by :mod:`hw_sim.op_counter` on the deployed network's plan, so the rows
of a float and a deployed network compare one to one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from dietsnn_deploy.data import make_loader
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.services.inputs import run_inputs
from dietsnn_deploy.services.networks import (
    LoadOptions,
    deploy_model,
    load_network,
    load_spiking,
    network_format,
)
from dietsnn_deploy.services.simulate import accuracy_text
from dietsnn_deploy.spine.network import DeployedNetwork
from dietsnn_deploy.spine.record import SpikeRecord
from dietsnn_deploy.spine.settings import RunSettings, resolve_device
from dietsnn_deploy.training.checkpoints import ModelInfo
from dietsnn_deploy.training.models import DietNet
from hw_sim.energy import EnergyModel, energy
from hw_sim.measure import (
    Measurement,
    NeuronParameters,
    SweepPoint,
    format_sweep,
    measure_deployed,
    sweep_record,
    sweep_timesteps,
    write_outputs,
)
from hw_sim.op_counter import OpCounter, counting_plan
from hw_sim.report import format_paper_convention, format_table


def float_spike_record(net: DeployedNetwork, keys: Sequence[str], out) -> SpikeRecord:
    """A float model's recorded spikes (``SNNOutput``: neuron key → (T, B, …)) laid out on
    the deployed network's layers: its spiking layers in order are the model's neuron keys."""
    missing = [key for key in keys if key not in out.spikes]
    if missing:
        raise DeployError(f"no recorded spikes for layer(s) {', '.join(missing)}")
    spiking = [i for i, layer in net.neuron_layers if layer.neuron.spiking]
    if len(spiking) != len(keys):
        raise DeployError(f"{len(keys)} spiking layers in the model, {len(spiking)} deployed")
    spikes: list = [None] * len(net.layers)
    for index, key in zip(spiking, keys, strict=True):
        spikes[index] = out.spikes[key]
    return SpikeRecord(spikes=spikes, readout=None, frames=out.frames)


def measure_float(
    model: DietNet,
    net: DeployedNetwork,
    loader: Iterable,
    settings: RunSettings,
    *,
    progress: bool = True,
    desc: str = "count ops",
) -> Measurement:
    """Run the float SNN on ``loader``'s (normalised images, labels) batches as ``evaluate``
    does, counting the operations of its recorded spikes on ``net``'s plan (``net`` = the
    model deployed at the same T: the same layers, folded geometry and ANN MACs)."""
    if not model.spiking:
        raise DeployError("op counts need a spiking model; this is an ANN (convert it first)")
    counter = OpCounter(counting_plan(net), settings.timesteps)
    keys = model.neuron_keys
    model.eval()
    predictions, correct = [], 0
    # only build a tqdm bar when it is shown (it fixes multiprocessing's start method)
    batches = tqdm(loader, desc=desc, unit="batch", leave=False) if progress else loader
    model.to(settings.device)
    with torch.no_grad():
        for images, labels in batches:
            images, labels = images.to(settings.device), labels.to(settings.device)
            out = model.run_snn(images, settings.timesteps, record=True)
            counter.add(float_spike_record(net, keys, out))
            predictions.append(out.logits.argmax(1))
            correct += int((predictions[-1] == labels).sum())
    counts = counter.result()
    spiking = [c for c in counts.layers if c.kind != "readout"]
    model.cpu()
    return Measurement(
        counts=counts,
        accuracy=correct / counts.num_images,
        predictions=torch.cat(predictions).cpu(),
        counted_on=f"float ({model.neuron_model.reset} reset)",
        spike_rates={key: c.spike_rate for key, c in zip(keys, spiking, strict=True)},
    )


def neuron_parameters(model: DietNet, info: ModelInfo, net: DeployedNetwork) -> NeuronParameters:
    """Spiking layer names with (leak, threshold) after conversion, i.e. before DIET training
    (``info.initial_*``), and as ``model`` holds them now (float units)."""
    names = [g.name for g in counting_plan(net) if g.kind != "readout"]
    if not (len(info.initial_leaks) == len(info.initial_thresholds) == len(names)):
        raise DeployError(
            "the checkpoint holds no leak/threshold values from conversion "
            f"({len(info.initial_thresholds)} for {len(names)} layers)"
        )
    before = list(zip(info.initial_leaks, info.initial_thresholds, strict=True))
    after = list(zip(model.leaks(), model.thresholds(), strict=True))
    return names, before, after


@dataclass(frozen=True)
class MeasureOptions:
    """Where the test images (or a SpikeInput network's rasters) come from and how to run
    them."""

    dataset: str | None = None
    data_dir: str | None = None
    limit: int | None = None
    backend: str = "emulator"
    batch_size: int = 256
    seed: int = 0
    saturate_a_in: bool = False
    progress: bool = True
    device: str = "cpu"  # where the emulator or the float model runs
    spikes: str | None = None  # .npy rasters (N, T, *input shape) instead of test images
    labels: str | None = None  # .npy labels (N,) of the rasters


def measure_network(
    net: DeployedNetwork, options: MeasureOptions, file: str | Path | None = None
) -> Measurement:
    """Classify the test images with ``net`` on the chosen backend and count its ops
    (``file``: the netx file ``net`` was read from, for Lava to load as it is)."""
    inputs = run_inputs(
        net,
        dataset=options.dataset,
        data_dir=options.data_dir,
        limit=options.limit,
        spikes=options.spikes,
        labels=options.labels,
    )
    return measure_deployed(
        net,
        inputs.samples,
        inputs.labels,
        backend=options.backend,
        batch_size=options.batch_size,
        progress=options.progress,
        seed=options.seed,
        saturate_a_in=options.saturate_a_in,
        device=resolve_device(options.device),
        file=file,
    )


def _deployed_on(backend: str) -> str:
    return "deployed (Loihi fixed point) on " + ("Lava" if backend == "lava" else "the emulator")


def deployed_title(net: DeployedNetwork, backend: str, data: str | None = None) -> str:
    """``<arch> on <dataset>, deployed … on <backend>, T=…``; ``data`` names the samples of a
    network that names no dataset."""
    return f"{net.arch} on {net.dataset or data}, {_deployed_on(backend)}, T={net.timesteps}"


@dataclass
class EnergyRun:
    """One measured network with what its report shows."""

    measured: Measurement
    title: str
    neuron_params: NeuronParameters | None = None
    sweep: list[SweepPoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rasters: bool = False  # the samples were spike rasters, not test images


def _checkpoint_measurer(
    model: DietNet, info: ModelInfo, on_float: bool, load: LoadOptions, options: MeasureOptions
) -> Callable[[int], Measurement]:
    """``measure_at(T)``: the checkpoint at T steps, deployed and run on the backend, or
    (``on_float``) counted on the float model."""

    def deployed_at(steps: int) -> DeployedNetwork:
        return deploy_model(model, info, LoadOptions(**{**vars(load), "timesteps": steps}))

    if not on_float:
        return lambda steps: measure_network(deployed_at(steps), options)
    loader = make_loader(
        info.dataset,
        "test",
        options.batch_size,
        data_dir=options.data_dir,
        limit=options.limit,
        normalization=(info.mean, info.std),
    )
    return lambda steps: measure_float(
        model,
        deployed_at(steps),
        loader,
        RunSettings(steps, resolve_device(options.device)),
        progress=options.progress,
        desc=f"count ops, T={steps}",
    )


def measure_file(
    path: str | Path,
    energy_model: EnergyModel,
    load: LoadOptions,
    options: MeasureOptions,
    *,
    on_float: bool = False,
    sweep_steps: Sequence[int] = (),
) -> EnergyRun:
    """Measure the network in ``path``: a netx file as deployed, a checkpoint quantized (or,
    ``on_float``, as the float SNN), at its T and, for checkpoints, at each T of
    ``sweep_steps``."""
    if on_float and options.backend == "lava":
        raise DeployError("--float counts the PyTorch model; --backend is for deployed networks")
    if on_float and options.spikes is not None:
        raise DeployError(
            "--float runs the PyTorch model on its dataset; --spikes is for netx files"
        )
    if network_format(path).name == "netx":
        if on_float or sweep_steps:
            flag = "--float" if on_float else "--sweep-timesteps"
            raise DeployError(f"{flag} needs a checkpoint (.pt), not a deployed netx file")
        net = load_network(path, load)
        data = options.spikes or options.dataset
        return EnergyRun(
            measure_network(net, options, file=path),
            deployed_title(net, options.backend, data and Path(data).name),
            notes=[
                "leak/threshold plot (Fig. 2b) needs the checkpoint (.pt): a netx file holds "
                "only the deployed integer thresholds and decays"
            ],
            rasters=options.spikes is not None,
        )
    model, info = load_spiking(path, load)
    measure_at = _checkpoint_measurer(model, info, on_float, load, options)
    measured = measure_at(info.timesteps)
    source = (
        f"float PyTorch SNN ({model.neuron_model.reset} reset)"
        if on_float
        else (_deployed_on(options.backend))
    )
    title = f"{info.arch} on {info.dataset}, {source}, T={info.timesteps}"
    sweep = []
    if sweep_steps:
        sweep = sweep_timesteps(
            sweep_steps,
            lambda t: measured if t == info.timesteps else measure_at(t),
            energy_model,
        )
    try:
        net = deploy_model(model, info, load)
        params, notes = neuron_parameters(model, info, net), []
    except DeployError as exc:
        params, notes = None, [f"leak/threshold plot (Fig. 2b) skipped: {exc}"]
    return EnergyRun(measured, title, params, sweep, notes)


def report_text(run: EnergyRun, energy_model: EnergyModel) -> str:
    """The per-layer table, the paper's convention, the model's constants and the counting
    conventions (and the sweep, if any)."""
    measured = run.measured
    report = energy(energy_model, measured.counts)
    lines = [
        f"{run.title}: accuracy {accuracy_text(measured.accuracy)} on "
        f"{measured.counts.num_images} {'spike rasters' if run.rasters else 'test images'}",
        format_table(measured.counts, report),
        format_paper_convention(measured.counts),
        energy_model.describe(),
        "counting conventions:",
        *(f"  - {note}" for note in measured.counts.notes),
    ]
    if run.sweep:
        lines.append(format_sweep(run.sweep, report.model))
    return "\n".join(lines)


def write_report_files(
    run: EnergyRun,
    energy_model: EnergyModel,
    *,
    json_path=None,
    csv_path=None,
    plot_dir=None,
    context: dict | None = None,
) -> list[str]:
    """Write the files asked for; the lines saying what was written (and notes on plots that
    could not be made)."""
    measured = run.measured
    context = {
        **(context or {}),
        "title": run.title,
        "counted_on": measured.counted_on,
        "accuracy": measured.accuracy,
        "sweep": [sweep_record(p) for p in run.sweep],
    }
    written = write_outputs(
        measured.counts,
        energy(energy_model, measured.counts),
        json_path=json_path,
        csv_path=csv_path,
        plot_dir=plot_dir,
        context=context,
        neuron_params=run.neuron_params,
        sweep=run.sweep,
    )
    lines = [f"wrote {what}: {path}" for what, path in written.items()]
    return lines + (list(run.notes) if plot_dir else [])
