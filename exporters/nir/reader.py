"""Read a NIR graph as a :class:`FloatNetwork`: the subset that is a feed-forward chain our
deployment runs, and a one-line refusal, naming the node and the reason, for the rest.

Accepted, in chain order from the Input node:

- Conv2d (dilation 1, one group, zero bias); Linear, or Affine with zero bias;
- AvgPool2d (k×k, stride k, no padding), SumPool2d likewise (k² folded into the next
  weights); consecutive pools multiply; Flatten of a whole (C, H, W) map;
- after every synaptic node but the last, LIF, IF or CubaLIF (τ_syn = dt) neurons
  (:mod:`.neurons`), whose input gain folds into its weights;
- a readout: an I node, or none (the last Linear goes straight to Output, summed over T).

A first layer that is dense becomes a conv whose kernel covers the image (the same sums), so
the host can run it as the deployed network's conv1. ``dt`` is the caller's, else the
graph's ``metadata["dt"]``, else 1e-4 s.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.float_network import FloatLayer, FloatNetwork
from exporters.hdf5 import top_groups
from exporters.nir.neurons import DEFAULT_DT, read_neuron, readout_gain


def is_nir(path: str | os.PathLike) -> bool:
    """True for an HDF5 file laid out as a NIR graph (a ``node`` group at the root); False
    for a missing file (the caller's loader names what it expected)."""
    if not Path(path).is_file():
        return False
    groups = top_groups(path)
    return groups is not None and "node" in groups and "layer" not in groups


def _pair(value, name: str, field: str) -> tuple[int, int]:
    if isinstance(value, str):
        raise DeployError(f"NIR node '{name}': {field} '{value}' is not supported (give numbers)")
    values = np.broadcast_to(np.asarray(value).reshape(-1), (2,))
    if not np.all(values == np.round(values)) or np.any(values < 0):
        raise DeployError(f"NIR node '{name}': {field} {values.tolist()} is not a whole number")
    return int(values[0]), int(values[1])


def _chain(graph) -> list[str]:
    """Node names from the Input to the Output; anything but a chain is refused."""
    import nir

    inputs = [name for name, node in graph.nodes.items() if isinstance(node, nir.Input)]
    if len(inputs) != 1:
        raise DeployError(f"a NIR graph with {len(inputs)} Input nodes; exactly one is supported")
    successors: dict[str, list[str]] = {}
    for source, target in graph.edges:
        successors.setdefault(source, []).append(target)
    order, current = [], inputs[0]
    while True:
        order.append(current)
        following = successors.get(current, [])
        if not following:
            break
        if len(following) > 1 or following[0] in order:
            raise DeployError(
                f"NIR node '{current}' feeds {following}: only feed-forward chains are supported"
            )
        current = following[0]
    unreached = set(graph.nodes) - set(order)
    if unreached:
        raise DeployError(f"NIR nodes {sorted(unreached)} are not on the Input's chain")
    if not isinstance(graph.nodes[order[-1]], nir.Output):
        raise DeployError(f"NIR graph ends in '{order[-1]}', not in an Output node")
    return order


def _zero_bias(node, name: str) -> None:
    bias = getattr(node, "bias", None)
    if bias is not None and np.any(np.asarray(bias) != 0):
        raise DeployError(
            f"NIR node '{name}': a non-zero bias is not supported yet (train without bias)"
        )


def _in_shape(graph, name: str) -> tuple[int, int, int]:
    shape = tuple(int(v) for v in np.asarray(graph.nodes[name].input_type["input"]).reshape(-1))
    if len(shape) == 1:
        return (shape[0], 1, 1)
    if len(shape) != 3 or min(shape) < 1:
        raise DeployError(f"NIR node '{name}': input shape {shape} is not (C, H, W) or (N,)")
    return shape  # type: ignore[return-value]


def from_nir_graph(graph, dt: float | None = None) -> FloatNetwork:
    """The :class:`FloatNetwork` of a NIR graph stepped at ``dt`` (module doc)."""
    import nir

    metadata = dict(graph.metadata or {})
    dt = float(dt if dt is not None else metadata.get("dt", DEFAULT_DT))
    if not (np.isfinite(dt) and dt > 0):
        raise DeployError(f"dt must be a positive number of seconds, got {dt}")
    order = _chain(graph)
    in_shape = _in_shape(graph, order[0])
    shape: tuple[int, ...] = in_shape
    layers: list[FloatLayer] = []
    pending: dict | None = None  # the synaptic node waiting for its neurons
    pool, pool_gain = 1, 1.0

    def close(neuron, gain: float) -> None:
        nonlocal pending, shape
        layer = FloatLayer(neuron=neuron, **{**pending, "weight": pending["weight"] * gain})
        shape = layer.output_shape(shape)
        layers.append(layer)
        pending = None

    for name in order[1:]:
        node = graph.nodes[name]
        if isinstance(node, nir.Conv2d | nir.Linear | nir.Affine):
            if pending is not None:
                raise DeployError(f"NIR node '{name}': follows a synaptic node without neurons")
            _zero_bias(node, name)
            weight = np.asarray(node.weight, dtype=np.float64) * pool_gain
            if isinstance(node, nir.Conv2d):
                if _pair(node.dilation, name, "dilation") != (1, 1) or int(node.groups) != 1:
                    raise DeployError(f"NIR node '{name}': dilation and groups must be 1")
                if weight.ndim != 4:
                    raise DeployError(f"NIR node '{name}': Conv2d weight {weight.shape} is not 4-D")
                pending = {"name": name, "weight": weight, "pool": pool,
                           "stride": _pair(node.stride, name, "stride"),
                           "padding": _pair(node.padding, name, "padding")}  # fmt: skip
            elif not layers:  # a dense first layer: a conv whose kernel is the whole image
                if pool > 1:
                    raise DeployError(f"NIR node '{name}': a pool before a dense first layer")
                pending = {"name": name, "weight": weight.reshape(-1, *in_shape), "pool": 1}
            else:
                pending = {"name": name, "weight": weight, "pool": pool}
            pool, pool_gain = 1, 1.0
        elif isinstance(node, nir.AvgPool2d | nir.SumPool2d):
            kernel, stride = (
                _pair(node.kernel_size, name, "kernel"),
                _pair(node.stride, name, "stride"),
            )
            if (
                kernel[0] != kernel[1]
                or stride != kernel
                or _pair(node.padding, name, "padding") != (0, 0)
            ):
                raise DeployError(
                    f"NIR node '{name}': only square k×k pools of stride k without padding"
                )
            pool *= kernel[0]
            if isinstance(node, nir.SumPool2d):
                pool_gain *= kernel[0] ** 2  # a sum pool is k² times the average
        elif isinstance(node, nir.Flatten):
            if int(node.start_dim) != 0 or int(node.end_dim) not in (-1, len(shape) - 1):
                raise DeployError(f"NIR node '{name}': only a Flatten of the whole map")
        elif isinstance(node, nir.LIF | nir.IF | nir.CubaLIF):
            if pending is None:
                raise DeployError(f"NIR node '{name}': neurons without a synaptic node in front")
            close(*read_neuron(node, name, dt))
        elif isinstance(node, nir.I | nir.LI):
            if pending is None:
                raise DeployError(f"NIR node '{name}': a readout without a synaptic node in front")
            close(None, readout_gain(node, name, dt))
        elif isinstance(node, nir.Output):
            if pending is not None:
                close(None, 1.0)  # the last Linear straight to Output: summed over T
            elif layers and layers[-1].neuron is not None:
                raise DeployError(
                    f"NIR graph: its last layer '{layers[-1].name}' spikes; the output is read as"
                    " an integrating readout here: end the graph with the last Linear (or → I)"
                )
        else:
            raise DeployError(
                f"NIR node '{name}': {type(node).__name__} is not supported (see the README's"
                " NIR table)"
            )
    if pool > 1:
        raise DeployError("NIR graph: a pool after the last synaptic layer has no effect we map")
    metadata["dt"] = dt
    return FloatNetwork(in_shape, tuple(layers), metadata)


def read_nir(path: str | os.PathLike, dt: float | None = None) -> FloatNetwork:
    """The :class:`FloatNetwork` of the NIR file at ``path``."""
    import nir

    path = Path(path)
    try:
        graph = nir.read(path, type_check=False)  # the chain checks its own shapes
    except DeployError:
        raise
    except Exception as exc:  # nir raises many kinds on a damaged file
        raise DeployError(
            f"{path}: not a readable NIR graph ({type(exc).__name__}: {exc})"[:240]
        ) from exc
    try:
        return from_nir_graph(graph, dt)
    except DeployError as exc:
        raise DeployError(f"{path}: {exc}") from exc
