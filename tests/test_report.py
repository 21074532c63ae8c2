"""Reports: JSON/CSV values, the table, and that the PNG plots are real images."""

from __future__ import annotations

import csv
import json

import pytest

from dietsnn_deploy.errors import DeployError
from hw_sim.energy import energy
from hw_sim.op_counts import LayerCounts, OpCounts
from hw_sim.plots import (
    plot_layer_energy,
    plot_leak_threshold,
    plot_spike_rates,
    plot_timestep_sweep,
)
from hw_sim.report import format_table, write_all, write_csv, write_json

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def counts() -> OpCounts:
    def row(name, kind, neurons, spikes, events, ann, host):
        return LayerCounts(name, kind, neurons, 2, spikes, events, events / 4, ann, host,
                           neurons * 2.0, neurons * 1.0, (spikes, 0.0), (events, 0.0),
                           spiking=kind != "readout")  # fmt: skip

    return OpCounts(
        layers=(
            row("conv1", "input", 1000, 300.0, 0.0, 9000.0, 9000.0),
            row("pool+conv2", "conv", 500, 100.0, 5400.0, 90000.0, 0.0),
            row("readout", "readout", 10, 0.0, 1000.0, 5000.0, 0.0),
        ),
        num_images=4,
        timesteps=2,
    )


def test_json_values(tmp_path):
    c = counts()
    report = energy("paper-45nm", c)
    doc = json.loads(write_json(tmp_path / "r.json", c, report).read_text())
    assert doc["model"] == "paper-45nm"
    assert doc["constants"] == {"mac_pj": 4.6, "ac_pj": 0.9, "host_mac_pj": 4.6, "host_ac_pj": 0.9}
    conv2 = doc["layers"][1]
    assert conv2["name"] == "pool+conv2" and conv2["spike_rate"] == pytest.approx(0.2)
    assert conv2["energy_ann_pj"] == pytest.approx(90000 * 4.6)
    assert conv2["energy_snn_pj"] == pytest.approx(5400 * 0.9)
    assert conv2["ratio"] == pytest.approx(90000 * 4.6 / (5400 * 0.9))
    assert doc["layers"][0]["energy_snn_pj"] == pytest.approx(9000 * 4.6)
    ann, snn = 104000 * 4.6, 9000 * 4.6 + 6400 * 0.9
    total = doc["total"]
    assert (total["energy_ann_pj"], total["energy_snn_pj"]) == (pytest.approx(ann),
                                                                pytest.approx(snn))  # fmt: skip
    assert total["ratio"] == pytest.approx(ann / snn)
    assert total["snn_acs"] == 6400 and total["spike_rate"] == pytest.approx(400 / 1500)
    assert total["first_layer_share"] == pytest.approx(9000 / 104000)
    # eq. 17 ops are events / 4 in these rows: b = 1600 / 95000 spiking-layer ANN MACs
    b_eq17 = 1600 / 95000
    assert total["eq17"]["normalised_snn_ops"] == pytest.approx(b_eq17)
    c_share = 9000 / 104000
    assert total["eq17"]["ratio_paper_45nm"] == pytest.approx(
        4.6 / (c_share * 4.6 + (1 - c_share) * b_eq17 * 0.9)
    )
    assert doc["num_images"] == 4 and doc["timesteps"] == 2
    assert any("once per image" in note for note in doc["notes"])
    assert list(tmp_path.iterdir()) == [tmp_path / "r.json"]  # no temp file left behind


def test_json_ratio_is_null_when_snn_costs_nothing(tmp_path):
    c = OpCounts(layers=(LayerCounts("fc1", "dense", 5, 1, 0.0, 0.0, 0.0, 50.0, 0.0, 5.0, 0.0,
                                     (0.0,), (0.0,)),), num_images=1, timesteps=1)  # fmt: skip
    doc = json.loads(write_json(tmp_path / "r.json", c, energy("paper-45nm", c)).read_text())
    assert doc["layers"][0]["ratio"] is None and doc["total"]["ratio"] is None


def test_csv_and_table(tmp_path):
    c = counts()
    report = energy("loihi", c)
    rows = list(csv.DictReader(write_csv(tmp_path / "r.csv", c, report).open()))
    assert [r["name"] for r in rows] == ["conv1", "pool+conv2", "readout", "total"]
    assert float(rows[1]["snn_acs"]) == 5400
    assert float(rows[-1]["ratio"]) == pytest.approx(report.ratio)
    table = format_table(c, report)
    assert "loihi" in table and "pool+conv2" in table
    assert table.splitlines()[-1].split()[-1] == f"{report.ratio:.2f}×"


def assert_png(path, min_bytes=8_000):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > min_bytes


def test_plots_are_non_trivial_pngs(tmp_path):
    c = counts()
    report = energy("paper-45nm", c)
    assert_png(plot_spike_rates(tmp_path / "rates.png", c))
    assert_png(plot_layer_energy(tmp_path / "energy.png", report))
    names = ["conv1", "conv2", "fc1"]
    before = [(1.0, 1.2), (1.0, 0.8), (1.0, 0.5)]
    after = [(0.95, 1.0), (0.9, 0.7), (0.97, 0.6)]
    assert_png(plot_leak_threshold(tmp_path / "lt.png", names, before, after))
    assert_png(plot_timestep_sweep(tmp_path / "t.png", [(5, 0.9, 12.0), (2, 0.8, 20.0)]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["energy.png", "lt.png", "rates.png",
                                                           "t.png"]  # fmt: skip


def test_write_all_and_bad_input(tmp_path):
    c = counts()
    paths = write_all(tmp_path / "out", c, energy("paper-45nm+memory", c))
    assert all(p.exists() for p in paths.values())
    assert paths["json"].name == "energy-paper-45nm+memory.json"
    with pytest.raises(DeployError, match="one \\(leak, threshold\\) pair"):
        plot_leak_threshold(tmp_path / "x.png", ["a"], [(1.0, 1.0)], [])
    other = OpCounts(layers=c.layers[:2], num_images=1, timesteps=2)
    with pytest.raises(DeployError, match="different layers"):
        format_table(other, energy("paper-45nm", c))
