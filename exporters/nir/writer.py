"""Write a :class:`FloatNetwork` as a NIR graph (``nir.write``; HDF5).

The chain becomes Input → [AvgPool2d →] Conv2d → LIF|IF → … → [AvgPool2d →] Flatten →
Linear → LIF|IF → … → Linear → I → Output, with the neuron codec of :mod:`.neurons` at
``dt``. Graph metadata records the producer, dt, T, the input encoding and normalisation, and
the reset: NIR's neurons reset hard, so a soft-reset network is written only when asked
(``allow_soft_reset``), and its reset then lives in metadata alone, which NIR tells backends
not to rely on: they will run it with a hard reset.
"""

from __future__ import annotations

import os

import numpy as np

from dietsnn_deploy.atomic import atomic_path
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine import geometry
from dietsnn_deploy.spine.float_network import FloatNetwork
from exporters.nir.neurons import DEFAULT_DT, neuron_node, readout_node

PRODUCER = "dietsnn-deploy"


def soft_reset_warning(net: FloatNetwork) -> str | None:
    """What a user must know before writing ``net`` to NIR, or None."""
    if net.reset != "soft":
        return None
    return (
        "warning: this network resets softly (u ← u − θ); NIR's LIF resets to v_reset, so the "
        "graph runs with a hard reset everywhere; the soft reset is recorded only in metadata, "
        "which NIR backends must not rely on (fine-tune for hardware first for an exact graph)"
    )


def to_nir_graph(net: FloatNetwork, dt: float = DEFAULT_DT, *, allow_soft_reset: bool = False):
    """The NIR graph of ``net`` stepped at ``dt`` seconds."""
    import nir

    if not (np.isfinite(dt) and dt > 0):
        raise DeployError(f"dt must be a positive number of seconds, got {dt}")
    if net.reset == "soft" and not allow_soft_reset:
        raise DeployError(
            "a soft-reset network can't be written to NIR exactly (NIR resets hard): export the "
            "hardware fine-tuned model, or pass --allow-soft-reset to write it with a warning"
        )
    nodes: dict[str, object] = {"input": nir.Input(input_type={"input": np.array(net.in_shape)})}
    chain = ["input"]

    def add(name: str, node) -> None:
        nodes[name] = node
        chain.append(name)

    shape: tuple[int, ...] = tuple(net.in_shape)
    for layer, out_shape in zip(net.layers, net.shapes(), strict=True):
        if layer.pool > 1:
            pool = np.array([layer.pool, layer.pool])
            add(f"{layer.name}_pool", nir.AvgPool2d(kernel_size=pool, stride=pool,
                                                    padding=np.zeros(2, np.int64)))  # fmt: skip
            shape = geometry.pooled_shape(shape, layer.pool)
        weight = np.asarray(layer.weight, dtype=np.float64)
        if layer.is_conv:
            add(layer.name, nir.Conv2d(input_shape=tuple(int(v) for v in shape[1:]),
                                       weight=weight, stride=layer.stride, padding=layer.padding,
                                       dilation=1, groups=1,
                                       bias=np.zeros(weight.shape[0])))  # fmt: skip
        else:
            if len(shape) == 3:
                add(f"{layer.name}_flatten",
                    nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1))  # fmt: skip
            add(layer.name, nir.Linear(weight=weight))
        neuron = (
            readout_node(out_shape, dt)
            if layer.neuron is None
            else neuron_node(layer.neuron, out_shape, dt)
        )
        add(f"{layer.name}_{'neurons' if layer.neuron is not None else 'integrator'}", neuron)
        shape = out_shape
    add("output", nir.Output(output_type={"output": np.array(shape)}))
    metadata = {key: value for key, value in net.metadata.items() if value is not None}
    metadata.update(producer=PRODUCER, dt=float(dt), reset=net.reset)
    return nir.NIRGraph(
        nodes=nodes, edges=list(zip(chain[:-1], chain[1:], strict=True)), metadata=metadata
    )


def write_nir(net: FloatNetwork, path: str | os.PathLike, dt: float = DEFAULT_DT, *,
              allow_soft_reset: bool = False) -> None:  # fmt: skip
    """Write ``net`` to ``path`` atomically as a NIR graph."""
    import nir

    graph = to_nir_graph(net, dt, allow_soft_reset=allow_soft_reset)
    with atomic_path(path) as temporary:
        nir.write(temporary, graph)
