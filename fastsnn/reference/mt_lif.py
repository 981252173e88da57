"""Multi-threshold LIF over time: the executable form of docs/mt_lif.md.

Every fast backend must reproduce this file. Two parts:

* ``mt_lif``: the forward recursion with autograd through straight-through estimators
  (hard staircase forward, surrogate ``g`` backward). ``smooth=True`` swaps the staircase and
  the reset indicator for their smooth integrals ``G`` (test-only), which makes the map
  differentiable so ``torch.autograd.gradcheck`` can check the plumbing through time.
* ``backward_recursion``: docs/mt_lif.md's backward equations written out step by step, the
  contract the fused backward kernels implement.

Arithmetic conventions every backend follows so that spikes match bit for bit:
the recursion runs in float32 (float64 for float64 input) whatever the storage dtype;
``h = (vr + lam*(u - vr)) + c*j`` rounds each operation (no fused multiply-add; with
``v_reset = vr = 0`` this is exactly ``lam*u + c*j``); the hard reset is
``h*(1 - fired) + vr*fired``;
``s`` counts the thresholds reached, ``sum_k [h >= k*threshold]`` with ``k*threshold``
rounded once in the compute dtype (see ``staircase``); the reset fires on ``h >= threshold``.
``reset="subtract_next"`` (snnTorch's subtraction) carries ``h`` unreset and subtracts
``threshold * s[t-1]`` from the next charge, ``h = (vr + lam*(u - vr) + c*j) -
threshold*s[t-1]``, with
``s[t-1]`` read off the carried membrane (``staircase(u)``; for ``t = 0`` off ``v0``) and
detached, as snnTorch detaches it; ``detach_reset`` does not apply to it.
"""

from __future__ import annotations

from typing import Optional, Union

import torch

from .surrogate import bump, integral, multi_bump, parameter

