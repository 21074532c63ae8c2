"""hw_sim.measure and the float counting plan: deployed and float runs counted against brute-force
window enumeration, float and deployed plans identical, sweeps priced, outputs written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fixtures_nets import random_images, random_network

from dietsnn_deploy.checkpoints import ModelInfo
from dietsnn_deploy.deployed import ConvLayer, DenseLayer
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.models import build_model
from dietsnn_deploy.quantize import quantize
from dietsnn_deploy.training import evaluate
from hw_sim.emulator import classify, emulate
from hw_sim.energy import energy
from hw_sim.host import encode_drive
from hw_sim.measure import (
    Measurement,
    measure_deployed,
    measure_float,
    neuron_parameters,
    sweep_timesteps,
    write_outputs,
)
from hw_sim.op_counter import OpCounter, counting_plan, float_counting_plan

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def brute_force_conv_events(spikes, kernel: int, stride: int, padding: int, out_shape) -> int:
    """Σ over output windows of the source spikes inside each window (all steps, samples and
    channels), × output channels: every spike once per window that holds it."""
    per_pixel = (spikes != 0).sum(dim=(0, 1, 2))  # (H, W)
    c_out, h_out, w_out = out_shape
    total = 0
    for oy in range(h_out):
        for ox in range(w_out):
            y0, x0 = oy * stride - padding, ox * stride - padding
            window = per_pixel[max(y0, 0) : max(y0 + kernel, 0), max(x0, 0) : max(x0 + kernel, 0)]
            total += int(window.sum()) * c_out
    return total


def brute_force_deployed_events(net, record) -> list[int]:
    """Synaptic events of every non-input neuron layer of ``net``, from its layer list."""
    events, source = [], record.spikes[0]
    for index, layer in enumerate(net.layers[1:], start=1):
        if isinstance(layer, ConvLayer):
            kernel, stride, padding = layer.weight.shape[-1], layer.stride[0], layer.padding[0]
            events.append(brute_force_conv_events(source, kernel, stride, padding, layer.shape))
        elif isinstance(layer, DenseLayer):
            events.append(int((source != 0).sum()) * layer.weight.shape[0])
        else:
            continue
        source = record.spikes[index]
    return events


def test_deployed_counts_equal_brute_force_and_classify():
    net = random_network("pooled", seed=3)
    images = random_images(6, net.encoder.in_shape, seed=9)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    measured = measure_deployed(net, images, labels, batch_size=4, progress=False)
    predictions = classify(net, images, progress=False).predictions
    assert torch.equal(measured.predictions, predictions)
    assert measured.accuracy == pytest.approx(float((predictions == labels).double().mean()))
    assert measured.counted_on == "emulator"
    record = emulate(net, encode_drive(net.encoder, images))
    rows = measured.counts.layers
    assert [r.name for r in rows] == ["conv1", "pool+conv2", "pool+fc1", "readout"]
    expected = brute_force_deployed_events(net, record)
    assert [r.synaptic_events * 6 for r in rows[1:]] == pytest.approx(expected)
    assert rows[1].synaptic_events > 0
    for row, index in zip(rows[:-1], (0, 1, 3), strict=True):
        assert row.spikes * 6 == pytest.approx(int(record.spikes[index].sum()))
        assert measured.spike_rates[row.name] == pytest.approx(row.spike_rate)


def test_deployed_bad_input():
    net = random_network("dense", seed=1)
    images = random_images(2, net.encoder.in_shape, seed=1)
    with pytest.raises(DeployError, match="unknown backend 'loihi'"):
        measure_deployed(net, images, torch.zeros(2, dtype=torch.int64), backend="loihi")
    with pytest.raises(DeployError, match="one label each"):
        measure_deployed(net, images, torch.zeros(3, dtype=torch.int64), progress=False)


def spiking_model(arch: str, in_shape, seed: int = 0):
    """A random VGG in SNN mode with thresholds low enough that every layer fires."""
    torch.manual_seed(seed)
    model = build_model(arch, in_shape, 10)
    model.spiking = True
    model.set_neuron_params(thresholds=[0.05] * len(model.neuron_keys))
    return model.eval()


@pytest.mark.parametrize("arch, in_shape", [("vgg-tiny", (1, 8, 8)), ("vgg5-slim", (3, 16, 16))])
def test_float_plan_equals_the_deployed_plan(arch, in_shape):
    model = spiking_model(arch, in_shape)
    net = quantize(model, torch.randn(8, *in_shape), mean=(0.0,) * in_shape[0],
                   std=(1.0,) * in_shape[0])  # fmt: skip

    def geometry(plan):
        return [(g.name, g.kind, g.shape, g.synapse, g.ann_macs, g.host_macs) for g in plan]

    assert geometry(float_counting_plan(model)) == geometry(counting_plan(net))


def test_float_plan_refuses_poisson_input_and_resnets():
    model = spiking_model("vgg-tiny", (1, 8, 8))
    model.encoding = "poisson"
    with pytest.raises(DeployError, match="direct \\(static\\) input"):
        float_counting_plan(model)
    with pytest.raises(DeployError, match="residual"):
        float_counting_plan(build_model("resnet20", (3, 8, 8), 10))


def test_float_counts_equal_brute_force_and_evaluate():
    model = spiking_model("vgg-tiny", (1, 8, 8))
    generator = torch.Generator().manual_seed(1)
    images = torch.randn((10, 1, 8, 8), generator=generator)
    labels = torch.randint(0, 10, (10,), generator=generator)
    loader = [(images[:6], labels[:6]), (images[6:], labels[6:])]
    measured = measure_float(model, loader, progress=False)
    expected = evaluate(model, loader)
    assert measured.accuracy == pytest.approx(expected.accuracy)
    assert measured.spike_rates == pytest.approx(expected.spike_rates)
    assert list(measured.spike_rates) == ["0", "3", "6"]
    assert measured.counted_on == "float (soft reset)"
    spikes = model.run_snn(images, record=True).spikes
    conv1, conv2, fc1, readout = measured.counts.layers
    assert conv2.synaptic_events * 10 == pytest.approx(
        brute_force_conv_events(spikes["0"], 6, 2, 2, (64, 4, 4))
    )
    assert fc1.synaptic_events * 10 == pytest.approx(int(spikes["3"].sum()) * 128)
    assert readout.synaptic_events * 10 == pytest.approx(int(spikes["6"].sum()) * 10)
    assert min(conv1.spikes, conv2.spikes, fc1.spikes) > 0
    assert (conv1.host_macs, conv2.ann_macs) == (3 * 3 * 1 * 8 * 8 * 32, 3 * 3 * 32 * 4 * 4 * 64)
    model.reset_mode = "hard"
    assert measure_float(model, loader, progress=False).counted_on == "float (hard reset)"


def test_float_measure_refuses_an_ann():
    model = build_model("vgg-tiny", (1, 8, 8), 10)
    with pytest.raises(DeployError, match="spiking model"):
        measure_float(model, [(torch.zeros(1, 1, 8, 8), torch.zeros(1, dtype=torch.int64))])


def measurement_at(steps: int) -> Measurement:
    """Counts of the pooled random network run for ``steps`` steps on 4 images."""
    net = random_network("pooled", seed=5, timesteps=steps)
    counter = OpCounter.for_network(net)
    counter.add(emulate(net, encode_drive(net.encoder, random_images(4, (2, 8, 8), 2))))
    return Measurement(counter.result(), steps / 10, torch.zeros(4), "emulator", {})


def test_sweep_sorts_prices_and_drops_duplicates():
    calls = []

    def measure_at(steps):
        calls.append(steps)
        return measurement_at(steps)

    points = sweep_timesteps([3, 1, 3], measure_at, "paper-45nm")
    assert calls == [1, 3] and [p.timesteps for p in points] == [1, 3]
    for point in points:
        counts = measurement_at(point.timesteps).counts
        report = energy("paper-45nm", counts)
        assert point.accuracy == point.timesteps / 10
        assert point.snn_acs == counts.total().synaptic_events
        assert point.ratio == pytest.approx(report.ann_pj / report.snn_pj)
    with pytest.raises(DeployError, match="T ≥ 1"):
        sweep_timesteps([0, 2], measure_at, "paper-45nm")


def test_neuron_parameters_before_and_after_training():
    model = spiking_model("vgg-tiny", (1, 8, 8))
    model.set_neuron_params(thresholds=[1.0, 2.0, 3.0], leaks=[0.9, 0.8, 0.7])
    info = ModelInfo("vgg-tiny", "digits", (1, 8, 8), 10, (0.0,), (1.0,), stage="snn",
                     initial_thresholds=[1.5, 2.5, 3.5], initial_leaks=[1.0, 1.0, 1.0])  # fmt: skip
    names, before, after = neuron_parameters(model, info)
    assert names == ["conv1", "pool+conv2", "pool+fc1"]
    assert before == [(1.0, 1.5), (1.0, 2.5), (1.0, 3.5)]
    assert np.allclose(after, [(0.9, 1.0), (0.8, 2.0), (0.7, 3.0)])
    info.initial_thresholds = []
    with pytest.raises(DeployError, match="no leak/threshold values from conversion"):
        neuron_parameters(model, info)


def test_write_outputs_writes_what_was_asked(tmp_path):
    measured = measurement_at(2)
    report = energy("loihi", measured.counts)
    names = ["conv1", "pool+conv2", "pool+fc1"]
    params = (names, [(1.0, 1.0)] * 3, [(0.9, 0.8)] * 3)
    points = sweep_timesteps([1, 2], measurement_at, "loihi")
    written = write_outputs(measured.counts, report, json_path=tmp_path / "r.json",
                            plot_dir=tmp_path / "plots", context={"input": "x.net"},
                            neuron_params=params, sweep=points)  # fmt: skip
    doc = json.loads((tmp_path / "r.json").read_text())
    assert list(doc)[:2] == ["input", "model"] and doc["model"] == "loihi"
    assert doc["total"]["ratio"] == pytest.approx(report.ratio)
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["energy-loihi-layers.png", "leak-threshold.png", "spike-rates.png",
                    "timestep-sweep-loihi.png"]  # fmt: skip
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in written.values() if p.suffix == ".png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots", "r.json"]  # no CSV, no temp
    with pytest.raises(DeployError, match="overwrite model"):
        write_outputs(measured.counts, report, json_path=tmp_path / "x.json",
                      context={"model": "mine"})  # fmt: skip
