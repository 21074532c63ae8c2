"""Bulk SNN execution vs the per-step loop: time of one DIET training step, and equality.

    .venv/bin/python benchmarks/bulk_vs_loop.py [--repeats 5] [--threads 1] [--device cpu]
        [--no-write]

For each case (vgg5 and vgg5-slim on 28×28 Fashion-MNIST test images, batch 64, T = 5, train
mode with dropout), one full step — forward, cross-entropy, backward, Adam step, leak clamp —
is timed with ``run_snn(bulk=True)`` and ``bulk=False`` from the same weights and RNG state;
the median of ``--repeats`` runs is reported (on --device; the clock is read after the device
has finished its work). A separate untimed step checks that logits and
spikes are identical and gradients close. Prints Markdown rows and appends a dated entry to
benchmarks/RESULTS.md (exit status 1 if spikes differ or gradients are not close).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import statistics
import sys
import time
from dataclasses import dataclass

import torch
from bench_device import add_device_option, parse_device, synchronize
from results_log import RESULTS, append_results
from torch import nn

from dietsnn_deploy.data import make_loader
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.training.models import DietNet, build_model
from dietsnn_deploy.training.stages import convert

HEADING = "## Bulk execution vs per-step loop"
SHAPE = (1, 28, 28)
CASES = ("vgg5", "vgg5-slim")


@dataclass
class Comparison:
    """One case's timings (seconds per training step) and equality checks."""

    arch: str
    bulk_seconds: float
    loop_seconds: float
    logits_identical: bool
    logits_max_diff: float
    spikes_identical: bool
    spike_rate: float
    grad_max_rel_diff: float

    @property
    def speedup(self) -> float:
        return self.loop_seconds / self.bulk_seconds


