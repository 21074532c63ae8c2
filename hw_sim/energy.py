"""Energy models: per-operation costs (pJ) applied to :class:`OpCounts`, ANN against SNN.

Per layer and image, with the counts of :mod:`hw_sim.op_counter`::

    E_ANN = ann_macs · (mac + ann_memory)
    E_SNN = host_macs · (host_mac + ann_memory) + synaptic_events · (ac + ac_memory)
          + active_updates · neuron_active + (updates − active_updates) · neuron_inactive
          + updates · neuron_memory + spikes · spike

Every model is a frozen dataclass whose docstring and :meth:`EnergyModel.describe` state its
constants, units and sources; a cost a model leaves at 0 is not counted by it. The ratio of a
report is E_ANN / E_SNN.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from dietsnn_deploy.errors import DeployError
from hw_sim.op_counter import LayerCounts, OpCounts

# Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm, 0.9 V (pJ)
FP32_MULT, FP32_ADD, FP32_MAC = 3.7, 0.9, 4.6  # MAC = mult + add
FP16_MULT, FP16_ADD, FP16_MAC = 1.1, 0.4, 1.5
INT8_MULT, INT8_ADD, INT8_MAC = 0.2, 0.03, 0.23
SRAM_8KB_64BIT = 10.0  # one 64-bit access to an 8 KB cache


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation in pJ; fields left at 0 are not part of the model."""

    name: str = ""
    mac_pj: float = 0.0  # one ANN multiply-accumulate
    ac_pj: float = 0.0  # one SNN synaptic event (accumulate)
    host_mac_pj: float = 0.0  # one MAC of the analog first layer, computed on the host
    neuron_active_pj: float = 0.0  # neuron update in a step with input
    neuron_inactive_pj: float = 0.0  # neuron update in a step without input
    spike_pj: float = 0.0  # one emitted spike
    ann_memory_pj: float = 0.0  # memory traffic per ANN (and host) MAC
    ac_memory_pj: float = 0.0  # memory traffic per synaptic event
    neuron_memory_pj: float = 0.0  # memory traffic per neuron update
    sources: str = ""

    def constants(self) -> dict[str, float]:
        """The non-zero per-operation costs, pJ."""
        return {
            f.name: v
            for f in fields(self)
            if (v := getattr(self, f.name)) and f.name.endswith("_pj")
        }

    def describe(self) -> str:
        """One line per constant, then the model's sources and assumptions."""
        lines = [f"energy model {self.name} (pJ per operation)"]
        lines += [f"  {key[:-3]:<18} {value:g} pJ" for key, value in self.constants().items()]
        return "\n".join([*lines, f"  sources: {self.sources}"])

    def layer_energy(self, counts: LayerCounts) -> LayerEnergy:
        """E_ANN and E_SNN of one layer per image (module doc), with the SNN's parts."""
        inactive = counts.neuron_updates - counts.active_neuron_updates
        parts = {
            "host_mac": counts.host_macs * (self.host_mac_pj + self.ann_memory_pj),
            "synaptic": counts.synaptic_events * (self.ac_pj + self.ac_memory_pj),
            "neuron": counts.active_neuron_updates * self.neuron_active_pj
            + inactive * self.neuron_inactive_pj
            + counts.neuron_updates * self.neuron_memory_pj,
            "spike": counts.spikes * self.spike_pj,
        }
        return LayerEnergy(
            name=counts.name,
            ann_pj=counts.ann_macs * (self.mac_pj + self.ann_memory_pj),
            snn_pj=sum(parts.values()),
            snn_parts=parts,
        )


@dataclass(frozen=True)
class Paper45nm(EnergyModel):
    """The DIET-SNN paper's model (Table 3): 45 nm fp32, MAC 4.6 pJ = mult 3.7 + add 0.9,
    AC 0.9 pJ (Horowitz 2014); the analog first layer costs MACs. Compute only: no memory,
    no neuron updates, no spike routing."""

    name: str = "paper-45nm"
    mac_pj: float = FP32_MAC
    ac_pj: float = FP32_ADD
    host_mac_pj: float = FP32_MAC
    sources: str = (
        "Horowitz ISSCC 2014, 45 nm fp32: mult 3.7 + add 0.9 pJ; DIET-SNN Table 3 model "
        "(first layer as MACs); compute only, no memory, neuron updates or routing"
    )


