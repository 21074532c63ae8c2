"""Figure 3 of the DIET-SNN paper: latency and spike rate at iso-accuracy of four SNNs.

    .venv/bin/python benchmarks/ablation_fashion_mnist.py [--networks a,b,c,d]
        [--timesteps 5,10,15,25] [--poisson-timesteps …] [--diet-timesteps 5]
        [--train-limit N] [--snn-epochs E] [-n N] [--ann runs/table1/ann.pt] [--device cpu]

(a) IF neurons, Poisson rate-coded input; (b) IF, direct input; (c) (b) + trained thresholds;
(d) LIF, direct input, trained thresholds and leaks (DIET-SNN). All start from one trained
ANN (--ann, the Table 1 run's by default), converted at each T, then trained with the pipeline's
resumable stages; every (network, T) point is checkpointed and measured into its own JSON under
--workdir, so the study runs in pieces (``--networks a --timesteps 50,100``) and in parallel
processes, and every invocation ends with the summary of all points measured so far.

Iso-accuracy: the target is --target-accuracy, or the accuracy of (d) at --reference-timesteps
minus --tolerance points. Each network's latency is its smallest T that reaches the target;
once a network reaches it its larger T are skipped (unless --all-timesteps). The paper needed
150 steps for (a) on CIFAR-10 (25, 15 and 5 for (b)-(d)): set --poisson-timesteps to reach that
far. Energy ratios are E_ANN / E_SNN under paper-45nm, from the exact event counts and with the
paper's eq. 17 convention (see energy_fashion_mnist.py). Every point is counted by the
standard op counter on the plan of the network deployed at its T. With Poisson input the first
layer receives binary input spikes, so its operations are the host's accumulates on them (host
ACs, one per non-zero input pixel and synapse, in b and priced as ACs; c = 0); each point draws
its Poisson frames from a generator seeded --seed, so measuring it again gives the same counts.

A full Fashion-MNIST vgg5 run is hours per point on two CPU cores: --train-limit and
--snn-epochs trade fidelity for time and are recorded with every point; a workdir refuses a
piece run with other training settings. Points are kept per -n (test images measured): give
every piece the same -n. Training memory grows with batch × T (vgg5: about 2 MB per image and
step, ~13 GB at 64 × 100): lower --snn-batch-size for long Poisson runs (recorded per point).

SNN training, conversion and measurement run on --device (recorded per point). Poisson frames of the float model are drawn on that
device, from its own generator: a point measured on a GPU does not see the CPU's frames.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from bench_device import add_device_option, fork_rng, parse_device
from energy_fashion_mnist import summarise
from matplotlib.figure import Figure

from dietsnn_deploy.atomic import atomic_write_bytes, atomic_write_text
from dietsnn_deploy.data import make_loader
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.services.measure import measure_float
from dietsnn_deploy.services.networks import LoadOptions, deploy_model
from dietsnn_deploy.spine.settings import RunSettings
from dietsnn_deploy.training.checkpoints import load_checkpoint
from dietsnn_deploy.training.config import TrainConfig
from dietsnn_deploy.training.pipeline import run_convert, run_snn
from hw_sim.counting_plan import counting_plan


@dataclass(frozen=True)
class Network:
    """One SNN of Figure 3: its input encoding, neuron and which parameters train."""

    key: str
    description: str
    encoding: str
    neuron: str
    train_threshold: bool
    train_leak: bool


NETWORKS = {
    n.key: n
    for n in (
        Network("a", "IF + Poisson input", "poisson", "if", False, False),
        Network("b", "IF + direct input", "direct", "if", False, False),
        Network("c", "IF + direct + threshold training", "direct", "if", True, False),
        Network("d", "LIF + direct + threshold + leak (DIET-SNN)", "direct", "lif", True, True),
    )
}

#: Figure 3 / section 6 of the paper (VGG16, CIFAR-10): latency, average spike rate, energy
#: ratio and accuracy of (a)-(d) at iso-accuracy.
PAPER = {
    "a": (150, 26.0, 0.2, 0.9210),
    "b": (25, 1.94, 2.6, 0.9241),
    "c": (15, 1.47, 3.4, 0.9237),
    "d": (5, 0.39, 12.4, 0.9270),
}

#: Options that change what a checkpoint holds: a workdir's points must all share them.
FIDELITY = ("ann", "ann_epochs", "dataset", "arch", "train_limit", "snn_epochs", "snn_lr",
            "neuron_lr", "seed", "percentile", "threshold_scale")  # fmt: skip


def _steps(text: str) -> list[int]:
    try:
        steps = sorted({int(item) for item in text.split(",")})
    except ValueError:
        steps = []
    if not steps or steps[0] < 1:
        raise DeployError(f"timesteps must be integers ≥ 1 separated by commas, got {text!r}")
    return steps


def _networks(text: str) -> list[Network]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in NETWORKS]
    if unknown or not keys:
        raise DeployError(f"--networks takes some of a,b,c,d, got {text!r}")
    return [NETWORKS[k] for k in sorted(set(keys))]


class Study:
    """A workdir of ablation points: checkpoints, one JSON per (network, T), and settings."""

    def __init__(self, args) -> None:
        self.args = args
        self.work = Path(args.workdir)
        self.points_dir = self.work / "points"
        ann, info = load_checkpoint(args.ann, data_dir=args.data_dir)
        if info.stage != "ann":
            raise DeployError(f"{args.ann} is a '{info.stage}' checkpoint, not an ANN")
        if args.dataset and args.dataset != info.dataset:
            raise DeployError(f"{args.ann} was trained on {info.dataset}, not {args.dataset}")
        self.ann_info = info
        self.settings = {
            "ann": str(args.ann),
            "ann_epochs": len(info.history),
            "ann_accuracy": info.ann_accuracy,
            "dataset": info.dataset,
            "arch": info.arch,
            "train_limit": args.train_limit,
            "snn_epochs": args.snn_epochs,
            "snn_lr": args.snn_lr,
            "neuron_lr": args.neuron_lr,
            "snn_batch_size": args.snn_batch_size,
            "seed": args.seed,
            "percentile": args.percentile,
            "threshold_scale": args.threshold_scale,
        }
        self._check_settings()

    def _check_settings(self) -> None:
        """Record the settings on first use; refuse a workdir made with other ones."""
        path = self.work / "settings.json"
        if path.exists():
            stored = json.loads(path.read_text())
            differ = [k for k in FIDELITY if stored.get(k) != self.settings[k]]
            if differ:
                pairs = ", ".join(f"{k} {stored.get(k)} ≠ {self.settings[k]}" for k in differ)
                raise DeployError(f"{self.work} holds points made with other settings ({pairs})")
        else:
            atomic_write_text(path, json.dumps(self.settings, indent=2) + "\n")

    def config(self, network: Network, steps: int) -> TrainConfig:
        a = self.args
        return TrainConfig(
            dataset=self.ann_info.dataset,
            arch=self.ann_info.arch,
            data_dir=a.data_dir,
            timesteps=steps,
            snn_epochs=a.snn_epochs,
            snn_batch_size=a.snn_batch_size,
            snn_lr=a.snn_lr,
            neuron_lr=a.neuron_lr,
            percentile=a.percentile,
            threshold_scale=a.threshold_scale,
            encoding=network.encoding,
            neuron=network.neuron,
            train_threshold=network.train_threshold,
            train_leak=network.train_leak,
            train_limit=a.train_limit,
            test_limit=a.epoch_eval_limit,
            seed=a.seed,
            device=a.device,
            progress=not a.quiet,
        )

    def point_path(self, network: Network, steps: int) -> Path:
        return self.points_dir / f"{network.key}-T{steps}.json"

    def load_point(self, network: Network, steps: int) -> dict | None:
        path = self.point_path(network, steps)
        if not path.exists():
            return None
        point = json.loads(path.read_text())
        return point if point["images_requested"] == self.args.limit else None

    def run_point(self, network: Network, steps: int) -> dict:
        """Train (or resume) network at T steps, measure it on the test set, save the point."""
        cfg = self.config(network, steps)
        converted = self.work / f"converted-{network.encoding}-T{steps}.pt"
        out = self.work / f"{network.key}-T{steps}.pt"
        start = time.perf_counter()
        run_convert(cfg, Path(self.args.ann), converted)
        convert_seconds = time.perf_counter() - start
        start = time.perf_counter()
        model, info = run_snn(cfg, converted, out)
        train_seconds = time.perf_counter() - start
        loader = make_loader(
            info.dataset,
            "test",
            self.args.batch_size,
            data_dir=self.args.data_dir,
            limit=self.args.limit,
            normalization=(info.mean, info.std),
        )
        # counted on the plan of the network deployed at the same T (quantized on the CPU,
        # where the calibration images are; a trained model comes back on the device)
        options = LoadOptions(data_dir=self.args.data_dir, timesteps=steps)
        net = deploy_model(model.cpu(), info, options)
        device = torch.device(self.args.device)
        start = time.perf_counter()
        with fork_rng(device):  # Poisson frames: reproducible, no side effect
            torch.manual_seed(self.args.seed)
            measured = measure_float(
                model, net, loader, RunSettings(steps, device), progress=not self.args.quiet
            )
        seconds = time.perf_counter() - start
        run = summarise(f"({network.key}) T={steps}", measured, counting_plan(net), seconds)
        point = {
            "network": network.key,
            "description": network.description,
            "timesteps": steps,
            "images_requested": self.args.limit,
            "images": run.images,
            "accuracy": run.accuracy,
            "average_spike_rate": run.average_spike_rate,
            "spike_rates": run.spike_rates,
            "b_exact": run.b_exact,
            "b_eq17": run.b_eq17,
            "c": run.c,
            "ratio_exact": run.ratio_exact,
            "ratio_eq17": run.ratio_eq17,
            "ann_macs": run.ann_macs,
            "snn_acs": run.snn_acs,
            "host_macs": run.host_macs,
            "host_acs": run.host_acs,
            "converted_accuracy": info.converted_accuracy,
            "leaks": model.leaks(),
            "thresholds": model.thresholds(),
            "snn_epochs_done": sum(1 for h in info.history if h["stage"] != "ann"),
            "seconds": {
                "convert": convert_seconds,
                "train": train_seconds,
                "measure": seconds,
                "note": "this invocation only; a resumed or finished stage takes ~0 s",
            },
            "settings": self.settings,
            "device": str(device),
            "measured_at": time.strftime("%Y-%m-%d %H:%M"),
        }
        atomic_write_text(self.point_path(network, steps), json.dumps(point, indent=2) + "\n")
        return point

    def all_points(self) -> list[dict]:
        """Every point of this workdir measured on the same test images as asked now (any
        invocation), by network then T."""
        points = [json.loads(p.read_text()) for p in sorted(self.points_dir.glob("*.json"))]
        points = [p for p in points if p["images_requested"] == self.args.limit]
        return sorted(points, key=lambda p: (p["network"], p["timesteps"]))

    def target(self) -> tuple[float | None, str]:
        """(target accuracy or None, how it was set)."""
        a = self.args
        if a.target_accuracy is not None:
            return a.target_accuracy, "given (--target-accuracy)"
        reference = self.load_point(NETWORKS["d"], a.reference_timesteps)
        if reference is None:
            return None, f"pending: (d) at T={a.reference_timesteps} is not measured yet"
        how = f"(d) at T={a.reference_timesteps} ({100 * reference['accuracy']:.2f}%) − {a.tolerance} points"
        return reference["accuracy"] - a.tolerance / 100, how


def iso_accuracy(points: list[dict], target: float | None) -> dict[str, dict]:
    """Per network, the smallest-T point whose accuracy reaches ``target`` (absent if none)."""
    found: dict[str, dict] = {}
    if target is None:
        return found
    for point in points:  # sorted by network, then T
        if point["accuracy"] >= target and point["network"] not in found:
            found[point["network"]] = point
    return found


def points_markdown(points: list[dict]) -> str:
    lines = [
        "| network | T | accuracy | avg spike rate | b (exact) | b (eq. 17) | c "
        "| E_ANN/E_SNN exact | E_ANN/E_SNN eq. 17 | images |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        lines.append(
            f"| ({p['network']}) | {p['timesteps']} | {100 * p['accuracy']:.2f}% "
            f"| {p['average_spike_rate']:.3f} | {p['b_exact']:.4f} | {p['b_eq17']:.4f} "
            f"| {p['c']:.4f} | {p['ratio_exact']:.2f}× | {p['ratio_eq17']:.2f}× | {p['images']} |"
        )
    return "\n".join(lines)


def figure3_markdown(points: list[dict], found: dict[str, dict]) -> str:
    lines = [
        "| network | latency T at iso-accuracy | accuracy | avg spike rate "
        "| E_ANN/E_SNN exact | E_ANN/E_SNN eq. 17 | paper (VGG16, CIFAR-10): T, spike rate, energy |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, network in NETWORKS.items():
        paper = PAPER[key]
        paper_cell = f"{paper[0]}, {paper[1]}, {paper[2]}×"
        p = found.get(key)
        if p is None:
            tried = [q for q in points if q["network"] == key]
            best = max(tried, key=lambda q: q["accuracy"], default=None)
            note = (
                "not measured"
                if best is None
                else f"not reached (best {100 * best['accuracy']:.2f}% at T={best['timesteps']})"
            )
            lines.append(f"| ({key}) {network.description} | {note} | | | | | {paper_cell} |")
            continue
        lines.append(
            f"| ({key}) {network.description} | {p['timesteps']} | {100 * p['accuracy']:.2f}% "
            f"| {p['average_spike_rate']:.3f} | {p['ratio_exact']:.2f}× | {p['ratio_eq17']:.2f}× "
            f"| {paper_cell} |"
        )
    return "\n".join(lines)


def plot_figure3(
    path: Path, points: list[dict], found: dict[str, dict], target: float | None
) -> Path:
    """Fig. 3 analogue: accuracy against T of every network (with the iso-accuracy target),
    then latency and average spike rate at iso-accuracy beside the paper's (VGG16, CIFAR-10)."""
    import io

    keys = list(NETWORKS)
    fig = Figure(figsize=(13, 4))
    ax_acc, ax_t, ax_r = fig.subplots(1, 3)
    for key in keys:
        mine = [p for p in points if p["network"] == key]
        if mine:
            ax_acc.plot([p["timesteps"] for p in mine], [100 * p["accuracy"] for p in mine],
                        "o-", label=f"({key})")  # fmt: skip
    if target is not None:
        ax_acc.axhline(100 * target, color="grey", linestyle="--", label="iso-accuracy target")
    ax_acc.set_xscale("log")
    steps = sorted({p["timesteps"] for p in points})
    ax_acc.set_xticks(steps, [str(t) for t in steps])
    ax_acc.minorticks_off()
    ax_acc.set_xlabel("timesteps T")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.legend(fontsize="small")
    ax_acc.grid(alpha=0.3, which="both")
    xs = list(range(len(keys)))
    for ax, field, column, label in (
        (ax_t, "timesteps", 0, "latency T at iso-accuracy"),
        (ax_r, "average_spike_rate", 1, "average spike rate at iso-accuracy"),
    ):
        ours = [found[k][field] if k in found else 0 for k in keys]
        paper = [PAPER[k][column] for k in keys]
        ax.bar([x - 0.2 for x in xs], ours, 0.4, label="this run (0: not reached)")
        ax.bar([x + 0.2 for x in xs], paper, 0.4, label="paper (VGG16, CIFAR-10)", alpha=0.5)
        ax.set_yscale("log")
        ax.set_xticks(xs, [f"({k})" for k in keys])
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3, which="both")
    ax_t.legend(fontsize="small")
    fig.suptitle("Figure 3 analogue (a: IF + Poisson, b: IF + direct, c: + threshold, d: DIET-SNN)")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


