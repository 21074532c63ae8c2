"""NIR export and import against the nir package and the peer libraries that read it
(snnTorch 1.0.0, Norse 1.1.0): exact round trips, time constants that would be caught if
wrong, the peers' spikes equal to ours, and one-line refusals for what does not map."""

from __future__ import annotations

import math

import nir
import numpy as np
import pytest
import torch
from cli_helpers import assert_one_error_line, run_main

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.float_network import FloatLayer, FloatNetwork, FloatNeuron
from dietsnn_deploy.spine.neurons import get_neuron_model
from dietsnn_deploy.training.checkpoints import ModelInfo, save_checkpoint
from dietsnn_deploy.training.float_view import from_float_network, to_float_network
from dietsnn_deploy.training.models import build_model
from exporters.nir import read_nir, to_nir_graph, write_nir

LEAKS = [0.9, 0.8, 0.95]


def _model(leaks=LEAKS, reset="hard", seed=0):
    torch.manual_seed(seed)
    model = build_model("vgg-tiny", (1, 8, 8), 10)
    model.spiking = True
    model.set_neuron_params(thresholds=[0.2, 0.1, 0.05], leaks=leaks)
    model.neuron_model = get_neuron_model("lif", reset)
    return model.eval()


def _images(count=6, seed=1):
    return 2 * torch.rand((count, 1, 8, 8), generator=torch.Generator().manual_seed(seed))


def test_ours_to_nir_and_back_is_exact(tmp_path):
    model = _model(leaks=[0.9, 1.0, 0.8])
    path = tmp_path / "m.nir"
    write_nir(to_float_network(model, {"timesteps": 5}), path)
    back = read_nir(path)
    for ours, theirs in zip(to_float_network(model).layers, back.layers, strict=True):
        assert np.array_equal(ours.weight, theirs.weight)
        assert ours.neuron == theirs.neuron and ours.pool == theirs.pool
    x = _images()
    a = model.run_snn(x, 5, record=True)
    b = from_float_network(back).run_snn(x, 5, record=True)
    assert torch.equal(a.logits, b.logits)
    for key_a, key_b in zip(a.spikes, b.spikes, strict=True):
        assert torch.equal(a.spikes[key_a], b.spikes[key_b])
        assert a.spikes[key_a].any()


def test_nir_nodes_carry_the_stated_time_constants(tmp_path):
    dt = 1e-3
    graph = to_nir_graph(to_float_network(_model(leaks=[0.9, 1.0, 0.8])), dt)
    kinds = {name: type(node).__name__ for name, node in graph.nodes.items()}
    assert kinds["conv1_neurons"] == "LIF" and kinds["conv2_neurons"] == "IF"
    lif, if_, readout = (graph.nodes[n] for n in ("conv1_neurons", "conv2_neurons",
                                                  "readout_integrator"))  # fmt: skip
    assert np.allclose(lif.tau, dt / (1 - np.float32(0.9)))  # τ = dt/(1 − λ)
    assert np.allclose(lif.r, lif.tau / dt) and np.all(lif.v_leak == 0) and np.all(lif.v_reset == 0)
    assert lif.tau.shape == (32, 8, 8)  # the neuron shape
    assert np.allclose(if_.r, 1 / dt) and np.allclose(readout.r, 1 / dt)
    assert graph.metadata["dt"] == dt and graph.metadata["reset"] == "hard"


def test_the_dt_a_graph_is_read_with_sets_the_leak(tmp_path):
    path = tmp_path / "m.nir"
    write_nir(to_float_network(_model()), path, dt=1e-3)
    assert read_nir(path).layers[0].neuron.leak == pytest.approx(0.9, abs=1e-7)  # its own dt
    # read at snnTorch's dt instead: λ' = 1 − 1e-4/τ = 1 − 0.1·(1 − λ)
    assert read_nir(path, dt=1e-4).layers[0].neuron.leak == pytest.approx(0.99, abs=1e-7)
    with pytest.raises(DeployError, match="outside \\[0, 1\\].*--dt"):
        read_nir(path, dt=1e-2)  # dt > τ: no leak in [0, 1]


