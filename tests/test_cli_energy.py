"""The ``energy`` command and ``evaluate --energy`` end to end on a tiny digits model trained
here: deployed counts against brute force on the emulator's spikes, float counts against
``evaluate``, plots, the demo's report, Lava = emulator, and one-line errors."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch
from cli_helpers import assert_one_error_line, run_main
from test_measure import PNG_MAGIC, brute_force_conv_events, brute_force_deployed_events

from dietsnn_deploy.data import make_loader
from dietsnn_deploy.services.demo import demo_energy
from dietsnn_deploy.services.networks import load_network
from dietsnn_deploy.spine.settings import RunSettings
from dietsnn_deploy.training.checkpoints import load_checkpoint
from dietsnn_deploy.training.config import TrainConfig
from dietsnn_deploy.training.loop import evaluate
from dietsnn_deploy.training.pipeline import run_all
from exporters.netx import read_netx, write_netx
from hw_sim.emulator import emulate
from hw_sim.host import encode_drive

# vgg-tiny on 8×8 digits: conv1 3×3 1→32 (host), pool + conv2 3×3 32→64 on 4×4, pool + fc1
# 64·2·2→128, readout 128→10 (eq. 16)
ANN_MACS = [3 * 3 * 1 * 8 * 8 * 32, 3 * 3 * 32 * 4 * 4 * 64, 64 * 2 * 2 * 128, 128 * 10]
NAMES = ["conv1", "pool+conv2", "pool+fc1", "readout"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A DIET-SNN trained for a few seconds (checkpoint) and its export (.net)."""
    folder = tmp_path_factory.mktemp("energy")
    checkpoint, network = folder / "digits.pt", folder / "digits.net"
    cfg = TrainConfig(ann_epochs=2, snn_epochs=1, train_limit=192, test_limit=50,
                      batch_size=32, snn_batch_size=32, ann_lr=3e-3, progress=False)  # fmt: skip
    run_all(cfg, checkpoint)
    write_netx(load_network(checkpoint), network)  # what `export` does
    return checkpoint, network


def _energy_json(monkeypatch, capsys, tmp_path, *args: str) -> tuple[dict, str]:
    """Run ``energy … --json F``; (the JSON document, stdout)."""
    path = tmp_path / "report.json"
    code, stdout, err = run_main(monkeypatch, capsys, "energy", *args, "--json", str(path))
    assert code == 0, err[-2000:]
    return json.loads(path.read_text()), stdout


def _raw_images(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    loader = make_loader("digits", "test", count, limit=count, normalization=((0.0,), (1.0,)))
    return next(iter(loader))


def test_energy_of_a_net_file_equals_brute_force_on_emulated_spikes(
    tiny, monkeypatch, capsys, tmp_path
):
    _, network = tiny
    csv_path = tmp_path / "r.csv"
    doc, stdout = _energy_json(
        monkeypatch, capsys, tmp_path, str(network), "-n", "24", "--csv", str(csv_path)
    )
    assert doc["input"] == str(network) and doc["counted_on"] == "emulator"
    assert doc["num_images"] == 24 and doc["timesteps"] == 5
    layers = doc["layers"]
    assert [row["name"] for row in layers] == NAMES
    assert [row["ann_macs"] for row in layers] == ANN_MACS
    # independently: emulate the same images, count Σ spikes × fan-out by window enumeration
    net = read_netx(network)
    images, labels = _raw_images(24)
    record = emulate(net, encode_drive(net.encoder, images))
    events = brute_force_deployed_events(net, record)
    assert [row["snn_acs"] * 24 for row in layers[1:]] == pytest.approx(events)
    assert layers[0]["snn_acs"] == 0 and layers[0]["host_macs"] == ANN_MACS[0]
    for row, index in zip(layers[:3], (0, 1, 3), strict=True):
        assert row["spikes"] * 24 == pytest.approx(int(record.spikes[index].sum()))
        per_step = record.spikes[index].flatten(1).sum(1) / 24
        assert row["spikes_per_step"] == pytest.approx(per_step.tolist())
    predictions = record.readout.argmax(1)
    assert doc["accuracy"] == pytest.approx(float((predictions == labels).double().mean()))
    # paper-45nm: E_ANN = 4.6 pJ per MAC; E_SNN = 4.6 per host MAC + 0.9 per AC
    total = doc["total"]
    assert total["energy_ann_pj"] == pytest.approx(sum(ANN_MACS) * 4.6)
    assert total["energy_snn_pj"] == pytest.approx(ANN_MACS[0] * 4.6 + sum(events) / 24 * 0.9)
    assert total["ratio"] == pytest.approx(total["energy_ann_pj"] / total["energy_snn_pj"])
    # the paper's eq. 17 beside it: the feeding layer's spike rate × this layer's ANN MACs
    eq17 = [
        int(record.spikes[index].sum()) / 24 / record.spikes[index][0, 0].numel() * macs
        for index, macs in zip((0, 1, 3), ANN_MACS[1:], strict=True)
    ]
    assert [row["eq17_ops"] for row in layers[1:]] == pytest.approx(eq17)
    b_eq17 = sum(eq17) / sum(ANN_MACS[1:])
    assert total["eq17"]["normalised_snn_ops"] == pytest.approx(b_eq17)
    assert f"b = {b_eq17:.4f}" in stdout
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["name"] for r in rows] == [*NAMES, "total"]
    assert float(rows[-1]["ratio"]) == pytest.approx(total["ratio"])
    # the terminal report: table, constants and sources, conventions
    lines = stdout.splitlines()
    assert lines[0].startswith("vgg-tiny on digits, deployed (Loihi fixed point) on the emulator")
    total_line = next(line for line in lines if line.startswith("total "))
    assert total_line.split()[-1] == f"{total['ratio']:.2f}×"
    assert "mac                4.6 pJ" in stdout and "sources: Horowitz ISSCC 2014" in stdout
    assert "counted once per image" in stdout


