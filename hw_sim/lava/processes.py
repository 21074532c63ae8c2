"""Our Lava processes, fixed point: data in and out through ``.npy`` memory maps.

Lava's ``Var.set()`` / ``get()`` send one message per element (15–23 µs each here), which made
recording spikes and injecting a per-step drive cost 60–90 ms per step. These processes map a
file ``MAP_SHARED`` in both the host and the Lava process instead; the host writes or reads it
only while the runtime is paused (between ``run()`` chunks), so there is no race.

- :class:`FrameSource` sends, at Lava step t (from 1), row (t − 1) mod K of its int32 file
  (K, *shape) — a ring the host refills between chunks. Into a neuron's ``a_in`` it arrives
  in the same step: u = wrap24(a_in << 6) when iDecay = 4096.
- :class:`FrameSink` writes what reaches its ``a_in`` at step t into row (t − 1) mod K.

Shapes are Lava's (W, H, C) order for maps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


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
MODELS = {FrameSource: PyFrameSourceModel, FrameSink: PyFrameSinkModel}


def model_map(processes) -> dict:
    """``exception_proc_model_map`` entries for our process instances among ``processes``
    (keyed by instance, so Lava's compiler takes the model without scanning for it)."""
    return {p: MODELS[type(p)] for p in processes if type(p) in MODELS}
