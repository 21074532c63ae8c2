"""Run a deployed network on Lava's CPU simulator (fixed point, bit-accurate models).

All images go through ONE pipelined Lava run. The file is loaded with
``netx.hdf5.Network(net_config=path, reset_interval=T)`` (reset offset r = 0). Let ``k`` be a
layer's index in ``net.layers`` of the Lava network (the DeployedNetwork's layers without the
flatten layers; k = 0 is the input layer, k = L − 1 the readout) and let Lava steps count
from 1. Checked against a delay-free NumPy model of the LIF step, the schedule is:

- Layer k resets (u = v = 0 at the start of the step) at every step t ≡ 1 + k (mod T).
- Each synapse delays by exactly one step, so sample i occupies layer k during steps
  ``i·T + 1 + k … (i+1)·T + k``; its local step τ (0 ≤ τ < T) is Lava step
  ``t = i·T + 1 + k + τ``. Layer k at τ consumes layer k−1's spikes of the same τ, which is
  the delay-free schedule of :class:`SpikeRecord`.
- The drive of image i is the input layer's ``bias_mant`` during steps ``i·T + 1 … (i+1)·T``
  (set while paused, so the run advances in chunks of T steps; the drive is 0 afterwards).
- The readout potential of image i is ``v`` after step ``(i+1)·T + L − 1``; the run lasts
  ``N·T + L − 1`` steps (not N·T + r + L: one step fewer is enough).

This is checked for T = 2…6, also with networks deeper than T, against the emulator, and for single
images run alone against the same images pipelined (tests/test_lava_runner.py,
tests/test_conformance.py). Also checked there: a dense synapse's sum reaches the neuron
unwrapped although ``a_in`` is declared int16 (200 × 254 = 50800 arrives intact); ``v`` is
clipped to ±(2²³ − 1); and the readout, whose threshold THRESHOLD_MAX·64 = 8388544 lies 63
below that clip, does fire and reset to 0 when its potential saturates.

Spikes are read with a ``RingBuffer`` (buffer T) on every spiking layer's ``out`` after each
chunk; the readout ``v`` with a ``Read`` process sampling once per T steps at the steps above.
The runtime is always stopped (try/finally). A Ctrl-C is held until the runtime is paused
between chunks and raised there, so ``stop()`` always completes (see ``_DeferredInterrupt``).
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.network import DeployedNetwork
from dietsnn_deploy.spine.record import SpikeRecord
from exporters.netx import read_netx, write_netx
from hw_sim.host import host_drive
from hw_sim.lava_compat import import_netx


@dataclass
class LavaResult:
    """Per-image results of a Lava run, re-aligned into the delay-free schedule."""

    record: SpikeRecord
    predictions: torch.Tensor  # (N,) int64: argmax of the readout potential
    build_seconds: float  # loading the netx file, compiling and starting the runtime
    run_seconds: float  # stepping the simulation and reading results back

    @property
    def seconds_per_image(self) -> float:
        return self.run_seconds / self.predictions.shape[0]


class _DeferredInterrupt:
    """Hold SIGINT (Ctrl-C) while Lava exchanges messages and deliver it between chunks.

    A KeyboardInterrupt in the middle of a Lava call leaves the runtime's message exchange
    half done, and ``stop()`` then waits forever; so does a terminal Ctrl-C that kills the
    runtime's forked processes. Installed before the runtime forks, the handler is inherited
    by those processes too, so they keep running until ``stop()``. The previous handler is
    called at the next safe point (``deliver``) or on exit. Only the main thread can install
    signal handlers; elsewhere, and when SIGINT is ignored, nothing changes.
    """

    def __enter__(self) -> _DeferredInterrupt:
        self.pending: tuple | None = None
        self.previous = None
        current = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is threading.main_thread() and callable(current):
            self.previous = signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum, frame) -> None:
        self.pending = (signum, frame)

    def deliver(self) -> None:
        """Run the held SIGINT's original handler now (the default one raises)."""
        if self.pending is not None and self.previous is not None:
            pending, self.pending = self.pending, None
            self.previous(*pending)

    def __exit__(self, exc_type, exc, traceback) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            if exc_type is None:
                self.deliver()


def _whc(chw: np.ndarray) -> np.ndarray:
    """(C, H, W) → Lava's (W, H, C)."""
    return np.ascontiguousarray(np.transpose(chw, (2, 1, 0)))


