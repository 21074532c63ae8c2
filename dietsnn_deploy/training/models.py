"""DIET-SNN architectures: one set of weights that runs as a ReLU ANN or as a LIF SNN.

ANN and SNN share every weight, so the three training stages (ANN → conversion → DIET) move a
single module through modes. Layer indexing follows the official DIET-SNN code
(``features.<i>``, ``classifier.<j>``, ``threshold.t<i>``, ``leak.l<i>``) so its checkpoints
load into these modules as they are.

The SNN runs layer by layer over all T steps at once ("bulk"): every synapse sees a (T·B, …)
batch and only the neuron recurrence loops over T. With a static encoding (direct input) the
first conv's output is the same at every step and is computed once. ``bulk=False`` runs the
plain loop (every layer, every step) and gives the same spikes; it exists to check and time
the bulk path. The neuron model (:mod:`dietsnn_deploy.spine.neurons`) and the input encoding
(:mod:`dietsnn_deploy.spine.encodings`) are units the model dispatches to; T is an argument
of every run, never a property of the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.encodings import Encoding, get_encoding
from dietsnn_deploy.spine.neurons import NeuronModel, get_neuron_model


@dataclass(frozen=True)
class ArchSpec:
    """An architecture by name: VGG feature widths ('A' = 2×2 average pool) and classifier."""

    name: str
    family: Literal["vgg", "resnet"]
    features: tuple[int | str, ...] = ()
    classifier: tuple[int, ...] = ()  # hidden widths; the class layer is added
    description: str = ""


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec("vgg4", "vgg", (64, "A", 128, "A"), (1024,), "official VGG4 (MNIST)"),
        ArchSpec("vgg5", "vgg", (64, "A", 128, 128, "A"), (4096, 4096), "the paper's VGG6"),
        ArchSpec(
            "vgg9", "vgg", (64, "A", 128, 256, "A", 256, 512, "A", 512, "A", 512), (4096, 4096)
        ),
        ArchSpec(
            "vgg11",
            "vgg",
            (64, "A", 128, 256, "A", 512, 512, "A", 512, "A", 512, 512),
            (4096, 4096),
        ),
        ArchSpec(
            "vgg16",
            "vgg",
            (64, 64, "A", 128, 128, "A", 256, 256, 256, "A", 512, 512, 512, "A", 512, 512, 512),
            (4096, 4096),
        ),
        ArchSpec("resnet20", "resnet", description="DIET ResNet20: 3 plain convs + 8 blocks"),
        ArchSpec("vgg-tiny", "vgg", (32, "A", 64, "A"), (128,), "compact preset for CPU demos"),
        ArchSpec("vgg5-slim", "vgg", (32, "A", 64, 64, "A"), (512,), "vgg5 at 1/2 width, 1 FC"),
    )
}


def build_model(arch: str, in_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.2):
    """The named architecture adapted to ``in_shape`` (C, H, W) and ``num_classes``."""
    spec = ARCHITECTURES.get(arch)
    if spec is None:
        raise DeployError(f"unknown architecture '{arch}'; choose from {', '.join(ARCHITECTURES)}")
    if spec.family == "resnet":
        return DietResNet(spec, in_shape, num_classes, dropout)
    return DietVGG(spec, in_shape, num_classes, dropout)


#: The smallest threshold training leaves (in the units of the layer's input current, where
#: conversion puts θ near the 99.7th percentile of the ANN's activations: about 0.1 to 10).
MIN_THRESHOLD = 1e-3


def _over_time(module: nn.Module, h: torch.Tensor) -> torch.Tensor:
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
        run = _Run(x, frames, record, self.training and self.dropout_p > 0, self.dropout_p)
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
        run = _Run(x, frames, False, False, 0.0, probe=key)
        try:
            self._span(run, 0, timesteps)
        except _ProbeHit as hit:
            return hit.current
        raise DeployError(f"no spiking layer '{key}'")

    def _span(self, run: _Run, start: int, steps: int) -> torch.Tensor:
        """Steps [start, start+steps) of every layer; returns the readout's W·o_t (steps, B,
        classes, fp32)."""
        raise NotImplementedError

    def _lif(self, run: _Run, key: str, current: torch.Tensor) -> torch.Tensor:
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

    def _input_current(self, run: _Run, conv: nn.Module, start: int, steps: int):
        """First layer's current (steps, B, …): conv(x) once for a static encoding; under
        hardware-aware training, rounded as the host's integer drive."""
        first = conv if self.hardware is None else lambda x: self.hardware.drive(conv(x))
        if run.frames is not None:
            return _over_time(first, run.frames[start : start + steps])
        if run.static is None or steps == 1:
            run.static = first(run.x)
        return run.static.unsqueeze(0).expand(steps, *run.static.shape)


class _ProbeHit(Exception):
    def __init__(self, current: torch.Tensor) -> None:
        self.current = current


class _Run:
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


