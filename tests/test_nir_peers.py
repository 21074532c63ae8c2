"""Our NIR graphs read by the real peer libraries (snnTorch 1.0.0, Norse 1.1.0) give our spikes;
their known pitfalls (read from their source) are pinned as tests that would catch a wrong
time constant.

Stock importers, as they are, with the documented work-arounds:
- snnTorch ``import_from_nir`` has no mapping for ``nir.I`` (our integrating readout), so it
  gets the graph without that node and the last Linear is summed over T, as the readout does;
  its Flatten drops the batch dimension wrongly, so images go in one at a time; it maps IF to
  ``Leaky(beta=0.9)``, so these networks keep every leak below 1.
- Norse ``from_nir`` breaks on pools and Flatten, so its node importer builds the neurons and
  the chain runs them; it ignores ``r`` (v ← v + dt/τ·(v_leak − v + I)), so its thresholds are
  divided by r (the same spikes: every potential scales by 1/r); it defaults to dt = 1e-3.
"""

from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest
import torch

from dietsnn_deploy.spine.float_network import FloatLayer, FloatNetwork, FloatNeuron
from dietsnn_deploy.spine.neurons import get_neuron_model
from dietsnn_deploy.training.float_view import from_float_network, to_float_network
from dietsnn_deploy.training.models import build_model
from exporters.nir import to_nir_graph

snn = pytest.importorskip("snntorch")
T = 5


def _images(count=6, seed=1):
    return 2 * torch.rand((count, 1, 8, 8), generator=torch.Generator().manual_seed(seed))


