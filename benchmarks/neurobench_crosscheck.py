"""Cross-check of our event-driven op counts against NeuroBench's SynapticOperations.

    .venv/bin/pip install --no-deps neurobench==2.3.0 snntorch tqdm   # optional, not a dependency
    .venv/bin/python benchmarks/neurobench_crosscheck.py [CHECKPOINT] [-n 256] [--device cpu]

Both count the same float DIET-SNN (CHECKPOINT, default runs/table1/diet.pt) on the same test
images. NeuroBench 2.3.0 (metrics/workload/synaptic_operations.py, utils/layers/macs.py)
hooks the input of every nn.Conv2d / nn.Linear call; per call it binarises input and weights
(non-zero → 1) and runs the layer, so it counts (non-zero input, non-zero weight) pairs with
zero padding excluded; a call whose input lies entirely in {-1, 0, 1} counts as ACs, any other
as MACs; ``Dense`` does the same with all-ones input and weights. Totals are per sample
(divided by the batch size), summed over calls; no per-layer split (we add one, computed with
NeuroBench's own ``single_layer_MACs`` on its hooks).

NeuroBench assumes the model is called step by step, so it runs here through a wrapper that
calls ``run_snn(bulk=False)`` (every layer once per step, same spikes as the bulk path). The
bulk path (each layer once on a (T·B) batch, the first conv once) is counted too, to show
that only the first layer's count depends on it. The differences from our counts:

- first layer: the analog image enters a conv at every step, so NeuroBench counts its MACs T
  times; we count them once (the drive is static and reused) and on eq. 16's geometry, which
  includes the padded border pairs that NeuroBench leaves out;
- layers after an average pool: NeuroBench sees the pooled input (k × k spikes averaged, values
  in {0, 1/4, …, 1}), so it counts MACs, one per non-zero pooled input and synapse; we count
  one accumulate per spike through the folded synapses, i.e. (spikes per non-zero pooled
  input) times more events, all ACs;
- spike-fed layers without a pool: the same number, ACs in both;
- zero weights: NeuroBench skips them, we count structural synapses (a trained float model has
  none, reported per layer).

The script recomputes NeuroBench's convention from our recorded spikes (call by call, so the
MAC/AC class of every call is reproduced) and prints measured against predicted, per layer and
in total; they agree exactly when no weight is zero.

It runs on the CPU only (``--device`` accepts cpu, or auto where that is the CPU): the check
is exact only if NeuroBench's runs see the very spikes ours recorded, and GPU kernels do not
promise bit-identical results across runs and batch shapes (the per-step and bulk calls), so a
potential near threshold may spike in one run and not in another. (Its figures are counts, not
timings: a GPU would only make the check faster.)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dietsnn_deploy.data import make_loader
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.services.measure import float_spike_record
from dietsnn_deploy.services.networks import LoadOptions, deploy_model
from dietsnn_deploy.spine.network import DeployedNetwork
from dietsnn_deploy.spine.settings import resolve_device
from dietsnn_deploy.training.checkpoints import load_checkpoint
from dietsnn_deploy.training.models import DietNet
from dietsnn_deploy.training.quantize import synapses
from hw_sim.counting_plan import ConvGeometry, counting_plan
from hw_sim.op_counter import OpCounter
from hw_sim.op_counts import OpCounts

INSTALL = ".venv/bin/pip install --no-deps neurobench==2.3.0 snntorch tqdm"
MODES = ("per-step", "bulk")


class SteppedSNN(nn.Module):
    """The float SNN as NeuroBench's TorchModel calls it: logits of ``run_snn`` over
    ``timesteps`` steps, per step (``bulk=False``: every layer called once per step) or in
    bulk."""

    def __init__(self, snn: DietNet, timesteps: int, bulk: bool) -> None:
        super().__init__()
        self.snn, self.timesteps, self.bulk = snn, timesteps, bulk

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.snn.run_snn(images, self.timesteps, bulk=self.bulk).logits


def by_layer_metric(names: dict[int, str]):
    """A NeuroBench workload metric that splits SynapticOperations by layer: NeuroBench's
    ``single_layer_MACs`` on its own connection hooks, keyed by ``names[id(module)]``."""
    from neurobench.metrics.abstract.workload_metric import AccumulatedMetric
    from neurobench.metrics.utils.layers import single_layer_MACs

    class SynapticOperationsByLayer(AccumulatedMetric):
        def __init__(self) -> None:
            super().__init__(requires_hooks=True)
            self.reset()

        def reset(self) -> None:
            self.ops = {"MACs": defaultdict(int), "ACs": defaultdict(int)}
            self.samples = 0

        def __call__(self, model, preds, data):
            for hook in model.connection_hooks:
                for inputs in hook.inputs:
                    tensor = inputs[0] if len(inputs) == 1 else inputs
                    ops, spiking = single_layer_MACs(tensor, hook.layer)
                    self.ops["ACs" if spiking else "MACs"][names[id(hook.layer)]] += ops
            self.samples += data[0].size(0)
            return self.compute()

        def compute(self) -> dict:
            n = max(self.samples, 1)
            return {kind: {k: v / n for k, v in ops.items()} for kind, ops in self.ops.items()}

    return SynapticOperationsByLayer


@dataclass
class Convention:
    """NeuroBench's counts predicted from our spikes, per layer, for one calling mode."""

    macs: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    acs: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    dense: float = 0.0

    def add(self, name: str, pairs: float, analog: bool) -> None:
        (self.macs if analog else self.acs)[name] += pairs


