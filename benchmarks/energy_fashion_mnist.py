"""Table 3 row and Figure 2 analogues of the DIET-SNN paper for one trained checkpoint.

    .venv/bin/python benchmarks/energy_fashion_mnist.py [CHECKPOINT] [--deployed NET] [-n N]
        [--device cpu]

CHECKPOINT (default runs/table1/diet.pt) is counted on its float PyTorch SNN (its own reset,
soft after DIET training); ``--deployed`` adds its Loihi fixed-point version run on the
bit-exact emulator (a .net file, or a .pt checkpoint quantized here, e.g. a hardware-aware
fine-tuned one). For each run: per-layer spike rates (Fig. 2a), the paper's normalised #OP
``b`` and first-layer share ``c``, and E_ANN / E_SNN under paper-45nm three ways:

- the paper's closed form a·4.6 / (c·4.6 + (1 − c)·b·0.9) with our exact ``b`` — algebraically
  the same as the exact per-layer sum (printed side by side as a check);
- the exact per-layer event count priced by :mod:`hw_sim.energy`;
- the closed form with ``b`` counted as eq. 17 prescribes (input spike rate × ANN ops), which
  is what the paper's Table 3 reports. It differs from the exact count for two reasons, shown
  per layer: a layer after a 2×2 average pool receives every input spike through the folded
  (pool-merged) synapses, k² = 4 times the events eq. 17 assigns (eq. 17 counts a pooled input
  of value 1/4 as a quarter operation); and border neurons have fewer synapses than the full
  kernel because of zero padding, which eq. 17 ignores.

Also the ratios under every other energy model, leak/threshold before and after training
(Fig. 2b), and Markdown tables; JSON and PNGs go to --out (default runs/energy). The float
SNN and the emulator run on --device (quantization on the CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from bench_device import add_device_option, parse_device
from matplotlib.figure import Figure

from dietsnn_deploy.atomic import atomic_write_bytes, atomic_write_text
from dietsnn_deploy.data import make_loader
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.services.measure import measure_float, neuron_parameters
from dietsnn_deploy.services.networks import LoadOptions, deploy_model, load_network
from dietsnn_deploy.spine.network import DeployedNetwork
from dietsnn_deploy.spine.settings import RunSettings
from dietsnn_deploy.training.checkpoints import ModelInfo, load_checkpoint
from dietsnn_deploy.training.models import DietNet
from hw_sim.counting_plan import ConvGeometry, DenseGeometry, LayerGeometry, counting_plan
from hw_sim.energy import energy, table3_ratio
from hw_sim.energy_models import MODELS
from hw_sim.measure import Measurement, measure_deployed
from hw_sim.op_counts import OpCounts
from hw_sim.plots import plot_leak_threshold

PAPER_MODEL = "paper-45nm"


@dataclass(frozen=True)
class LayerConvention:
    """One synaptic layer's SNN ops per image three ways (see module doc).

    ``eq17_ops`` = input spike rate × ANN MACs (eq. 17); ``full_fanout_ops`` = input spikes ×
    the full (interior) fan-out of the folded synapses, i.e. no border effect;
    ``exact_events`` = input spikes × their true fan-out (what the op counter counts).
    ``pool_factor`` = full_fanout / eq17 (k² after a k×k pool), ``border_factor`` =
    exact / full_fanout (< 1 from zero padding)."""

    name: str
    source_rate: float
    ann_macs: float
    eq17_ops: float
    full_fanout_ops: float
    exact_events: float

    @property
    def pool_factor(self) -> float:
        return self.full_fanout_ops / self.eq17_ops if self.eq17_ops else float("nan")

    @property
    def border_factor(self) -> float:
        return self.exact_events / self.full_fanout_ops if self.full_fanout_ops else float("nan")


def _full_fan_out(synapse: ConvGeometry | DenseGeometry) -> int:
    """Synapses of one interior input neuron."""
    if isinstance(synapse, DenseGeometry):
        return synapse.out_features
    return int(synapse.fan_out_map().max())


def layer_conventions(counts: OpCounts, plan: Sequence[LayerGeometry]) -> list[LayerConvention]:
    """Per synaptic layer (every row fed by spikes, and the first layer when binary input
    frames, e.g. Poisson spikes, cost the host accumulates), eq. 17 against the exact count."""
    rows = {geometry.index: row for geometry, row in zip(plan, counts.layers, strict=True)}
    if [g.name for g in plan] != [c.name for c in counts.layers]:
        raise DeployError("counts and counting plan cover different layers")
    out = []
    for geometry, row in zip(plan, counts.layers, strict=True):
        if geometry.source is None:
            if row.host_acs and geometry.frames is not None and row.ann_macs:
                # binary input frames: input spike rate = eq. 17 ops / ANN MACs (per pixel)
                rate = row.eq17_ops / row.ann_macs
                pixels = int(np.prod(geometry.frames.in_shape))
                out.append(
                    LayerConvention(
                        name=row.name,
                        source_rate=rate,
                        ann_macs=row.ann_macs,
                        eq17_ops=row.eq17_ops,
                        full_fanout_ops=rate * pixels * _full_fan_out(geometry.frames),
                        exact_events=row.host_acs,
                    )
                )
            continue
        source = rows[geometry.source]
        out.append(
            LayerConvention(
                name=row.name,
                source_rate=source.spike_rate,
                ann_macs=row.ann_macs,
                eq17_ops=row.eq17_ops,
                full_fanout_ops=source.spikes * _full_fan_out(geometry.synapse),
                exact_events=row.synaptic_events,
            )
        )
    return out


@dataclass(frozen=True)
class RunSummary:
    """The Table 3 / Fig. 2a figures of one measured run (per image)."""

    label: str
    counted_on: str
    images: int
    timesteps: int
    accuracy: float
    spike_rates: dict[str, float]  # per spiking layer, spikes per neuron over all T
    average_spike_rate: float  # total spikes / total spiking neurons (Fig. 2a caption)
    ann_macs: float
    snn_acs: float  # synaptic events (on chip)
    host_macs: float
    host_acs: float  # the host's accumulates on binary input frames (Poisson), 0 for direct
    b_exact: float
    b_eq17: float
    c: float
    ratio_closed_form: float  # closed form with b_exact
    ratio_exact: float  # per-layer sum under paper-45nm
    ratio_eq17: float  # closed form with b_eq17 (the paper's convention)
    ratios: dict[str, float | None]  # E_ANN / E_SNN under every energy model
    layers: list[LayerConvention]
    seconds: float


def summarise(
    label: str, measured: Measurement, plan: Sequence[LayerGeometry], seconds: float
) -> RunSummary:
    """The figures of one run: b and c from the exact counts and by eq. 17, and ratios.
    b counts the host's accumulates on binary input frames (Poisson) with the synaptic
    events; c is then 0 (no analog first layer)."""
    counts = measured.counts
    neurons = [c for c in counts.layers if c.kind != "readout"]
    conventions = layer_conventions(counts, plan)
    b_exact, b_eq17 = counts.normalised_snn_ops, counts.normalised_eq17_ops
    c = counts.first_layer_share
    total = counts.total()
    ratios = {name: energy(model, counts).ratio for name, model in MODELS.items()}
    return RunSummary(
        label=label,
        counted_on=measured.counted_on,
        images=counts.num_images,
        timesteps=counts.timesteps,
        accuracy=measured.accuracy,
        spike_rates={c.name: c.spike_rate for c in neurons},
        average_spike_rate=sum(c.spikes for c in neurons) / sum(c.neurons for c in neurons),
        ann_macs=total.ann_macs,
        snn_acs=total.synaptic_events,
        host_macs=total.host_macs,
        host_acs=total.host_acs,
        b_exact=b_exact,
        b_eq17=b_eq17,
        c=c,
        ratio_closed_form=table3_ratio(b_exact, c),
        ratio_exact=ratios[PAPER_MODEL],
        ratio_eq17=table3_ratio(b_eq17, c),
        ratios=ratios,
        layers=conventions,
        seconds=seconds,
    )


def table3_markdown(
    arch: str, dataset: str, ann_accuracy: float | None, runs: Sequence[RunSummary]
) -> str:
    """The paper's Table 3 columns, one row per run, plus our exact and eq. 17 figures."""
    ann = "—" if ann_accuracy is None else f"{100 * ann_accuracy:.2f}%"
    lines = [
        "| run | Architecture (T) | Dataset | ANN accuracy | SNN accuracy | avg spike rate | a "
        "| b (exact) | b (eq. 17) | c | E_ANN/E_SNN closed form, b exact | exact per-layer "
        "| closed form, b eq. 17 (paper's convention) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r.label} | {arch} (T={r.timesteps}) | {dataset} | {ann} | {100 * r.accuracy:.2f}% "
            f"| {r.average_spike_rate:.3f} | 1.0 | {r.b_exact:.4f} | {r.b_eq17:.4f} "
            f"| {r.c:.4f} | {r.ratio_closed_form:.2f}× | {r.ratio_exact:.2f}× "
            f"| {r.ratio_eq17:.2f}× |"
        )
    return "\n".join(lines)


