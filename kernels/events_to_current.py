"""Triton kernels of ``events_to_current`` (contract: ``fastsnn/ops/events_to_current.py``).

Same plan and integer arithmetic as the CPU and CUDA kernels (csrc/common/events.h):

1. ``_segment_starts``: one program per stream writes the global first event of each of
   its T segments (split by number: ``floor(j*n/T)``; by time: bisection on the timestamps
   for ``t - t_first >= ceil(j*span/T)``), non-decreasing even for unsorted input.
2. ``_accumulate``: one program per ``BLOCK`` consecutive events of the whole batch. Each
   event finds its (stream, segment) item by a fixed number of bisection steps over the
   starts, is validated (a bad one is skipped and its index goes to ``atomic_min`` on the
   slot of its fault kind) and is added with an integer atomic: int32 counts, or the int64
   fixed-point exp weight. Integer sums do not depend on the order the atomics land in, so
   the results equal the CPU kernel's bit for bit.
3. Conversion to float32 with torch: ``int32 -> float32`` (counts), or
   ``float32(float64(sum) * 2^-frac_bits)`` (exp), the same roundings as the C++ kernels.

Runs on CUDA tensors, and on CPU tensors under the Triton interpreter
(``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._enums import EventSplit, EventWeighting
from ..reference.events_to_current import FAULTS, check_offsets, fault_message

BLOCK = 1024
_NO_FAULT = torch.iinfo(torch.int64).max


@triton.jit
def _segment_starts(ev, offsets, starts, E, B, T, SPLIT_TIME: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    base = tl.load(offsets + b)
    n = tl.load(offsets + b + 1) - base
    tl.store(starts + b * T, base)
    if b == 0:
        tl.store(starts + B * T, E)
    q = n // T
    r = n % T
    for j in range(1, T):
        tl.store(starts + b * T + j, base + j * q + (j * r) // T)
    if SPLIT_TIME:
        if n > 0:  # overwrite the split by number
            _time_starts(ev, starts + b * T, base, n, T)


@triton.jit
def _time_starts(ev, starts_b, base, n, T):
    """``starts_b[j]`` for j in 1..T-1: first event with ``t - t0 >= ceil(j*span/T)``."""
    t0 = tl.load(ev + 4 * base + 2).to(tl.int64).to(tl.uint64, bitcast=True)
    t_last = tl.load(ev + 4 * (base + n - 1) + 2).to(tl.int64).to(tl.uint64, bitcast=True)
    # span = t_last - t0 + 1 may be 2^64: split it as q*T + r from span - 1 (events.h)
    span_m1 = t_last - t0
    zero = span_m1 * 0  # uint64 arithmetic for plain ints (T, j), compiled or interpreted
    uT = zero + T
    q = span_m1 // uT
    r = span_m1 % uT + 1
    q = tl.where(r == uT, q + 1, q)
    r = tl.where(r == uT, zero, r)
    lo = base
    for j in range(1, T):
        uj = zero + j
        d = uj * q + (uj * r + uT - 1) // uT
        hi = base + n
        while lo < hi:
            mid = lo + (hi - lo) // 2
            t = tl.load(ev + 4 * mid + 2).to(tl.int64).to(tl.uint64, bitcast=True)
            below = (t - t0) < d
            lo = tl.where(below, mid + 1, lo)
            hi = tl.where(below, hi, mid)
        tl.store(starts_b + j, lo)


@triton.jit
def _accumulate(ev, offsets, starts, acc, faults, exp_consts, E, B, T, W, H, P, factor, Pout,
                Hout, Wout, search_steps, MERGE: tl.constexpr, EXP: tl.constexpr,
                BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    m = i < E
    # item k = stream * T + segment: the last k with starts[k] <= i (fixed step count).
    lo = tl.zeros([BLOCK], dtype=tl.int64)
    hi = tl.zeros([BLOCK], dtype=tl.int64) + (B * T - 1)
    for _ in range(search_steps):
        mid = lo + (hi - lo + 1) // 2
        go = tl.load(starts + mid, mask=m, other=0) <= i
        lo = tl.where(go, mid, lo)
        hi = tl.where(go, hi, mid - 1)
    k = lo
    b = k // T
    j = k % T
    x = tl.load(ev + 4 * i, mask=m, other=0).to(tl.int64)
    y = tl.load(ev + 4 * i + 1, mask=m, other=0).to(tl.int64)
    t = tl.load(ev + 4 * i + 2, mask=m, other=0).to(tl.int64)
    p = tl.load(ev + 4 * i + 3, mask=m, other=0).to(tl.int64)
    has_prev = m & (i > tl.load(offsets + b, mask=m, other=0))
    t_prev = tl.load(ev + 4 * (i - 1) + 2, mask=has_prev, other=0).to(tl.int64)
    bad_x = (x < 0) | (x >= W)
    bad_y = ~bad_x & ((y < 0) | (y >= H))
    bad_p = ~bad_x & ~bad_y & ((p < 0) | (p >= P))
    bad_t = ~bad_x & ~bad_y & ~bad_p & has_prev & (t < t_prev)
    tl.atomic_min(faults + 0, tl.min(tl.where(m & bad_x, i, 9223372036854775807), axis=0))
    tl.atomic_min(faults + 1, tl.min(tl.where(m & bad_y, i, 9223372036854775807), axis=0))
    tl.atomic_min(faults + 2, tl.min(tl.where(m & bad_p, i, 9223372036854775807), axis=0))
    tl.atomic_min(faults + 3, tl.min(tl.where(m & bad_t, i, 9223372036854775807), axis=0))
    ok = m & ~(bad_x | bad_y | bad_p | bad_t)
    if MERGE:
        p = p * 0
    at = (((j * B + b) * Pout + p) * Hout + y // factor) * Wout + x // factor
    at = tl.where(ok, at, 0)
    if EXP:
        last = tl.load(starts + k + 1, mask=ok, other=1) - 1
        t_end = tl.load(ev + 4 * last + 2, mask=ok, other=0).to(tl.int64)
        # float64 constants come from memory: a scalar float argument would be float32.
        neg_inv_tau = tl.load(exp_consts)
        scale = tl.load(exp_consts + 1)
        # t_end - t in uint64 as in csrc/common/events.h (0 when t > t_end: unsorted input)
        dt_u = t_end.to(tl.uint64, bitcast=True) - t.to(tl.uint64, bitcast=True)
        dt = tl.where(t < t_end, dt_u.to(tl.float64), 0.0)
        w = (tl.exp(dt * neg_inv_tau) * scale + 0.5).to(tl.int64)
        tl.atomic_add(acc + at, w, mask=ok)
    else:
        tl.atomic_add(acc + at, tl.full([BLOCK], 1, tl.int32), mask=ok)


def events_to_current_forward(events, offsets, T, width, height, polarities, split, weighting,
                              tau, frac_bits, factor, merge):
    """The kernel contract: raw sums ``[T, B, Pout, Hout, Wout]`` float32."""
    E, B = events.shape[0], offsets.numel() - 1
    check_offsets(offsets, E)  # bad offsets would send the bisections out of bounds
    Po, Ho, Wo = 1 if merge else polarities, -(-height // factor), -(-width // factor)
    exp_w = weighting == EventWeighting.EXP
    acc = torch.zeros(T * B * Po * Ho * Wo, dtype=torch.int64 if exp_w else torch.int32,
                      device=events.device)
    starts = torch.empty(B * T + 1, dtype=torch.int64, device=events.device)
    faults = torch.full((len(FAULTS),), _NO_FAULT, dtype=torch.int64, device=events.device)
    exp_consts = torch.tensor([-1.0 / tau if exp_w else 0.0, 2.0 ** frac_bits],
                              dtype=torch.float64, device=events.device)
    if B > 0:
        _segment_starts[(B,)](events, offsets, starts, E, B, T,
                              SPLIT_TIME=split == EventSplit.TIME)
    if E > 0:
        _accumulate[(triton.cdiv(E, BLOCK),)](
            events, offsets, starts, acc, faults, exp_consts, E, B, T, width, height,
            polarities, factor, Po, Ho, Wo, (B * T - 1).bit_length(), MERGE=bool(merge),
            EXP=exp_w, BLOCK=BLOCK, enable_fp_fusion=False)
    _raise_first_fault(faults, events, (width, height, polarities))
    out = acc.to(torch.float32) if not exp_w else (
        acc.to(torch.float64) * 2.0 ** -frac_bits).to(torch.float32)
    return out.reshape(T, B, Po, Ho, Wo)


def _raise_first_fault(faults, events, sensor_size):
    firsts = faults.tolist()
    index = min(firsts)
    if index != _NO_FAULT:
        kind = FAULTS[firsts.index(index)]
        raise ValueError(fault_message(kind, index, events, sensor_size))
