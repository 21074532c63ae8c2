"""The LIF scan over T as one autograd Function with an analytic backward (a reverse-time
loop): the same spikes and final potential as :func:`~.lif.lif_scan` bit for bit, gradients
equal to autograd through it up to float rounding, a fraction of its memory and passes.

Forward (t = 0 … T−1, elementwise; λ = leak, θ = threshold, 0-dim; u₋₁ = u0 or 0)::

    v_t = λ·u_{t−1} + I_t                  a rounded multiply, then a rounded add (as the
                                           reference's two ops; never a fused multiply-add)
    s_t = [v_t/θ − 1 > 0]                  = [v_t > θ] when θ > 0 (division is monotonic
                                           and θ/θ = 1), used on the CPU to skip a division
    u_t = v_t − θ·s_t  (soft)   or   u_t = v_t·(1 − s_t)  (hard)

The reset treats s_t as a constant (the reference's ``spike.detach()``). With r_t = 1 (soft)
or 1 − s_t (hard), x_t = v_t/θ and σ'_t = γ·max(0, 1 − |x_t − 1|), γ = 0.3, the backward
from g_t = ∂L/∂s_t and ḡ = ∂L/∂u_{T−1} is::

    a_{T−1} = ḡ,   δ_t = g_t·σ'_t/θ + r_t·a_t,   a_{t−1} = λ·δ_t         (t = T−1 … 0)
    ∂L/∂I_t = δ_t,   ∂L/∂u0 = λ·δ_0,   ∂L/∂λ = Σ δ_t·u_{t−1}
    ∂L/∂θ = −Σ g_t·σ'_t·x_t/θ − [soft only] Σ a_t·s_t

Saved for the backward: the pre-reset potentials v (one (T, …) tensor), from which spikes,
masks and u_{t−1} are recomputed exactly; when the currents are a stride-0 expanded view
(direct input: one step's storage) the view itself, and the forward re-runs in the backward.
The reference keeps four (T, …) tensors per layer for the same job. Only tensor ops: it runs
on any device (the θ > 0 shortcut is taken only where θ's value is free to read, the CPU).
"""

from __future__ import annotations

import torch

from dietsnn_deploy.spine.neurons.surrogate import SURROGATE_GAMMA


def _direct_compare(threshold: torch.Tensor) -> bool:
    """True when v > θ may replace v/θ − 1 > 0: θ > 0 (or +0), read on the CPU only."""
    if threshold.device.type != "cpu":
        return False
    value = float(threshold)
    return value > 0 or (value == 0 and torch.signbit(threshold).item() is False)


def _mask(v, threshold, direct: bool, spiking: bool, out, scratch):
    """s = [v/θ − 1 > 0] (``spiking``) or its complement 1 − s, into ``out`` (v's dtype)."""
    if direct:
        src, ref = v, threshold
    else:
        src, ref = torch.div(v, threshold, out=scratch), 1.0
    return torch.gt(src, ref, out=out) if spiking else torch.le(src, ref, out=out)


def _forward(currents, u0, leak, threshold, soft: bool, v_out, s_out):
    """Run the scan; ``v_out`` (T, …) receives v_t (or None), ``s_out`` the spikes (or None).
    Returns u_{T−1}."""
    shape, like = currents.shape[1:], dict(dtype=currents.dtype, device=currents.device)
    direct = _direct_compare(threshold)
    scratch = None if direct else torch.empty(shape, **like)
    v_step = torch.empty(shape, **like) if v_out is None else None
    s_step = torch.empty(shape, **like) if s_out is None else None
    keep = None if soft else torch.empty(shape, **like)
    u = torch.empty(shape, **like)
    previous = u0
    for t in range(currents.shape[0]):
        v = v_step if v_out is None else v_out[t]
        s = s_step if s_out is None else s_out[t]
        if previous is None:
            v.copy_(currents[t])  # λ·0 + I = I
        else:
            torch.mul(previous, leak, out=v)
            v.add_(currents[t])
        _mask(v, threshold, direct, True, s, scratch)
        if soft:  # θ·s ∈ {θ, 0} is exact, so one fused op rounds as the reference does
            torch.addcmul(v, s, threshold, value=-1.0, out=u)
        else:
            torch.mul(v, _mask(v, threshold, direct, False, keep, scratch), out=u)
        previous = u
    return u


