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
- The drive of image i reaches the input layer during steps ``i·T + 1 … (i+1)·T`` (written
  while paused, so the run advances in chunks of T steps; the drive is 0 afterwards).
- The readout potential of image i is ``v`` after step ``(i+1)·T + L − 1``; the run lasts
  ``N·T + L − 1`` steps (not N·T + r + L: one step fewer is enough).
- Axonal delays (dense ``delay``) carry spikes past the end of an image's window, and Lava's
  reset clears neurons, not synapses: ``gap`` = ⌈Σ max delay / T⌉ blank samples (no input)
  follow every image so that nothing of one image reaches the next. A layer with a bias
  upstream of a delayed synapse fires in the blank samples too: then each image gets a run of
  its own (a fresh runtime, about a second each).
- A network that takes spikes through its first layer's synapses (no input layer,
  :class:`~dietsnn_deploy.spine.network.SpikeInput`) gets them on ``net.inp`` during the same
  steps; that synapse delays them one step more, so the file is loaded with reset offset
  r = 1 and every step above moves one later (``lead`` = 1).

This is checked for T = 2…6, also with networks deeper than T, against the emulator, and for single
images run alone against the same images pipelined (tests/test_lava_runner.py,
tests/test_conformance.py). Also checked there: a dense synapse's sum reaches the neuron
unwrapped although ``a_in`` is declared int16 (200 × 254 = 50800 arrives intact); ``v`` is
clipped to ±(2²³ − 1); and the readout, whose threshold THRESHOLD_MAX·64 = 8388544 lies 63
below that clip, does fire and reset to 0 when its potential saturates.

The drive of every step enters the input layer's ``a_in`` from a :class:`FrameSource` (a
memory-mapped ring of T frames the host refills between chunks: constant frames for static
input, the encoding's per-step drive otherwise; with iDecay = 4096, u = a_in << 6, which is
the bias path's bias << 6 for drives within ±4095). Spikes are read from every spiking
layer's ``out`` by a :class:`FrameSink` (a ring of T rows) after each chunk; the readout ``v``
by a ``Read`` process sampling once per T steps at the steps above. The runtime is created
and stopped from the main thread, always stopped (try/finally); SIGINT, SIGTERM and SIGHUP are
held until the runtime is paused between chunks and raised there (:mod:`.lifecycle`), its
processes die with the parent even if it is killed outright, and a watchdog ends a run
whose runtime process died.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.network import DeployedNetwork, SpikeInput
from dietsnn_deploy.spine.record import HostDrive, SpikeRasters, SpikeRecord
from exporters.netx import read_netx, write_netx
from hw_sim.host import network_drive
from hw_sim.lava.compat import import_netx
from hw_sim.lava.lifecycle import DeferredSignals, RuntimeWatchdog, die_with_parent


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


def swap_xy_c(frames: np.ndarray) -> np.ndarray:
    """(steps, C, H, W) ↔ (steps, W, H, C), our order and Lava's (its own inverse); 1-d
    frames (steps, n) are the same in both."""
    return frames.transpose(0, 3, 2, 1) if frames.ndim == 4 else frames


class _Recorder:
    """Collects spikes and readout potentials of one pipelined run into per-image arrays."""

    def __init__(self, net: DeployedNetwork, count: int) -> None:
        self.timesteps = net.timesteps
        self.count = count
        self.lead = int(net.synaptic_input)  # the extra synapse before Lava layer 0
        self.neuron_layers = [index for index, _ in net.neuron_layers]
        self.depth = len(self.neuron_layers)  # L
        self.spiking = [  # Lava layer k of every recorded (spiking) layer
            k for k, index in enumerate(self.neuron_layers) if net.layers[index].neuron.spiking
        ]
        self.spikes = {
            self.neuron_layers[k]: np.zeros(
                (net.timesteps, count, *net.layers[self.neuron_layers[k]].shape), dtype=bool
            )
            for k in self.spiking
        }
        self.readout = np.zeros((count, net.num_classes), dtype=np.int64)

    @property
    def total_steps(self) -> int:
        return self.count * self.timesteps + self.depth - 1 + self.lead

    @property
    def read_offset(self) -> int:
        """``Read`` offset so that it samples at steps t ≡ L − 1 + lead (mod T)."""
        return (self.depth - 2 + self.lead) % self.timesteps

    def store_spikes(self, k: int, ring: np.ndarray, first: int, last: int) -> None:
        """A sink's ring (T, *lava_shape) of Lava layer k, holding steps first..last."""
        steps = np.arange(first, last + 1)
        offset = steps - 1 - k - self.lead
        sample, tau = offset // self.timesteps, offset % self.timesteps
        keep = (sample >= 0) & (sample < self.count)
        data = swap_xy_c(ring[(steps[keep] - 1) % self.timesteps])
        self.spikes[self.neuron_layers[k]][tau[keep], sample[keep]] = data != 0

    def store_readout(self, v: np.ndarray, step: int) -> int | None:
        """Keep ``v`` read after ``step`` if that ends an image's window; return the image."""
        sample = (step - self.depth + 1 - self.lead) // self.timesteps - 1
        if 0 <= sample < self.count:
            self.readout[sample] = v
            return sample
        return None

    def record(self, net: DeployedNetwork, drive: HostDrive) -> SpikeRecord:
        spikes = [
            torch.from_numpy(self.spikes[i]) if i in self.spikes else None
            for i in range(len(net.layers))
        ]
        return SpikeRecord(
            spikes=spikes,
            readout=torch.from_numpy(self.readout),
            frames=drive.frames,
            input_spikes=None if drive.spikes is None else drive.spikes.bool(),
        )