@dataclass(frozen=True)
class HorowitzInt8(EnergyModel):
    """Same counts, 45 nm int8 rows of Horowitz 2014: MAC 0.23 pJ = mult 0.2 + add 0.03,
    AC 0.03 pJ (8-bit add). Compute only."""

    name: str = "horowitz-int8"
    mac_pj: float = INT8_MAC
    ac_pj: float = INT8_ADD
    host_mac_pj: float = INT8_MAC
    sources: str = (
        "Horowitz ISSCC 2014, 45 nm int8: mult 0.2 + add 0.03 pJ (8-bit accumulate assumed); "
        "compute only"
    )


@dataclass(frozen=True)
class HorowitzFp16(EnergyModel):
    """Same counts, 45 nm fp16 rows of Horowitz 2014: MAC 1.5 pJ = mult 1.1 + add 0.4,
    AC 0.4 pJ. Compute only."""

    name: str = "horowitz-fp16"
    mac_pj: float = FP16_MAC
    ac_pj: float = FP16_ADD
    host_mac_pj: float = FP16_MAC
    sources: str = "Horowitz ISSCC 2014, 45 nm fp16: mult 1.1 + add 0.4 pJ; compute only"


@dataclass(frozen=True)
class Loihi(EnergyModel):
    """Loihi (Davies et al., IEEE Micro 2018, Table 2; 14 nm, pre-silicon): synaptic op
    23.6 pJ, neuron update 81 pJ with input / 52 pJ without, spike 1.7 pJ (within tile; tile
    hops not counted). The analog first layer runs on the host at 45 nm fp32 (4.6 pJ/MAC),
    and the ANN baseline is 45 nm fp32 too, so technology nodes differ."""

    name: str = "loihi"
    mac_pj: float = FP32_MAC
    ac_pj: float = 23.6
    host_mac_pj: float = FP32_MAC
    neuron_active_pj: float = 81.0
    neuron_inactive_pj: float = 52.0
    spike_pj: float = 1.7
    sources: str = (
        "Davies et al. IEEE Micro 2018 Table 2 (14 nm): synaptic op 23.6, neuron update "
        "81 active (step with input) / 52 inactive, spike 1.7 pJ within tile, hops not "
        "counted; host first layer and ANN baseline at Horowitz 45 nm fp32 4.6 pJ/MAC"
    )


WORD_BITS = 32  # fp32 weights, activations and membrane potentials
_ACCESS = SRAM_8KB_64BIT * WORD_BITS / 64  # one 32-bit word from an 8 KB SRAM: 5 pJ


@dataclass(frozen=True)
class Paper45nmMemory(EnergyModel):
    """paper-45nm plus memory traffic (Lemaire et al. 2022 style), 32-bit words read from an
    8 KB SRAM at 10 pJ per 64-bit access (Horowitz 2014), i.e. 5 pJ per word, no reuse:
    per synaptic event a weight read + membrane read + write (15 pJ); per neuron update a
    membrane read + write (10 pJ); per ANN or host MAC a weight + activation read (10 pJ).
    Not counted: output writes, spike/address traffic, DRAM, leak and compare arithmetic."""

    name: str = "paper-45nm+memory"
    mac_pj: float = FP32_MAC
    ac_pj: float = FP32_ADD
    host_mac_pj: float = FP32_MAC
    ann_memory_pj: float = 2 * _ACCESS
    ac_memory_pj: float = 3 * _ACCESS
    neuron_memory_pj: float = 2 * _ACCESS
    sources: str = (
        "paper-45nm compute + Horowitz 2014 8 KB SRAM 10 pJ per 64-bit access, 32-bit words "
        "(5 pJ each), no reuse: AC + weight read + membrane read/write; neuron update + "
        "membrane read/write; ANN/host MAC + weight and activation reads; output writes, "
        "spike routing, DRAM and leak/compare arithmetic not counted"
    )


MODELS: dict[str, EnergyModel] = {
    m.name: m for m in (Paper45nm(), HorowitzInt8(), HorowitzFp16(), Loihi(), Paper45nmMemory())
}
DEFAULT_MODEL = "paper-45nm"


def get_model(name: str) -> EnergyModel:
    """The energy model called ``name`` (see :data:`MODELS`)."""
    if name not in MODELS:
        raise DeployError(f"unknown energy model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name]


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


def energy(model: EnergyModel | str, counts: OpCounts) -> EnergyReport:
    """Apply ``model`` (or its name) to per-image ``counts``."""
    if isinstance(model, str):
        model = get_model(model)
    return EnergyReport(
        model=model.name,
        constants=model.constants(),
        sources=model.sources,
        layers=tuple(model.layer_energy(layer) for layer in counts.layers),
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