def _backward(g_s, g_u, v_all, u0, leak, threshold, soft: bool, needs):
    """The reverse-time loop over the saved pre-reset potentials ``v_all`` (T, …)."""
    need_i, need_u0, need_lam, need_th = needs
    steps, shape = v_all.shape[0], v_all.shape[1:]
    like = dict(dtype=v_all.dtype, device=v_all.device)
    direct = _direct_compare(threshold)
    k = SURROGATE_GAMMA / (threshold * threshold)  # σ'(x)/θ = max(0, min(k·v, 2γ/θ − k·v))
    two_c = 2.0 * SURROGATE_GAMMA / threshold
    grad_i = torch.empty_like(v_all) if need_i else None
    ring = [torch.empty(shape, **like) for _ in range(2)]
    masks = [torch.empty(shape, **like) for _ in range(2)]  # s_t (soft) or 1 − s_t (hard)
    y, w, scratch, u_prev = (torch.empty(shape, **like) for _ in range(4))
    # accumulate elementwise over t, one sum at the end (a BLAS dot over 10⁶ terms is far
    # less accurate than torch.sum)
    acc_th_spike = torch.zeros(shape, **like) if need_th and g_s is not None else None
    acc_th_reset = torch.zeros(shape, **like) if need_th and soft else None
    acc_lam = torch.zeros(shape, **like) if need_lam else None
    th_last = None
    grad_u0 = None
    _mask(v_all[-1], threshold, direct, soft, masks[(steps - 1) % 2], scratch)
    delta_next = None
    for t in range(steps - 1, -1, -1):
        m = masks[t % 2]
        delta = grad_i[t] if need_i else ring[t % 2]
        base, scale = (g_u, None) if t == steps - 1 else (delta_next, leak)  # a_t = scale·base
        if g_s is not None:  # spike path: g·σ'/θ
            torch.mul(v_all[t], k, out=y)
            torch.sub(two_c, y, out=w)
            torch.minimum(w, y, out=w).clamp_min_(0.0)
            torch.mul(w, g_s[t], out=delta)
            if acc_th_spike is not None:
                acc_th_spike.addcmul_(delta, v_all[t])
        else:
            delta.zero_()
        if base is not None:  # reset path: δ += r·a
            a = base if scale is None else torch.mul(base, scale, out=scratch)
            if soft:
                delta.add_(a)
                if need_th:
                    if t == steps - 1:
                        th_last = (base * m).sum()
                    else:
                        acc_th_reset.addcmul_(base, m)
            else:
                delta.addcmul_(a, m)
        if t > 0:
            previous_mask = masks[(t - 1) % 2]
            _mask(v_all[t - 1], threshold, direct, soft, previous_mask, scratch)
            if need_lam:  # u_{t−1} rebuilt exactly from v_{t−1}
                if soft:
                    torch.addcmul(v_all[t - 1], previous_mask, threshold, value=-1.0, out=u_prev)
                else:
                    torch.mul(v_all[t - 1], previous_mask, out=u_prev)
                acc_lam.addcmul_(delta, u_prev)
        elif u0 is not None:
            if need_lam:
                acc_lam.addcmul_(delta, u0)
            if need_u0:
                grad_u0 = delta * leak
        delta_next = delta
    g_lam = acc_lam.sum() if need_lam else None
    g_th = None
    if need_th:
        g_th = torch.zeros((), **like)
        if acc_th_spike is not None:
            g_th = g_th - acc_th_spike.sum() / threshold
        if acc_th_reset is not None and steps > 1:
            g_th = g_th - leak * acc_th_reset.sum()
        if th_last is not None:
            g_th = g_th - th_last
    return grad_i, grad_u0, g_lam, g_th


class FusedLIF(torch.autograd.Function):
    """``apply(currents, u0, leak, threshold, soft, recompute)`` → (spikes, final u)."""

    @staticmethod
    def forward(ctx, currents, u0, leak, threshold, soft, recompute):  # noqa: D102
        ctx.set_materialize_grads(False)
        ctx.soft, ctx.recompute = soft, recompute
        ctx.u0_shape = None if u0 is None else u0.shape
        u0 = None if u0 is None else u0.expand(currents.shape[1:])
        spikes = torch.empty(currents.shape, dtype=currents.dtype, device=currents.device)
        needs_grad = any(ctx.needs_input_grad[:4])
        if needs_grad and not recompute:
            v_all = torch.empty_like(spikes)
            u = _forward(currents, u0, leak, threshold, soft, v_all, spikes)
            ctx.save_for_backward(v_all, u0, leak, threshold)
        else:
            u = _forward(currents, u0, leak, threshold, soft, None, spikes)
            if needs_grad:
                ctx.save_for_backward(currents, u0, leak, threshold)
        return spikes, u

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_spikes, g_u):  # noqa: D102
        saved, u0, leak, threshold = ctx.saved_tensors
        needs = list(ctx.needs_input_grad[:4])
        needs[1] = needs[1] and u0 is not None
        if ctx.recompute:  # v from the saved currents
            v_all = torch.empty(saved.shape, dtype=saved.dtype, device=saved.device)
            _forward(saved, u0, leak, threshold, ctx.soft, v_all, None)
        else:
            v_all = saved
        grad_i, grad_u0, g_lam, g_th = _backward(
            g_spikes, g_u, v_all, u0, leak, threshold, ctx.soft, needs
        )
        if grad_u0 is not None:
            grad_u0 = grad_u0.sum_to_size(ctx.u0_shape)
        g_lam = None if g_lam is None else g_lam.reshape(leak.shape)
        g_th = None if g_th is None else g_th.reshape(threshold.shape)
        return grad_i, grad_u0, g_lam, g_th, None, None


def fused_lif_scan(
    currents: torch.Tensor,
    u: torch.Tensor | None,
    leak: torch.Tensor,
    threshold: torch.Tensor,
    reset: str = "soft",
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~.lif.lif_scan` as one Function: (spikes (T, …), final u)."""
    recompute = currents.shape[0] > 1 and currents.stride(0) == 0  # an expanded view
    return FusedLIF.apply(currents, u, leak, threshold, reset == "soft", recompute)
