"""A Poisson-trained digits model end to end: export → Lava and emulator give identical spikes
and predictions; the energy report prices its input layer as host accumulates on binary frames."""

from __future__ import annotations

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
TRAIN = ["--dataset", "digits", "--arch", "vgg-tiny", "-T", "4", "--ann-epochs", "4",
         "--snn-epochs", "1", "--train-limit", "480", "--test-limit", "60", "--batch-size", "32",
         "--snn-batch-size", "32", "--ann-lr", "3e-3", "--threads", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def poisson_net(tmp_path_factory):
    folder = tmp_path_factory.mktemp("poisson")
    monkey = pytest.MonkeyPatch()

    class Capture:  # capsys is function-scoped; run the CLI with a local capture instead
        def readouterr(self):
            return "", ""

    try:
        code, _, _ = run_main(
            monkey, Capture(), "train", *TRAIN, "--encoding", "poisson", "-o",
            str(folder / "poisson.pt"),
        )  # fmt: skip
        assert code == 0
        code, _, _ = run_main(monkey, Capture(), "export", str(folder / "poisson.pt"))
        assert code == 0
    finally:
        monkey.undo()
    return folder / "poisson.net"


def test_exported_network_carries_its_encoding(poisson_net):
    net = read_netx(poisson_net)
    assert net.encoder.encoding == "poisson" and net.timesteps == 4


def test_lava_and_emulator_give_identical_spikes_and_predictions(poisson_net):
    net = read_netx(poisson_net)
    pixels, _ = next(iter(make_loader("digits", "test", 3, normalization=((0.0,), (1.0,)))))
    lava = run_lava(poisson_net, pixels, progress=False, seed=3)
    emulated = emulate(net, host_drive(net.encoder, pixels, net.timesteps, seed=3))
    spiking = [i for i, s in enumerate(emulated.spikes) if s is not None]
    assert spiking and all(torch.equal(lava.record.spikes[i], emulated.spikes[i]) for i in spiking)
    assert torch.equal(lava.record.readout, emulated.readout)
    assert child_processes() == []


def test_simulate_backends_agree_and_seeds_matter(poisson_net, monkeypatch, capsys):
    reports = {}
    for backend, seed in (("emulator", 0), ("lava", 0), ("emulator", 1)):
        code, out, err = run_main(monkeypatch, capsys, "simulate", str(poisson_net), "-n", "3",
                                  "--backend", backend, "--seed", str(seed), "--json")  # fmt: skip
        assert code == 0, err
        reports[(backend, seed)] = json.loads(out)
    lava, emulator = reports[("lava", 0)], reports[("emulator", 0)]
    assert lava["predictions"] == emulator["predictions"]
    assert lava["spike_counts"] == emulator["spike_counts"]
    assert reports[("emulator", 1)]["spike_counts"] != emulator["spike_counts"]  # other frames


def test_energy_prices_the_input_layer_as_host_accumulates(
    poisson_net, monkeypatch, capsys, tmp_path
):
    code, _, err = run_main(monkeypatch, capsys, "energy", str(poisson_net), "-n", "5",
                            "--json", str(tmp_path / "e.json"))  # fmt: skip
    assert code == 0, err
    conv1 = json.loads((tmp_path / "e.json").read_text())["layers"][0]
    net = read_netx(poisson_net)
    pixels, _ = next(iter(make_loader("digits", "test", 5, normalization=((0.0,), (1.0,)))))
    frames = host_drive(net.encoder, pixels, net.timesteps, seed=0).frames  # (T, B, C, H, W)
    fan_out = torch.from_numpy(net.encoder.fan_out_map()).double()
    expected = float((frames.abs().sum(dim=(0, 1, 2)).double() * fan_out).sum()) / 5
    assert conv1["host_macs"] == 0  # no analog frame: nothing is multiplied
    assert conv1["host_acs"] == pytest.approx(expected) and expected > 0
    per_frame = net.encoder.macs  # a full conv of one frame, for scale
    assert expected < net.timesteps * per_frame  # binary frames are sparse
