"""The hybrid method's units against hand-computed values: the hybrid frames, the single-spike
scan, the STDB surrogate's gradient and the potential-time loss."""

import math

import pytest
import torch

from dietsnn_deploy.spine.encodings import get_encoding
from dietsnn_deploy.spine.encodings.base import ANALOG, BINARY
from dietsnn_deploy.spine.neurons import get_neuron_model
from dietsnn_deploy.spine.neurons.lif import lif_scan
from dietsnn_deploy.spine.neurons.single_spike import single_spike_scan
from dietsnn_deploy.spine.neurons.surrogate import STDB_ALPHA, STDB_BETA, SURROGATES
from dietsnn_deploy.training.objectives import OBJECTIVES, crossing_time

STDB = SURROGATES["stdb"]


def test_hybrid_frames_hand_computed():
    # T = 5: n = 4 binary steps; level = ⌈min(|x|, 1)·4⌉, fires at step n − level + 1
    x = torch.tensor([1.5, 0.9, 0.5, 0.1, 0.0, -0.6])
    frames = get_encoding("hybrid").frames(x, 5)
    assert torch.equal(frames[0], x)  # the analog image at the first step
    expected = torch.zeros(4, 6)
    expected[0, 0] = expected[0, 1] = 1.0  # levels 4, 4 → step 1
    expected[2, 2] = 1.0  # level 2 → step 3
    expected[3, 3] = 1.0  # level 1 → step 4
    expected[1, 5] = -1.0  # level 3 → step 2, negative: a −1 spike
    assert torch.equal(frames[1:], expected)  # x = 0 (level 0) never fires
    assert get_encoding("hybrid").step_kinds(5) == (ANALOG,) + (BINARY,) * 4


def test_hybrid_frames_send_at_most_one_spike_per_pixel():
    x = torch.randn(3, 1, 8, 8) * 2
    frames = get_encoding("hybrid").frames(x, 7)
    assert frames[1:].abs().sum(0).max() <= 1
    assert set(frames[1:].unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert torch.equal(get_encoding("hybrid").frames(x, 1), x.unsqueeze(0))  # T = 1: analog


def test_single_spike_neuron_fires_once_where_the_lif_fires_twice():
    # leak 1, θ = 1, constant 0.625: u = 0.625, 1.25 (spike). The LIF (soft) goes on: 0.25,
    # 0.875, 1.5 (spike), 1.125 (spike); the single-spike neuron stays silent.
    currents = torch.full((5, 1), 0.625)
    leak, threshold = torch.tensor(1.0), torch.tensor(1.0)
    lif, _ = lif_scan(currents, None, leak, threshold)
    single, (u, fired, since) = single_spike_scan(currents, None, leak, threshold)
    assert lif.flatten().tolist() == [0, 1, 0, 1, 1]
    assert single.flatten().tolist() == [0, 1, 0, 0, 0]
    assert float(u) == 0.0 and float(fired) == 1.0 and float(since) == 5.0


def test_single_spike_scan_in_pieces_equals_one_scan():
    currents = torch.rand(6, 4, 3)
    leak, threshold = torch.tensor(0.9), torch.tensor(0.7)
    whole, _ = single_spike_scan(currents, None, leak, threshold, STDB)
    state, pieces = None, []
    for t in range(6):
        spikes, state = single_spike_scan(currents[t : t + 1], state, leak, threshold, STDB)
        pieces.append(spikes)
    assert torch.equal(torch.cat(pieces), whole)


def test_stdb_gradient_of_a_single_spike_neuron_decays_with_time_since_image_start():
    # No spike (currents well below θ = 1, leak 1): ∂s_k/∂I_j = α·exp(−β·k) for every j ≤ k.
    currents = torch.full((5, 1), 0.01, requires_grad=True)
    spikes, _ = single_spike_scan(currents, None, torch.tensor(1.0), torch.tensor(1.0), STDB)
    for k in range(5):
        (grad,) = torch.autograd.grad(spikes[k].sum(), currents, retain_graph=True)
        expected = [STDB_ALPHA * math.exp(-STDB_BETA * k)] * (k + 1) + [0.0] * (4 - k)
        assert grad.flatten().tolist() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("first", "second", "since_at_t2"), [(1.5, 0.1, 2), (0.2, 1.5, 1)])
def test_stdb_gradient_of_the_lif_counts_from_its_last_spike(first, second, since_at_t2):
    # θ = 1, leak 1, soft reset; the spike at t = 0 (case 1) or t = 1 (case 2) restarts Δt.
    currents = torch.tensor([[first], [second], [0.05]], requires_grad=True)
    spikes, (u, since) = lif_scan(currents, None, torch.tensor(1.0), torch.tensor(1.0),
                                  "soft", STDB)  # fmt: skip
    (grad,) = torch.autograd.grad(spikes[2].sum(), currents)
    assert float(grad[2]) == pytest.approx(STDB_ALPHA * math.exp(-STDB_BETA * since_at_t2))
    assert float(since) == since_at_t2 + 1


def test_models_dispatch_to_the_surrogate_they_were_given():
    lif = get_neuron_model("lif", "soft", "stdb")
    currents = torch.full((3, 2), 0.01, requires_grad=True)
    spikes, state = lif.scan(currents, None, torch.tensor(1.0), torch.tensor(1.0))
    assert isinstance(state, tuple)  # (u, since): the reference scan, not the fused one
    (grad,) = torch.autograd.grad(spikes[2].sum(), currents)
    assert float(grad[0, 0]) == pytest.approx(STDB_ALPHA * math.exp(-2 * STDB_BETA))
    assert lif.with_reset("hard").surrogate is STDB
    assert get_neuron_model("single-spike").with_surrogate("stdb").surrogate is STDB


def test_crossing_time_is_the_first_step_over_half_the_winner():
    # V_0 = 1, 2.5, 3, 4 (θ = 2: crosses at step 2); V_1 = 0, 0, 0, 3 (step 4); V_2 never (5).
    increments = torch.tensor([[1.0, 1.5, 0.5, 1.0], [0.0, 0.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0]])
    potentials = increments.T.unsqueeze(1)  # (T, B = 1, classes)
    assert crossing_time(potentials, softness=1e-4).flatten().tolist() == pytest.approx(
        [2.0, 4.0, 5.0], abs=1e-4
    )


def test_potential_time_loss_rewards_the_true_class_for_crossing_first():
    # Same final potentials (4, 4), so the potential loss can't tell them apart; in `early`
    # class 0 gets there at step 1, in `late` at step 4, while class 1 crosses at step 3.
    early = torch.tensor([[4.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]).unsqueeze(1)
    late = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [4.0, 1.0]]).unsqueeze(1)
    label = torch.tensor([0])
    potential, timed = OBJECTIVES["potential"], OBJECTIVES["potential-time"]
    assert (
        float(potential(early, label))
        == float(potential(late, label))
        == pytest.approx(math.log(2.0))
    )
    assert float(timed(early, label)) < float(timed(late, label)) - 0.5
    steps = late.clone().requires_grad_(True)
    timed(steps, label).backward()
    assert steps.grad[0, 0, 0] < 0 < steps.grad[0, 0, 1]  # push class 0 up early, class 1 down