Scalar = Union[float, torch.Tensor]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the recursion runs in: float64 stays, everything else is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def per_channel(p: Scalar, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Shape a float / 0-d / [C] parameter so it broadcasts over one step ``[N, C, ...]``.

    Floats become tensors of the compute dtype first, so that derived values such as
    ``1 - decay`` are rounded in the compute dtype exactly as the kernels round them.
    """
    p = torch.as_tensor(p, device=like.device).to(dtype)
    if p.dim() == 0 or p.numel() == 1:
        return p.reshape(())
    return p.reshape((1, -1) + (1,) * (like.dim() - 2))


def staircase(h: torch.Tensor, threshold: float, levels: int) -> torch.Tensor:
    """Number of thresholds ``k*threshold`` (k = 1..K) that ``h`` reaches (``>=``).

    Equal to ``clamp(floor(h / threshold), 0, K)`` away from float rounding at the exact
    thresholds; counting comparisons makes ``s >= 1`` coincide with the reset test
    ``h >= threshold`` bit for bit, so a spike and a hard reset can never disagree.
    """
    s = torch.zeros_like(h)
    for k in range(1, levels + 1):
        s = s + (h >= float(k) * threshold).to(h.dtype)
    return s


def _straight_through(hard: torch.Tensor, h: torch.Tensor, slope: torch.Tensor):
    """The value ``hard`` with derivative ``slope`` with respect to ``h``.

    Written with ``detach`` instead of an ``autograd.Function`` so that ``torch.compile``
    traces it (dynamic shapes included); ``y - y.detach()`` is exactly zero in the forward
    for finite ``h``, NaN for a NaN ``h`` (a NaN charge spikes NaN), and an infinite ``h``
    is zeroed first so that it keeps its hard value (``inf * 0`` would be NaN).
    """
    y = torch.where(h.isinf(), 0.0, h) * slope.detach()
    return hard.detach() + (y - y.detach())


def _spike(h, threshold, levels, kind, a, smooth):
    if smooth:
        return sum(integral(h - k * threshold, kind, a) for k in range(1, levels + 1))
    return _straight_through(staircase(h, threshold, levels), h,
                             multi_bump(h, threshold, levels, kind, a))


def _fired(h, threshold, kind, a, smooth):
    """H(h - threshold) as ``h >= threshold``, derivative g(h - threshold)."""
    if smooth:
        return integral(h - threshold, kind, a)
    return _straight_through((h >= threshold).to(h.dtype), h, bump(h - threshold, kind, a))


def _reset(h, s, threshold, kind, a, reset, detach_reset, smooth, v_reset=0.0):
    if reset == "hard":
        fired = _fired(h, threshold, kind, a, smooth)
        fired = fired.detach() if detach_reset else fired
        return h * (1 - fired) + v_reset * fired
    if reset == "soft":
        return h - threshold * (s.detach() if detach_reset else s)
    return h  # "none", and "subtract_next" (it subtracts at the next step's charge)


def trajectory(x, decay=0.5, *, threshold=1.0, levels=1, reset="hard", surrogate="rect",
               width=None, detach_reset=False, form="stbp", syn_decay=None, v0=None,
               smooth=False, v_reset=0.0, j0=None):
    """Run the recursion; returns per-step lists ``(s, h, j, u)`` in the compute dtype.

    ``u`` has T+1 entries (``u[0]`` is the initial membrane: ``v0``, default ``v_reset``),
    ``j`` has T+1 entries (``j[0]`` is ``j0``, default 0).
    """
    acc = compute_dtype(x.dtype)
    a = parameter(surrogate, threshold, width)
    xa = x.to(acc)
    step0 = xa[0] if x.shape[0] > 0 else xa.new_zeros(x.shape[1:])
    lam = per_channel(decay, step0, acc)
    c = 1.0 if form == "stbp" else 1 - lam
    alpha = None if syn_decay is None else per_channel(syn_decay, step0, acc)
    u = [torch.full_like(step0, v_reset) if v0 is None else v0.to(acc).expand_as(step0)]
    j = [torch.zeros_like(step0) if j0 is None else j0.to(acc).expand_as(step0)]
    s, h = [], []
    for t in range(x.shape[0]):
        jt = xa[t] if alpha is None else alpha * j[-1] + xa[t]
        ht = v_reset + lam * (u[-1] - v_reset) + c * jt  # v_reset = 0: lam*u + c*j exactly
        if reset == "subtract_next":  # the last step's spikes, read off the carried h
            ht = ht - threshold * staircase(u[-1].detach(), threshold, levels)
        st = _spike(ht, threshold, levels, surrogate, a, smooth)
        u.append(_reset(ht, st, threshold, surrogate, a, reset, detach_reset, smooth, v_reset))
        j.append(jt)
        s.append(st)
        h.append(ht)
    return s, h, j, u


def mt_lif(x: torch.Tensor, decay: Scalar = 0.5, *, threshold: float = 1.0, levels: int = 1,
           reset: str = "hard", surrogate: str = "rect", width: Optional[float] = None,
           detach_reset: bool = False, form: str = "stbp", syn_decay: Optional[Scalar] = None,
           v0: Optional[torch.Tensor] = None, smooth: bool = False, v_reset: float = 0.0,
           j0: Optional[torch.Tensor] = None, return_state: bool = False):
    """Spikes ``[T, N, C, ...]`` of the multi-threshold LIF (see module docstring).

    With ``return_state`` also ``(u[T], j[T])``, the membrane and synaptic current after the
    last step in the compute dtype (``j[T]`` None without ``syn_decay``): given back as
    ``v0`` and ``j0`` they continue the recursion exactly where it stopped.
    """
    s, _, j, u = trajectory(x, decay, threshold=threshold, levels=levels, reset=reset,
                            surrogate=surrogate, width=width, detach_reset=detach_reset,
                            form=form, syn_decay=syn_decay, v0=v0, smooth=smooth,
                            v_reset=v_reset, j0=j0)
    spikes = torch.stack(s).to(x.dtype) if s else torch.empty_like(x)
    if not return_state:
        return spikes
    # expand_as views of v0 / j0 when T = 0: the state is always a fresh tensor
    return spikes, (u[-1].clone(), None if syn_decay is None else j[-1].clone())


def _reduce_like(g: torch.Tensor, p) -> Optional[torch.Tensor]:
    """Sum a full-shape gradient down to the shape of parameter ``p`` (None for floats)."""
    if not isinstance(p, torch.Tensor):
        return None
    if p.numel() == 1:
        return g.sum().reshape(p.shape)
    dims = [d for d in range(g.dim()) if d != 1]
    return g.sum(dim=dims).reshape(p.shape)


def backward_recursion(grad_s, x, decay=0.5, *, threshold=1.0, levels=1, reset="hard",
                       surrogate="rect", width=None, detach_reset=False, form="stbp",
                       syn_decay=None, v0=None, smooth=False, v_reset=0.0, j0=None,
                       grad_u=None, grad_j=None):
    """docs/mt_lif.md's backward equations, step by step. Returns ``(gx, gdecay, gsyn, gv0)``,
    and ``gj0`` as a fifth entry when ``j0`` is given.

    ``gdecay``/``gsyn`` are None for float parameters; ``gv0`` is None without ``v0``.
    ``grad_u`` / ``grad_j`` (streaming): the gradients of the final state ``u[T]`` / ``j[T]``,
    the starting values of the reverse-time accumulators ``gu`` / ``gj``.
    """
    with torch.no_grad():
        _, h, j, u = trajectory(x, decay, threshold=threshold, levels=levels, reset=reset,
                                surrogate=surrogate, width=width, detach_reset=detach_reset,
                                form=form, syn_decay=syn_decay, v0=v0, smooth=smooth,
                                v_reset=v_reset, j0=j0)
    acc = compute_dtype(x.dtype)
    a = parameter(surrogate, threshold, width)
    step0 = torch.zeros(x.shape[1:], dtype=acc, device=x.device)
    lam = per_channel(decay, step0, acc)
    c = 1.0 if form == "stbp" else 1 - lam
    alpha = None if syn_decay is None else per_channel(syn_decay, step0, acc)
    gS = grad_s.to(acc)
    gu = torch.zeros_like(step0) if grad_u is None else grad_u.to(acc).expand_as(step0)
    gj = torch.zeros_like(step0) if grad_j is None else grad_j.to(acc).expand_as(step0)
    gdecay = torch.zeros_like(step0)
    gsyn = torch.zeros_like(step0)
    gx = torch.zeros_like(gS)
    for t in reversed(range(x.shape[0])):
        ht = h[t]
        sg = multi_bump(ht, threshold, levels, surrogate, a)
        if reset == "hard":
            fired = integral(ht - threshold, surrogate, a) if smooth else (ht >= threshold).to(acc)
            dudh = 1 - fired
            if not detach_reset:
                g1 = bump(ht - threshold, surrogate, a)
                dudh = dudh - ht * g1 + v_reset * g1
        elif reset == "soft":
            dudh = 1 - threshold * sg if not detach_reset else torch.ones_like(ht)
        else:  # "none"; "subtract_next" subtracts a detached term: no derivative either
            dudh = torch.ones_like(ht)
        gh = gS[t] * sg + gu * dudh
        gu = lam * gh
        leak = u[t] - v_reset  # the membrane leaks toward v_reset
        gdecay = gdecay + gh * (leak if form == "stbp" else leak - j[t + 1])
        gjt = c * gh
        if alpha is not None:
            gjt = gjt + gj
            gsyn = gsyn + gjt * j[t]
            gj = alpha * gjt
        gx[t] = gjt
    gv0 = None if v0 is None else _sum_to(gu, v0)  # after the loop gu = lam * gh[1]
    out = (gx.to(x.dtype), _reduce_like(gdecay, decay), _reduce_like(gsyn, syn_decay), gv0)
    if j0 is None:
        return out
    return out + (_sum_to(gj if alpha is not None else torch.zeros_like(gj), j0),)


def _sum_to(g: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reduce a broadcast gradient back to ``like``'s shape (v0 may broadcast)."""
    return g.sum_to_size(like.shape).to(like.dtype)