def _fan_out(module: nn.Module, in_shape: tuple[int, ...]) -> torch.Tensor:
    """Synapses of each input neuron on the layer's own (unfolded) geometry, padding excluded:
    (H, W) for a conv (all input channels alike), a scalar for a dense layer."""
    if isinstance(module, nn.Linear):
        return torch.tensor(float(module.out_features))
    channels, height, width = in_shape
    out_h = (height + 2 * module.padding[0] - module.kernel_size[0]) // module.stride[0] + 1
    out_w = (width + 2 * module.padding[1] - module.kernel_size[1]) // module.stride[1] + 1
    geometry = ConvGeometry(
        in_shape=(channels, height, width),
        out_shape=(module.out_channels, out_h, out_w),
        kernel=tuple(module.kernel_size),
        stride=tuple(module.stride),
        padding=tuple(module.padding),
    )
    return torch.from_numpy(geometry.fan_out_map()).double()


def _pairs(inputs: torch.Tensor, fan_out: torch.Tensor) -> torch.Tensor:
    """(calls,) non-zero inputs × their fan-out, per call on the leading axis."""
    nonzero = (inputs != 0).double()
    if fan_out.ndim == 0:
        return nonzero.flatten(1).sum(1) * fan_out
    return (nonzero.sum(dim=tuple(range(1, inputs.ndim - 2))) * fan_out).sum(dim=(1, 2))


def _analog(inputs: torch.Tensor) -> torch.Tensor:
    """(calls,) True where a call's input has a value outside {-1, 0, 1} (NeuroBench: MACs)."""
    outside = (inputs != 0) & (inputs != 1) & (inputs != -1)
    return outside.flatten(1).any(1)


def predict_batch(
    model: DietNet,
    images: torch.Tensor,
    spikes: dict,
    conventions: dict[str, Convention],
    names: list[str],
    steps: int,
) -> None:
    """Add one batch's NeuroBench counts, computed from our spikes (neuron key → (T, B, …)
    over ``steps`` steps), for both calling modes; ``names[i]`` is synapse i's plan row."""
    syns = synapses(model)
    for i, syn in enumerate(syns):
        if i == 0:  # the analog image: the same call at every step
            fan_out = _fan_out(syn.module, tuple(images.shape[1:]))
            pairs = _pairs(images.unsqueeze(0), fan_out)[0]
            analog = bool(_analog(images.unsqueeze(0))[0])
            conventions["per-step"].add(names[i], steps * float(pairs), analog)
            conventions["bulk"].add(names[i], float(pairs), analog)
            dense = _pairs(torch.ones_like(images).unsqueeze(0), fan_out)[0]
            conventions["per-step"].dense += steps * float(dense)
            conventions["bulk"].dense += float(dense)
            continue
        source = spikes[syns[i - 1].key].double()  # (T, B, …) spikes of the layer feeding it
        if syn.pool > 1:  # NeuroBench sees the average-pooled spikes
            source = F.avg_pool2d(source.flatten(0, 1), syn.pool).unflatten(0, source.shape[:2])
        if isinstance(syn.module, nn.Linear):
            source = source.flatten(2)
        fan_out = _fan_out(syn.module, tuple(source.shape[2:]))
        pairs, analog = _pairs(source, fan_out), _analog(source)  # (T,): one call per step
        dense = float(_pairs(torch.ones_like(source), fan_out).sum())
        for t in range(steps):  # per step: one call per step
            conventions["per-step"].add(names[i], float(pairs[t]), bool(analog[t]))
        conventions["bulk"].add(names[i], float(pairs.sum()), bool(analog.any()))
        conventions["per-step"].dense += dense
        conventions["bulk"].dense += dense


