"""The VGG family: convs without bias or BatchNorm, average pools, a linear classifier."""

from __future__ import annotations

import torch
from torch import nn

from dietsnn_deploy.spine import geometry
from dietsnn_deploy.training.models.net import DietNet, SNNRun, init_weights, over_time
from dietsnn_deploy.training.models.spec import ArchSpec, Conv, Pool


class DietVGG(DietNet):
    """VGG without bias or BatchNorm; average pools; dropout after every hidden layer.

    An 'A' pool is dropped where the feature map is already odd-sized or 1 wide, which adapts
    the deep variants to small inputs (digits' 8×8); :class:`Pool` items are always kept.
    """

    def __init__(self, spec: ArchSpec, in_shape, num_classes: int, dropout: float) -> None:
        super().__init__(spec, in_shape, num_classes, dropout)
        shape = tuple(in_shape)
        layers: list[nn.Module] = []
        for item in spec.features:
            if item == "A" or isinstance(item, Pool):
                size = item.size if isinstance(item, Pool) else 2
                if item == "A" and (shape[1] % 2 or shape[2] % 2 or min(shape[1:]) < 2):
                    continue
                layers[-1] = nn.AvgPool2d(size)  # the pool takes the dropout's place
                shape = geometry.pooled_shape(shape, size)
                continue
            conv = item if isinstance(item, Conv) else Conv(int(item))
            layers += [nn.Conv2d(shape[0], conv.channels, conv.kernel, conv.stride, conv.padding,
                                 bias=False), nn.ReLU(), nn.Dropout(dropout)]  # fmt: skip
            shape = geometry.conv_output_shape(
                shape, conv.channels, conv.kernel, conv.stride, conv.padding
            )
        self.features = nn.Sequential(*layers)
        self.feature_shape = shape
        widths = [shape[0] * shape[1] * shape[2], *spec.classifier]
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
        init_weights(self)

    def forward_ann(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))

    def _span(self, run: SNNRun, start: int, steps: int) -> torch.Tensor:
        h = None
        for i, module in enumerate(self.features):
            key = str(i)
            if isinstance(module, nn.Conv2d):
                if h is None:
                    current = self._input_current(run, module, start, steps)
                else:
                    current = over_time(module, h)
                h = self._lif(run, key, current)
            elif isinstance(module, nn.AvgPool2d):
                h = over_time(module, h)
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