def test_checkpoint_quantized_on_the_fly_counts_as_its_export(tiny, monkeypatch, capsys, tmp_path):
    checkpoint, network = tiny
    from_net, _ = _energy_json(monkeypatch, capsys, tmp_path, str(network), "-n", "16")
    from_pt, _ = _energy_json(
        monkeypatch, capsys, tmp_path, str(checkpoint), "-n", "16", "--model", "loihi"
    )
    assert from_pt["layers"] != []
    for a, b in zip(from_net["layers"], from_pt["layers"], strict=True):
        for key in ("name", "spikes", "snn_acs", "events_per_step", "active_neuron_updates"):
            assert a[key] == b[key]
    assert from_pt["model"] == "loihi" and from_pt["constants"]["ac_pj"] == 23.6


def test_float_counts_match_evaluate(tiny, monkeypatch, capsys, tmp_path):
    checkpoint, _ = tiny
    doc, stdout = _energy_json(
        monkeypatch, capsys, tmp_path, str(checkpoint), "--float", "-n", "40"
    )
    assert doc["counted_on"] == "float (soft reset)"
    assert "float PyTorch SNN (soft reset), T=5" in stdout.splitlines()[0]
    code, out, err = run_main(
        monkeypatch,
        capsys,
        "evaluate",
        str(checkpoint),
        "-n",
        "40",
        "--energy",
        "paper-45nm",
        "--json",
    )
    assert code == 0, err
    evaluated = json.loads(out)
    model, info = load_checkpoint(checkpoint)
    loader = make_loader("digits", "test", 256, limit=40, normalization=(info.mean, info.std))
    expected = evaluate(model, loader, RunSettings(info.timesteps))
    rates = [row["spike_rate"] for row in doc["layers"][:3]]
    assert rates == pytest.approx(list(expected.spike_rates.values()))
    assert doc["accuracy"] == pytest.approx(expected.accuracy)
    assert evaluated["spike_rates"] == pytest.approx(expected.spike_rates)
    assert evaluated["accuracy"] == pytest.approx(expected.accuracy)
    assert evaluated["energy"]["layers"] == doc["layers"]
    assert evaluated["energy"]["total"]["ratio"] == pytest.approx(doc["total"]["ratio"])
    # the float synaptic events, by window enumeration on the recorded spikes
    images = torch.cat([batch[0] for batch in loader])
    spikes = model.run_snn(images, info.timesteps, record=True).spikes
    conv2, fc1 = doc["layers"][1:3]
    assert conv2["snn_acs"] * 40 == pytest.approx(
        brute_force_conv_events(spikes["0"], 6, 2, 2, (64, 4, 4))
    )
    assert fc1["snn_acs"] * 40 == pytest.approx(float(spikes["3"].sum()) * 128)
    code, text, _ = run_main(
        monkeypatch, capsys, "evaluate", str(checkpoint), "-n", "40", "--energy", "loihi"
    )
    assert code == 0
    assert "E_ANN/E_SNN" in text and "host MACs (first layer, once per image)" in text


