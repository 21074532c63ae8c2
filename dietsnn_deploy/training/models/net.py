"""What every DIET architecture shares: neuron parameters, modes and the SNN driver; the
architectures (:mod:`.vgg`, :mod:`.resnet`) fill in the ANN pass and one span of SNN steps."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.encodings import Encoding, get_encoding
from dietsnn_deploy.spine.neurons import NeuronModel, get_neuron_model
from dietsnn_deploy.training.models.spec import ArchSpec

#: The smallest threshold training leaves (in the units of the layer's input current, where
#: conversion puts θ near the 99.7th percentile of the ANN's activations: about 0.1 to 10).
MIN_THRESHOLD = 1e-3


def over_time(module: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """Apply a per-sample module to (T, B, …) by folding time into the batch."""
    return module(h.flatten(0, 1)).unflatten(0, h.shape[:2])


@dataclass
class SNNOutput:
    """The readout's per-step input ``potentials`` (T, B, classes) = W·o_t, spikes per spiking
    layer (T, B, …) when recorded, and the encoded input frames (T, B, C, H, W; None for
    static input)."""

    potentials: torch.Tensor
    spikes: dict[str, torch.Tensor]
    frames: torch.Tensor | None = None

    @property
    def logits(self) -> torch.Tensor:
        """(B, classes): the readout's final potential Σ_t W·o_t, summed over steps in order
        (so bulk and per-step runs agree bit for bit)."""
        return self.potentials.sum(0)


class DietNet(nn.Module):
    """What every DIET architecture shares: neuron parameters, modes and the SNN driver.

    Neuron parameters are one scalar per spiking layer: ``threshold['t<i>']`` (θ > 0) and
    ``leak['l<i>']`` (λ ∈ [0, 1]); ``neuron_keys`` lists the ``<i>`` in layer order.
    ``neuron_model`` steps them (its reset: soft for DIET, hard as on the chip) and
    ``encoding`` makes the first layer's input frames.
    """

    def __init__(self, spec: ArchSpec, in_shape, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.spec = spec
        self.in_shape = tuple(in_shape)
        self.num_classes = num_classes
        self.dropout_p = dropout
        self.spiking = False
        self.encoding: Encoding = get_encoding("direct")
        self.neuron_model: NeuronModel = get_neuron_model("lif", "soft")
        self.threshold = nn.ParameterDict()
        self.leak = nn.ParameterDict()
        # Hardware-aware fine-tuning sets this to round leak and threshold as Loihi will.
        self.hardware = None

    # -- neuron parameters -------------------------------------------------------------
    def _add_neuron(self, key: str) -> None:
        self.threshold[f"t{key}"] = nn.Parameter(torch.tensor(1.0))
        self.leak[f"l{key}"] = nn.Parameter(torch.tensor(1.0))

    @property
    def neuron_keys(self) -> list[str]:
        return [k[1:] for k in self.threshold.keys()]

    def neurons_per_image(self) -> int:
        """Neurons of every synaptic layer's output for one image (spiking layers and the
        readout): what a run holds per step and image."""
        counted = []
        hooks = [
            m.register_forward_hook(lambda mod, inp, out: counted.append(out[0].numel()))
            for m in self.modules()
            if isinstance(m, nn.Conv2d | nn.Linear)
        ]
        try:
            with torch.no_grad():
                weight = next(self.parameters())
                self.forward_ann(torch.zeros((1, *self.in_shape), device=weight.device))
        finally:
            for hook in hooks:
                hook.remove()
        return sum(counted)

    def neurons_by_key(self) -> dict[str, int]:
        """Neurons per spiking layer (neuron key → count), from a one-step probe run."""
        weight = next(self.parameters())
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                out = self.run_snn(torch.zeros((1, *self.in_shape), device=weight.device), 1,
                                   record=True)  # fmt: skip
        finally:
            self.train(was_training)
        return {key: spikes[0, 0].numel() for key, spikes in out.spikes.items()}

    def thresholds(self) -> list[float]:
        return [float(p.detach()) for p in self.threshold.values()]

    def leaks(self) -> list[float]:
        return [float(p.detach()) for p in self.leak.values()]

    def set_neuron_params(self, thresholds=None, leaks=None) -> None:
        """Overwrite per-layer thresholds and/or leaks (lists in layer order)."""
        with torch.no_grad():
            for values, params in ((thresholds, self.threshold), (leaks, self.leak)):
                if values is None:
                    continue
                if len(values) != len(params):
                    raise DeployError(f"expected {len(params)} neuron values, got {len(values)}")
                for p, v in zip(params.values(), values, strict=True):
                    p.fill_(float(v))

    def clamp_neuron_params(self) -> None:
        """Keep every leak in [0, 1] and every threshold ≥ ``MIN_THRESHOLD`` (call after each
        optimizer step): a gradient that does not vanish away from the threshold (STDB's) can
        otherwise push θ through 0, where the spike condition u > θ turns inside out."""
        with torch.no_grad():
            for p in self.leak.values():
                p.clamp_(0.0, 1.0)
            for p in self.threshold.values():
                p.clamp_(min=MIN_THRESHOLD)

    def neuron(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(leak, threshold) of spiking layer ``key`` as the forward pass uses them."""
        leak, threshold = self.leak[f"l{key}"], self.threshold[f"t{key}"]
        if self.hardware is not None:
            return self.hardware.neuron(key, leak, threshold)
        return leak, threshold

    # -- modes -----------------------------------------------------------------------
    def forward(
        self, x: torch.Tensor, timesteps: int | None = None, per_step: bool = False
    ) -> torch.Tensor:
        """Logits (B, classes) of the ANN, or of the SNN over ``timesteps`` steps (required
        when spiking); ``per_step``: the readout's per-step potentials (T, B, classes) instead
        (an ANN's are one step)."""
        if self.spiking:
            if timesteps is None:
                raise DeployError("a spiking model needs the number of timesteps to run")
            out = self.run_snn(x, timesteps)
            return out.potentials if per_step else out.logits
        logits = self.forward_ann(x)
        return logits.unsqueeze(0) if per_step else logits

    def forward_ann(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def run_snn(
        self,
        x: torch.Tensor,
        timesteps: int,
        *,
        bulk: bool = True,
        record: bool = False,
        generator: torch.Generator | None = None,
        frames: torch.Tensor | None = None,
    ) -> SNNOutput:
        """Run the SNN for ``timesteps`` steps on normalised images ``x`` (B, C, H, W).

        The encoding's frames are drawn up front (so bulk and per-step runs see the same
        input) unless given as ``frames`` (T, B, C, H, W); a static encoding feeds ``x`` at
        every step. Dropout draws one mask per sample.
        """
        steps = timesteps
        if frames is None:
            frames = self.encoding.frames(x, steps, generator)
        run = SNNRun(x, frames, record, self.training and self.dropout_p > 0, self.dropout_p)
        if bulk:
            potentials = self._span(run, 0, steps)
        else:
            potentials = torch.cat([self._span(run, t, 1) for t in range(steps)])
        spikes = {k: torch.cat(v) for k, v in run.spikes.items()}
        return SNNOutput(potentials, spikes, frames if record else None)

    def probe_current(self, x: torch.Tensor, key: str, timesteps: int) -> torch.Tensor:
        """Input current (T, B, …) of spiking layer ``key`` (for threshold balancing), with the
        model's input encoding (a fixed seed makes random frames repeat across layers)."""
        frames = self.encoding.frames(x, timesteps, torch.Generator().manual_seed(0))
        run = SNNRun(x, frames, False, False, 0.0, probe=key)
        try:
            self._span(run, 0, timesteps)
        except _ProbeHit as hit:
            return hit.current
        raise DeployError(f"no spiking layer '{key}'")

    def _span(self, run: SNNRun, start: int, steps: int) -> torch.Tensor:
        """Steps [start, start+steps) of every layer; returns the readout's W·o_t (steps, B,
        classes, fp32)."""
        raise NotImplementedError

    def _lif(self, run: SNNRun, key: str, current: torch.Tensor) -> torch.Tensor:
        if run.probe == key:
            raise _ProbeHit(current)
        leak, threshold = self.neuron(key)
        # The membrane potential and the threshold comparison stay in fp32 under autocast.
        spikes, run.state[key] = self.neuron_model.scan(
            current.float(), run.state.get(key), leak, threshold
        )
        if run.record:
            run.spikes.setdefault(key, []).append(spikes.detach())
        return spikes

    def _input_current(self, run: SNNRun, conv: nn.Module, start: int, steps: int):
        """First layer's current (steps, B, …): conv(x) once for a static encoding; under
        hardware-aware training, rounded as the host's integer drive."""
        first = conv if self.hardware is None else lambda x: self.hardware.drive(conv(x))
        if run.frames is not None:
            return over_time(first, run.frames[start : start + steps])
        if run.static is None or steps == 1:
            run.static = first(run.x)
        return run.static.unsqueeze(0).expand(steps, *run.static.shape)


class _ProbeHit(Exception):
    def __init__(self, current: torch.Tensor) -> None:
        self.current = current


class SNNRun:
    """State of one SNN run: membrane potentials, dropout masks, recorded spikes."""

    def __init__(self, x, frames, record: bool, dropout: bool, p: float, probe=None) -> None:
        self.x, self.frames, self.record, self.probe = x, frames, record, probe
        self.dropout, self.p = dropout, p
        self.state: dict[str, torch.Tensor] = {}
        self.masks: dict[str, torch.Tensor] = {}
        self.spikes: dict[str, list[torch.Tensor]] = {}
        self.static: torch.Tensor | None = None

    def drop(self, key: str, h: torch.Tensor) -> torch.Tensor:
        """One dropout mask per sample (B, …), reused at every step, scaled by 1/(1−p)."""
        if not self.dropout:
            return h
        if key not in self.masks:
            keep = torch.rand(h.shape[1:], device=h.device) >= self.p
            self.masks[key] = keep.to(h.dtype) / (1.0 - self.p)
        return h * self.masks[key]


def init_weights(model: nn.Module) -> None:
    """Official initialisation: conv N(0, √(2/(k²·C_out))), linear N(0, 0.01)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan))
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
