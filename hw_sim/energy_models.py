"""Energy models: per-operation costs in pJ, and the catalogue of them.

An :class:`EnergyModel` is one value (its constants and sources); :data:`MODELS` lists them by
name. A new model is one more entry there. :mod:`hw_sim.energy` applies a model to op counts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from dietsnn_deploy.errors import DeployError

# Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm, 0.9 V (pJ)
FP32_MULT, FP32_ADD, FP32_MAC = 3.7, 0.9, 4.6  # MAC = mult + add
FP16_MULT, FP16_ADD, FP16_MAC = 1.1, 0.4, 1.5
INT8_MULT, INT8_ADD, INT8_MAC = 0.2, 0.03, 0.23
SRAM_8KB_64BIT = 10.0  # one 64-bit access to an 8 KB cache
DEFAULT_MODEL = "paper-45nm"


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation in pJ; fields left at 0 are not part of the model."""

    name: str = ""
    mac_pj: float = 0.0  # one ANN multiply-accumulate
    ac_pj: float = 0.0  # one SNN synaptic event (accumulate)
    host_mac_pj: float = 0.0  # one MAC of the analog first layer, computed on the host
    host_ac_pj: float = 0.0  # one accumulate of the first layer on a binary frame, on the host
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


WORD_BITS = 32  # fp32 weights, activations and membrane potentials
_ACCESS = SRAM_8KB_64BIT * WORD_BITS / 64  # one 32-bit word from an 8 KB SRAM: 5 pJ


def _compute_only(name: str, mac: float, add: float, sources: str) -> EnergyModel:
    """MACs (ANN, host) and accumulates (SNN, host on binary frames) at one technology point;
    no memory traffic, neuron updates or spike routing."""
    return EnergyModel(
        name=name, mac_pj=mac, ac_pj=add, host_mac_pj=mac, host_ac_pj=add, sources=sources
    )


MODELS: dict[str, EnergyModel] = {
    model.name: model
    for model in (
        # The DIET-SNN paper's Table 3 model: 45 nm fp32 MAC 4.6 = mult 3.7 + add 0.9 pJ.
        _compute_only(
            "paper-45nm",
            FP32_MAC,
            FP32_ADD,
            "Horowitz ISSCC 2014, 45 nm fp32: mult 3.7 + add 0.9 pJ; DIET-SNN Table 3 model "
            "(first layer as MACs); compute only, no memory, neuron updates or routing",
        ),
        _compute_only(
            "horowitz-int8",
            INT8_MAC,
            INT8_ADD,
            "Horowitz ISSCC 2014, 45 nm int8: mult 0.2 + add 0.03 pJ (8-bit accumulate "
            "assumed); compute only",
        ),
        _compute_only(
            "horowitz-fp16",
            FP16_MAC,
            FP16_ADD,
            "Horowitz ISSCC 2014, 45 nm fp16: mult 1.1 + add 0.4 pJ; compute only",
        ),
        # Loihi (Davies et al., IEEE Micro 2018, Table 2; 14 nm, pre-silicon); the host's first
        # layer and the ANN baseline stay at 45 nm fp32, so technology nodes differ.
        EnergyModel(
            name="loihi",
            mac_pj=FP32_MAC,
            ac_pj=23.6,
            host_mac_pj=FP32_MAC,
            host_ac_pj=FP32_ADD,
            neuron_active_pj=81.0,
            neuron_inactive_pj=52.0,
            spike_pj=1.7,
            sources=(
                "Davies et al. IEEE Micro 2018 Table 2 (14 nm): synaptic op 23.6, neuron update "
                "81 active (step with input) / 52 inactive, spike 1.7 pJ within tile, hops not "
                "counted; host first layer and ANN baseline at Horowitz 45 nm fp32 4.6 pJ/MAC"
            ),
        ),
        # paper-45nm plus memory traffic (Lemaire et al. 2022 style): 32-bit words from an 8 KB
        # SRAM, 5 pJ each, no reuse: per synaptic event a weight read + membrane read + write;
        # per neuron update a membrane read + write; per ANN or host MAC a weight + activation
        # read. Not counted: output writes, spike/address traffic, DRAM, leak and compare.
        EnergyModel(
            name="paper-45nm+memory",
            mac_pj=FP32_MAC,
            ac_pj=FP32_ADD,
            host_mac_pj=FP32_MAC,
            host_ac_pj=FP32_ADD,
            ann_memory_pj=2 * _ACCESS,
            ac_memory_pj=3 * _ACCESS,
            neuron_memory_pj=2 * _ACCESS,
            sources=(
                "paper-45nm compute + Horowitz 2014 8 KB SRAM 10 pJ per 64-bit access, 32-bit "
                "words (5 pJ each), no reuse: AC + weight read + membrane read/write; neuron "
                "update + membrane read/write; ANN/host MAC + weight and activation reads; "
                "output writes, spike routing, DRAM and leak/compare arithmetic not counted"
            ),
        ),
    )
}


def get_model(name: str) -> EnergyModel:
    """The energy model called ``name`` (see :data:`MODELS`)."""
    if not isinstance(name, str) or name not in MODELS:
        raise DeployError(
            f"unknown energy model {str(name)[:40]!r}; choose from {', '.join(MODELS)}"
        )
    return MODELS[name]