class _Recorder:
    """Collects spikes and readout potentials of one pipelined run into per-image arrays."""

    def __init__(self, net: DeployedNetwork, count: int) -> None:
        self.timesteps = net.timesteps
        self.count = count
        self.neuron_layers = [index for index, _ in net.neuron_layers]
        self.depth = len(self.neuron_layers)  # L
        self.spikes = {
            index: np.zeros((net.timesteps, count, *net.layers[index].shape), dtype=bool)
            for index in self.neuron_layers[:-1]
        }
        self.readout = np.zeros((count, net.num_classes), dtype=np.int64)

    @property
    def total_steps(self) -> int:
        return self.count * self.timesteps + self.depth - 1

    @property
    def read_offset(self) -> int:
        """``Read`` offset so that it samples at steps t ≡ L − 1 (mod T)."""
        return (self.depth - 2) % self.timesteps

    def store_spikes(self, k: int, ring: np.ndarray, first: int, last: int) -> None:
        """Ring buffer data (*lava_shape, T) of Lava layer k for steps first..last."""
        steps = np.arange(first, last + 1)
        offset = steps - 1 - k
        sample, tau = offset // self.timesteps, offset % self.timesteps
        keep = (sample >= 0) & (sample < self.count)
        data = np.moveaxis(ring[..., (steps[keep] - 1) % self.timesteps], -1, 0)
        if data.ndim == 4:  # (steps, W, H, C) → (steps, C, H, W)
            data = data.transpose(0, 3, 2, 1)
        self.spikes[self.neuron_layers[k]][tau[keep], sample[keep]] = data != 0

    def store_readout(self, v: np.ndarray, step: int) -> int | None:
        """Keep ``v`` read after ``step`` if that ends an image's window; return the image."""
        sample = (step - self.depth + 1) // self.timesteps - 1
        if 0 <= sample < self.count:
            self.readout[sample] = v
            return sample
        return None

    def record(self, net: DeployedNetwork) -> SpikeRecord:
        spikes = [
            torch.from_numpy(self.spikes[i]) if i in self.spikes else None
            for i in range(len(net.layers))
        ]
        return SpikeRecord(spikes=spikes, readout=torch.from_numpy(self.readout))


def _load(path_or_net: DeployedNetwork | str | os.PathLike, folder: str) -> tuple:
    """(DeployedNetwork, netx file path); a network object is exported into ``folder``."""
    if isinstance(path_or_net, DeployedNetwork):
        path = Path(folder) / "network.net"
        write_netx(path_or_net, path)
        return path_or_net, path
    return read_netx(path_or_net), Path(path_or_net)


def run_lava(
    path_or_net: DeployedNetwork | str | os.PathLike,
    images: torch.Tensor,
    *,
    progress: bool = True,
    seed: int = 0,
) -> LavaResult:
    """Run ``images`` (N, C, H, W) through the network on Lava in one pipelined run.

    ``images`` are float pixels in [0, 1] before mean/std, as :func:`hw_sim.host.encode_drive`
    takes them. Returns spikes of every spiking layer (T, N, *shape), the readout potential
    after T steps (N, num_classes) and the predicted classes.
    """
    with tempfile.TemporaryDirectory(prefix="lava_run_") as folder:
        net, path = _load(path_or_net, folder)
        if images.shape[0] < 1:
            raise DeployError("run_lava needs at least one image")
        drive = host_drive(net.encoder, images, net.timesteps, seed=seed)
        if not drive.static:
            raise DeployError("time-varying input is not wired into the Lava runner yet")
        return _run(net, path, drive.drive[0].numpy(), progress)


def _run(net: DeployedNetwork, path: Path, drive: np.ndarray, progress: bool) -> LavaResult:
    netx = import_netx()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import Read, RingBuffer

    started = time.perf_counter()
    T = net.timesteps
    recorder = _Recorder(net, drive.shape[0])
    lava_net = netx.hdf5.Network(net_config=str(path), reset_interval=T)
    lava_net.net_config.f.close()  # netx leaves the file open; every layer is built by now
    if len(lava_net.layers) != recorder.depth:
        raise DeployError(f"netx built {len(lava_net.layers)} layers, expected {recorder.depth}")
    sinks = []
    for layer in lava_net.layers[:-1]:
        sink = RingBuffer(shape=layer.out.shape, buffer=T)
        layer.out.connect(sink.a_in)
        sinks.append(sink)
    reader = Read(buffer=1, interval=T, offset=recorder.read_offset)
    reader.connect_var(lava_net.out_layer.neuron.v)
    bias = lava_net.in_layer.neuron.bias_mant
    bias.init = _whc(drive[0])

    bar = tqdm(total=recorder.count, unit="image", desc="lava", disable=not progress)
    with _DeferredInterrupt() as interrupt:  # before the runtime forks its processes
        try:
            lava_net.create_runtime(run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            build_seconds = time.perf_counter() - started
            done = 0
            while done < recorder.total_steps:
                interrupt.deliver()
                steps = min(T, recorder.total_steps - done)
                lava_net.run(condition=RunSteps(num_steps=steps))
                for k, sink in enumerate(sinks):
                    recorder.store_spikes(k, sink.data.get(), done + 1, done + steps)
                read_step = done + 1 + (recorder.read_offset - done) % T
                if read_step <= done + steps and (
                    recorder.store_readout(reader.data.get()[..., 0], read_step) is not None
                ):
                    bar.update(1)
                done += steps
                chunk = done // T  # the next chunk is image `chunk`'s input window
                if done < recorder.total_steps:
                    upcoming = drive[chunk] if chunk < recorder.count else np.zeros_like(drive[0])
                    bias.set(_whc(upcoming))
        finally:
            bar.close()
            lava_net.stop()
    readout = torch.from_numpy(recorder.readout)
    return LavaResult(
        record=recorder.record(net),
        predictions=readout.argmax(dim=1),
        build_seconds=build_seconds,
        run_seconds=time.perf_counter() - started - build_seconds,
    )
