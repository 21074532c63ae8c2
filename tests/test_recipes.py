"""Training recipes: what a run uses for every option it is not given, and the line `train`
prints about it."""

from __future__ import annotations

import pytest

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.services.train import recipe_line
from dietsnn_deploy.training.config import TrainConfig
from dietsnn_deploy.training.recipes import recipe


def test_unset_options_come_from_the_dataset_recipe_and_explicit_ones_win():
    cfg = TrainConfig(dataset="fashion-mnist", snn_epochs=2, ann_lr=5e-4).for_dataset(
        "fashion-mnist"
    )
    assert (cfg.arch, cfg.timesteps, cfg.ann_epochs, cfg.neuron_lr) == ("vgg5", 5, 40, 3e-3)
    assert (cfg.snn_epochs, cfg.ann_lr, cfg.precision) == (2, 5e-4, "bf16")
    digits = TrainConfig().for_dataset("digits")
    assert (digits.arch, digits.ann_epochs, digits.snn_epochs) == ("vgg-tiny", 30, 8)


def test_finetuning_and_single_spike_defaults():
    finetune = TrainConfig().for_dataset("fashion-mnist", finetune=True)
    assert finetune.snn_epochs == recipe("fashion-mnist").finetune_epochs == 1
    single = TrainConfig(neuron="single-spike").for_dataset("fashion-mnist")
    assert (
        single.threshold_scale == 0.3 and TrainConfig().for_dataset("mnist").threshold_scale == 0.6
    )
    assert (
        TrainConfig(neuron="single-spike", threshold_scale=0.5).for_dataset("mnist").threshold_scale
        == 0.5
    )


def test_recipe_line_shows_what_the_run_uses():
    line = recipe_line(TrainConfig(dataset="fashion-mnist", snn_epochs=2, arch="vgg5"))
    assert line.startswith("recipe for fashion-mnist (this project's Table 1 run;")
    assert "snn-epochs 2 (recipe 5)" in line  # overridden: both values
    assert "arch vgg5," in line and "(recipe vgg5)" not in line  # given as the recipe has it
    assert "ann-epochs 40," in line and "neuron-lr 0.003" in line
    assert "dataset digits" not in recipe_line(
        TrainConfig()
    ) and "recipe for digits" in recipe_line(TrainConfig())


def test_unknown_dataset_has_no_recipe():
    with pytest.raises(DeployError, match="no training recipe for dataset 'svhn'"):
        recipe("svhn")
