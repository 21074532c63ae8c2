"""Architectures by name, and the model builder."""

from __future__ import annotations

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.training.models.resnet import DietResNet
from dietsnn_deploy.training.models.spec import ArchSpec
from dietsnn_deploy.training.models.vgg import DietVGG

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