def _timesteps_for(network: Network, args) -> list[int]:
    if network.key == "d":
        return _steps(args.diet_timesteps)
    if network.key == "a" and args.poisson_timesteps:
        return _steps(args.poisson_timesteps)
    return _steps(args.timesteps)


def run(args) -> None:
    study = Study(args)
    networks = _networks(args.networks)
    if not args.summary_only:
        # (d) first: its accuracy at the reference T sets the target for the others
        for network in sorted(networks, key=lambda n: n.key != "d"):
            target, _ = study.target()
            for steps in _timesteps_for(network, args):
                point = study.load_point(network, steps)
                if point is None:
                    print(f"--- ({network.key}) {network.description}, T={steps}", flush=True)
                    point = study.run_point(network, steps)
                print(
                    f"({network.key}) T={steps}: accuracy {100 * point['accuracy']:.2f}%, "
                    f"average spike rate {point['average_spike_rate']:.3f}, "
                    f"E_ANN/E_SNN {point['ratio_exact']:.2f}× (eq. 17: {point['ratio_eq17']:.2f}×)",
                    flush=True,
                )
                if network.key != "d" and target is not None and not args.all_timesteps:
                    if point["accuracy"] >= target:
                        break  # iso-accuracy reached: larger T only cost more
    points = study.all_points()
    target, how = study.target()
    found = iso_accuracy(points, target)
    settings = study.settings
    print(f"\n## Figure 3 ablation: {settings['arch']} on {settings['dataset']}")
    print(
        f"ANN {args.ann} ({settings['ann_epochs']} epochs, {100 * (settings['ann_accuracy'] or 0):.2f}%); "
        f"SNN training: {settings['snn_epochs']} epoch(s) on "
        f"{settings['train_limit'] or 'all'} training images, lr {settings['snn_lr']} "
        f"(thresholds and leaks: {settings.get('neuron_lr') or settings['snn_lr']})"
    )
    target_text = "—" if target is None else f"{100 * target:.2f}%"
    print(f"iso-accuracy target {target_text}: {how}\n")
    print(points_markdown(points) + "\n")
    print(figure3_markdown(points, found) + "\n")
    summary = {
        "settings": settings,
        "target_accuracy": target,
        "target": how,
        "iso_accuracy": {k: p["timesteps"] for k, p in found.items()},
        "points": points,
        "paper": {
            k: dict(zip(("timesteps", "spike_rate", "ratio", "accuracy"), v, strict=True))
            for k, v in PAPER.items()
        },  # fmt: skip
    }
    path = atomic_write_text(study.work / "ablation.json", json.dumps(summary, indent=2) + "\n")
    print(f"wrote {path}")
    if points:
        print(f"wrote {plot_figure3(study.work / 'figure3.png', points, found, target)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default="a,b,c,d", help="some of a,b,c,d")
    parser.add_argument("--timesteps", default="5,10,15,25", help="T list for (a)-(c)")
    parser.add_argument("--poisson-timesteps", help="T list for (a) (default: --timesteps)")
    parser.add_argument("--diet-timesteps", default="5", help="T list for (d)")
    parser.add_argument("--reference-timesteps", type=int, default=5, help="(d)'s T for the target")
    parser.add_argument("--target-accuracy", type=float, help="fraction; default: (d) − tolerance")
    parser.add_argument("--tolerance", type=float, default=1.0, help="points below (d)")
    parser.add_argument("--all-timesteps", action="store_true", help="no stop at the target")
    parser.add_argument("--ann", default="runs/table1/ann.pt", help="the trained ANN")
    parser.add_argument("--dataset", help="check the ANN's dataset (e.g. digits for a test)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--workdir", default="runs/ablation")
    parser.add_argument("--train-limit", type=int, help="train the SNNs on the first N images")
    parser.add_argument("--snn-epochs", type=int, default=1)
    parser.add_argument("--snn-lr", type=float, default=1e-4)
    parser.add_argument(
        "--neuron-lr", type=float, help="thresholds' and leaks' learning rate (default: --snn-lr)"
    )
    parser.add_argument("--snn-batch-size", type=int, default=64)
    parser.add_argument("--percentile", type=float, default=99.7)
    parser.add_argument("--threshold-scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-n", "--limit", type=int, help="test images measured (default all)")
    parser.add_argument(
        "--epoch-eval-limit", type=int, default=1000, help="test images of per-epoch evaluations"
    )
    parser.add_argument("--batch-size", type=int, default=128, help="measurement batch")
    parser.add_argument("--summary-only", action="store_true", help="train nothing, summarise")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device_option(
        parser,
        "where the SNNs train and are measured: auto, cpu, cuda, cuda:N or mps"
        " (default: cpu; conversion runs on the CPU)",
    )
    args = parser.parse_args()
    args.device = str(parse_device(parser, args.device))
    for name in ("train_limit", "limit", "epoch_eval_limit"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise DeployError(f"--{name.replace('_', '-')} must be ≥ 1")
    torch.set_num_threads(args.threads)
    run(args)


if __name__ == "__main__":
    try:
        main()
    except DeployError as exc:
        sys.exit(f"error: {exc}")
