"""Neuron models, each one unit: its float scan (training), its fixed-point step (emulator),
its netx neuron codec (exporters) and its hardware-aware rounding (fine-tuning).

A new model is one module defining a :class:`~.base.NeuronModel` subclass plus its line in
:data:`NEURON_MODELS`; the architectures, the quantizer, the netx writer and reader and the
emulator dispatch to it by name.
"""

from __future__ import annotations

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.network import Neuron
from dietsnn_deploy.spine.neurons.base import NeuronModel, Reset
from dietsnn_deploy.spine.neurons.lif import LIF
from dietsnn_deploy.spine.neurons.single_spike import SingleSpike
from dietsnn_deploy.spine.neurons.surrogate import SURROGATES

#: by name; the most specific first (:func:`neuron_from_netx` asks them in this order)
NEURON_MODELS: dict[str, type[NeuronModel]] = {SingleSpike.name: SingleSpike, LIF.name: LIF}
RESETS: tuple[Reset, ...] = ("soft", "hard")


def neuron_from_netx(fields, spiking: bool) -> Neuron:
    """The :class:`Neuron` of a netx ``neuron`` group, read by the first model (most specific
    first) that claims it."""
    for model in NEURON_MODELS.values():
        if model.reads_netx(fields):
            return model.from_netx(fields, spiking)
    raise fields.fail("no neuron model reads this neuron group")


def get_neuron_model(name: str, reset: str = "soft", surrogate: str = "triangle") -> NeuronModel:
    """The neuron model called ``name`` with float ``reset`` ("soft" or "hard") and the
    ``surrogate`` gradient ("triangle" or "stdb")."""
    if name not in NEURON_MODELS:
        raise DeployError(f"unknown neuron model {name!r}; choose from {', '.join(NEURON_MODELS)}")
    if reset not in RESETS:
        raise DeployError(f"unknown reset {reset!r}; choose from {', '.join(RESETS)}")
    if surrogate not in SURROGATES:
        raise DeployError(f"unknown surrogate {surrogate!r}; choose from {', '.join(SURROGATES)}")
    return NEURON_MODELS[name](reset, surrogate)


__all__ = [
    "LIF",
    "NEURON_MODELS",
    "RESETS",
    "SURROGATES",
    "NeuronModel",
    "Reset",
    "SingleSpike",
    "get_neuron_model",
    "neuron_from_netx",
]