def layers_markdown(run: RunSummary) -> str:
    """Per synaptic layer: eq. 17 ops, full fan-out ops and exact events per image."""
    lines = [
        f"{run.label}: SNN ops per image by layer",
        "",
        "| layer | input spike rate | ANN MACs | eq. 17 ops | × pool factor | full fan-out ops "
        "| × border factor | exact events |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for layer in run.layers:
        lines.append(
            f"| {layer.name} | {layer.source_rate:.4f} | {layer.ann_macs:,.0f} "
            f"| {layer.eq17_ops:,.0f} | {layer.pool_factor:.3f} | {layer.full_fanout_ops:,.0f} "
            f"| {layer.border_factor:.4f} | {layer.exact_events:,.0f} |"
        )
    ann = sum(layer.ann_macs for layer in run.layers)
    eq17 = sum(layer.eq17_ops for layer in run.layers)
    exact = sum(layer.exact_events for layer in run.layers)
    lines.append(
        f"| total | | {ann:,.0f} | {eq17:,.0f} | | | | {exact:,.0f} "
        f"(×{exact / eq17:.3f} of eq. 17) |"
    )
    return "\n".join(lines)


def models_markdown(runs: Sequence[RunSummary]) -> str:
    """E_ANN / E_SNN of every run under every energy model."""
    names = list(MODELS)
    lines = ["| run | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for r in runs:
        cells = ["—" if r.ratios[n] is None else f"{r.ratios[n]:.2f}×" for n in names]
        lines.append(f"| {r.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _save_png(fig: Figure, path: Path) -> Path:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


def plot_spike_rates(path: Path, runs: Sequence[RunSummary]) -> Path:
    """Fig. 2a analogue: spikes per neuron over all T for each spiking layer, one bar per run,
    with each run's average spike rate in the legend."""
    names = list(runs[0].spike_rates)
    xs = np.arange(len(names))
    width = 0.8 / len(runs)
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    for i, run in enumerate(runs):
        rates = [run.spike_rates.get(name, float("nan")) for name in names]
        label = f"{run.label} (average {run.average_spike_rate:.3f})"
        ax.bar(xs + (i - (len(runs) - 1) / 2) * width, rates, width, label=label)
    top = max(max(r.spike_rates.values(), default=0.0) for r in runs)
    ax.set_ylim(0, 1.35 * top if top > 0 else 1.0)  # room for the legend
    ax.set_xticks(xs, names, rotation=30)
    ax.set_ylabel(f"spikes per neuron over T = {runs[0].timesteps}")
    ax.set_title(f"Spike rate per layer ({runs[0].images} test images)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return _save_png(fig, path)


def _test_loader(info: ModelInfo, data_dir, limit, batch_size: int, raw: bool):
    """Test batches normalised as the checkpoint says, or raw pixels in [0, 1]."""
    channels = info.in_shape[0]
    normalization = ((0.0,) * channels, (1.0,) * channels) if raw else (info.mean, info.std)
    return make_loader(
        info.dataset,
        "test",
        batch_size,
        data_dir=data_dir,
        limit=limit,
        normalization=normalization,
    )


def load_deployed(path: str, data_dir, calibration: int) -> DeployedNetwork:
    """A deployed network from a netx file, or quantized here from a checkpoint."""
    return load_network(path, LoadOptions(data_dir=data_dir, calibration=calibration))


def measure_float_run(model: DietNet, info: ModelInfo, net: DeployedNetwork, args) -> RunSummary:
    """The float SNN at its checkpoint's T, counted on the plan of ``net``, the model
    deployed at that T."""
    loader = _test_loader(info, args.data_dir, args.limit, args.batch_size, raw=False)
    start = time.perf_counter()
    settings = RunSettings(info.timesteps, torch.device(args.device))
    measured = measure_float(model, net, loader, settings, progress=not args.quiet)
    seconds = time.perf_counter() - start
    label = f"float ({model.neuron_model.reset} reset)"
    return summarise(label, measured, counting_plan(net), seconds)


def measure_deployed_run(info: ModelInfo, args) -> RunSummary:
    net = load_deployed(args.deployed, args.data_dir, args.calibration)
    if net.dataset and net.dataset != info.dataset:
        raise DeployError(f"{args.deployed} is for {net.dataset}, the checkpoint {info.dataset}")
    loader = _test_loader(info, args.data_dir, args.limit, 4096, raw=True)
    batches = list(loader)
    images = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    start = time.perf_counter()
    measured = measure_deployed(
        net,
        images,
        labels,
        batch_size=args.batch_size,
        progress=not args.quiet,
        device=torch.device(args.device),
    )
    seconds = time.perf_counter() - start
    label = f"deployed {Path(args.deployed).name} (emulator)"
    return summarise(label, measured, counting_plan(net), seconds)


def _record(run: RunSummary) -> dict:
    doc = asdict(run)
    for layer, row in zip(run.layers, doc["layers"], strict=True):
        row["pool_factor"], row["border_factor"] = layer.pool_factor, layer.border_factor
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default="runs/table1/diet.pt")
    parser.add_argument("--deployed", help="its deployed version: a .net file or a .pt to quantize")
    parser.add_argument("-n", "--limit", type=int, help="first N test images (default all)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--calibration", type=int, default=512, help="images for quantization")
    parser.add_argument("--out", default="runs/energy", help="folder for JSON and PNGs")
    parser.add_argument("--target-ratio", type=float, default=15.0, help="E_ANN/E_SNN goal")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device_option(
        parser,
        "where the float SNN and the emulator run: auto, cpu, cuda, cuda:N or mps (default: cpu)",
    )
    args = parser.parse_args()
    if args.limit is not None and args.limit < 1:
        raise DeployError(f"-n must be ≥ 1, got {args.limit}")
    args.device = str(parse_device(parser, args.device))
    torch.set_num_threads(args.threads)
    out = Path(args.out)

    model, info = load_checkpoint(args.checkpoint, data_dir=args.data_dir)
    if not model.spiking:
        raise DeployError(f"{args.checkpoint} is an ANN checkpoint; convert and train it first")
    # the float model is counted on the plan of its own deployed network (same T)
    own_net = deploy_model(
        model, info, LoadOptions(data_dir=args.data_dir, calibration=args.calibration)
    )
    runs = [measure_float_run(model, info, own_net, args)]
    if args.deployed:
        runs.append(measure_deployed_run(info, args))

    written = {
        "spike rates (Fig. 2a)": plot_spike_rates(out / "spike-rates.png", runs),
    }
    try:
        names, before, after = neuron_parameters(model, info, own_net)
        written["leak and threshold (Fig. 2b)"] = plot_leak_threshold(
            out / "leak-threshold.png", names, before, after
        )
        neuron = {"layers": names, "before": before, "after": after}
    except DeployError as exc:
        neuron = {"skipped": str(exc)}

    doc = {
        "checkpoint": str(args.checkpoint),
        "deployed": args.deployed,
        "arch": info.arch,
        "dataset": info.dataset,
        "stage": info.stage,
        "reset": model.neuron_model.reset,
        "checkpoint_accuracy": info.accuracy,
        "ann_accuracy": info.ann_accuracy,
        "device": args.device,
        "energy_models": {name: m.constants() for name, m in MODELS.items()},
        "leak_threshold": neuron,
        "runs": [_record(r) for r in runs],
    }
    written["JSON"] = atomic_write_text(out / "energy.json", json.dumps(doc, indent=2) + "\n")

    print(f"## {info.arch} on {info.dataset}: {runs[0].images} test images\n")
    print(table3_markdown(info.arch, info.dataset, info.ann_accuracy, runs))
    print(
        "\nclosed form with b exact = exact per-layer sum (same counts, same prices); the paper's"
        " eq. 17 b undercounts layers after a pool (×k² = 4 events through the folded synapses)"
        " and overcounts border neurons (zero padding):\n"
    )
    for run in runs:
        print(layers_markdown(run) + "\n")
    for run in runs:
        verdicts = [
            f"{how} {ratio:.2f}× ({'meets' if ratio >= args.target_ratio else 'misses'})"
            for how, ratio in (("exact count", run.ratio_exact), ("eq. 17", run.ratio_eq17))
        ]
        print(f"{run.label}: {PAPER_MODEL} target ≥ {args.target_ratio:g}×: " + "; ".join(verdicts))
    print("\nE_ANN / E_SNN under every energy model:\n")
    print(models_markdown(runs) + "\n")
    print("spike rate per layer (spikes per neuron over all T):")
    for run in runs:
        rates = ", ".join(f"{k} {v:.3f}" for k, v in run.spike_rates.items())
        print(f"  {run.label}: {rates}; average {run.average_spike_rate:.3f}")
    if "layers" in neuron:
        print("leak / threshold per layer, after conversion → after training:")
        for name, (l0, t0), (l1, t1) in zip(names, before, after, strict=True):
            print(f"  {name}: leak {l0:.3f} → {l1:.3f}, threshold {t0:.3f} → {t1:.3f}")
    for run in runs:
        per_image = 1000 * run.seconds / run.images
        print(f"{run.label}: {run.seconds:.1f} s for {run.images} images ({per_image:.1f} ms each)")
    for what, path in written.items():
        print(f"wrote {what}: {path}")


if __name__ == "__main__":
    try:
        main()
    except DeployError as exc:
        sys.exit(f"error: {exc}")