def test_plots_and_timestep_sweep(tiny, monkeypatch, capsys, tmp_path):
    checkpoint, network = tiny
    plots = tmp_path / "plots"
    doc, stdout = _energy_json(monkeypatch, capsys, tmp_path, str(checkpoint), "--float", "-n", "30",
                               "--plot", str(plots), "--sweep-timesteps", "5,2")  # fmt: skip
    names = sorted(p.name for p in plots.iterdir())
    assert names == ["energy-paper-45nm-layers.png", "leak-threshold.png", "spike-rates.png",
                     "timestep-sweep-paper-45nm.png"]  # fmt: skip
    assert all((plots / name).read_bytes()[:8] == PNG_MAGIC for name in names)
    sweep = doc["sweep"]
    assert [p["timesteps"] for p in sweep] == [2, 5]
    at_5 = sweep[1]  # the checkpoint's own T: the same run as the main report
    assert at_5["snn_acs"] == pytest.approx(doc["total"]["snn_acs"])
    assert (at_5["accuracy"], at_5["ratio"]) == pytest.approx(
        (doc["accuracy"], doc["total"]["ratio"])
    )
    assert sweep[0]["snn_acs"] < at_5["snn_acs"]  # fewer steps, fewer spikes
    code, out, _ = run_main(monkeypatch, capsys, "evaluate", str(checkpoint), "-T", "2", "-n", "30",
                         "--energy", "paper-45nm", "--json")  # fmt: skip
    at_2 = json.loads(out)
    assert at_2["timesteps"] == 2 and at_2["energy"]["timesteps"] == 2
    assert sweep[0]["accuracy"] == pytest.approx(at_2["accuracy"])
    assert sweep[0]["snn_acs"] == pytest.approx(at_2["energy"]["total"]["snn_acs"])
    assert sweep[0]["ratio"] == pytest.approx(at_2["energy"]["total"]["ratio"])
    assert "timestep sweep" in stdout
    # a .net file: no leak/threshold plot, and the report says why
    code, stdout, _ = run_main(
        monkeypatch, capsys, "energy", str(network), "-n", "8", "--plot", str(tmp_path / "n")
    )
    assert code == 0
    assert not (tmp_path / "n" / "leak-threshold.png").exists()
    assert (tmp_path / "n" / "spike-rates.png").exists()
    assert "needs the checkpoint (.pt)" in stdout


def test_demo_ends_with_the_energy_report(tiny, monkeypatch, capsys, tmp_path):
    checkpoint, network = tiny
    shutil.copy(checkpoint, tmp_path / "digits.pt")
    shutil.copy(checkpoint, tmp_path / "digits.hw.pt")  # stands in for the fine-tuned model
    demo_energy(tmp_path, read_netx(network), print)
    stdout = capsys.readouterr().out
    out = tmp_path / "energy"
    assert sorted(p.name for p in out.iterdir()) == [
        "energy-paper-45nm-layers.png", "energy.csv", "energy.json", "leak-threshold.png",
        "spike-rates.png",
    ]  # fmt: skip
    doc = json.loads((out / "energy.json").read_text())
    assert doc["num_images"] == 360 and doc["counted_on"] == "emulator"
    total_line = next(line for line in stdout.splitlines() if line.startswith("total "))
    assert total_line.endswith(f"{doc['total']['ratio']:.2f}×")
    assert "float DIET-SNN (digits.pt)" in stdout and f"{out}/" in stdout


@pytest.mark.lava
def test_lava_and_emulator_give_identical_counts(tiny, monkeypatch, capsys, tmp_path):
    _, network = tiny
    on_lava, _ = _energy_json(
        monkeypatch, capsys, tmp_path, str(network), "-n", "3", "--backend", "lava"
    )
    emulated, _ = _energy_json(monkeypatch, capsys, tmp_path, str(network), "-n", "3")
    assert on_lava["counted_on"] == "lava" and emulated["counted_on"] == "emulator"
    assert on_lava["layers"] == emulated["layers"] and on_lava["total"] == emulated["total"]
    assert on_lava["total"]["snn_acs"] > 0


@pytest.mark.parametrize(
    "args, expected",
    [
        (["energy", "{tmp}/missing.net"], "file not found"),
        (["energy", "{bad}"], "not a readable checkpoint"),
        (["energy", "{truncated}"], "{truncated}"),
        (["energy", "{net}", "--model", "tpu"], "unknown energy model 'tpu'"),
        (["energy", "{net}", "--dataset", "svhn"], "unknown dataset 'svhn'"),
        (["energy", "{net}", "--dataset", "mnist"], "trained on digits, not mnist"),
        (["energy", "{net}", "-n", "0"], "Invalid value for '-n'"),
        (["energy", "{net}", "--float"], "--float needs a checkpoint"),
        (["energy", "{net}", "--sweep-timesteps", "2"], "--sweep-timesteps needs a checkpoint"),
        (["energy", "{pt}", "--sweep-timesteps", "1,x"], "integers ≥ 1 separated by commas"),
        (["energy", "{pt}", "--float", "--backend", "lava"], "--backend is for deployed"),
        (["energy", "{ann}"], "is an ANN checkpoint"),
        (["evaluate", "{pt}", "--energy", "tpu"], "unknown energy model 'tpu'"),
        (["evaluate", "{ann}", "--energy", "loihi"], "need a spiking model"),
    ],
)
def test_bad_input_exits_2_with_one_line(tiny, monkeypatch, capsys, tmp_path, args, expected):
    checkpoint, network = tiny
    bad, truncated = tmp_path / "bad.pt", tmp_path / "cut.net"
    bad.write_bytes(b"\x80\x02not really a checkpoint" * 20)
    truncated.write_bytes(network.read_bytes()[:4096])
    names = dict(tmp=tmp_path, bad=bad, truncated=truncated, net=network, pt=checkpoint,
                 ann=checkpoint.with_name("digits.ann.pt"))  # fmt: skip
    code, stdout, err = run_main(monkeypatch, capsys, *[a.format(**names) for a in args])
    assert code == 2
    assert_one_error_line(err, expected.format(**names))
    assert stdout == ""
