"""hw_sim.measure and the float measurement: deployed and float runs counted against
brute-force window enumeration, float spikes laid on the deployed plan, sweeps priced, outputs
written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fixtures_nets import random_images, random_network

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.services.measure import float_spike_record, measure_float, neuron_parameters
from dietsnn_deploy.spine.encodings import get_encoding
from dietsnn_deploy.spine.network import ConvLayer, DenseLayer
from dietsnn_deploy.spine.neurons import get_neuron_model
from dietsnn_deploy.spine.settings import RunSettings
from dietsnn_deploy.training.checkpoints import ModelInfo
from dietsnn_deploy.training.loop import evaluate
from dietsnn_deploy.training.models import build_model
from dietsnn_deploy.training.quantize import quantize
from hw_sim.emulator import classify, emulate
from hw_sim.energy import energy
from hw_sim.host import encode_drive
from hw_sim.measure import Measurement, measure_deployed, sweep_timesteps, write_outputs
from hw_sim.op_counter import OpCounter, counting_plan

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


def deployed(model, in_shape=(1, 8, 8), timesteps: int = 5):
    """The model quantized at ``timesteps``: the plan its float spikes are counted on."""
    return quantize(model, torch.randn(8, *in_shape), timesteps=timesteps,
                    mean=(0.0,) * in_shape[0], std=(1.0,) * in_shape[0])  # fmt: skip


@pytest.mark.parametrize("arch, in_shape", [("vgg-tiny", (1, 8, 8)), ("vgg5-slim", (3, 16, 16))])
def test_float_spikes_land_on_the_deployed_layers(arch, in_shape):
    model = spiking_model(arch, in_shape)
    net = deployed(model, in_shape)
    out = model.run_snn(torch.randn(3, *in_shape), 5, record=True)
    record = float_spike_record(net, model.neuron_keys, out)
    spiking = [i for i, layer in net.neuron_layers if layer.neuron.spiking]
    assert [record.spikes[i] is not None for i in range(len(net.layers))] == [
        i in spiking for i in range(len(net.layers))
    ]
    for index, key in zip(spiking, model.neuron_keys, strict=True):
        assert record.spikes[index] is out.spikes[key]
        assert tuple(record.spikes[index].shape[2:]) == tuple(net.layers[index].shape)
    names = [g.name for g in counting_plan(net)]
    assert names[0] == "conv1" and names[-1] == "readout" and len(names) == len(spiking) + 1


def test_float_poisson_counts_price_the_input_frames_and_resnets_are_refused():
    model = spiking_model("vgg-tiny", (1, 8, 8))
    model.encoding = get_encoding("poisson")
    net = deployed(model)
    images = torch.randn((4, 1, 8, 8), generator=torch.Generator().manual_seed(3)).clamp(-1, 1)
    torch.manual_seed(0)
    measured = measure_float(model, net, [(images, torch.zeros(4, dtype=torch.int64))],
                             RunSettings(5), progress=False)  # fmt: skip
    torch.manual_seed(0)
    frames = model.run_snn(images, 5, record=True).frames
    conv1 = measured.counts.layers[0]
    assert conv1.host_macs == 0  # no analog frame: the first layer never multiplies
    fan_out = torch.from_numpy(net.encoder.fan_out_map()).double()
    expected = float((frames.abs().sum(dim=(0, 1, 2)).double() * fan_out).sum()) / 4
    assert conv1.host_acs == pytest.approx(expected) and expected > 0
    rate = float(frames.abs().sum()) / 4 / 64
    assert conv1.eq17_ops == pytest.approx(rate * conv1.ann_macs)
    with pytest.raises(DeployError, match="residual"):
        deployed(build_model("resnet20", (1, 8, 8), 10))


def test_float_counts_equal_brute_force_and_evaluate():
    model = spiking_model("vgg-tiny", (1, 8, 8))
    generator = torch.Generator().manual_seed(1)
    images = torch.randn((10, 1, 8, 8), generator=generator)
    labels = torch.randint(0, 10, (10,), generator=generator)
    loader = [(images[:6], labels[:6]), (images[6:], labels[6:])]
    net = deployed(model)
    measured = measure_float(model, net, loader, RunSettings(5), progress=False)
    expected = evaluate(model, loader, RunSettings(5))
    assert measured.accuracy == pytest.approx(expected.accuracy)
    assert measured.spike_rates == pytest.approx(expected.spike_rates)
    assert list(measured.spike_rates) == ["0", "3", "6"]
    assert measured.counted_on == "float (soft reset)"
    spikes = model.run_snn(images, 5, record=True).spikes
    conv1, conv2, fc1, readout = measured.counts.layers
    assert conv2.synaptic_events * 10 == pytest.approx(
        brute_force_conv_events(spikes["0"], 6, 2, 2, (64, 4, 4))
    )
    assert fc1.synaptic_events * 10 == pytest.approx(int(spikes["3"].sum()) * 128)
    assert readout.synaptic_events * 10 == pytest.approx(int(spikes["6"].sum()) * 10)
    assert min(conv1.spikes, conv2.spikes, fc1.spikes) > 0
    assert (conv1.host_macs, conv2.ann_macs) == (3 * 3 * 1 * 8 * 8 * 32, 3 * 3 * 32 * 4 * 4 * 64)
    model.neuron_model = get_neuron_model("lif", "hard")
    assert measure_float(model, net, loader, RunSettings(5), progress=False).counted_on == (
        "float (hard reset)"
    )


def test_float_measure_refuses_an_ann():
    model = build_model("vgg-tiny", (1, 8, 8), 10)
    net = deployed(spiking_model("vgg-tiny", (1, 8, 8)))
    with pytest.raises(DeployError, match="spiking model"):
        measure_float(model, net, [(torch.zeros(1, 1, 8, 8), torch.zeros(1, dtype=torch.int64))],
                      RunSettings(5))  # fmt: skip


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
    net = deployed(model)
    names, before, after = neuron_parameters(model, info, net)
    assert names == ["conv1", "pool+conv2", "pool+fc1"]
    assert before == [(1.0, 1.5), (1.0, 2.5), (1.0, 3.5)]
    assert np.allclose(after, [(0.9, 1.0), (0.8, 2.0), (0.7, 3.0)])
    info.initial_thresholds = []
    with pytest.raises(DeployError, match="no leak/threshold values from conversion"):
        neuron_parameters(model, info, net)


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
