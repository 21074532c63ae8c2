"""Bit-exact, batched PyTorch emulation of Lava's fixed-point run of a :class:`DeployedNetwork`.

Each layer's synaptic input is computed for all T steps and the whole batch at once
(:mod:`hw_sim.synapses`: Lava's integer conv and dense arithmetic), then its neurons step
through T with their neuron model's fixed-point step (:mod:`dietsnn_deploy.spine.neurons`)::

    input layer:  c[t] = drive[t] << 6                    the host's drive (constant or per step)
    other layers: c[t] = wrap1(a_in[t] << 6)              a_in from the previous layer's spikes

A :class:`~dietsnn_deploy.spine.network.SpikeInput` network's binary input spikes make its
input layer's drive (through the input transform), or, without an input layer, are what its
first layer's synapses take (:func:`hw_sim.host.network_drive`).

``wrap1`` is Lava's single 24-bit wrap of the current (x − 2²⁴ if x > 2²³, x + 2²⁴ if
x ≤ −2²³), skipped where the synapse's L1 bound proves it the identity; a layer whose
current decays (iDecay < 4096) gets ``a_in << 6`` unwrapped and its neuron model wraps the
decayed sum. A layer's bias enters its neurons as ``bias << 6`` every step. Layers run in the
delay-free schedule (layer k at step t sees layer k−1's spikes of step t), which is what Lava's
pipelined ``reset_interval`` run gives once re-aligned.

``saturate_a_in=True`` models what Lava's simulator does not: the chip's neuron input port
``a_in`` is 16 bits wide, so each step's synaptic input is clipped to [−2¹⁵, 2¹⁵ − 1] before
it enters the neuron; the record then counts, per layer, the neuron-steps that were clipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.loihi import (
    A_IN_MAX,
    A_IN_MIN,
    BIAS_MAX,
    DECAY_UNITY,
    STATE_SHIFT,
    U_WRAP,
    wrap_current,
)
from dietsnn_deploy.spine.network import (
    ConvLayer,
    DenseLayer,
    DeployedNetwork,
    FlattenLayer,
)
from dietsnn_deploy.spine.neurons import get_neuron_model
from dietsnn_deploy.spine.record import HostDrive, SpikeRasters, SpikeRecord
from dietsnn_deploy.spine.settings import check_memory
from hw_sim.host import network_drive
from hw_sim.synapses import ConvSynapse, DelayedDenseSynapse, DenseSynapse


class Emulator:
    """A :class:`DeployedNetwork` prepared for repeated emulation (weights converted once)."""

    def __init__(
        self,
        net: DeployedNetwork,
        *,
        saturate_a_in: bool = False,
        device: torch.device | str = "cpu",
    ) -> None:
        net.validate(netx_exact=False)
        self.net = net
        self.saturate_a_in = saturate_a_in
        self.device = torch.device(device)
        self.synapses: list[ConvSynapse | DenseSynapse | DelayedDenseSynapse | None] = []
        previous_shape = net.input_shape
        for index, layer in enumerate(net.layers):
            if isinstance(layer, ConvLayer):
                self.synapses.append(ConvSynapse(layer, self.device))
            elif isinstance(layer, DenseLayer):
                previous = net.layers[index - 1] if index else None
                unflat = previous.in_shape if isinstance(previous, FlattenLayer) else previous_shape
                kind = DenseSynapse if layer.delay is None else DelayedDenseSynapse
                self.synapses.append(kind(layer, tuple(unflat), self.device))
            else:
                self.synapses.append(None)
            previous_shape = tuple(layer.shape)
        self.biases = [
            None
            if getattr(layer, "bias", None) is None
            else torch.from_numpy(layer.bias_current()).to(self.device)
            for layer in net.layers
        ]
        self.models = [
            None if isinstance(layer, FlattenLayer) else get_neuron_model(layer.neuron.model)
            for layer in net.layers
        ]

    def bytes_per_image(self) -> int:
        """Memory one image needs in a batch: every layer's spikes (1 byte per neuron-step)
        plus the widest layer's int64 input, current and potential (24 bytes per neuron-step)."""
        sizes = [int(np.prod(layer.shape)) for layer in self.net.layers]
        return self.net.timesteps * (sum(sizes) + 24 * max(sizes))

    def run(self, drive: torch.Tensor | HostDrive, *, record: bool = True) -> SpikeRecord:
        """Emulate one batch; ``drive`` is the host's int64 drive: a :class:`HostDrive`, or a
        tensor (B, *input shape) for a drive constant over the T steps (a SpikeInput
        network without an input layer takes its 0/1 input spikes)."""
        host = self._check_drive(drive)
        layers, steps, batch = self.net.layers, self.net.timesteps, host.batch
        spikes = host.steps(steps)
        input_spikes = None if host.spikes is None else host.spikes.to(spikes.device).bool()
        recorded: list[torch.Tensor | None] = []
        saturated: list[int | None] = []
        v = None
        for index, (layer, synapse) in enumerate(zip(layers, self.synapses, strict=True)):
            if isinstance(layer, FlattenLayer):
                spikes = spikes.reshape(steps, batch, -1)
                recorded.append(None)
                saturated.append(None)
                continue
            if synapse is None:  # the input layer: its drive enters as bias_mant-scaled current
                current, clipped = spikes << STATE_SHIFT, None
            else:
                current, clipped = self._synaptic_current(layer, synapse, spikes)
            saturated.append(clipped)
            spikes, v = self._run_neurons(index, current)
            recorded.append(spikes if record and layer.neuron.spiking else None)
        return SpikeRecord(
            spikes=recorded,
            readout=v.reshape(batch, -1),
            frames=host.frames,
            saturated=saturated if self.saturate_a_in else None,
            input_spikes=input_spikes if record else None,
        )

    def _synaptic_current(self, layer, synapse, spikes: torch.Tensor):
        """(current (T, B, ...) = a_in << 6, wrapped where it can wrap; clipped count)."""
        a_in = synapse.over_time(spikes)
        clipped = self._saturate(a_in)
        current = a_in.bitwise_left_shift_(STATE_SHIFT)
        memoryless = layer.neuron.i_decay == DECAY_UNITY  # else the model wraps u itself
        if memoryless and synapse.bound << STATE_SHIFT >= U_WRAP:  # else wrap = identity
            current = wrap_current(current)
        return current, clipped

    def _saturate(self, a_in: torch.Tensor) -> int | None:
        """Clip ``a_in`` in place to int16 when saturating; the count of clipped values."""
        if not self.saturate_a_in:
            return None
        clipped = int(((a_in > A_IN_MAX) | (a_in < A_IN_MIN)).sum())
        a_in.clamp_(A_IN_MIN, A_IN_MAX)
        return clipped

    def _check_drive(self, drive: torch.Tensor | HostDrive) -> HostDrive:
        expected = self.net.input_shape
        host = drive if isinstance(drive, HostDrive) else None
        if host is None:
            if not isinstance(drive, torch.Tensor) or drive.ndim != len(expected) + 1:
                raise DeployError(f"drive must be a tensor (B, {expected})")
            host = HostDrive(drive=drive.unsqueeze(0))
        tensor = host.drive
        if tensor.ndim != len(expected) + 2 or tuple(tensor.shape[2:]) != expected:
            raise DeployError(f"drive shape {tuple(tensor.shape[2:])} != input layer {expected}")
        if tensor.shape[0] not in (1, self.net.timesteps):
            raise DeployError(
                f"drive has {tensor.shape[0]} steps, the network runs T = {self.net.timesteps}"
            )
        if tensor.dtype.is_floating_point or tensor.dtype == torch.bool:
            raise DeployError(f"drive must be integer (bias_mant), got {tensor.dtype}")
        tensor = tensor.to(device=self.device, dtype=torch.int64)
        if tensor.numel() and (tensor.max() > BIAS_MAX or tensor.min() < -BIAS_MAX - 1):
            raise DeployError(f"drive outside the 13-bit bias range [{-BIAS_MAX - 1}, {BIAS_MAX}]")
        if self.net.synaptic_input and tensor.numel() and (tensor.max() > 1 or tensor.min() < 0):
            raise DeployError("spike input must be 0 or 1 (binary spikes)")
        return HostDrive(drive=tensor, frames=host.frames, spikes=host.spikes)

    def _run_neurons(self, index: int, current: torch.Tensor):
        """Step layer ``index`` through T steps of ``current`` (T, B, ...) and its bias;
        returns (spikes, final v). The readout runs through the same rule: its threshold and
        reset apply as in Lava."""
        model, layer = self.models[index], self.net.layers[index]
        neuron = layer.neuron
        bias = self.biases[index]
        state = model.fixed_state(current[0], bias)
        spikes = torch.empty(current.shape, dtype=torch.bool, device=current.device)
        for t in range(current.shape[0]):
            spikes[t] = model.fixed_step(state, current[t], neuron)
        return spikes, state["v"]