def _load(path_or_net: DeployedNetwork | str | os.PathLike, folder: str, file) -> tuple:
    """(DeployedNetwork, netx file path); a network object is exported into ``folder``
    unless ``file`` is the netx file it was read from."""
    if isinstance(path_or_net, DeployedNetwork):
        if file is not None:
            return path_or_net, Path(file)
        path = Path(folder) / "network.net"
        write_netx(path_or_net, path)
        return path_or_net, path
    return read_netx(path_or_net), Path(path_or_net)


def run_lava(
    path_or_net: DeployedNetwork | str | os.PathLike,
    images: torch.Tensor | SpikeRasters,
    *,
    progress: bool = True,
    seed: int = 0,
    file: str | os.PathLike | None = None,
) -> LavaResult:
    """Run ``images`` (N, C, H, W) through the network on Lava in one pipelined run.

    ``images`` are float pixels in [0, 1] before mean/std, as :func:`hw_sim.host.network_drive`
    takes them (random input frames drawn under ``seed``, image by image), or a SpikeInput
    network's rasters. Returns spikes of every spiking layer (T, N, *shape), the readout
    potential after T steps (N, num_classes) and the predicted classes. ``file`` is the
    netx file a network object was read from: Lava then loads that file as it is.
    """
    with tempfile.TemporaryDirectory(prefix="lava_run_") as folder:
        net, path = _load(path_or_net, folder, file)
        if len(images) < 1:
            raise DeployError("run_lava needs at least one image")
        drive = network_drive(net, images, seed=seed)
        gap = blank_samples(net)
        if gap == 0:
            return _run(net, path, drive, Path(folder), progress)
        if gap is not None:
            result = _run(net, path, _spaced(drive, gap), Path(folder), progress)
            return _unspaced(result, net, len(images), gap)
        alone = [
            _run(net, path, _one(drive, i), Path(folder), False)
            for i in tqdm(range(len(images)), unit="image", desc="lava", disable=not progress)
        ]
        return _joined(alone, net)


