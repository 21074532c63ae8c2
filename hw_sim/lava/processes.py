"""Our Lava processes, fixed point: data in and out through ``.npy`` memory maps.

Lava's ``Var.set()`` / ``get()`` send one message per element (15–23 µs each here), which made
recording spikes and injecting a per-step drive cost 60–90 ms per step. These processes map a
file ``MAP_SHARED`` in both the host and the Lava process instead; the host writes or reads it
only while the runtime is paused (between ``run()`` chunks), so there is no race.

- :class:`FrameSource` sends, at Lava step t (from 1), row (t − 1) mod K of its int32 file
  (K, *shape) — a ring the host refills between chunks. Into a neuron's ``a_in`` it arrives
  in the same step: u = wrap24(a_in << 6) when iDecay = 4096.
- :class:`FrameSink` writes what reaches its ``a_in`` at step t into row (t − 1) mod K.
- :class:`LIFResetRefractory`: netx's pipelined LIF (``LIFReset``) with a refractory period,
  bit-accurate (Lava 0.10 has only a floating-point ``LIFRefractory``); netx ignores the file's
  ``refDelay``, so :func:`refractory_layers` builds these for the layers that have one.

Shapes are Lava's (W, H, C) order for maps.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed
from lava.proc.lif.process import LIFReset

from dietsnn_deploy.errors import DeployError


def frames_file(path: Path, rows: int, shape: tuple[int, ...]) -> np.memmap:
    """A zeroed int32 ``.npy`` of (rows, *shape), mapped for the host to read and write."""
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.int32, shape=(rows, *shape))


class FrameSource(AbstractProcess):
    """Sends row (t − 1) mod K of the int32 ``.npy`` at ``path`` every step."""

    def __init__(self, *, shape: tuple[int, ...], path: str | Path) -> None:
        super().__init__(shape=tuple(shape), path=str(path))
        self.s_out = OutPort(shape=tuple(shape))


class FrameSink(AbstractProcess):
    """Writes its input of step t into row (t − 1) mod K of the int32 ``.npy`` at ``path``."""

    def __init__(self, *, shape: tuple[int, ...], path: str | Path) -> None:
        super().__init__(shape=tuple(shape), path=str(path))
        self.a_in = InPort(shape=tuple(shape))


@implements(proc=FrameSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFrameSourceModel(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.frames = np.load(proc_params["path"], mmap_mode="r")

    def run_spk(self) -> None:
        self.s_out.send(np.array(self.frames[(self.time_step - 1) % self.frames.shape[0]]))


@implements(proc=FrameSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFrameSinkModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.frames = np.load(proc_params["path"], mmap_mode="r+")

    def run_spk(self) -> None:
        self.frames[(self.time_step - 1) % self.frames.shape[0]] = self.a_in.recv()


#: process class → its fixed-point model, for an instance-keyed exception map
MODELS: dict = {FrameSource: PyFrameSourceModel, FrameSink: PyFrameSinkModel}


def model_map(processes) -> dict:
    """``exception_proc_model_map`` entries for our process instances among ``processes``
    (keyed by instance, so Lava's compiler takes the model without scanning for it)."""
    return {p: MODELS[type(p)] for p in processes if type(p) in MODELS}


class LIFResetRefractory(LIFReset):
    """Lava's ``LIFReset`` whose neurons stay refractory for ``refractory_period`` steps after
    a spike (the single-spike neuron, :mod:`dietsnn_deploy.spine.neurons.single_spike`)."""

    def __init__(self, *, shape: tuple[int, ...], refractory_period: int = 1, **kwargs) -> None:
        super().__init__(shape=shape, **kwargs)
        self.proc_params["refractory_period"] = int(refractory_period)
        self.refractory_period_end = Var(shape=shape, init=0)


@implements(proc=LIFResetRefractory, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyLifResetRefractoryModel(AbstractPyLifModelFixed):
    """Bit-accurate: ``PyLifResetModelBitAcc`` plus the refractory rule. At step t, per
    neuron: the pipeline's reset (t ≡ offset mod interval) zeroes u, v and the refractory end;
    u integrates as always; v integrates only while ``end < t`` (held otherwise); a spike needs
    ``end < t`` and sets v = 0 and ``end = t + P``."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    vth: int = LavaPyType(int, np.int32, precision=17)
    refractory_period_end: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=32)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.effective_vth = 0
        self.reset_interval = proc_params["reset_interval"]
        self.reset_offset = proc_params["reset_offset"] % self.reset_interval
        self.refractory_period = proc_params["refractory_period"]

    def scale_threshold(self) -> None:
        self.effective_vth = np.left_shift(self.vth, self.vth_shift)
        self.isthrscaled = True

    def spiking_activation(self) -> np.ndarray:
        return self.v > self.effective_vth

    def run_spk(self) -> None:
        a_in_data = self.a_in.recv()
        if self.time_step % self.reset_interval == self.reset_offset:
            self.u *= 0
            self.v *= 0
            self.refractory_period_end *= 0
        self.scale_bias()
        if not self.isthrscaled:
            self.scale_threshold()
        active = self.refractory_period_end < self.time_step
        held = self.v.copy()
        self.subthr_dynamics(activation_in=a_in_data)
        self.v[~active] = held[~active]
        spikes = self.spiking_activation() & active
        self.v[spikes] = 0
        self.refractory_period_end[spikes] = self.time_step + self.refractory_period
        self.s_out.send(spikes)


MODELS[LIFResetRefractory] = PyLifResetRefractoryModel


@contextlib.contextmanager
def refractory_layers(periods: dict[int, int]):
    """While active, netx builds :class:`LIFResetRefractory` (period ``periods[i]``) for the
    neurons of file layer ``/layer/<i>``; other layers are unchanged. netx calls
    ``Network.get_neuron_params`` on the class, so it is swapped for the build (not
    thread-safe). Needs ``reset_interval`` (netx builds ``LIFReset`` then)."""
    from lava.lib.dl.netx import hdf5

    original = hdf5.Network.__dict__["get_neuron_params"]
    built = set()

    def get_neuron_params(neuron_config, *args, **kwargs):
        params = original.__func__(neuron_config, *args, **kwargs)
        match = _LAYER_PATH.search(getattr(getattr(neuron_config, "f", None), "name", "") or "")
        index = int(match.group(1)) if match else None
        if index in periods:
            if params.get("neuron_proc") is not LIFReset:
                raise DeployError(f"layer {index}: a refractory layer needs a CUBA neuron")
            params = {**params, "neuron_proc": LIFResetRefractory,
                      "refractory_period": periods[index]}  # fmt: skip
            built.add(index)
        return params

    hdf5.Network.get_neuron_params = staticmethod(get_neuron_params)
    try:
        yield built
    finally:
        hdf5.Network.get_neuron_params = original
    if set(periods) - built:
        raise DeployError(
            f"netx built no refractory neurons for layers {sorted(set(periods) - built)}"
        )


_LAYER_PATH = re.compile(r"/layer/(\d+)/neuron$")
