"""hw_sim.lava.compat: lava-nc / lava-dl import and run on Python 3.11 (needs Lava installed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from hw_sim.lava.compat import OBJECT_DETECTION, import_netx, patch_var_model_source

pytestmark = pytest.mark.lava


def test_patch_rewrites_only_instance_defaults():
    source = "class A:\n    x: ByteEncoder = ByteEncoder()\n    n: int = 0\n"
    patched = patch_var_model_source(source)
    assert "x: ByteEncoder = _lava_compat_field(default_factory=ByteEncoder)" in patched
    assert "n: int = 0" in patched


def test_var_model_imports_with_independent_defaults():
    import_netx()
    from lava.magma.compiler.var_model import ByteEncoder, CoreEncoder

    first, second = CoreEncoder(), CoreEncoder()
    assert first.x == ByteEncoder(base=0, len=0, ptr=0)
    assert first.x is not second.x  # default_factory: one fresh instance per object


def test_object_detection_placeholder_explains_itself():
    import_netx()
    placeholder = sys.modules[OBJECT_DETECTION]
    with pytest.raises(AttributeError, match="torchvision and cv2"):
        placeholder.boundingbox  # noqa: B018


def _write_two_layer_net(path) -> None:
    """input (2 neurons, no leak, vThMant 100) → dense readout [[4, -2]] (no leak, no firing)."""
    with h5py.File(path, "w") as f:
        for index, (kind, shape, v_th) in enumerate([("input", [2], 100), ("dense", [1], 131071)]):
            layer = f.create_group(f"layer/{index}")
            layer.create_dataset("type", (1,), "S10", [kind.encode()])
            layer.create_dataset("shape", data=np.array(shape))
            neuron = layer.create_group("neuron")
            neuron.create_dataset("type", (1,), "S10", [b"CUBA"])
            for key, value in [("iDecay", 4096), ("vDecay", 0), ("vThMant", v_th), ("refDelay", 1)]:
                neuron.create_dataset(key, data=value)
        f["layer/1"].create_dataset("weight", data=np.array([[4, -2]]))


def test_netx_network_runs_bit_exact(tmp_path):
    netx = import_netx()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer

    path = tmp_path / "two_layer.net"
    _write_two_layer_net(path)
    net = netx.hdf5.Network(net_config=str(path))
    assert [layer.shape for layer in net.layers] == [(2,), (1,)]
    # Drive 150 and 70: v grows by 9600 and 4480 per step against a threshold of 100·64 = 6400.
    net.in_layer.neuron.bias_mant.init = np.array([150, 70])
    sink = RingBuffer(shape=(2,), buffer=4)
    net.in_layer.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=4), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        spikes = sink.data.get()
        v_after_4 = int(net.out_layer.neuron.v.get()[0])
        net.run(condition=RunSteps(num_steps=1))
        v_after_5 = int(net.out_layer.neuron.v.get()[0])
    finally:
        net.stop()
    # Neuron 0 fires every step; neuron 1 reaches 8960 > 6400 every second step (hard reset).
    assert spikes.tolist() == [[1, 1, 1, 1], [0, 1, 0, 1]]
    # The dense synapse delays one step: step t adds (4·s0 − 2·s1)[t−1] << 6.
    # Steps 2, 3, 4 add 4·64, (4 − 2)·64, 4·64 → 640; step 5 adds (4 − 2)·64 → 768.
    assert (v_after_4, v_after_5) == (640, 768)


def test_lava_imports_after_the_start_method_was_fixed():
    # A tqdm bar (even a disabled one) fixes multiprocessing's start method; Lava's own
    # set_start_method('fork') then raised "context has already been set". Fresh interpreter:
    # this process has imported Lava already.
    script = (
        "import tqdm, multiprocessing as mp\n"
        "tqdm.tqdm(range(1), disable=True)\n"
        "assert mp.get_start_method(allow_none=True) == 'fork'\n"
        "from hw_sim.lava.compat import import_netx\n"
        "import_netx()\n"
        "import lava.magma.runtime.message_infrastructure.multiprocessing\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
