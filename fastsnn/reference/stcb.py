"""Spike-train level conversion block (STCB): the executable form of docs/stcb.md.

docs/stcb.md is a **reconstruction** of paper C's block (the paper's full method section
was not available): the block works on whole spike trains through their counts. With ``A``
the block charge (``Conv(N_in) + T*b``, optional BN), threshold ``vth`` and ``K`` levels:

    N_out    = clamp(floor(A / vth), 0, K*T)
    S_out[t] = clamp(floor(t*A/(T*vth)) - floor((t-1)*A/(T*vth)), 0, K),   t = 1..T

``S_out`` is the train an integrate-and-fire neuron with soft reset emits when driven by the
constant current ``A/T`` (evenly spaced spikes), and ``sum_t S_out[t] == N_out``.

Arithmetic (the rule every backend reproduces bit for bit)
------------------------------------------------------------
1. ``x = A / vth``: one IEEE division in the compute dtype (float32; float64 for float64
   input; float16/bfloat16 input is computed in float32). ``vth`` is first rounded to the
   compute dtype. For a power-of-two ``vth`` (the default 1.0) ``x`` is exact.
2. Everything after that is exact for float32: with ``0 < x < K*T``, ``n = floor(x)`` and
   ``f = x - n`` (an exact float subtraction),
   ``floor(t*x/T) = (t*n) div T + [t*f >= T - (t*n) mod T]`` because
   ``t*x/T = ((t*n) div T) + ((t*n) mod T + t*f)/T`` and the last fraction is in ``[0, 2)``.
   ``t*n`` is integer arithmetic and ``t*f`` is evaluated in float64, which holds the product
   of a float32 ``f`` and an integer ``t < 2**29`` exactly. So the train is *exactly*
   ``floor(t*x/T) - floor((t-1)*x/T)``: the train of an IF neuron computed in exact
   arithmetic on the normalised charge ``x``. (For float64 input ``t*f`` rounds once; the
   sum over the train is still exactly ``floor(x)``, see ``_regenerate``.)
3. ``x <= 0`` (or -inf): all zeros; ``x >= K*T`` (or +inf): ``K`` every step, count ``K*T``;
   ``x`` NaN: NaN everywhere. In between no clamp is ever active (each step is
   ``floor(x/T)`` or one more, and ``x/T < K``), and the train sums to ``floor(x)``.

Equivalent gradient (the block's learning rule, also a reconstruction)
----------------------------------------------------------------------
With ``mask = 1[0 < x < K*T]`` (``x = A/vth`` as above):

* ``output="count"``: ``dN_out/dA = mask / vth`` (the slope of ``clamp(A/vth, 0, K*T)``).
* ``output="train"``: every step of the relaxed train (floor removed) is
  ``clamp(A/(T*vth), 0, K)``, so ``dS_out[t]/dA = mask / (T*vth)`` and
  ``dL/dA = mask / (T*vth) * sum_t dL/dS_out[t]``. This is the count rule pushed through
  ``N_out = sum_t S_out[t]``: a count gradient broadcast over ``T`` (what ``spike_count``'s
  backward produces) comes back as ``mask/vth * dL/dN_out``, identical to ``"count"``.

The scale factors ``1/vth`` and ``1/(T*vth)`` are evaluated in float64 and rounded to the
compute dtype (``scales``); every backend multiplies by the same value. The backward needs
only ``mask`` (1 bit per element), never per-step tensors.
"""

from __future__ import annotations

import torch

OUTPUTS = ("train", "count")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the block computes in: float64 stays, everything else is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


@torch.compiler.assume_constant_result  # a Python float: no tensor in a compiled graph
def rounded(value: float, dtype: torch.dtype) -> float:
    """``value`` rounded to ``dtype`` (returned as the exactly equal Python float)."""
    return float(torch.tensor(float(value), dtype=torch.float64).to(dtype))


def scales(T: int, threshold: float, dtype: torch.dtype) -> tuple[float, float]:
    """``(1/vth, 1/(T*vth))``: float64 values rounded to the compute dtype (vth rounded first)."""
    vth = rounded(threshold, dtype)
    return rounded(1.0 / vth, dtype), rounded(1.0 / (T * vth), dtype)


def normalized_charge(a: torch.Tensor, threshold: float) -> torch.Tensor:
    """``x = A / vth`` in the compute dtype: one true IEEE division per element.

    The divisor is a full tensor, not a Python scalar: some torch kernels turn division by a
    scalar into multiplication by its reciprocal, which rounds differently.
    """
    acc = compute_dtype(a.dtype)
    xa = a.to(acc)
    return xa / torch.full_like(xa, rounded(threshold, acc))


def active_mask(x: torch.Tensor, T: int, levels: int) -> torch.Tensor:
    """``1[0 < x < K*T]``: where the block's equivalent gradient is non-zero."""
    return (x > 0) & (x < levels * T)


