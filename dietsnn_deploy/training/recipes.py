"""Training recipes, one per dataset: what a run uses for every option it is not given.

digits takes the demo's settings, MNIST and Fashion-MNIST this project's Table 1 run
(benchmarks/RESULTS.md), CIFAR and ImageNet the paper's and the official code's (VGG16,
T = 5, Adam with amsgrad, thresholds × 0.3 after conversion). Every recipe has a neuron learning
rate of its own: Adam moves a parameter by about its learning rate per step, so at the
weights' 1e-4 the leaks and thresholds would barely leave their conversion values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from dietsnn_deploy.errors import DeployError


@dataclass(frozen=True)
class Recipe:
    """The per-dataset defaults of a training run."""

    source: str
    arch: str
    timesteps: int
    ann_epochs: int
    ann_lr: float
    batch_size: int
    snn_epochs: int
    snn_lr: float
    neuron_lr: float
    snn_batch_size: int
    threshold_scale: float
    finetune_epochs: int
    precision: str = "fp32"
    #: the threshold scale of a single-spike network's conversion: one spike must carry what
    #: a rate code spreads over T, so θ sits lower (measured: benchmarks/RESULTS.md)
    single_spike_threshold_scale: float = 0.6

    def describe(self, dataset: str, given: dict[str, object] | None = None) -> str:
        """One line naming the recipe and its values; an option ``given`` explicitly shows the
        value the run uses with the recipe's beside it (``snn-epochs 2 (recipe 5)``)."""
        given = given or {}
        values = {k: v for k, v in asdict(self).items() if k != "source"}
        listed = ", ".join(
            f"{key.replace('_', '-')} {given[key]} (recipe {value})"
            if key in given and given[key] != value
            else f"{key.replace('_', '-')} {value}"
            for key, value in values.items()
        )
        return f"recipe for {dataset} ({self.source}; explicit options override): {listed}"


_TABLE1 = Recipe(
    source="this project's Table 1 run",
    arch="vgg5",
    timesteps=5,
    ann_epochs=40,
    ann_lr=1e-3,
    batch_size=128,
    snn_epochs=5,
    snn_lr=1e-4,
    neuron_lr=3e-3,
    snn_batch_size=64,
    threshold_scale=0.6,
    finetune_epochs=1,
    precision="bf16",
    single_spike_threshold_scale=0.3,
)
_PAPER = Recipe(
    source="the paper and the official code",
    arch="vgg16",
    timesteps=5,
    ann_epochs=300,
    ann_lr=1e-3,
    batch_size=128,
    snn_epochs=200,
    snn_lr=1e-4,
    neuron_lr=1e-3,
    snn_batch_size=64,
    threshold_scale=0.3,
    finetune_epochs=10,
)
RECIPES: dict[str, Recipe] = {
    "digits": Recipe(
        source="the demo's",
        arch="vgg-tiny",
        timesteps=5,
        ann_epochs=30,
        ann_lr=3e-3,
        batch_size=32,
        snn_epochs=8,
        snn_lr=1e-4,
        neuron_lr=3e-3,
        snn_batch_size=32,
        threshold_scale=1.0,
        finetune_epochs=3,
    ),
    "mnist": _TABLE1,
    "fashion-mnist": _TABLE1,
    "cifar10": _PAPER,
    "cifar100": _PAPER,
    "imagenet": Recipe(
        **{
            **asdict(_PAPER),
            "ann_epochs": 90,
            "snn_epochs": 30,
            "batch_size": 64,
            "snn_batch_size": 32,
        }
    ),  # fmt: skip
}


def recipe(dataset: str) -> Recipe:
    if dataset not in RECIPES:
        raise DeployError(f"no training recipe for dataset {dataset!r}")
    return RECIPES[dataset]
