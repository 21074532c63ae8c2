"""One DIET training step, ours against the official DIET-SNN code, side by side in one run.

    python benchmarks/speed_vs_official.py --official-repo DIR [--device cpu] [--threads 2]

DIR is a clone of nitin-rathi/DIET-SNN; its model file ``self_models/vgg_spiking.py`` is
imported from there (this project contains none of its code), with ``Tensor.cuda``
redirected to --device (the CPU, MPS, or the CUDA device named). Both models are VGG5 on 28×28
one-channel input (the paper's VGG6, Fashion-MNIST shape), the same weights, thresholds and
leaks, batch B, T steps; one step = forward, cross-entropy, backward, Adam (amsgrad) and the
leak clamp. The official step runs in fp32 as it ships; ours runs in each precision,
alternating with it. Clocks are read after the device has finished its queued work.

Printed per precision: the median seconds per step of both, ``official/ours N.NN×``, and our
step as a fraction of the GEMM limit (the step's GEMM FLOPs over the peak matmul rate at that
precision, measured in the same run).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_device import add_device_option, parse_device, synchronize
from results_log import append_results

from dietsnn_deploy.spine.settings import RunSettings
from dietsnn_deploy.training.models import build_model
from dietsnn_deploy.training.stages import make_snn_optimizer

IN_SHAPE, CLASSES = (1, 28, 28), 10


def load_official(repo: Path):
    """The official ``self_models/vgg_spiking.py`` module, imported from the clone."""
    path = repo / "self_models" / "vgg_spiking.py"
    if not path.is_file():
        raise SystemExit(f"{path} not found: pass a clone of nitin-rathi/DIET-SNN")
    spec = importlib.util.spec_from_file_location("official_vgg_spiking", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def cuda_neutralised(device: torch.device):
    """``Tensor.cuda()`` (the official code calls it) moves the tensor to ``device``: on the CPU
    it returns the tensor itself, on MPS it goes there, on ``cuda:N`` to that GPU (not the
    current one)."""
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self.to(device)
    try:
        yield
    finally:
        torch.Tensor.cuda = original


def models(official_module, timesteps: int, device: torch.device, seed: int = 0):
    """(official VGG5 SNN, ours) with the same weights, thresholds and leaks."""
    torch.manual_seed(seed)
    theirs = official_module.VGG_SNN_STDB(
        "VGG5", activation="Linear", labels=CLASSES, timesteps=timesteps, dataset="MNIST"
    )
    ours = build_model("vgg5", IN_SHAPE, CLASSES)
    ours.load_state_dict(theirs.state_dict())
    thresholds = [0.3, 0.8, 0.8, 0.5, 0.6]  # conversion-like values: every layer spikes
    theirs.threshold_update(scaling_factor=1.0, thresholds=list(thresholds))
    ours.set_neuron_params(thresholds=thresholds)
    ours.spiking = True
    return theirs.to(device), ours.to(device)


def official_step(model, optimizer, images, labels) -> None:
    """The official train() step (snn.py): forward, loss, backward, step, leak clamp."""
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        for value in model.leak.values():
            value.clamp_(max=1.0)


def our_step(model, optimizer, images, labels, settings: RunSettings) -> None:
    with settings.autocast():
        logits = model(images, settings.timesteps)
    loss = F.cross_entropy(logits.float(), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    model.clamp_neuron_params()


def step_flops(model, batch: int, timesteps: int) -> float:
    """GEMM FLOPs of one step: 2 per MAC, forward + the backward's two GEMMs per layer (the
    first conv once per batch for direct input, and no input gradient for it)."""
    macs = []
    hooks = [
        m.register_forward_hook(
            lambda mod, inp, out: macs.append(
                out[0].numel() * mod.weight[0].numel() if out.dim() else 0
            )
        )
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
    ]
    with torch.no_grad():
        model.forward_ann(torch.zeros((1, *IN_SHAPE), device=next(model.parameters()).device))
    for hook in hooks:
        hook.remove()
    first, rest = macs[0], sum(macs[1:])
    return 2 * batch * (2 * first + 3 * timesteps * rest)


def gemm_peak(dtype: torch.dtype, device: torch.device, size: int = 2048) -> float:
    """Best of a few ``size``² matmuls, FLOP/s."""
    a = torch.randn((size, size), device=device).to(dtype)
    b = torch.randn((size, size), device=device).to(dtype)
    best = float("inf")
    for _ in range(5):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def _timed(fn, device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-repo", type=Path, required=True)
    add_device_option(parser)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--timesteps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--write", action="store_true", help="append the figures to RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = parse_device(parser, args.device)
    official = load_official(args.official_repo)
    generator = torch.Generator().manual_seed(1)
    images = torch.randn((args.batch, *IN_SHAPE), generator=generator).to(device)
    labels = torch.randint(0, CLASSES, (args.batch,), generator=generator).to(device)
    lines = []
    with cuda_neutralised(device):
        theirs, ours = models(official, args.timesteps, device)
        theirs.train()
        ours.train()
        their_optimizer = torch.optim.Adam(theirs.parameters(), lr=1e-4, amsgrad=True)
        our_optimizer = make_snn_optimizer(ours, lr=1e-4)
        flops = step_flops(ours, args.batch, args.timesteps)
        for precision in args.precisions.split(","):
            settings = RunSettings(args.timesteps, device, precision)
            peak = gemm_peak({"fp32": torch.float32, "bf16": torch.bfloat16,
                              "fp16": torch.float16}[precision], device)  # fmt: skip
            ours_s, theirs_s = [], []
            for repeat in range(args.repeats + 1):  # the first round warms up, untimed
                t_theirs = _timed(lambda: official_step(theirs, their_optimizer, images, labels),
                                  device)  # fmt: skip
                t_ours = _timed(
                    lambda s=settings: our_step(ours, our_optimizer, images, labels, s), device
                )
                if repeat:
                    theirs_s.append(t_theirs)
                    ours_s.append(t_ours)
            mine, official_time = statistics.median(ours_s), statistics.median(theirs_s)
            line = (
                f"{precision}: official {official_time:.3f} s (fp32), ours {mine:.3f} s per step "
                f"(vgg5, batch {args.batch}, T={args.timesteps}, {args.threads} thread(s), "
                f"{device.type}); ours at {100 * flops / mine / peak:.0f}% of the "
                f"{peak / 1e9:.0f} GFLOP/s {precision} GEMM limit ({flops / 1e9:.0f} GFLOP/step); "
                f"official/ours {official_time / mine:.2f}×"
            )
            print(line, flush=True)
            lines.append(line)
    if args.write:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        command = " ".join(["python", "benchmarks/speed_vs_official.py", *sys.argv[1:]])
        entry = (
            f"### {stamp} — `{command}`\n\nMedian of {args.repeats} alternated steps each "
            f"(torch {torch.__version__}).\n\n" + "\n".join(f"- {line}" for line in lines) + "\n"
        )
        append_results(entry, "## Training speed against the official DIET-SNN code")


if __name__ == "__main__":
    main()