def test_input_gains_other_than_one_fold_into_the_weights(tmp_path):
    """r ≠ τ/dt (Norse writes r = 1) scales the input: the weights absorb it exactly."""
    graph = to_nir_graph(to_float_network(_model()), 1e-4)
    lif = graph.nodes["conv1_neurons"]
    graph.nodes["conv1_neurons"] = nir.LIF(tau=lif.tau, r=np.ones_like(lif.r), v_leak=lif.v_leak,
                                           v_threshold=lif.v_threshold, v_reset=lif.v_reset)  # fmt: skip
    path = tmp_path / "r1.nir"
    nir.write(path, graph)
    gain = 1e-4 / float(lif.tau.flat[0])  # (dt/τ)·r with r = 1: 1 − λ
    assert np.allclose(
        read_nir(path).layers[0].weight, to_float_network(_model()).layers[0].weight * gain
    )


def _checkpoint(tmp_path, reset):
    data_shape = (1, 8, 8)
    info = ModelInfo("vgg-tiny", "digits", data_shape, 10, (0.5,), (0.25,),
                     "hardware" if reset == "hard" else "snn", reset=reset)  # fmt: skip
    path = tmp_path / f"{reset}.pt"
    save_checkpoint(_model(reset=reset), info, path)
    return path


def test_export_format_nir_writes_what_nir_reads(tmp_path, monkeypatch, capsys):
    source = _checkpoint(tmp_path, "hard")
    code, out, err = run_main(
        monkeypatch, capsys, "export", str(source), "-o", str(tmp_path / "m.nir")
    )
    assert code == 0, err
    assert "NIR graph conv1(LIF)" in out
    graph = nir.read(tmp_path / "m.nir")
    assert graph.metadata["timesteps"] == 5 and list(graph.metadata["mean"]) == [0.5]
    # and every command takes the graph as it takes the checkpoint
    code, out, err = run_main(
        monkeypatch, capsys, "simulate", str(tmp_path / "m.nir"), "-n", "20", "--json"
    )
    code_pt, out_pt, _ = run_main(
        monkeypatch, capsys, "simulate", str(source), "-n", "20", "--json"
    )
    assert code == code_pt == 0, err
    import json

    ours, theirs = json.loads(out), json.loads(out_pt)
    assert (
        ours["predictions"] == theirs["predictions"]
        and ours["spike_counts"] == theirs["spike_counts"]
    )


def test_soft_reset_export_needs_the_flag_and_says_why(tmp_path, monkeypatch, capsys):
    source = _checkpoint(tmp_path, "soft")
    code, _, err = run_main(
        monkeypatch, capsys, "export", str(source), "-o", str(tmp_path / "s.nir")
    )
    assert code == 2
    assert_one_error_line(err, "can't be written to NIR exactly")
    code, _, err = run_main(monkeypatch, capsys, "export", str(source), "-o", str(tmp_path / "s.nir"),
                            "--allow-soft-reset")  # fmt: skip
    assert code == 0 and "must not rely on" in err
    assert nir.read(tmp_path / "s.nir").metadata["reset"] == "soft"
    assert read_nir(tmp_path / "s.nir").reset == "hard"  # what NIR means, and what runs


def _graph(*nodes, edges=None, shape=(1, 4, 4), out=(2, 4, 4)):
    named = {"input": nir.Input(input_type={"input": np.array(shape)})}
    named.update(nodes)
    named["output"] = nir.Output(output_type={"output": np.array(out)})
    names = list(named)
    return nir.NIRGraph(nodes=named, edges=edges or list(zip(names, names[1:], strict=False)),
                        type_check=False)  # fmt: skip


def _lif(shape, **overrides):
    ones = np.ones(shape)
    fields = {"tau": ones * 1e-3, "r": ones * 10.0, "v_leak": ones * 0, "v_threshold": ones,
              "v_reset": ones * 0}  # fmt: skip
    return nir.LIF(**{**fields, **overrides})