def count_from_charge(x: torch.Tensor, T: int, levels: int) -> torch.Tensor:
    """``N_out = clamp(floor(x), 0, K*T)`` (NaN stays NaN)."""
    return torch.clamp(torch.floor(x), 0, levels * T)


def train_from_charge(x: torch.Tensor, T: int, levels: int) -> torch.Tensor:
    """The evenly spaced train ``[T, *x.shape]`` of normalised charge ``x`` (rule above)."""
    mid = active_mask(x, T, levels)
    n = torch.where(mid, torch.floor(x), torch.zeros_like(x))
    f = torch.where(mid, x - n, torch.zeros_like(x)).to(torch.float64)
    n = n.to(torch.int64)
    fill = torch.where(x >= levels * T, torch.full_like(x, levels), torch.zeros_like(x))
    fill = torch.where(torch.isnan(x), x, fill)
    out = torch.empty((T,) + tuple(x.shape), dtype=x.dtype, device=x.device)
    for t, cum, prev in _regenerate(n, f, T):
        out[t - 1] = torch.where(mid, (cum - prev).to(x.dtype), fill)
    return out


def _regenerate(n: torch.Tensor, f: torch.Tensor, T: int):
    """Yield ``(t, floor(t*x/T), floor((t-1)*x/T))`` for t = 1..T, ``x = n + f``.

    ``Q, R`` track ``(t*n) div T`` and ``(t*n) mod T`` incrementally (no division in the
    loop, as in the kernels). At ``t = T``: ``R = 0`` and ``T*f < T`` even after rounding
    (``f <= 1 - ulp``), so the last cumulative count is exactly ``n`` in every dtype.
    """
    qa, rb = n // T, n % T
    q = torch.zeros_like(n)
    r = torch.zeros_like(n)
    prev = torch.zeros_like(n)
    for t in range(1, T + 1):
        q = q + qa
        r = r + rb
        wrap = r >= T
        q = q + wrap.to(n.dtype)
        r = r - T * wrap.to(n.dtype)
        cum = q + (t * f >= (T - r).to(torch.float64)).to(n.dtype)
        yield t, cum, prev
        prev = cum


def _straight_through(hard: torch.Tensor, a: torch.Tensor, mid: torch.Tensor,
                      slope: torch.Tensor):
    """The value ``hard`` with derivative ``slope`` (broadcast) with respect to ``a``.

    ``a`` is zeroed outside ``mid`` first, so that an infinite charge (slope 0 there) cannot
    turn the exact-zero correction ``y - y.detach()`` into NaN.
    """
    y = (torch.where(mid, a, torch.zeros_like(a)) * slope.detach()).to(hard.dtype)
    y = y.expand_as(hard)
    return hard.detach() + (y - y.detach())


def stcb(a: torch.Tensor, T: int, levels: int = 1, threshold: float = 1.0,
         output: str = "train") -> torch.Tensor:
    """The STCB conversion of block charge ``a`` ``[N, C, ...]`` (module docstring).

    ``output="train"``: ``S_out`` ``[T, N, C, ...]``; ``"count"``: ``N_out`` ``[N, C, ...]``.
    Output dtype is ``a``'s. Autograd uses the equivalent gradient (hard forward,
    ``mask/vth`` or ``mask/(T*vth)`` backward).
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    acc = compute_dtype(a.dtype)
    with torch.no_grad():
        x = normalized_charge(a, threshold)
        mid = active_mask(x, T, levels)
        one, per_step = scales(T, threshold, acc)
        if output == "count":
            hard = count_from_charge(x, T, levels).to(a.dtype)
            slope = mid.to(acc) * one
        else:
            hard = train_from_charge(x, T, levels).to(a.dtype)
            slope = mid.to(acc) * per_step
    return _straight_through(hard, a.to(acc), mid, slope)


def relaxed_stcb(a: torch.Tensor, T: int, levels: int = 1, threshold: float = 1.0,
                 output: str = "train") -> torch.Tensor:
    """The block with the floor removed (test-only): differentiable almost everywhere.

    ``"count"``: ``clamp(A/vth, 0, K*T)``; ``"train"``: ``clamp(A/(T*vth), 0, K)`` at every
    step. Its autograd gradient is the STCB's equivalent gradient (``gradcheck`` target).
    """
    if output == "count":
        return torch.clamp(a / threshold, 0, levels * T)
    step = torch.clamp(a / (T * threshold), 0, levels)
    return step.unsqueeze(0).expand((T,) + tuple(a.shape))


def spike_count(s: torch.Tensor) -> torch.Tensor:
    """``N = sum_t s[t]`` for ``s`` ``[T, N, ...]``: a sequential sum over t = 1..T.

    Accumulated in the compute dtype in time order (the order every backend uses, so sums
    of non-integer inputs match bit for bit too), returned in ``s``'s dtype.
    """
    acc = compute_dtype(s.dtype)
    total = torch.zeros(s.shape[1:], dtype=acc, device=s.device)
    for t in range(s.shape[0]):
        total = total + s[t].to(acc)
    return total.to(s.dtype)
