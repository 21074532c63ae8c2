"""Energy models: per-operation costs (pJ) applied to :class:`OpCounts`, ANN against SNN.

Per layer and image, with the counts of :mod:`hw_sim.op_counter`::

    E_ANN = ann_macs · (mac + ann_memory)
    E_SNN = host_macs · (host_mac + ann_memory) + host_acs · (host_ac + ac_memory)
          + synaptic_events · (ac + ac_memory)
          + active_updates · neuron_active + (updates − active_updates) · neuron_inactive
          + updates · neuron_memory + spikes · spike

Every model is an :class:`EnergyModel` value whose :meth:`EnergyModel.describe` states its
constants, units and sources (the catalogue is :mod:`hw_sim.energy_models`); a cost a model
leaves at 0 is not counted by it. The ratio of a report is E_ANN / E_SNN.
"""

from __future__ import annotations

from dataclasses import dataclass

from dietsnn_deploy.errors import DeployError
from hw_sim.energy_models import FP32_ADD, FP32_MAC, EnergyModel, get_model
from hw_sim.op_counts import LayerCounts, OpCounts


def format_ratio(ratio: float | None) -> str:
    """E_ANN / E_SNN as ``12.40×`` (``—`` when the SNN side costs nothing)."""
    return "—" if ratio is None else f"{ratio:.2f}×"


@dataclass(frozen=True)
class LayerEnergy:
    """Energy of one layer per image, pJ; ``snn_parts`` splits E_SNN by operation."""

    name: str
    ann_pj: float
    snn_pj: float
    snn_parts: dict[str, float]

    @property
    def ratio(self) -> float | None:
        """E_ANN / E_SNN, None when the SNN layer costs nothing."""
        return self.ann_pj / self.snn_pj if self.snn_pj else None


@dataclass(frozen=True)
class EnergyReport:
    """Per-layer and total energy per image (pJ) under one model; ratio = E_ANN / E_SNN."""

    model: str
    constants: dict[str, float]
    sources: str
    layers: tuple[LayerEnergy, ...]

    @property
    def ann_pj(self) -> float:
        return sum(layer.ann_pj for layer in self.layers)

    @property
    def snn_pj(self) -> float:
        return sum(layer.snn_pj for layer in self.layers)

    @property
    def ratio(self) -> float | None:
        return self.ann_pj / self.snn_pj if self.snn_pj else None


def layer_energy(model: EnergyModel, counts: LayerCounts) -> LayerEnergy:
    """E_ANN and E_SNN of one layer per image (module doc), with the SNN's parts."""
    inactive = counts.neuron_updates - counts.active_neuron_updates
    parts = {
        "host_mac": counts.host_macs * (model.host_mac_pj + model.ann_memory_pj),
        "host_ac": counts.host_acs * (model.host_ac_pj + model.ac_memory_pj),
        "synaptic": counts.synaptic_events * (model.ac_pj + model.ac_memory_pj),
        "neuron": counts.active_neuron_updates * model.neuron_active_pj
        + inactive * model.neuron_inactive_pj
        + counts.neuron_updates * model.neuron_memory_pj,
        "spike": counts.spikes * model.spike_pj,
    }
    return LayerEnergy(
        name=counts.name,
        ann_pj=counts.ann_macs * (model.mac_pj + model.ann_memory_pj),
        snn_pj=sum(parts.values()),
        snn_parts=parts,
    )


def energy(model: EnergyModel | str, counts: OpCounts) -> EnergyReport:
    """Apply ``model`` (or its name) to per-image ``counts``."""
    if isinstance(model, str):
        model = get_model(model)
    return EnergyReport(
        model=model.name,
        constants=model.constants(),
        sources=model.sources,
        layers=tuple(layer_energy(model, layer) for layer in counts.layers),
    )


def table3_ratio(snn_ops: float, first_layer_share: float) -> float:
    """The paper's Table 3 closed form E_ANN / E_SNN = 4.6 / (c·4.6 + (1 − c)·b·0.9), pJ per op
    (Horowitz 45 nm): b = normalised SNN ops (per ANN MAC after the first layer), c = the first
    layer's share of the ANN MACs (computed as MACs in both networks)."""
    denominator = first_layer_share * FP32_MAC + (1 - first_layer_share) * snn_ops * FP32_ADD
    return FP32_MAC / denominator if denominator else float("inf")


def normalised_counts(snn_ops: float, first_layer_share: float) -> OpCounts:
    """The paper's closed form as counts: an ANN of 1 MAC whose first layer holds the share c
    (computed as MACs in both networks) and whose other layers cost b·(1 − c) ACs in the SNN.
    Under paper-45nm the ratio is 4.6 / (c·4.6 + (1 − c)·b·0.9)."""
    if not 0 <= first_layer_share <= 1 or snn_ops < 0:
        raise DeployError("need 0 ≤ first_layer_share ≤ 1 and snn_ops ≥ 0")
    c, rest = first_layer_share, 1 - first_layer_share

    def row(name, kind, ann, host, events) -> LayerCounts:
        return LayerCounts(
            name, kind, 0, 1, 0.0, events, events, ann, host, 0.0, 0.0, (0.0,), (events,)
        )

    layers = (row("first", "input", c, c, 0.0), row("rest", "dense", rest, 0.0, snn_ops * rest))
    return OpCounts(layers=layers, num_images=1, timesteps=1, notes=("normalised: ANN = 1",))
