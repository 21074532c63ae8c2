"""A network built and trained in snnTorch, exported by snnTorch's own ``export_to_nir``, then
our import → netx → Lava and the emulator: identical spikes on both simulators, and
predictions that agree with snnTorch's own (tolerance: 97 % of the digits test set; measured
99.7 %: the quantized weights and thresholds move a few images across a decision boundary)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from cli_helpers import run_main
from fixtures_nets import child_processes

from dietsnn_deploy.data import dataset_info, make_loader
from exporters.netx import read_netx
from hw_sim.emulator import classify, emulate
from hw_sim.host import host_drive
from hw_sim.lava.runner import run_lava

pytest.importorskip("snntorch")
sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from snntorch_peer import (  # noqa: E402
    RAW,
    export_snntorch,
    snntorch_accuracy,
    snntorch_net,
    train_snntorch,
)

pytestmark = pytest.mark.lava
T = 5


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("snntorch")
    torch.manual_seed(0)
    info = dataset_info("digits")
    net = snntorch_net(info.in_shape, info.num_classes)
    train = make_loader("digits", "train", 128, normalization=RAW, seed=0)
    net = train_snntorch(net, train, T, epochs=20)
    export_snntorch(net, info.in_shape, folder / "g.nir")
    mp = pytest.MonkeyPatch()
    try:
        code, _, err = run_main(mp, _Quiet(), "export", str(folder / "g.nir"), "-o",
                                str(folder / "g.net"), "--dataset", "digits", "--mean", "0",
                                "--std", "1", "-T", str(T))  # fmt: skip
    finally:
        mp.undo()
    assert code == 0, err
    return net, folder / "g.net"


class _Quiet:
    def readouterr(self):
        return "", ""


def test_lava_and_emulator_agree_on_the_snntorch_network(deployed):
    _, path = deployed
    net = read_netx(path)
    images, _ = next(iter(make_loader("digits", "test", 5, limit=5, normalization=RAW)))
    lava = run_lava(path, images, progress=False)
    emulated = emulate(net, host_drive(net.encoder, images, net.timesteps))
    for index, (ours, theirs) in enumerate(zip(lava.record.spikes, emulated.spikes, strict=True)):
        if ours is None or theirs is None:
            assert ours is None and theirs is None
            continue
        assert torch.equal(ours, theirs), f"layer {index}"
        assert ours.any(), f"layer {index} is silent"
    assert torch.equal(lava.record.readout, emulated.readout)
    assert child_processes() == []


def test_deployed_predictions_agree_with_snntorchs_own(deployed):
    snn_net, path = deployed
    accuracy, theirs = snntorch_accuracy(snn_net, "digits", T)
    assert accuracy > 0.85  # it learned
    net = read_netx(path)
    loader = make_loader("digits", "test", 360, normalization=RAW)
    images, _ = next(iter(loader))
    ours = classify(net, images, progress=False).predictions
    assert float((ours == theirs).float().mean()) >= 0.97