def emulate(
    net: DeployedNetwork, drive: torch.Tensor | HostDrive, *, record: bool = True
) -> SpikeRecord:
    """Run one batch of host drive through ``net``; see :meth:`Emulator.run`."""
    return Emulator(net).run(drive, record=record)


@dataclass
class EmulatorResult:
    """Classification by the emulator: readout potentials and spike totals over all images.

    ``spike_counts[i]`` is layer i's spike total over all images and T steps (None for flatten
    and a non-spiking readout); ``readout`` holds the class scores
    (:meth:`DeployedNetwork.class_scores`: the readout potential, or its spike counts);
    ``predictions`` is the argmax of ``readout`` (lowest index on ties);
    ``saturated[i]`` counts layer i's neuron-steps whose a_in was clipped to int16 (None
    unless the run saturated a_in).
    """

    predictions: torch.Tensor  # (N,) int64
    readout: torch.Tensor  # (N, num_classes) int64
    spike_counts: list[int | None]
    num_images: int
    saturated: list[int | None] | None = None


def classify(
    net: DeployedNetwork,
    images: torch.Tensor | SpikeRasters,
    batch_size: int = 256,
    progress: bool = True,
    on_batch: Callable[[SpikeRecord], None] | None = None,
    *,
    seed: int = 0,
    saturate_a_in: bool = False,
    device: torch.device | str = "cpu",
) -> EmulatorResult:
    """Classify ``images`` (N, C, H, W), float pixels in [0, 1] before mean/std (the host
    normalises them, :func:`hw_sim.host.network_drive`), or a SpikeInput network's rasters,
    in batches; random input frames are drawn under ``seed``, image by image.

    ``on_batch(record)`` sees each batch's :class:`SpikeRecord` (e.g. an op counter's ``add``),
    so no caller has to hold all spikes.
    """
    if batch_size < 1:
        raise DeployError(f"batch_size must be ≥ 1, got {batch_size}")
    emulator = Emulator(net, saturate_a_in=saturate_a_in, device=device)
    batch = min(batch_size, max(len(images), 1))
    check_memory(
        emulator.bytes_per_image() * batch,
        f"emulating a batch of {batch} at T = {net.timesteps}",
        device=emulator.device,
    )
    readouts: list[torch.Tensor] = []
    counts: list[int | None] = [
        None if isinstance(layer, FlattenLayer) or not layer.neuron.spiking else 0
        for layer in net.layers
    ]
    clipped = np.zeros(len(net.layers), dtype=np.int64)
    starts = range(0, len(images), batch_size)
    # tqdm fixes multiprocessing's start method even when disabled, after which Lava cannot
    # be imported in this process: only build one when asked to show progress.
    for start in tqdm(starts, desc="emulate", unit="batch") if progress else starts:
        batch = images[start : start + batch_size]
        drive = network_drive(net, batch, seed=seed, first_index=start)
        record = emulator.run(drive, record=True)
        readouts.append(net.class_scores(record).cpu())
        for i, spikes in enumerate(record.spikes):
            if spikes is not None:
                counts[i] += int(spikes.sum())
        if record.saturated is not None:
            clipped += [0 if s is None else s for s in record.saturated]
        if on_batch is not None:
            on_batch(record)
    readout = (
        torch.cat(readouts) if readouts else torch.zeros((0, net.num_classes), dtype=torch.int64)
    )
    saturated = None
    if saturate_a_in:
        saturated = [
            None if emulator.synapses[i] is None else int(n) for i, n in enumerate(clipped)
        ]
    return EmulatorResult(
        predictions=readout.argmax(dim=1),
        readout=readout,
        spike_counts=counts,
        num_images=len(images),
        saturated=saturated,
    )