def count_ours(
    model: DietNet, net: DeployedNetwork, loader, steps: int
) -> tuple[OpCounts, dict[str, Convention], torch.Tensor]:
    """Our op counts (on the plan of ``net``, the model deployed at T = ``steps``) and
    NeuroBench's predicted ones (per image), and our predictions."""
    plan = counting_plan(net)
    names = [g.name for g in plan]
    counter = OpCounter(plan, steps)
    conventions = {mode: Convention() for mode in MODES}
    predictions, images_seen = [], 0
    model.eval()
    with torch.no_grad():
        for images, _ in loader:
            out = model.run_snn(images, steps, record=True)
            counter.add(float_spike_record(net, model.neuron_keys, out))
            predict_batch(model, images, out.spikes, conventions, names, steps)
            predictions.append(out.logits.argmax(1))
            images_seen += len(images)
    for convention in conventions.values():
        for ops in (convention.macs, convention.acs):
            for key in ops:
                ops[key] /= images_seen
        convention.dense /= images_seen
    return counter.result(), conventions, torch.cat(predictions)


def run_neurobench(model: DietNet, loader, steps: int, bulk: bool, names: dict[int, str]) -> dict:
    """NeuroBench's Benchmark with SynapticOperations (+ our by-layer split, + accuracy)."""
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import ClassificationAccuracy, SynapticOperations
    from neurobench.models import TorchModel

    by_layer = by_layer_metric(names)
    wrapped = TorchModel(SteppedSNN(model, steps, bulk))
    metrics = [SynapticOperations, by_layer, ClassificationAccuracy]
    bench = Benchmark(wrapped, loader, [], [lambda logits: logits.argmax(1)], [[], metrics])
    with torch.no_grad():
        results = bench.run(quiet=True)
    wrapped.cleanup_hooks()
    split = results.get(by_layer.__name__)
    if not isinstance(results.get("SynapticOperations"), dict) or not isinstance(split, dict):
        raise DeployError(f"a NeuroBench metric failed (it printed why): {results}")
    return results


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value else "0"


