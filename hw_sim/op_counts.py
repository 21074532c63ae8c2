"""Per-image operation counts of a deployed network's layers: the records the op counter
fills and the energy models price.

Per neuron layer and image:

- ``synaptic_events`` (ACs): for every spike of the layer feeding it, that neuron's true
  fan-out into this layer on the folded geometry that runs on chip (padding, stride and
  borders exact); flatten is transparent; zero weights still count.
- ``ann_macs``: eq. 16 of the paper for the same layer as an ANN, on the original geometry.
- ``host_macs``: the analog first layer's MACs on the host, once per analog input frame (once
  per image for direct input: the drive is reused at every step); ``host_acs``: the host's
  accumulates on binary input frames (one per non-zero input pixel and synapse, as for spikes).
- ``neuron_updates`` = neurons × T; ``active_neuron_updates`` counts those with input in that
  step (≥ 1 synaptic event; the input layer's drive makes all of its updates active).
- ``spike_rate`` = spikes over all T steps / neurons (eq. 18).
- ``eq17_ops``: the paper's eq. 17 count of the same layer, the spike rate of the layer feeding
  it × its ANN MACs (for the input layer: of the binary input frames). Not an event count:
  after a k×k pool it is about k² times lower than ``synaptic_events`` (a pooled input of 1/k²
  counts as 1/k² of an op), and it ignores padding; it is what the paper's Table 3 reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_sim.counting_plan import Kind

#: how the host's first layer is priced (networks with a host encoder)
HOST_NOTE = (
    "host MACs of the analog first layer are counted once per analog input frame: for direct "
    "input counted once per image (the drive is computed once and reused at every step); "
    "binary input frames cost the host one accumulate per non-zero pixel and synapse"
)
NOTES = (
    HOST_NOTE,
    "synaptic events = Σ spikes × structural fan-out on the folded (deployed) geometry; "
    "padding excluded, zero weights included",
    "ANN MACs (eq. 16) on the original, unfolded geometry",
    "input-layer neuron updates all count as active (drive at every step)",
)
#: the conventions of every network; a network's own follow (counting_plan.network_notes)
GENERAL_NOTES = NOTES[1:]


@dataclass(frozen=True)
class LayerCounts:
    """Per-image operation counts of one neuron layer (see module doc for each field)."""

    name: str
    kind: Kind
    neurons: int
    timesteps: int
    spikes: float
    synaptic_events: float
    eq17_ops: float
    ann_macs: float
    host_macs: float
    neuron_updates: float
    active_neuron_updates: float
    spikes_per_step: tuple[float, ...]
    events_per_step: tuple[float, ...]
    host_acs: float = 0.0
    spiking: bool = True  # False for a non-spiking readout (its spikes are not recorded)

    @property
    def spike_rate(self) -> float:
        """Spikes per neuron over all T steps (eq. 18)."""
        return self.spikes / self.neurons if self.neurons else 0.0


@dataclass(frozen=True)
class OpCounts:
    """Per-image counts of every neuron layer, averaged over ``num_images``."""

    layers: tuple[LayerCounts, ...]
    num_images: int
    timesteps: int
    notes: tuple[str, ...] = NOTES

    def total(self) -> LayerCounts:
        """Sums over layers; ``neurons`` counts spiking layers only, so spike_rate is theirs."""

        def add(field: str) -> float:
            return sum(getattr(layer, field) for layer in self.layers)

        def add_steps(field: str) -> tuple[float, ...]:
            return tuple(float(x) for x in np.sum([getattr(c, field) for c in self.layers], 0))

        return LayerCounts(
            name="total",
            kind="total",
            neurons=sum(c.neurons for c in self.layers if c.spiking),
            timesteps=self.timesteps,
            spikes=add("spikes"),
            synaptic_events=add("synaptic_events"),
            eq17_ops=add("eq17_ops"),
            ann_macs=add("ann_macs"),
            host_macs=add("host_macs"),
            host_acs=add("host_acs"),
            neuron_updates=add("neuron_updates"),
            active_neuron_updates=add("active_neuron_updates"),
            spikes_per_step=add_steps("spikes_per_step"),
            events_per_step=add_steps("events_per_step"),
        )

    @property
    def first_layer_share(self) -> float:
        """The paper's c: share of the ANN's MACs in the analog first layer."""
        total = sum(c.ann_macs for c in self.layers)
        return sum(c.host_macs for c in self.layers) / total if total else 0.0

    @property
    def normalised_snn_ops(self) -> float:
        """The paper's b: accumulates (synaptic events, and the host's on binary input frames)
        per ANN MAC outside the analog first layer."""
        return self._per_spiking_ann_mac("synaptic_events") + self._per_spiking_ann_mac("host_acs")

    @property
    def normalised_eq17_ops(self) -> float:
        """The paper's b as its eq. 17 counts it (Σ input spike rate × ANN MACs), per ANN MAC
        over the layers after the first."""
        return self._per_spiking_ann_mac("eq17_ops")

    def _per_spiking_ann_mac(self, field: str) -> float:
        rest = sum(c.ann_macs - c.host_macs for c in self.layers)
        return sum(getattr(c, field) for c in self.layers) / rest if rest else 0.0
