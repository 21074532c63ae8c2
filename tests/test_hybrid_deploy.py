"""A digits hybrid network end to end, through the CLI as a user runs it: train (ANN →
conversion → single-spike training), hardware fine-tuning, export; then Lava and the emulator
on the exported file agree spike for spike, no neuron fires twice in an image, and the
deployed network still classifies."""

import json

import pytest
import torch
from cli_helpers import run_main
from fixtures_nets import child_processes

from dietsnn_deploy.data import make_loader
from exporters.netx import read_netx
from hw_sim.emulator import emulate
from hw_sim.host import host_drive
from hw_sim.lava.runner import run_lava

pytestmark = pytest.mark.lava

LAVA_IMAGES = 6


@pytest.fixture(scope="module")
def hybrid_net(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hybrid")
    mp = pytest.MonkeyPatch()
    capsys = _Capture()
    try:
        stages = [
            ("train", "--dataset", "digits", "--encoding", "hybrid", "--neuron", "single-spike",
             "--ann-epochs", "12", "--snn-epochs", "2", "-o", str(folder / "h.pt")),
            ("finetune", str(folder / "h.pt"), "--snn-epochs", "1", "-o", str(folder / "hw.pt")),
            ("export", str(folder / "hw.pt"), "-o", str(folder / "h.net")),
        ]  # fmt: skip
        for args in stages:
            code, out, err = run_main(mp, capsys, *args)
            assert code == 0, err[-2000:]
    finally:
        mp.undo()
    return folder


class _Capture:
    """A stand-in for pytest's capsys in a module fixture: the CLI's output is not needed."""

    def readouterr(self):
        return "", ""


def test_checkpoint_records_the_method(hybrid_net):
    payload = torch.load(hybrid_net / "h.pt", weights_only=True)
    assert (payload["encoding"], payload["neuron"]) == ("hybrid", "single-spike")
    assert (payload["surrogate"], payload["loss"]) == ("triangle", "potential-time")
    assert payload["accuracy"] > 0.8  # digits, T = 5, single spikes


def test_lava_and_emulator_agree_and_no_neuron_fires_twice(hybrid_net):
    path = hybrid_net / "h.net"
    net = read_netx(path)
    assert net.encoder.encoding == "hybrid"
    assert all(layer.neuron.model == "single-spike" for _, layer in net.neuron_layers[:-1])
    images, labels = next(iter(make_loader("digits", "test", LAVA_IMAGES, limit=LAVA_IMAGES,
                                           normalization=((0.0,), (1.0,)))))  # fmt: skip
    lava = run_lava(path, images, progress=False)
    emulated = emulate(net, host_drive(net.encoder, images, net.timesteps))
    hidden = [s for s in lava.record.spikes[:-1] if s is not None]
    assert hidden, "no spiking layer"
    for index, (ours, theirs) in enumerate(zip(lava.record.spikes, emulated.spikes, strict=True)):
        if ours is None or theirs is None:
            assert ours is None and theirs is None
            continue
        assert torch.equal(ours, theirs), f"layer {index} spikes differ"
        if net.layers[index].neuron.spiking:
            assert ours.sum(dim=0).max() <= 1, f"layer {index}: a neuron fired twice"
            assert ours.any(), f"layer {index} is silent"
    assert torch.equal(lava.record.readout, emulated.readout)
    assert child_processes() == []


def test_deployed_hybrid_network_classifies_and_is_priced_as_hybrid(
    hybrid_net, monkeypatch, capsys, tmp_path
):
    code, out, err = run_main(monkeypatch, capsys, "simulate", str(hybrid_net / "h.net"),
                              "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["accuracy"] > 0.8
    code, out, err = run_main(monkeypatch, capsys, "energy", str(hybrid_net / "h.net"), "-n",
                              "100", "--json", str(tmp_path / "e.json"))  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "e.json").read_text())
    rates = [layer["spike_rate"] for layer in report["layers"] if layer["kind"] != "readout"]
    assert 0 < min(rates) and max(rates) <= 1.0
    assert any(note.startswith("single-spike neurons") for note in report["notes"])
    host = report["layers"][0]
    assert host["host_macs"] == host["ann_macs"] and host["host_acs"] > 0  # 1 analog step