def _conv(bias=0.0):
    return nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3)), stride=1, padding=1,
                      dilation=1, groups=1, bias=np.full(2, bias))  # fmt: skip


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ((("c", _conv(bias=0.5)),), "'c': a non-zero bias is not supported"),
        ((("c", _conv()), ("n", _lif((2, 4, 4), v_leak=np.full((2, 4, 4), 0.2)))), "'n': v_leak = 0.2"),
        ((("c", _conv()), ("n", _lif((2, 4, 4), v_reset=np.full((2, 4, 4), -1.0)))), "'n': v_reset"),
        ((("c", _conv()), ("n", _lif((2, 4, 4), tau=np.linspace(1e-3, 2e-3, 32).reshape(2, 4, 4)))),
         "'n': tau differs across neurons"),
        ((("c", _conv()), ("n", nir.CubaLIF(tau_syn=np.full((2, 4, 4), 5e-4), tau_mem=np.full((2, 4, 4), 1e-3),
                                            r=np.ones((2, 4, 4)), v_leak=np.zeros((2, 4, 4)),
                                            v_threshold=np.ones((2, 4, 4)), v_reset=np.zeros((2, 4, 4)),
                                            w_in=np.ones((2, 4, 4))))), "only τ_syn = dt"),
        ((("c", _conv()), ("d", nir.Delay(delay=np.ones((2, 4, 4))))), "'d': Delay is not supported"),
        ((("c", _conv()), ("n", _lif((2, 4, 4))),
          ("f", nir.Flatten(input_type={"input": np.array([2, 4, 4])}, start_dim=0)),
          ("l", nir.Linear(weight=np.ones((2, 32)))), ("o", _lif((2,)))), "last layer 'l' spikes"),
    ],
)  # fmt: skip
def test_what_does_not_map_is_refused_naming_the_node(tmp_path, nodes, message):
    path = tmp_path / "bad.nir"
    nir.write(path, _graph(*nodes, out=(2,) if nodes[-1][0] == "o" else (2, 4, 4)))
    with pytest.raises(DeployError, match=message.replace("(", "\\(").replace(")", "\\)")):
        read_nir(path)


def test_graphs_that_are_not_chains_are_refused(tmp_path):
    graph = _graph(("c", _conv()), ("n", _lif((2, 4, 4))),
                   edges=[("input", "c"), ("c", "n"), ("input", "n"), ("n", "output")])  # fmt: skip
    path = tmp_path / "fork.nir"
    nir.write(path, graph)
    with pytest.raises(DeployError, match="only feed-forward chains"):
        read_nir(path)


def test_a_float_network_checks_itself():
    conv = FloatLayer("c", np.ones((2, 1, 3, 3)), FloatNeuron(0.9, 1.0), padding=(1, 1))
    readout = FloatLayer("r", np.ones((3, 2 * 4 * 4)), None)
    FloatNetwork((1, 4, 4), (conv, readout))
    with pytest.raises(DeployError, match="does not take"):
        FloatNetwork((1, 4, 4), (conv, FloatLayer("r", np.ones((3, 31)), None)))
    with pytest.raises(DeployError, match="leak 1.5 is outside"):
        FloatNeuron(1.5, 1.0)
    with pytest.raises(DeployError, match="threshold"):
        FloatNeuron(0.5, -math.inf)


def test_a_single_spike_network_is_not_written_as_plain_lif(tmp_path, monkeypatch, capsys):
    model = _model()
    model.neuron_model = get_neuron_model("single-spike", "hard")
    info = ModelInfo("vgg-tiny", "digits", (1, 8, 8), 10, (0.5,), (0.25,), "hardware",
                     reset="hard", neuron="single-spike", encoding="hybrid")  # fmt: skip
    save_checkpoint(model, info, tmp_path / "single.pt")
    code, _, err = run_main(monkeypatch, capsys, "export", str(tmp_path / "single.pt"), "-o",
                            str(tmp_path / "single.nir"))  # fmt: skip
    assert code == 2
    assert_one_error_line(err, "would run them as plain LIF")
    assert not (tmp_path / "single.nir").exists()