class DietVGG(DietNet):
    """VGG without bias or BatchNorm; 2×2 average pools; dropout after every hidden layer.

    A pool is dropped where the feature map is already odd-sized or 1 wide, which adapts the
    deep variants to small inputs (digits' 8×8).
    """

    def __init__(self, spec: ArchSpec, in_shape, num_classes: int, dropout: float) -> None:
        super().__init__(spec, in_shape, num_classes, dropout)
        channels, height, width = in_shape
        layers: list[nn.Module] = []
        for item in spec.features:
            if item == "A":
                if height % 2 or width % 2 or height < 2 or width < 2:
                    continue
                layers[-1] = nn.AvgPool2d(2)  # the pool takes the dropout's place
                height, width = height // 2, width // 2
                continue
            layers += [nn.Conv2d(channels, int(item), 3, padding=1, bias=False), nn.ReLU()]
            layers.append(nn.Dropout(dropout))
            channels = int(item)
        self.features = nn.Sequential(*layers)
        self.feature_shape = (channels, height, width)
        widths = [channels * height * width, *spec.classifier]
        head: list[nn.Module] = []
        for f_in, f_out in zip(widths, widths[1:], strict=False):
            head += [nn.Linear(f_in, f_out, bias=False), nn.ReLU(), nn.Dropout(dropout)]
        head.append(nn.Linear(widths[-1], num_classes, bias=False))
        self.classifier = nn.Sequential(*head)
        for i, module in enumerate(self.features):
            if isinstance(module, nn.Conv2d):
                self._add_neuron(str(i))
        for j, module in enumerate(self.classifier[:-1]):
            if isinstance(module, nn.Linear):
                self._add_neuron(str(len(self.features) + j))
        _init_weights(self)

    def forward_ann(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))

    def _span(self, run: _Run, start: int, steps: int) -> torch.Tensor:
        h = None
        for i, module in enumerate(self.features):
            key = str(i)
            if isinstance(module, nn.Conv2d):
                if h is None:
                    current = self._input_current(run, module, start, steps)
                else:
                    current = _over_time(module, h)
                h = self._lif(run, key, current)
            elif isinstance(module, nn.AvgPool2d):
                h = _over_time(module, h)
            elif isinstance(module, nn.Dropout):
                h = run.drop(key, h)
        h = h.flatten(2)
        offset = len(self.features)
        for j, module in enumerate(self.classifier[:-1]):
            key = str(offset + j)
            if isinstance(module, nn.Linear):
                h = self._lif(run, key, module(h))
            elif isinstance(module, nn.Dropout):
                h = run.drop(key, h)
        return self.classifier[-1](h).float()


class _Block(nn.Module):
    """Basic residual block: conv-LIF-conv, plus a shortcut (identity or 1×1 conv), LIF."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = (
            nn.Conv2d(c_in, c_out, 1, stride, bias=False)
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )


class DietResNet(DietNet):
    """ResNet20 of DIET-SNN: three plain 3×3 convs (64 wide), a 2×2 average pool, four stages
    of two basic blocks (64/128/256/512, strides 1/2/2/2) and one linear classifier."""

    def __init__(self, spec: ArchSpec, in_shape, num_classes: int, dropout: float) -> None:
        super().__init__(spec, in_shape, num_classes, dropout)
        channels, height, width = in_shape
        self.pre = nn.ModuleList(
            nn.Conv2d(c, 64, 3, padding=1, bias=False) for c in (channels, 64, 64)
        )
        self.pre_drop = nn.Dropout(dropout)
        self.pool = nn.AvgPool2d(2) if height % 2 == 0 and width % 2 == 0 else nn.Identity()
        blocks, c_in = [], 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [_Block(c_in, c_out, stride, dropout), _Block(c_out, c_out, 1, dropout)]
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        with torch.no_grad():
            probe = self._ann_features(torch.zeros(1, *in_shape))
        self.classifier = nn.Linear(probe[0].numel(), num_classes, bias=False)
        for i in range(len(self.pre)):
            self._add_neuron(f"pre{i}")
        for i in range(len(self.blocks)):
            self._add_neuron(f"b{i}a")
            self._add_neuron(f"b{i}b")
        _init_weights(self)

    def _ann_features(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.pre:
            x = self.pre_drop(torch.relu(conv(x)))
        x = self.pool(x)
        for block in self.blocks:
            h = block.drop(torch.relu(block.conv1(x)))
            x = torch.relu(block.conv2(h) + block.shortcut(x))
        return x

    def forward_ann(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self._ann_features(x).flatten(1))

    def _span(self, run: _Run, start: int, steps: int) -> torch.Tensor:
        h = None
        for i, conv in enumerate(self.pre):
            current = (
                self._input_current(run, conv, start, steps) if h is None else _over_time(conv, h)
            )
            h = run.drop(f"pre{i}", self._lif(run, f"pre{i}", current))
        h = _over_time(self.pool, h)
        for i, block in enumerate(self.blocks):
            inner = run.drop(f"b{i}", self._lif(run, f"b{i}a", _over_time(block.conv1, h)))
            current = _over_time(block.conv2, inner) + _over_time(block.shortcut, h)
            h = self._lif(run, f"b{i}b", current)
        return self.classifier(h.flatten(2)).float()


def _init_weights(model: nn.Module) -> None:
    """Official initialisation: conv N(0, √(2/(k²·C_out))), linear N(0, 0.01)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan))
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
