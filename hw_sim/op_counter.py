"""Event-driven operation counts of a deployed network, from the spikes that actually happen.

:class:`OpCounter` adds up, batch by batch, the :class:`~dietsnn_deploy.spine.record.SpikeRecord`
of any run (emulator, Lava, or a float model laid out on a deployed network's plan) on a
:func:`~hw_sim.counting_plan.counting_plan`, and gives per-image :class:`OpCounts`
(:mod:`hw_sim.op_counts` defines each count). It needs nothing but the plan and the spikes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.network import DeployedNetwork
from dietsnn_deploy.spine.record import SpikeRecord
from hw_sim.counting_plan import (
    INPUT_SPIKES,
    ConvGeometry,
    DenseGeometry,
    LayerGeometry,
    counting_plan,
    network_notes,
)
from hw_sim.op_counts import GENERAL_NOTES, NOTES, LayerCounts, OpCounts

__all__ = ["ConvGeometry", "DenseGeometry", "LayerGeometry", "OpCounter", "counting_plan"]


class _LayerSpikes:
    """One batch of one layer's spikes and the reductions the counter needs, each made once
    (reductions run on a uint8 view: much faster than on bool)."""

    def __init__(self, spikes: torch.Tensor) -> None:
        spikes = spikes if spikes.dtype == torch.bool else spikes != 0
        self.steps, self.batch = spikes.shape[:2]
        self.bytes = spikes.view(torch.uint8)

    @cached_property
    def per_pixel(self) -> torch.Tensor:
        """(T, H, W) int64: spikes summed over batch and channels (3-D layers)."""
        return self.bytes.sum(dim=(1, 2), dtype=torch.int64)

    @cached_property
    def per_step(self) -> torch.Tensor:
        """(T,) int64 spike totals."""
        if self.bytes.ndim == 5:
            return self.per_pixel.sum(dim=(1, 2))
        return self.bytes.reshape(self.steps, -1).sum(dim=1, dtype=torch.int64)

    @cached_property
    def samples_with_spikes(self) -> torch.Tensor:
        """(T,) int64: samples with at least one spike in the step."""
        flat = self.bytes.reshape(self.steps, self.batch, -1)
        return flat.amax(dim=2).sum(dim=1, dtype=torch.int64)

    @cached_property
    def any_channel(self) -> torch.Tensor:
        """(T·B, 1, H, W) float: 1 where any channel spiked (3-D layers)."""
        h, w = self.bytes.shape[-2:]
        return self.bytes.amax(dim=2).reshape(self.steps * self.batch, 1, h, w).float()


class OpCounter:
    """Accumulates counts over batches: ``counter.add(record)`` per batch, then ``result()``."""

    def __init__(
        self, plan: Sequence[LayerGeometry], timesteps: int, notes: tuple[str, ...] = ()
    ) -> None:
        if timesteps < 1:
            raise DeployError(f"timesteps must be ≥ 1, got {timesteps}")
        self.plan, self.timesteps = list(plan), timesteps
        hosted = self.plan[0].frames is not None  # a host encoder computes the first layer
        self.notes = (NOTES if hosted else GENERAL_NOTES) + notes  # general, then the network's
        self.shapes = {g.index: g.shape for g in self.plan}
        self.fan_out = {
            g.index: torch.from_numpy(g.synapse.fan_out_map())
            for g in self.plan
            if isinstance(g.synapse, ConvGeometry)
        }
        zeros = [np.zeros(timesteps, np.int64) for _ in self.plan]
        self.spikes = [z.copy() for z in zeros]
        self.events = [z.copy() for z in zeros]
        self.active = [z.copy() for z in zeros]
        self.host_acs = np.zeros(timesteps, np.int64)
        self.input_spikes = 0  # non-zero binary input frame pixels, or spikes from off chip
        first = self.plan[0]
        self.input_size = 1 if first.frames is None else int(np.prod(first.frames.in_shape))
        self.binary_steps = [t for t, kind in enumerate(first.step_kinds) if kind == "binary"]
        self.frame_fan_out = (
            torch.from_numpy(first.frames.fan_out_map()) if self.binary_steps else None
        )
        self.num_images = 0

    @classmethod
    def for_network(cls, net: DeployedNetwork) -> OpCounter:
        plan = counting_plan(net)
        return cls(plan, net.timesteps, network_notes(net, plan))

    def add(self, record: SpikeRecord) -> None:
        """Count one batch of spikes (T, B, *shape) per layer, bool or 0/1."""
        views: dict[int, _LayerSpikes] = {}

        def spikes(index: int) -> _LayerSpikes:
            if index not in views:
                views[index] = _LayerSpikes(self._spikes(record, index))
            return views[index]

        first = self.plan[0]
        batch = spikes(first.source if first.source == INPUT_SPIKES else first.index).batch
        if self.binary_steps:
            self._count_frames(record.frames, batch)
        if record.input_spikes is not None:
            self.input_spikes += int(record.input_spikes.sum())
            self.input_size = int(np.prod(record.input_spikes.shape[2:]))
        for row, geometry in enumerate(self.plan):
            if geometry.spiking:
                self.spikes[row] += spikes(geometry.index).per_step.cpu().numpy()
            if geometry.source is None:  # driven by the host's bias at every step
                self.active[row] += geometry.neurons * batch
                continue
            source = spikes(geometry.source)
            if source.batch != batch:
                raise DeployError(f"layer {geometry.source}: batch {source.batch}, not {batch}")
            events, active = self._synapse_counts(geometry, source)
            self.events[row] += events
            self.active[row] += active
        self.num_images += batch

    def _count_frames(self, frames: torch.Tensor | None, batch: int) -> None:
        """Host accumulates of the binary input frames: Σ |frame| × pixel fan-out per step."""
        geometry = self.plan[0].frames
        expected = (self.timesteps, batch, *geometry.in_shape)
        if frames is None or tuple(frames.shape) != expected:
            shape = None if frames is None else tuple(frames.shape)
            raise DeployError(f"the spike record's input frames are {shape}, expected {expected}")
        for t in self.binary_steps:
            per_pixel = frames[t].abs().sum(dim=(0, 1))  # (H, W): inputs at each position
            fan_out = self.frame_fan_out.to(per_pixel.device)
            self.host_acs[t] += int((per_pixel.double() * fan_out).sum())
            self.input_spikes += int(frames[t].abs().sum())

    def _spikes(self, record: SpikeRecord, index: int) -> torch.Tensor:
        """Layer ``index``'s spikes (T, B, *shape), checked against the plan (the input
        spikes from off chip for INPUT_SPIKES)."""
        if index == INPUT_SPIKES:
            if record.input_spikes is None:
                raise DeployError("the spike record holds no input spikes")
            if record.input_spikes.shape[0] != self.timesteps:
                raise DeployError(f"input spikes: {record.input_spikes.shape[0]} steps")
            return record.input_spikes
        if index >= len(record.spikes) or record.spikes[index] is None:
            raise DeployError(f"spike record has no spikes for layer {index}")
        spikes, shape = record.spikes[index], self.shapes[index]
        if spikes.ndim != len(shape) + 2 or tuple(spikes.shape[2:]) != shape:
            raise DeployError(
                f"layer {index}: spikes {tuple(spikes.shape)} are not (T, B, {shape})"
            )
        if spikes.shape[0] != self.timesteps:
            raise DeployError(f"layer {index}: {spikes.shape[0]} steps, expected {self.timesteps}")
        return spikes

    def _synapse_counts(self, geometry: LayerGeometry, source: _LayerSpikes):
        """(events per step, active updates per step) for one batch of source spikes."""
        synapse = geometry.synapse
        if isinstance(synapse, DenseGeometry):
            events = source.per_step.cpu().numpy() * synapse.out_features
            return events, source.samples_with_spikes.cpu().numpy() * synapse.out_features
        fan_out = self.fan_out[geometry.index].to(source.bytes.device)
        events = (source.per_pixel * fan_out).sum(dim=(1, 2)).cpu().numpy()
        window = torch.ones((1, 1, *synapse.kernel), device=source.bytes.device)
        reached = F.conv2d(
            source.any_channel, window, stride=synapse.stride, padding=synapse.padding
        )
        positions = (reached > 0).reshape(self.timesteps, -1).sum(dim=1).cpu().numpy()
        return events, positions * synapse.out_shape[0]

    def result(self) -> OpCounts:
        """Per-image averages of everything added so far."""
        if self.num_images == 0:
            raise DeployError("no spikes were counted (add at least one batch)")
        n = self.num_images
        input_rate = self.input_spikes / n / self.input_size
        rate = {
            g.index: float(spikes.sum()) / n / g.neurons
            for g, spikes in zip(self.plan, self.spikes, strict=True)
        }
        rate[INPUT_SPIKES] = input_rate
        rows = []
        for g, spikes, events, active in zip(
            self.plan, self.spikes, self.events, self.active, strict=True
        ):
            rows.append(
                LayerCounts(
                    name=g.name,
                    kind=g.kind,
                    spiking=g.spiking,
                    neurons=g.neurons,
                    timesteps=self.timesteps,
                    spikes=float(spikes.sum()) / n,
                    synaptic_events=float(events.sum()) / n,
                    eq17_ops=(input_rate if g.source is None else rate[g.source]) * g.ann_macs,
                    ann_macs=float(g.ann_macs),
                    host_macs=float(g.host_macs),
                    host_acs=float(self.host_acs.sum()) / n if g.source is None else 0.0,
                    neuron_updates=float(g.neurons * self.timesteps),
                    active_neuron_updates=float(active.sum()) / n,
                    spikes_per_step=tuple(float(x) / n for x in spikes),
                    events_per_step=tuple(float(x) / n for x in events),
                )
            )
        return OpCounts(layers=tuple(rows), num_images=n, timesteps=self.timesteps,
                        notes=self.notes)  # fmt: skip
