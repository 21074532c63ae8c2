"""Our float models as a :class:`FloatNetwork` (what interchange formats write) and back (what
they read becomes a model the quantizer, evaluation and the op counter take)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.float_network import FloatLayer, FloatNetwork, FloatNeuron
from dietsnn_deploy.spine.neurons import get_neuron_model
from dietsnn_deploy.training.models import DietNet, DietVGG
from dietsnn_deploy.training.models.spec import ArchSpec, Conv, Pool
from dietsnn_deploy.training.quantize import raw_weight, synapses


def to_float_network(model: DietNet, metadata: dict | None = None) -> FloatNetwork:
    """The float chain of a VGG-family SNN: its weights, pools, leaks, thresholds and reset.
    A model whose neurons NIR-like graphs can't express (single-spike) is refused."""
    if model.neuron_model.refractory(1):
        raise DeployError(
            f"'{model.neuron_model.name}' neurons are refractory until the image ends; a float"
            " graph has no refractory neuron, so it would run them as plain LIF"
        )
    layers, counts = [], {"conv": 0, "fc": 0}
    for syn in synapses(model):
        module = syn.module
        weight = raw_weight(module).double().numpy()
        neuron = None
        if syn.key is not None:
            leak = float(model.leak[f"l{syn.key}"].detach())
            threshold = float(model.threshold[f"t{syn.key}"].detach())
            neuron = FloatNeuron(leak, threshold, model.neuron_model.reset)
        conv = isinstance(module, nn.Conv2d)
        kind = "conv" if conv else "fc"
        counts[kind] += 1
        layers.append(
            FloatLayer(
                name=f"{kind}{counts[kind]}" if syn.key is not None else "readout",
                weight=weight,
                neuron=neuron,
                stride=tuple(module.stride) if conv else (1, 1),
                padding=tuple(module.padding) if conv else (0, 0),
                pool=syn.pool,
            )
        )
    return FloatNetwork(tuple(model.in_shape), tuple(layers), dict(metadata or {}))


def from_float_network(net: FloatNetwork, name: str = "graph") -> DietVGG:
    """A spiking :class:`DietVGG` that computes ``net`` (eval mode, no dropout)."""
    features: list = []
    classifier: list[int] = []
    for index, layer in enumerate(net.layers):
        if layer.is_conv:
            if classifier:
                raise DeployError(f"{layer.name}: a conv after a dense layer is not supported")
            if layer.pool > 1:
                features.append(Pool(layer.pool))
            kernel = (int(layer.weight.shape[2]), int(layer.weight.shape[3]))
            features.append(Conv(int(layer.weight.shape[0]), kernel, layer.stride, layer.padding))
            continue
        if layer.pool > 1:
            if classifier or net.layers[index - 1].is_conv is False:
                raise DeployError(f"{layer.name}: a pool between dense layers is not supported")
            features.append(Pool(layer.pool))
        classifier.append(int(layer.weight.shape[0]))
    spec = ArchSpec(name, "vgg", tuple(features), tuple(classifier[:-1]))
    model = DietVGG(spec, net.in_shape, net.num_classes, dropout=0.0)
    modules = [
        m for m in (*model.features, *model.classifier) if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    if len(modules) != len(net.layers):
        raise DeployError(f"internal: built {len(modules)} layers for {len(net.layers)}")
    with torch.no_grad():
        for module, layer in zip(modules, net.layers, strict=True):
            if tuple(module.weight.shape) != layer.weight.shape:
                raise DeployError(
                    f"{layer.name}: weight {layer.weight.shape} does not fit the chain "
                    f"(expected {tuple(module.weight.shape)})"
                )
            module.weight.copy_(torch.from_numpy(np.asarray(layer.weight, np.float64)))
    spiking = [layer.neuron for layer in net.layers[:-1]]
    model.set_neuron_params(
        thresholds=[n.threshold for n in spiking], leaks=[n.leak for n in spiking]
    )
    model.neuron_model = get_neuron_model("lif", net.reset)
    model.spiking = True
    return model.eval()