def blank_samples(net: DeployedNetwork) -> int | None:
    """Blank samples to put after each image so that delayed spikes die out (module doc);
    None when none suffice (a bias before a delayed synapse): run each image alone."""
    source = net.encoder
    total = 0
    biased = isinstance(source, SpikeInput) and source.drive_bias != 0  # a drive without spikes
    for layer in net.layers:
        delay = getattr(layer, "delay", None)
        if delay is not None and np.any(delay):
            if biased:
                return None
            total += int(np.max(delay))
        biased = biased or (getattr(layer, "bias", None) is not None and np.any(layer.bias))
    return -(-total // net.timesteps)


def _one(drive: HostDrive, image: int) -> HostDrive:
    return drive.along_batch(lambda tensor: tensor[:, image : image + 1])


def _joined(results: list[LavaResult], net: DeployedNetwork) -> LavaResult:
    """One result of the runs of one image each."""
    records = [r.record for r in results]

    def cat(tensors, dim=1):
        return None if tensors[0] is None else torch.cat(tensors, dim=dim)

    record = SpikeRecord(
        spikes=[cat(list(layer)) for layer in zip(*(r.spikes for r in records), strict=True)],
        readout=cat([r.readout for r in records], dim=0),
        frames=cat([r.frames for r in records]),
        input_spikes=cat([r.input_spikes for r in records]),
    )
    return LavaResult(
        record=record,
        predictions=net.class_scores(record).argmax(dim=1),
        build_seconds=sum(r.build_seconds for r in results),
        run_seconds=sum(r.run_seconds for r in results),
    )


def _spaced(drive: HostDrive, gap: int) -> HostDrive:
    """``drive`` with ``gap`` samples of zeros after every sample."""

    def spread(tensor: torch.Tensor) -> torch.Tensor:
        spaced = tensor.new_zeros((tensor.shape[0], tensor.shape[1] * (gap + 1), *tensor.shape[2:]))
        spaced[:, :: gap + 1] = tensor
        return spaced

    return drive.along_batch(spread)


def _unspaced(result: LavaResult, net: DeployedNetwork, count: int, gap: int) -> LavaResult:
    """The images' own results of a run spaced by :func:`_spaced`."""
    keep = torch.arange(count) * (gap + 1)
    record = result.record

    def pick(tensor):
        return None if tensor is None else tensor[:, keep]

    record = SpikeRecord(
        spikes=[pick(s) for s in record.spikes],
        readout=record.readout[keep],
        frames=pick(record.frames),
        input_spikes=pick(record.input_spikes),
    )
    return LavaResult(
        record=record,
        predictions=net.class_scores(record).argmax(dim=1),
        build_seconds=result.build_seconds,
        run_seconds=result.run_seconds,
    )


def _drive_frames(drive: HostDrive, image: int, ring: np.ndarray) -> np.ndarray:
    """The T frames of image ``image``'s drive, int32, in the ring's Lava order: (T, W, H, C),
    or flattened C-major (T, n) for a port that takes a flattened map (a first dense layer
    after a flatten: netx's flatten order)."""
    frames = drive.steps(ring.shape[0])[:, image].numpy()  # (T, C, H, W) or (T, n)
    frames = frames.reshape(len(frames), -1) if ring.ndim == 2 else swap_xy_c(frames)
    return np.ascontiguousarray(frames).astype(np.int32)


def _run(
    net: DeployedNetwork, path: Path, drive: HostDrive, folder: Path, progress: bool
) -> LavaResult:
    netx = import_netx()  # before anything imports lava
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import Read

    from hw_sim.lava.processes import (
        FrameSink,
        FrameSource,
        frames_file,
        model_map,
        refractory_layers,
    )

    started = time.perf_counter()
    T = net.timesteps
    recorder = _Recorder(net, drive.batch)
    periods = {  # file layer index → refractory period, for the layers that have one
        index: layer.neuron.refractory
        for index, layer in net.neuron_layers
        if layer.neuron.refractory > 1
    }
    with refractory_layers(periods):
        lava_net = netx.hdf5.Network(
            net_config=str(path), reset_interval=T, reset_offset=recorder.lead
        )
    lava_net.net_config.f.close()  # netx leaves the file open; every layer is built by now
    if len(lava_net.layers) != recorder.depth:
        raise DeployError(f"netx built {len(lava_net.layers)} layers, expected {recorder.depth}")
    # the drive enters the input neurons' a_in, or spikes the first layer's synapses
    target = lava_net.in_layer.inp if recorder.lead else lava_net.in_layer.neuron.a_in
    source = FrameSource(shape=target.shape, path=folder / "drive.npy")
    ring = frames_file(folder / "drive.npy", T, target.shape)
    ring[:] = _drive_frames(drive, 0, ring)
    source.s_out.connect(target)
    sinks, rings = [], []
    for k in recorder.spiking:
        layer = lava_net.layers[k]
        rings.append(frames_file(folder / f"spikes{k}.npy", T, layer.out.shape))
        sinks.append(FrameSink(shape=layer.out.shape, path=folder / f"spikes{k}.npy"))
        layer.out.connect(sinks[-1].a_in)
    reader = Read(buffer=1, interval=T, offset=recorder.read_offset)
    reader.connect_var(lava_net.out_layer.neuron.v)
    neurons = [layer.neuron for layer in lava_net.layers]
    run_cfg = Loihi2SimCfg(
        select_tag="fixed_pt", exception_proc_model_map=model_map([source, *sinks, *neurons])
    )

    die_with_parent()
    bar = tqdm(total=recorder.count, unit="image", desc="lava", disable=not progress)
    with DeferredSignals() as signals:  # before the runtime forks its processes
        try:
            lava_net.create_runtime(run_cfg=run_cfg)
            build_seconds = time.perf_counter() - started
            with RuntimeWatchdog():
                _steps(lava_net, recorder, rings, reader, ring, drive, signals, bar, RunSteps)
        finally:
            bar.close()
            lava_net.stop()
    record = recorder.record(net, drive)
    return LavaResult(
        record=record,
        predictions=net.class_scores(record).argmax(dim=1),
        build_seconds=build_seconds,
        run_seconds=time.perf_counter() - started - build_seconds,
    )


def _steps(lava_net, recorder, rings, reader, ring, drive, signals, bar, run_steps) -> None:
    """Advance the pipelined run chunk by chunk of T steps: read the sinks and the readout,
    then write the next image's drive (zeros once every image is in)."""
    T, done = recorder.timesteps, 0
    while done < recorder.total_steps:
        signals.checkpoint()
        steps = min(T, recorder.total_steps - done)
        lava_net.run(condition=run_steps(num_steps=steps))
        for k, spikes in zip(recorder.spiking, rings, strict=True):
            recorder.store_spikes(k, spikes, done + 1, done + steps)
        read_step = done + 1 + (recorder.read_offset - done) % T
        if read_step <= done + steps and (
            recorder.store_readout(reader.data.get()[..., 0], read_step) is not None
        ):
            bar.update(1)
        done += steps
        image = done // T  # the next chunk is this image's input window
        if done < recorder.total_steps:
            ring[:] = _drive_frames(drive, image, ring) if image < recorder.count else 0
