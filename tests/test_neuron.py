"""The functional LIF neuron against hand-computed spike trains, potentials and gradients.

Values are binary fractions so every potential is exact in float32 and compared with ``==``.
"""

import pytest
import torch

from dietsnn_deploy.spine.neurons.lif import SURROGATE_GAMMA, lif_scan, lif_step, spike_fn

# Leak 0.5, threshold 1 (scaled by ``scale`` below). Hand computation, soft reset:
#   t0: u = 0.75                      no spike
#   t1: u = 0.375 + 0.75 = 1.125      spike, u = 0.125
#   t2: u = 0.0625 + 0.5 = 0.5625     no spike
#   t3: u = 0.28125 + 2.5 = 2.78125   spike (one per step at most), u = 1.78125
#   t4: u = 0.890625 + 0 = 0.890625   no spike
#   t5: u = 0.4453125 + 1 = 1.4453125 spike, u = 0.4453125
# Hard reset: t1 spike → 0; t2 0.5; t3 2.75 spike → 0; t4 0; t5 u = 1.0 exactly: no spike.
CURRENTS = [0.75, 0.75, 0.5, 2.5, 0.0, 1.0]
SOFT_SPIKES = [0, 1, 0, 1, 0, 1]
SOFT_U = [0.75, 0.125, 0.5625, 1.78125, 0.890625, 0.4453125]
HARD_SPIKES = [0, 1, 0, 1, 0, 0]
HARD_U = [0.75, 0.0, 0.5, 0.0, 0.0, 1.0]


def _run_steps(currents, leak, threshold, reset):
    u = torch.zeros(1)
    spikes, potentials = [], []
    for current in currents:
        spike, u = lif_step(u, torch.tensor([current]), leak, threshold, reset)
        spikes.append(float(spike))
        potentials.append(float(u))
    return spikes, potentials


@pytest.mark.parametrize("scale", [1.0, 2.0])
@pytest.mark.parametrize(
    "reset, spikes, potentials",
    [("soft", SOFT_SPIKES, SOFT_U), ("hard", HARD_SPIKES, HARD_U)],
)
def test_lif_step_matches_hand_computed_train(scale, reset, spikes, potentials):
    # Scaling currents and threshold together scales every potential: catches a reset that
    # subtracts 1 instead of θ, or a comparison against 1 instead of θ.
    got_spikes, got_u = _run_steps(
        [c * scale for c in CURRENTS], torch.tensor(0.5), torch.tensor(scale), reset
    )
    assert got_spikes == spikes
    assert got_u == [u * scale for u in potentials]


def test_exactly_at_threshold_does_not_spike_and_keeps_potential():
    threshold = torch.tensor(1.5)
    spike, u = lif_step(torch.zeros(3), torch.tensor([1.5, 1.4999, 1.5001]), 1.0, threshold)
    assert spike.tolist() == [0.0, 0.0, 1.0]
    assert u.tolist() == pytest.approx([1.5, 1.4999, 0.0001], abs=1e-6)


def test_if_neuron_without_leak_integrates_fully():
    # λ = 1: 0.25 per step crosses θ = 0.6 on the third step (0.75 > 0.6), soft reset to 0.15.
    spikes, potentials = _run_steps([0.25] * 4, torch.tensor(1.0), torch.tensor(0.6), "soft")
    assert spikes == [0, 0, 1, 0]
    assert potentials == pytest.approx([0.25, 0.5, 0.15, 0.4])


def test_leak_zero_forgets_previous_potential():
    spikes, potentials = _run_steps(
        [0.75, 0.75, 0.75], torch.tensor(0.0), torch.tensor(1.0), "soft"
    )
    assert spikes == [0, 0, 0]
    assert potentials == [0.75, 0.75, 0.75]


@pytest.mark.parametrize(
    "current, d_current, d_threshold",
    [
        # θ = 2, z = c/θ − 1, surrogate g = 0.3·max(0, 1 − |z|);
        # ∂o/∂c = g/θ, ∂o/∂θ = g·(−c/θ²)  (paper eq. 12–14 with u[t−1] = 0)
        (2.5, 0.3 * 0.75 / 2, 0.3 * 0.75 * -2.5 / 4),  # z = 0.25 (spikes)
        (1.0, 0.3 * 0.5 / 2, 0.3 * 0.5 * -1.0 / 4),  # z = −0.5 (silent, still a gradient)
        (2.0, 0.3 / 2, 0.3 * -2.0 / 4),  # z = 0: the peak γ
        (4.0, 0.0, 0.0),  # z = 1: edge of the support
        (4.5, 0.0, 0.0),  # z = 1.25: outside
        (0.0, 0.0, 0.0),  # z = −1
        (-1.0, 0.0, 0.0),  # z = −1.5
    ],
)
def test_surrogate_gradient_values(current, d_current, d_threshold):
    threshold = torch.tensor(2.0, requires_grad=True)
    leak = torch.tensor(0.5, requires_grad=True)
    c = torch.tensor(current, requires_grad=True)
    u_prev = torch.tensor(0.0)
    spike, _ = lif_step(u_prev, c, leak, threshold)
    spike.backward()
    assert float(c.grad) == pytest.approx(d_current, abs=1e-7)
    assert float(threshold.grad) == pytest.approx(d_threshold, abs=1e-7)
    assert float(leak.grad) == 0.0  # ∂u/∂λ = u[t−1] = 0


