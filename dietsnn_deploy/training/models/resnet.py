"""DIET-SNN's ResNet20 (residual additions: trains and evaluates, does not deploy to netx)."""

from __future__ import annotations

import torch
from torch import nn

from dietsnn_deploy.training.models.net import DietNet, SNNRun, init_weights, over_time
from dietsnn_deploy.training.models.spec import ArchSpec


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
        init_weights(self)

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

    def _span(self, run: SNNRun, start: int, steps: int) -> torch.Tensor:
        h = None
        for i, conv in enumerate(self.pre):
            current = (
                self._input_current(run, conv, start, steps) if h is None else over_time(conv, h)
            )
            h = run.drop(f"pre{i}", self._lif(run, f"pre{i}", current))
        h = over_time(self.pool, h)
        for i, block in enumerate(self.blocks):
            inner = run.drop(f"b{i}", self._lif(run, f"b{i}a", over_time(block.conv1, h)))
            current = over_time(block.conv2, inner) + over_time(block.shortcut, h)
            h = self._lif(run, f"b{i}b", current)
        return self.classifier(h.flatten(2)).float()
