"""Energy models against the paper's closed form and hand-computed per-layer numbers."""

from __future__ import annotations

import pytest

from dietsnn_deploy.errors import DeployError
from hw_sim.energy import energy, normalised_counts, table3_ratio
from hw_sim.energy_models import (
    FP16_ADD,
    FP16_MAC,
    FP16_MULT,
    FP32_ADD,
    FP32_MAC,
    FP32_MULT,
    INT8_ADD,
    INT8_MAC,
    INT8_MULT,
    MODELS,
    get_model,
)
from hw_sim.op_counts import LayerCounts, OpCounts


@pytest.mark.parametrize(
    "snn_ops, first_layer_share, published",
    [(0.39, 0.005, 12.4), (0.14, 0.029, 18.0)],  # VGG16 CIFAR-10; VGG6
)
def test_paper_closed_form(snn_ops, first_layer_share, published):
    report = energy("paper-45nm", normalised_counts(snn_ops, first_layer_share))
    # 4.6 / (c·4.6 + (1 − c)·b·0.9)
    expected = 4.6 / (first_layer_share * 4.6 + (1 - first_layer_share) * snn_ops * 0.9)
    assert report.ratio == pytest.approx(expected, rel=1e-12)
    assert round(report.ratio, 1) == published
    assert table3_ratio(snn_ops, first_layer_share) == pytest.approx(expected, rel=1e-12)


def counts() -> OpCounts:
    host = LayerCounts("conv1", "input", 100, 4, 30.0, 0.0, 0.0, 500.0, 500.0, 400.0, 400.0,
                       (30.0,), (0.0,))  # fmt: skip
    hidden = LayerCounts("fc1", "dense", 25, 4, 50.0, 200.0, 300.0, 1000.0, 0.0, 100.0, 40.0,
                         (50.0,), (200.0,))  # fmt: skip
    return OpCounts(layers=(host, hidden), num_images=1, timesteps=4)


@pytest.mark.parametrize(
    "model, host_ann, host_snn, ann, snn",
    [
        # host: 500 MACs in both; fc1: 1000 MACs vs 200 ACs
        ("paper-45nm", 2300, 2300, 4600, 180),
        ("horowitz-int8", 115, 115, 230, 6),
        ("horowitz-fp16", 750, 750, 1500, 80),
        # host row also pays 400·81 (active) + 30·1.7; fc1: 200·23.6 + 40·81 + 60·52 + 50·1.7
        ("loihi", 2300, 2300 + 32400 + 51, 4600, 4720 + 3240 + 3120 + 85),
        # MACs + 10 pJ reads; ACs + 15 pJ; neuron updates 10 pJ
        ("paper-45nm+memory", 7300, 7300 + 4000, 14600, 200 * 15.9 + 1000),
    ],
)
def test_per_layer_hand_numbers(model, host_ann, host_snn, ann, snn):
    report = energy(model, counts())
    first, second = report.layers
    assert (first.ann_pj, first.snn_pj) == (pytest.approx(host_ann), pytest.approx(host_snn))
    assert (second.ann_pj, second.snn_pj) == (pytest.approx(ann), pytest.approx(snn))
    assert report.ratio == pytest.approx((host_ann + ann) / (host_snn + snn))
    assert second.ratio == pytest.approx(ann / snn)
    assert sum(second.snn_parts.values()) == pytest.approx(second.snn_pj)


def test_models_describe_their_constants_and_sources():
    for name, model in MODELS.items():
        text = model.describe()
        assert name in text and "sources:" in text
        assert all(f"{value:g} pJ" in text for value in model.constants().values())
    assert "Horowitz" in get_model("paper-45nm").describe()
    assert "Davies" in get_model("loihi").describe()
    assert get_model("loihi").constants()["neuron_inactive_pj"] == 52.0


def test_unknown_model_and_bad_fractions_raise():
    with pytest.raises(DeployError, match="unknown energy model"):
        get_model("tpu")
    with pytest.raises(DeployError, match="first_layer_share"):
        normalised_counts(0.3, 1.5)


def test_mac_constants_are_horowitz_mult_plus_add():
    assert FP32_MAC == pytest.approx(FP32_MULT + FP32_ADD)
    assert FP16_MAC == pytest.approx(FP16_MULT + FP16_ADD)
    assert INT8_MAC == pytest.approx(INT8_MULT + INT8_ADD)