def test_surrogate_gradient_reaches_leak_through_previous_potential():
    # u[t−1] = 0.8, λ = 0.5, c = 1.1 → u = 1.5, θ = 2: z = −0.25, g = 0.3·0.75 = 0.225;
    # ∂o/∂λ = g/θ·u[t−1] = 0.09, ∂o/∂u[t−1] = g/θ·λ = 0.05625.
    leak = torch.tensor(0.5, requires_grad=True)
    u_prev = torch.tensor(0.8, requires_grad=True)
    spike, _ = lif_step(u_prev, torch.tensor(1.1), leak, torch.tensor(2.0))
    spike.backward()
    assert float(leak.grad) == pytest.approx(0.225 / 2 * 0.8)
    assert float(u_prev.grad) == pytest.approx(0.225 / 2 * 0.5)


def test_spike_fn_gradient_is_gamma_triangle():
    z = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.25, 1.0, 3.0], requires_grad=True)
    spikes = spike_fn(z)
    assert spikes.tolist() == [0, 0, 0, 0, 1, 1, 1]  # strictly z > 0 spikes
    spikes.sum().backward()
    expected = [SURROGATE_GAMMA * max(0.0, 1.0 - abs(v)) for v in z.tolist()]
    assert z.grad.tolist() == pytest.approx(expected)
    assert SURROGATE_GAMMA == 0.3


def test_bptt_gradient_flows_to_earlier_steps():
    # Two steps, step 1 silent with z ≤ −1 (no surrogate there), λ = 0.5, θ = 1:
    # u1 = c1 = 0, u2 = 0.5·0 + c2 = 0.6 → z2 = −0.4, g2 = 0.18; ∂o2/∂c1 = g2·λ/θ = 0.09.
    currents = torch.tensor([[0.0], [0.6]], requires_grad=True)
    spikes, _ = lif_scan(currents, None, torch.tensor(0.5), torch.tensor(1.0))
    spikes[1].sum().backward()
    assert currents.grad[:, 0].tolist() == pytest.approx([0.09, 0.18])


@pytest.mark.parametrize("reset", ["soft", "hard"])
def test_lif_scan_equals_looped_lif_step(reset):
    generator = torch.Generator().manual_seed(0)
    currents = torch.rand((7, 3, 4), generator=generator) * 1.2
    u0 = torch.rand((3, 4), generator=generator)
    leak = torch.tensor(0.8, requires_grad=True)
    threshold = torch.tensor(0.9, requires_grad=True)

    spikes, u_end = lif_scan(currents, u0, leak, threshold, reset)
    loss_scan = (spikes * torch.arange(1.0, 8.0)[:, None, None]).sum() + u_end.sum()
    grads_scan = torch.autograd.grad(loss_scan, (leak, threshold))

    u = u0
    looped = []
    for current in currents:
        spike, u = lif_step(u, current, leak, threshold, reset)
        looped.append(spike)
    looped = torch.stack(looped)
    loss_loop = (looped * torch.arange(1.0, 8.0)[:, None, None]).sum() + u.sum()
    grads_loop = torch.autograd.grad(loss_loop, (leak, threshold))

    assert torch.equal(spikes, looped)
    assert torch.equal(u_end, u)
    assert 0.1 < float(spikes.detach().mean()) < 0.9  # the comparison is not between silent trains
    for a, b in zip(grads_scan, grads_loop, strict=True):
        assert torch.equal(a, b)


def test_lif_scan_starts_from_zero_potential():
    spikes, u = lif_scan(torch.full((3, 2), 0.4), None, torch.tensor(1.0), torch.tensor(1.0))
    # 0.4, 0.8, 1.2 → spike at t2 only, residual 0.2
    assert spikes[:, 0].tolist() == [0.0, 0.0, 1.0]
    assert u.tolist() == pytest.approx([0.2, 0.2])