def _without_integrator(graph):
    nodes = {k: v for k, v in graph.nodes.items() if k != "readout_integrator"}
    edges = [e for e in graph.edges if "readout_integrator" not in e] + [("readout", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(graph.metadata))


def test_snntorch_reads_our_graph_with_our_leaks_and_spikes():
    from snntorch.import_nir import import_from_nir

    torch.manual_seed(0)
    model = build_model("vgg-tiny", (1, 8, 8), 10)
    model.spiking = True
    model.set_neuron_params(thresholds=[0.2, 0.1, 0.05], leaks=[0.9, 0.8, 0.95])
    model.neuron_model = get_neuron_model("lif", "hard")
    model.eval()
    images = _images()
    ours = model.run_snn(images, T, record=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = import_from_nir(_without_integrator(to_nir_graph(to_float_network(model), dt=1e-4)))
    leaky = [m for m in net.modules() if isinstance(m, snn.Leaky)]
    # β = 1 − dt/τ with snnTorch's hard-coded dt: our λ back (a wrong τ or dt would show here)
    assert [float(m.beta.flatten()[0]) for m in leaky] == pytest.approx(model.leaks(), abs=1e-6)
    assert all(m.reset_mechanism == "zero" for m in leaky)  # NIR's hard reset
    recorded: list[list[torch.Tensor]] = [[] for _ in leaky]
    for index, module in enumerate(leaky):
        module.register_forward_hook(lambda m, i, out, k=index: recorded[k].append(out.detach()))
    logits = []
    for image in images:  # one at a time (its Flatten folds a batch away)
        for module in leaky:
            module.reset_mem()
        logits.append(sum(net(image)[0] for _ in range(T)))
    for k, (key, spikes) in enumerate(ours.spikes.items()):
        theirs = torch.stack(recorded[k]).reshape(len(images), T, *spikes.shape[2:]).transpose(0, 1)
        assert torch.equal(theirs, spikes), f"layer {key}"
        assert spikes.any()
    assert torch.allclose(torch.stack(logits), ours.logits, atol=1e-5)


def _pool_free_network() -> FloatNetwork:
    rng = np.random.default_rng(0)
    return FloatNetwork((1, 8, 8), (
        FloatLayer("conv1", rng.normal(0, 0.5, (4, 1, 3, 3)), FloatNeuron(0.9, 0.3), stride=(2, 2),
                   padding=(1, 1)),
        FloatLayer("fc1", rng.normal(0, 0.3, (16, 64)), FloatNeuron(0.8, 0.2)),
        FloatLayer("readout", rng.normal(0, 0.3, (10, 16)), None),
    ))  # fmt: skip


def _norse_spikes(graph, images, dt):
    """Our chain with Norse's own LIF cells built from the graph's nodes (thresholds ÷ r)."""
    from norse.torch.utils.import_nir import _import_norse_module

    cells, spikes = {}, {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.LIF):
            folded = nir.LIF(tau=node.tau, r=np.ones_like(node.r), v_leak=node.v_leak,
                             v_threshold=node.v_threshold / node.r, v_reset=node.v_reset)  # fmt: skip
            cells[name] = _import_norse_module(folded, ignore_warnings=True, dt=dt)
    conv, fc = (graph.nodes[n] for n in ("conv1", "fc1"))
    state = {name: None for name in cells}
    for _ in range(T):
        h = torch.nn.functional.conv2d(images, torch.as_tensor(conv.weight, dtype=torch.float32),
                                       stride=tuple(conv.stride), padding=tuple(conv.padding))  # fmt: skip
        h, state["conv1_neurons"] = cells["conv1_neurons"](h, state["conv1_neurons"])
        spikes.setdefault("conv1", []).append(h)
        h = torch.nn.functional.linear(
            h.flatten(1), torch.as_tensor(fc.weight, dtype=torch.float32)
        )
        h, state["fc1_neurons"] = cells["fc1_neurons"](h, state["fc1_neurons"])
        spikes.setdefault("fc1", []).append(h)
    return [torch.stack(v) for v in spikes.values()]


def test_norse_reads_our_lif_nodes_with_our_spikes_at_our_dt_and_not_at_its_default():
    pytest.importorskip("norse")
    net = _pool_free_network()
    model = from_float_network(net)
    images = _images(8)
    ours = list(model.run_snn(images, T, record=True).spikes.values())
    graph = to_nir_graph(net, dt=1e-4)
    theirs = _norse_spikes(graph, images, dt=1e-4)
    for a, b in zip(ours, theirs, strict=True):
        # Norse computes v + dt/τ·(−v + I) in float32: a tie with θ can round the other way
        assert (a != b).float().mean() < 1e-3 and a.any()
    at_default = _norse_spikes(graph, images, dt=1e-3)  # Norse's default dt: λ = 1 − 10·(1 − λ)
    assert (ours[0] != at_default[0]).float().mean() > 0.05


# Canaries: each pins a peer defect this project works around. They pass while the defect is
# there; when a new release fixes it, the test fails and says which work-around can go.


def _our_graph():
    torch.manual_seed(0)
    model = build_model("vgg-tiny", (1, 8, 8), 10)
    model.spiking = True
    model.set_neuron_params(leaks=[0.9, 0.8, 0.95])
    model.neuron_model = get_neuron_model("lif", "hard")
    return to_nir_graph(to_float_network(model.eval()))


def test_canary_snntorch_has_no_mapping_for_an_integrator():
    from snntorch.import_nir import import_from_nir

    with warnings.catch_warnings(), pytest.raises(ValueError, match="Unknown node type"):
        warnings.simplefilter("ignore")
        import_from_nir(_our_graph())


def test_canary_snntorch_exporter_needs_per_neuron_parameters():
    from snntorch.export_nir import export_to_nir

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1, bias=False),
                              snn.Leaky(beta=0.9, init_hidden=True), torch.nn.Flatten(),
                              torch.nn.Linear(128, 2, bias=False))  # fmt: skip
    with pytest.raises(ValueError, match="type mismatch"):
        export_to_nir(net, torch.zeros(1, 1, 8, 8), ignore_dims=[0])


def test_canary_norse_from_nir_breaks_on_pools():
    norse = pytest.importorskip("norse.torch")
    with warnings.catch_warnings(), pytest.raises(KeyError):
        warnings.simplefilter("ignore")
        norse.from_nir(_our_graph(), dt=1e-4)


def test_canary_norse_to_nir_cannot_export_a_conv_network():
    """Norse 1.1.0's exporter needs every conv and linear bias, and maps Flatten to no node
    (None), so its graph of a conv network cannot even be written: nothing to import yet."""
    norse = pytest.importorskip("norse.torch")
    cell = norse.LIFBoxCell(norse.LIFBoxParameters(v_th=torch.tensor(1.0)))
    layers = [torch.nn.Conv2d(1, 2, 3, padding=1, bias=False), cell, torch.nn.Flatten(),
              torch.nn.Linear(128, 2, bias=True)]  # fmt: skip
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'detach'"):
        norse.to_nir(norse.SequentialState(*layers), torch.zeros(1, 1, 8, 8))
    layers[0] = torch.nn.Conv2d(1, 2, 3, padding=1, bias=True)
    graph = norse.to_nir(norse.SequentialState(*layers), torch.zeros(1, 1, 8, 8))
    assert graph.nodes["2"] is None  # the Flatten
