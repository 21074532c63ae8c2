"""Lava (netx file, fixed point) and hw_sim.emulator agree bit for bit on exported networks."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from fixtures_nets import assert_records_agree, child_processes, random_images, random_network

from exporters.netx import read_netx, write_netx
from hw_sim.emulator import emulate
from hw_sim.host import encode_drive, host_drive
from hw_sim.lava.runner import run_lava

pytestmark = pytest.mark.lava

# (arch, seed, timesteps, images): 28 images over three architectures, incl. folded pools and
# a network deeper (5 Lava layers) than its T = 2.
CASES = [
    ("dense", 21, 5, 6),
    ("conv", 22, 5, 6),
    ("pooled", 23, 5, 6),
    ("pooled", 24, 6, 6),
    ("conv", 25, 2, 4),
]


@pytest.mark.parametrize(("arch", "seed", "timesteps", "count"), CASES)
def test_lava_and_emulator_agree(tmp_path, arch, seed, timesteps, count):
    path = tmp_path / f"{arch}.net"
    write_netx(random_network(arch, seed, timesteps=timesteps), path)
    net = read_netx(path)
    images = random_images(count, net.encoder.in_shape, seed=seed + 100)

    lava = run_lava(path, images, progress=False).record
    emulated = emulate(net, encode_drive(net.encoder, images))
    assert_records_agree(lava, emulated, net, rates=(0.1, 0.4))
    assert child_processes() == []


# Poisson input: the host's drive changes every step (binary frames through the host conv),
# injected frame by frame; Lava and the emulator must still agree bit for bit.
POISSON_CASES = [("conv", 31, 4, 5), ("pooled", 32, 5, 5), ("dense", 33, 3, 4)]


@pytest.mark.parametrize(("arch", "seed", "timesteps", "count"), POISSON_CASES)
def test_lava_and_emulator_agree_on_poisson_input(tmp_path, arch, seed, timesteps, count):
    net = random_network(arch, seed, timesteps=timesteps)
    net = replace(net, encoder=replace(net.encoder, encoding="poisson"))
    path = tmp_path / f"{arch}.net"
    write_netx(net, path)
    images = random_images(count, net.encoder.in_shape, seed=seed + 100)

    lava = run_lava(path, images, progress=False, seed=7)
    drive = host_drive(net.encoder, images, timesteps, seed=7)
    assert not drive.static and drive.drive.shape[0] == timesteps
    emulated = emulate(read_netx(path), drive)
    assert_records_agree(lava.record, emulated, net)
    assert torch.equal(lava.record.frames, drive.frames)  # the frames the host saw, recorded
    assert child_processes() == []


# Hybrid input and single-spike neurons: the analog frame, then binary frames; every hidden
# neuron refractory until the image ends (our bit-accurate refractory LIF on Lava).
HYBRID_CASES = [("conv", 41, 5, 4), ("pooled", 42, 4, 4), ("dense", 43, 6, 4)]


def _single_spike(net):
    from dietsnn_deploy.spine.network import FlattenLayer

    layers = []
    for layer in net.layers:
        if isinstance(layer, FlattenLayer) or not layer.neuron.spiking:
            layers.append(layer)
            continue
        # a lower threshold keeps single spikes flowing through the layers
        neuron = replace(layer.neuron, threshold=max(1, layer.neuron.threshold // 3),
                         model="single-spike", refractory=net.timesteps)  # fmt: skip
        layers.append(replace(layer, neuron=neuron))
    return replace(net, layers=layers, encoder=replace(net.encoder, encoding="hybrid"))


@pytest.mark.parametrize(("arch", "seed", "timesteps", "count"), HYBRID_CASES)
def test_lava_and_emulator_agree_on_single_spike_networks(tmp_path, arch, seed, timesteps, count):
    net = _single_spike(random_network(arch, seed, timesteps=timesteps))
    path = tmp_path / f"{arch}.net"
    write_netx(net, path)
    loaded = read_netx(path)
    assert all(layer.neuron.model == "single-spike" for _, layer in loaded.neuron_layers[:-1])
    images = random_images(count, net.encoder.in_shape, seed=seed + 100)

    lava = run_lava(path, images, progress=False)
    emulated = emulate(loaded, host_drive(loaded.encoder, images, timesteps))
    for index, spikes in enumerate(assert_records_agree(lava.record, emulated, net, (1e-4, 1))):
        assert spikes.sum(dim=0).max() <= 1, f"layer {index}: a neuron fired twice in one image"
    assert child_processes() == []


def test_lava_refuses_a_single_spike_network_it_would_build_as_plain_lif(tmp_path, monkeypatch):
    """If netx ever stops building our refractory neurons, the run is refused, not run as LIF."""
    import re

    import hw_sim.lava.processes
    from dietsnn_deploy.errors import DeployError

    net = _single_spike(random_network("conv", 44, timesteps=4))
    path = tmp_path / "single.net"
    write_netx(net, path)
    monkeypatch.setattr(hw_sim.lava.processes, "_LAYER_PATH", re.compile(r"(?!x)x"))
    images = random_images(2, net.encoder.in_shape, seed=5)
    with pytest.raises(DeployError, match=r"netx built no refractory neurons for layers \[0, 1"):
        run_lava(path, images, progress=False)
    assert child_processes() == []
