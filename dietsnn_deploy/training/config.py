"""The options of a training run, and their defaults from the dataset's recipe."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from dietsnn_deploy.data import check_name
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.encodings import get_encoding
from dietsnn_deploy.spine.neurons import SURROGATES
from dietsnn_deploy.spine.settings import RunSettings, check_timesteps, resolve_device
from dietsnn_deploy.training.distributed import current, rank_device
from dietsnn_deploy.training.models import ARCHITECTURES
from dietsnn_deploy.training.objectives import OBJECTIVES
from dietsnn_deploy.training.recipes import Recipe, recipe

#: ``--neuron`` choices: the neuron model (``lif``, ``single-spike``), or ``if`` = the LIF model
#: with every leak fixed at 1
#: (the Figure 3 ablation).
NEURON_CHOICES = ("lif", "if", "single-spike")
NEURON_MODEL = {"lif": "lif", "if": "lif", "single-spike": "single-spike"}
#: the loss a new SNN of each ``--neuron`` trains on (:mod:`.objectives`)
DEFAULT_LOSS = {"lif": "potential", "if": "potential", "single-spike": "potential-time"}


#: Options whose default (None) the dataset's recipe (:mod:`.recipes`) fills in.
RECIPE_OPTIONS = ("arch", "timesteps", "ann_epochs", "snn_epochs", "batch_size", "snn_batch_size",
                  "ann_lr", "snn_lr", "neuron_lr", "threshold_scale", "precision")  # fmt: skip
DEFAULT_DATASET = "digits"


@dataclass
class TrainConfig:
    """Options of the three stages; None means the dataset's recipe (:meth:`for_dataset`).

    ``dataset`` None is digits for a new run and the checkpoint's in later stages, as is
    ``arch``; ``snn_epochs`` counts fine-tuning epochs in ``finetune``."""

    dataset: str | None = None
    arch: str | None = None
    data_dir: str | None = None
    timesteps: int | None = None
    ann_epochs: int | None = None
    snn_epochs: int | None = None
    batch_size: int | None = None
    snn_batch_size: int | None = None
    ann_lr: float | None = None
    snn_lr: float | None = None
    neuron_lr: float | None = None  # thresholds and leaks
    weight_decay: float = 5e-4
    dropout: float = 0.2
    percentile: float = 99.7
    threshold_scale: float | None = None
    calibration_images: int = 512
    encoding: str | None = None  # None: the checkpoint's, direct for a new SNN
    neuron: str = "lif"  # "if" keeps every leak at 1
    surrogate: str | None = None  # None: the checkpoint's, triangle for a new SNN
    loss: str | None = None  # None: the checkpoint's, or the neuron model's default
    train_threshold: bool = True
    train_leak: bool = True
    train_limit: int | None = None
    test_limit: int | None = None
    seed: int = 0
    precision: str | None = None
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        """Refuse a learning rate that can't train (NaN, infinite, ≤ 0), a bad T, an unknown
        encoding, neuron, precision or device, before any work."""
        rates = {"ann_lr": self.ann_lr, "snn_lr": self.snn_lr, "neuron_lr": self.neuron_lr}
        for name, rate in rates.items():
            if rate is not None and not (math.isfinite(rate) and rate > 0):
                option = "--" + name.replace("_", "-")
                raise DeployError(f"{option} must be a finite number > 0, got {rate}")
        if self.encoding is not None:
            get_encoding(self.encoding)
        if self.arch is not None and self.arch not in ARCHITECTURES:
            raise DeployError(
                f"unknown architecture {self.arch[:40]!r}; choose from {', '.join(ARCHITECTURES)}"
            )
        if self.dataset is not None:
            check_name(self.dataset)
        if self.neuron not in NEURON_CHOICES:
            raise DeployError(f"unknown neuron {self.neuron!r}; choose from {NEURON_CHOICES}")
        for option, value, known in (("--surrogate", self.surrogate, SURROGATES),
                                     ("--loss", self.loss, OBJECTIVES)):  # fmt: skip
            if value is not None and value not in known:
                raise DeployError(f"unknown {option} {value!r}; choose from {', '.join(known)}")
        if self.timesteps is not None:
            check_timesteps(self.timesteps, "--timesteps")
        RunSettings(1, resolve_device(self.device), self.precision or "fp32")  # checks both

    @property
    def recipe(self) -> Recipe:
        return recipe(self.dataset or DEFAULT_DATASET)

    def for_dataset(self, dataset: str, *, finetune: bool = False) -> TrainConfig:
        """A copy for ``dataset`` with every unset option from its recipe (``finetune``: the
        recipe's fine-tuning epochs for ``snn_epochs``)."""
        book = recipe(dataset)
        values = {name: getattr(self, name) for name in RECIPE_OPTIONS}
        filled = {
            name: getattr(book, name) if value is None else value for name, value in values.items()
        }
        if finetune and self.snn_epochs is None:
            filled["snn_epochs"] = book.finetune_epochs
        if self.neuron == "single-spike" and self.threshold_scale is None:
            filled["threshold_scale"] = book.single_spike_threshold_scale
        return replace(self, dataset=self.dataset or dataset, **filled)

    @property
    def settings(self) -> RunSettings:
        """The run settings of every stage: T, device and precision (of a resolved config)."""
        if self.timesteps is None or self.precision is None:
            raise DeployError("internal: run settings of a config not resolved from a recipe")
        device = rank_device(resolve_device(self.device), current())
        return RunSettings(self.timesteps, device, self.precision)