def layer_table(
    counts: OpCounts, convention: Convention, measured: dict, zero_weights: dict[str, int]
) -> str:
    """Per layer: ours, NeuroBench's convention from our spikes, NeuroBench measured."""
    split = measured["SynapticOperationsByLayer"]
    lines = [
        "| layer | ours: host MACs | ours: ACs | predicted MACs | predicted ACs "
        "| NeuroBench MACs | NeuroBench ACs | zero weights |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in counts.layers:
        lines.append(
            f"| {row.name} | {_fmt(row.host_macs)} | {_fmt(row.synaptic_events)} "
            f"| {_fmt(convention.macs.get(row.name, 0))} | {_fmt(convention.acs.get(row.name, 0))} "
            f"| {_fmt(split['MACs'].get(row.name, 0))} | {_fmt(split['ACs'].get(row.name, 0))} "
            f"| {zero_weights[row.name]} |"
        )
    return "\n".join(lines)


def totals_table(counts: OpCounts, conventions: dict, measured: dict) -> str:
    total = counts.total()
    lines = [
        "| per sample | MACs | ACs | Dense |",
        "|---|---|---|---|",
        f"| ours (host MACs once, eq. 16; ACs through folded synapses; ANN MACs as Dense) "
        f"| {_fmt(total.host_macs)} | {_fmt(total.synaptic_events)} | {_fmt(total.ann_macs)} |",
    ]
    for mode in MODES:
        ops = measured[mode]["SynapticOperations"]
        c = conventions[mode]
        lines.append(
            f"| NeuroBench, {mode}: measured | {_fmt(ops['Effective_MACs'])} "
            f"| {_fmt(ops['Effective_ACs'])} | {_fmt(ops['Dense'])} |"
        )
        lines.append(
            f"| NeuroBench, {mode}: predicted from our spikes | {_fmt(sum(c.macs.values()))} "
            f"| {_fmt(sum(c.acs.values()))} | {_fmt(c.dense)} |"
        )
    return "\n".join(lines)


def explain(model: DietNet, counts: OpCounts, convention: Convention, steps: int) -> list[str]:
    """Where ours and NeuroBench's per-step counts (T = ``steps``) part, layer by layer."""
    lines = []
    syns = synapses(model)
    for syn, row in zip(syns, counts.layers, strict=True):
        nb = convention.macs.get(row.name, 0) + convention.acs.get(row.name, 0)
        if row.host_macs:
            lines.append(
                f"{row.name}: NeuroBench {nb:,.0f} MACs = T={steps} × "
                f"{nb / steps:,.0f} (non-zero pixels × synapses, padding excluded); "
                f"ours {row.host_macs:,.0f} host MACs once (eq. 16, padded border pairs "
                f"included): ×{nb / row.host_macs:.3f}"
            )
        elif syn.pool > 1:
            ratio = row.synaptic_events / nb if nb else float("nan")
            lines.append(
                f"{row.name}: after a {syn.pool}×{syn.pool} pool NeuroBench counts {nb:,.0f} MACs "
                f"(non-zero pooled inputs × synapses); ours {row.synaptic_events:,.0f} ACs (each "
                f"spike through the folded synapses): ×{ratio:.3f} = spikes per non-zero pooled "
                "input (fan-out weighted mean)"
            )
        else:
            lines.append(
                f"{row.name}: spikes in, no pool: NeuroBench {nb:,.0f} ACs, ours "
                f"{row.synaptic_events:,.0f} ACs"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default="runs/table1/diet.pt")
    parser.add_argument("-n", "--limit", type=int, default=256, help="first N test images")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu only (auto where it resolves to the CPU): the exact reconciliation needs "
        "NeuroBench and our counter to see identical spikes, which GPU kernels do not promise",
    )
    args = parser.parse_args()
    device = resolve_device(args.device)  # DeployError for a device that is not there
    if device.type != "cpu":
        raise DeployError(
            f"--device {args.device}: the NeuroBench cross-check runs on the CPU only (its exact "
            "reconciliation needs NeuroBench and our counter to see identical spikes); use "
            "--device cpu"
        )
    try:
        import neurobench  # noqa: F401
    except ImportError as exc:
        raise DeployError(
            f"NeuroBench is not installed ({exc}); install it with: {INSTALL}"
        ) from None
    if args.limit < 1 or args.batch_size < 1:
        raise DeployError("-n and --batch-size must be ≥ 1")
    torch.set_num_threads(args.threads)
    model, info = load_checkpoint(args.checkpoint, data_dir=args.data_dir)
    if not model.spiking:
        raise DeployError(f"{args.checkpoint} is an ANN checkpoint; convert and train it first")
    if not model.encoding.static:
        raise DeployError(
            f"this cross-check needs direct (static) input; {args.checkpoint} uses "
            f"{model.encoding.name} encoding"
        )
    steps = info.timesteps
    # our counts are made on the plan of the model's deployed network (same T)
    net = deploy_model(model, info, LoadOptions(data_dir=args.data_dir))
    loader = make_loader(
        info.dataset,
        "test",
        args.batch_size,
        data_dir=args.data_dir,
        limit=args.limit,
        normalization=(info.mean, info.std),
    )
    plan_names = [g.name for g in counting_plan(net)]
    syns = synapses(model)
    names = {id(s.module): name for s, name in zip(syns, plan_names, strict=True)}
    zero_weights = {
        name: int((s.module.weight == 0).sum()) for s, name in zip(syns, plan_names, strict=True)
    }

    start = time.perf_counter()
    counts, conventions, predictions = count_ours(model, net, loader, steps)
    seconds = {"ours + prediction": time.perf_counter() - start}
    measured = {}
    for mode in MODES:
        start = time.perf_counter()
        measured[mode] = run_neurobench(model, loader, steps, mode == "bulk", names)
        seconds[f"NeuroBench {mode}"] = time.perf_counter() - start
    accuracy = float((predictions == torch.cat([labels for _, labels in loader])).double().mean())

    print(
        f"## NeuroBench 2.3.0 SynapticOperations vs our op counter: {info.arch} on "
        f"{info.dataset}, float SNN ({model.neuron_model.reset} reset), T={steps}, "
        f"{counts.num_images} test images\n"
    )
    print(
        f"accuracy: ours {100 * accuracy:.2f}%, NeuroBench per-step "
        f"{100 * measured['per-step']['ClassificationAccuracy']:.2f}%, bulk "
        f"{100 * measured['bulk']['ClassificationAccuracy']:.2f}%\n"
    )
    print(totals_table(counts, conventions, measured) + "\n")
    for mode in MODES:
        print(f"by layer, NeuroBench {mode} (per sample):\n")
        print(layer_table(counts, conventions[mode], measured[mode], zero_weights) + "\n")
    print("why they differ (per-step):")
    for line in explain(model, counts, conventions["per-step"], steps):
        print(f"- {line}")
    mismatches = []
    for mode in MODES:
        ops, c = measured[mode]["SynapticOperations"], conventions[mode]
        for label, got, want in (
            ("MACs", ops["Effective_MACs"], sum(c.macs.values())),
            ("ACs", ops["Effective_ACs"], sum(c.acs.values())),
            ("Dense", ops["Dense"], c.dense),
        ):
            if abs(got - want) > 1e-6 * max(abs(want), 1):
                mismatches.append(f"{mode} {label}: NeuroBench {got:,.2f}, predicted {want:,.2f}")
    if mismatches:
        zeros = sum(zero_weights.values())
        print(f"\nNOT reconciled ({zeros} zero weights):\n  " + "\n  ".join(mismatches))
    else:
        print("\nreconciled: NeuroBench's totals equal the prediction from our spikes exactly.")
    print("wall seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))


if __name__ == "__main__":
    try:
        main()
    except DeployError as exc:
        sys.exit(f"error: {exc}")
