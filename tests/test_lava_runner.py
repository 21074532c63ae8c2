"""hw_sim.lava.runner: exact results on hand-computed networks, pipelining, clean shutdown."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest
import torch
from fixtures_nets import child_processes, random_images, random_network

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.loihi import THRESHOLD_MAX
from dietsnn_deploy.spine.network import (
    DenseLayer,
    DeployedNetwork,
    FlattenLayer,
    HostEncoder,
    InputLayer,
    Neuron,
)
from exporters.netx import write_netx
from hw_sim.lava.runner import run_lava

pytestmark = pytest.mark.lava


@pytest.fixture(autouse=True)
def no_lava_processes_left():
    yield
    assert child_processes() == []


def _pixel_network(width: int, layers: list, timesteps: int = 5) -> DeployedNetwork:
    """1×1×width image, encoder drive = round(200·x): pixel 0.3 gives drive 60."""
    encoder = HostEncoder(
        weight=np.ones((1, 1, 1, 1)),
        stride=(1, 1),
        padding=(0, 0),
        drive_scale=200.0,
        mean=(0.0,),
        std=(1.0,),
        in_shape=(1, 1, width),
    )
    return DeployedNetwork(encoder, layers, timesteps, num_classes=layers[-1].shape[0])


def test_hand_computed_spikes_and_leaky_readout():
    net = _pixel_network(
        2,
        [
            InputLayer((1, 1, 2), Neuron(v_decay=1024, threshold=100)),
            FlattenLayer((1, 1, 2)),
            DenseLayer(np.array([[-100, 60]]), Neuron(v_decay=2048, threshold=50)),
            DenseLayer(np.array([[30], [-50]]), Neuron(1000, THRESHOLD_MAX, spiking=False)),
        ],
    )
    result = run_lava(net, torch.tensor([[[[0.3, 0.55]]]]), progress=False)
    spikes = result.record.spikes
    # Input: drives 60 and 110 add 3840 and 7040 per step against 100·64 = 6400, v ← 0.75·v.
    # Neuron 0: 3840, 2880 + 3840 = 6720 fires, 3840, 6720 fires, 3840. Neuron 1 fires always.
    assert spikes[0][:, 0].reshape(5, 2).T.int().tolist() == [[0, 1, 0, 1, 0], [1, 1, 1, 1, 1]]
    assert spikes[1] is None and spikes[3] is None
    # Hidden (v ← v/2, threshold 50·64 = 3200): inputs 60, −40, 60, −40, 60 (·64):
    # 3840 fires → 0; −2560; −1280 + 3840 = 2560; 1280 − 2560 = −1280; −640 + 3840 = 3200,
    # which is not > 3200 (the comparison is strict).
    assert spikes[2][:, 0, 0].int().tolist() == [1, 0, 0, 0, 0]
    # Readout (v ← trunc0(v·3096/4096)): the step-0 spike gives (30·64, −50·64) = (1920, −3200),
    # then 1451, 1096, 828, 625 and −2418, −1827, −1380, −1043 (rounding toward zero; a floor
    # would end at −1046).
    assert result.record.readout.tolist() == [[625, -1043]]
    assert result.record.readout.dtype == torch.int64
    assert result.predictions.tolist() == [0]


def test_wide_input_is_not_wrapped_and_saturated_readout_fires():
    # 200 inputs firing every step through weights 254: a_in = 50800 > 2**15 per step.
    net = _pixel_network(
        200,
        [
            InputLayer((1, 1, 200), Neuron(v_decay=0, threshold=100)),
            FlattenLayer((1, 1, 200)),
            DenseLayer(
                np.stack([np.full(200, 254), np.full(200, 2)]),
                Neuron(0, THRESHOLD_MAX, spiking=False),
            ),
        ],
    )
    result = run_lava(net, torch.ones(1, 1, 1, 200), progress=False)
    assert bool(result.record.spikes[0].all())
    # Neuron 0: 3251200, 6502400, then 9753600 clipped to 2**23 − 1 = 8388607, which exceeds
    # THRESHOLD_MAX·64 = 8388544: the readout fires and resets; 3251200, 6502400.
    # Neuron 1: 5 · 400 · 64 = 128000.
    assert result.record.readout.tolist() == [[6502400, 128000]]


def test_pipelined_run_equals_images_run_alone(tmp_path):
    net = random_network("conv", seed=4, timesteps=4)
    path = tmp_path / "conv.net"
    write_netx(net, path)
    images = random_images(4, net.encoder.in_shape, seed=9)
    together = run_lava(path, images, progress=False)
    assert together.seconds_per_image > 0
    assert torch.equal(together.predictions, together.record.readout.argmax(dim=1))
    spiking = [s for s in together.record.spikes if s is not None]
    assert [tuple(s.shape) for s in spiking] == [
        (4, 4, 4, 8, 8),
        (4, 4, 4, 8, 8),
        (4, 4, 4, 4, 4),
        (4, 4, 12),
    ]
    assert all(0.05 < s.float().mean() < 0.5 for s in spiking)
    for i in range(images.shape[0]):
        alone = run_lava(net, images[i : i + 1], progress=False)
        assert torch.equal(alone.record.readout[0], together.record.readout[i])
        for a, b in zip(alone.record.spikes, together.record.spikes, strict=True):
            assert (a is None and b is None) or torch.equal(a[:, 0], b[:, i])


class _FailingBar:
    """Stands in for tqdm: raises when the first image completes, mid-run."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def update(self, count: int) -> None:
        raise RuntimeError("injected failure")

    def close(self) -> None:
        pass


class _CtrlCBar(_FailingBar):
    """When the first image completes, presses Ctrl-C 50 ms later, as a terminal does: SIGINT
    to this process and to every Lava process, while Lava is busy with the next chunk."""

    def update(self, count: int) -> None:
        targets = [os.getpid()] + [int(line.split()[0]) for line in child_processes()]
        threading.Timer(0.05, lambda: [os.kill(pid, signal.SIGINT) for pid in targets]).start()


def test_exception_mid_run_stops_the_runtime(monkeypatch):
    monkeypatch.setattr("hw_sim.lava.runner.tqdm", _FailingBar)
    net = random_network("dense", seed=1, timesteps=3)
    with pytest.raises(RuntimeError, match="injected failure"):
        run_lava(net, random_images(3, net.encoder.in_shape, seed=2))
    # the autouse fixture checks that no Lava process is left


def test_ctrl_c_mid_run_interrupts_and_stops_the_runtime(monkeypatch):
    monkeypatch.setattr("hw_sim.lava.runner.tqdm", _CtrlCBar)
    # Python's own Ctrl-C handler, even when pytest was started with SIGINT ignored (a
    # background job of a non-interactive shell is); what was there is restored after.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        net = random_network("conv", seed=1, timesteps=3)
        with pytest.raises(KeyboardInterrupt):
            run_lava(net, random_images(12, net.encoder.in_shape, seed=2))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_bad_images_are_refused_before_lava_starts():
    net = random_network("dense", seed=1, timesteps=3)
    with pytest.raises(DeployError, match="images must be"):
        run_lava(net, torch.zeros(2, 3, 8, 8))