def fashion_batch(batch: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The first ``batch`` Fashion-MNIST test images, or uniform noise if it is not installed."""
    try:
        images, labels = next(iter(make_loader("fashion-mnist", "test", batch)))
        return images, labels, "Fashion-MNIST test images"
    except DeployError:
        generator = torch.Generator().manual_seed(0)
        images = (torch.rand((batch, *SHAPE), generator=generator) - 0.286) / 0.353
        return images, torch.arange(batch) % 10, "uniform noise (Fashion-MNIST not found)"


def prepared_model(
    arch: str, images: torch.Tensor, timesteps: int, device: torch.device
) -> DietNet:
    """Untrained weights, thresholds balanced on ``images`` (scale 0.5 to get lively spiking),
    leaks 0.9: a network whose every layer spikes, as after conversion. Converted on the CPU
    (the same thresholds on every device), then moved to ``device``."""
    torch.manual_seed(0)
    model = build_model(arch, SHAPE, 10)
    convert(model, images.cpu(), timesteps=timesteps, scale=0.5, progress=False)
    model.set_neuron_params(leaks=[0.9] * len(model.neuron_keys))
    model.train()
    return model.to(device)


def training_step(
    model: DietNet, optimizer, images, labels, timesteps: int, bulk: bool, record: bool = False
):
    """Forward over ``timesteps`` steps, loss, backward, Adam step, leak clamp; returns the
    SNN output."""
    out = model.run_snn(images, timesteps, bulk=bulk, record=record)
    loss = nn.functional.cross_entropy(out.logits, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    model.clamp_neuron_params()
    return out


def _fresh(model: DietNet, state: dict):
    model.load_state_dict(state)
    return torch.optim.Adam(model.parameters(), lr=1e-4, amsgrad=True)


def compare(
    arch: str, images, labels, timesteps: int, repeats: int, device: torch.device
) -> Comparison:
    """Both modes on ``device`` (``images`` and ``labels`` are already there)."""
    model = prepared_model(arch, images, timesteps, device)
    state = copy.deepcopy(model.state_dict())

    # Equality: one step each from the same weights and the same dropout draws.
    outputs, grads = [], []
    for bulk in (True, False):
        optimizer = _fresh(model, state)
        torch.manual_seed(1)
        outputs.append(
            training_step(model, optimizer, images, labels, timesteps, bulk, record=True)
        )
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    bulk_out, loop_out = outputs
    spikes_identical = all(torch.equal(s, loop_out.spikes[k]) for k, s in bulk_out.spikes.items())
    spikes = torch.cat([s.flatten() for s in bulk_out.spikes.values()])
    grad_diff = max(
        float((g - grads[1][n]).abs().max() / g.abs().max().clamp(min=1e-30))
        for n, g in grads[0].items()
    )

    # Timing: alternate the modes so that load from other jobs hits both alike.
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeats):
        for bulk in (True, False):
            optimizer = _fresh(model, state)
            torch.manual_seed(1)
            synchronize(device)
            start = time.perf_counter()
            training_step(model, optimizer, images, labels, timesteps, bulk)
            synchronize(device)
            times[bulk].append(time.perf_counter() - start)
    return Comparison(
        arch=arch,
        bulk_seconds=statistics.median(times[True]),
        loop_seconds=statistics.median(times[False]),
        logits_identical=torch.equal(bulk_out.logits, loop_out.logits),
        logits_max_diff=float((bulk_out.logits - loop_out.logits).detach().abs().max()),
        spikes_identical=spikes_identical,
        spike_rate=float(spikes.mean()),
        grad_max_rel_diff=grad_diff,
    )


TABLE_HEAD = (
    "| arch | batch × T | bulk step (ms, median) | per-step loop (ms, median) | speed-up |"
    " logits identical | spikes identical | spike rate | max grad rel. diff |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def table_row(c: Comparison, batch: int, timesteps: int) -> str:
    logits = "yes" if c.logits_identical else f"no (max diff {c.logits_max_diff:.1e})"
    return (
        f"| {c.arch} | {batch} × {timesteps} | {1000 * c.bulk_seconds:.0f} |"
        f" {1000 * c.loop_seconds:.0f} | {c.speedup:.2f}× | {logits} |"
        f" {'yes' if c.spikes_identical else 'NO'} | {c.spike_rate:.3f} |"
        f" {c.grad_max_rel_diff:.1e} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--timesteps", type=int, default=5)
    parser.add_argument("--arch", action="append", help=f"default: {', '.join(CASES)}")
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    add_device_option(parser)
    args = parser.parse_args()
    device = parse_device(parser, args.device)
    torch.set_num_threads(args.threads)
    images, labels, source = fashion_batch(args.batch)
    images, labels = images.to(device), labels.to(device)
    rows, ok = [], True
    print(TABLE_HEAD)
    for arch in args.arch or CASES:
        result = compare(arch, images, labels, args.timesteps, args.repeats, device)
        rows.append(table_row(result, args.batch, args.timesteps))
        print(rows[-1], flush=True)
        ok &= result.spikes_identical and result.grad_max_rel_diff < 1e-4
    command = "python benchmarks/bulk_vs_loop.py " + " ".join(sys.argv[1:])
    where = (
        f"{torch.get_num_threads()} CPU thread(s), on a 2-core machine shared with other jobs at"
        " the time (absolute times are noisy; the ratio is the figure to read)"
    )
    if device.type != "cpu":
        where = f"on {_device_name(device)}; the ratio is the figure to read"
    entry = (
        f"### {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} — `{command.strip()}`\n\n"
        f"One DIET training step (forward, cross-entropy, backward, Adam, leak clamp) in train"
        f" mode with dropout, on {source}; median of {args.repeats} runs per mode, modes"
        f" alternated. torch {torch.__version__}, {where}.\n\n"
        + TABLE_HEAD
        + "\n"
        + "\n".join(rows)
        + "\n\n"
    )
    if not args.no_write:
        append_results(entry, HEADING)
        print(f"appended to {RESULTS}")
    if not ok:
        print("error: bulk and per-step runs disagree", file=sys.stderr)
    return 0 if ok else 1


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


if __name__ == "__main__":
    sys.exit(main())
