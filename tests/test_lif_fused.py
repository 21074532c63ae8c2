"""The fused LIF scan against the reference scan: the same spikes and final potential bit for
bit, the same gradients (currents, initial potential, leak, threshold) to float tolerance."""

from __future__ import annotations

import pytest
import torch

from dietsnn_deploy.spine.neurons.lif import lif_scan
from dietsnn_deploy.spine.neurons.lif_fused import fused_lif_scan


def _inputs(steps, shape, seed, *, expanded=False, with_u0=False, leak=0.8):
    generator = torch.Generator().manual_seed(seed)
    if expanded:
        one = torch.randn(shape, generator=generator) * 0.8 + 0.3
        currents = one.detach().clone().requires_grad_(True)
        view = lambda c: c.unsqueeze(0).expand(steps, *shape)  # noqa: E731
    else:
        currents = (torch.randn((steps, *shape), generator=generator) * 0.8 + 0.3).requires_grad_()
        view = lambda c: c  # noqa: E731
    u0 = (torch.randn(shape, generator=generator) * 0.5).requires_grad_() if with_u0 else None
    leak = torch.tensor(leak, requires_grad=True)
    threshold = torch.tensor(0.7, requires_grad=True)
    return currents, view, u0, leak, threshold


def _run(scan, steps, shape, seed, reset, **options):
    currents, view, u0, leak, threshold = _inputs(steps, shape, seed, **options)
    spikes, u = scan(view(currents), u0, leak, threshold, reset)
    weights = torch.randn(spikes.shape, generator=torch.Generator().manual_seed(seed + 1))
    loss = (spikes * weights).sum() + 0.3 * (u * u).sum()
    loss.backward()
    grads = [currents.grad, leak.grad, threshold.grad] + ([u0.grad] if u0 is not None else [])
    return spikes.detach(), u.detach(), grads


@pytest.mark.parametrize("reset", ["soft", "hard"])
@pytest.mark.parametrize("steps", [1, 2, 5])
@pytest.mark.parametrize(
    "options",
    [{}, {"expanded": True}, {"with_u0": True}, {"leak": 1.0}, {"expanded": True, "leak": 0.5}],
)
def test_fused_scan_equals_the_reference(reset, steps, options):
    shape = (3, 7, 5)
    ours = _run(fused_lif_scan, steps, shape, 11, reset, **options)
    theirs = _run(lif_scan, steps, shape, 11, reset, **options)
    assert torch.equal(ours[0], theirs[0]) and 0 < float(ours[0].mean()) < 1
    assert torch.equal(ours[1], theirs[1])
    for got, expected in zip(ours[2], theirs[2], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_non_leaf_neuron_parameters_and_no_grad():
    """Under hardware-aware training λ and θ arrive computed from the parameters."""
    raw = torch.tensor([0.83, 0.66], requires_grad=True)
    currents = torch.randn((4, 10), generator=torch.Generator().manual_seed(2))
    for scan in (fused_lif_scan, lif_scan):
        raw.grad = None
        spikes, _ = scan(currents, None, raw[0] * 1.0, raw[1] + 0.0, "hard")
        spikes.sum().backward()
        if scan is fused_lif_scan:
            fused_grad = raw.grad.clone()
    torch.testing.assert_close(fused_grad, raw.grad)
    with torch.no_grad():
        spikes, u = fused_lif_scan(currents, None, torch.tensor(0.9), torch.tensor(0.5), "soft")
    reference, u_ref = lif_scan(currents, None, torch.tensor(0.9), torch.tensor(0.5), "soft")
    assert torch.equal(spikes, reference) and torch.equal(u, u_ref)
