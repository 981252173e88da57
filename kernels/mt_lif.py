"""Triton backend of ``mt_lif``: one fused kernel per direction.

Contract (shapes, enums, save modes, return values): the docstring of
``fastsnn/ops/mt_lif.py``. Arithmetic: ``fastsnn/reference/mt_lif.py`` (``trajectory`` for
the forward, ``backward_recursion`` in hard mode for the backward).

Layout: one program owns ``BLOCK`` consecutive elements of one time step (the flattened
``N*C*R``) and walks all T steps with the state (``u``, ``j``; ``gu``, ``gj``) in registers,
so every step is one coalesced read of each input and one write of each output. A flat grid
rather than (rows, R blocks): R is 1 for ``[T, N, C]`` inputs, where a row per program
would leave most lanes idle; the per-channel decay is gathered once per program, outside
the time loop, so the flat grid costs nothing there.

Bit-exact forward: everything runs in float32, launched with ``enable_fp_fusion=False`` so
``h = lam*u + c*j`` is two roundings like the reference; spikes count ``h >= k*threshold``
with ``k*threshold`` one float32 product (the reference's double product rounded once to
float32 is the same number because k is a small integer).

``T`` is a runtime argument and excluded from specialisation (``do_not_specialize``):
Triton would otherwise compile separate variants for T == 1 and T % 16 == 0.

Parameter gradients are reduced deterministically: each element's sum over time goes to a
workspace of one step (``[N*C*R]`` float32, written once), which torch then sums in a
fixed order (over everything, or per channel). No atomics.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._enums import Form, Reset, Save, Surrogate
from .mt_lif_checks import check_backward as _check_backward
from .mt_lif_checks import check_contract as _check_contract

# The enum values (fastsnn/_enums.py) as compile-time constants the kernel bodies compare
# their constexpr options with; host code uses the IntEnums themselves.
RECT, TRIANGLE = tl.constexpr(int(Surrogate.RECT)), tl.constexpr(int(Surrogate.TRIANGLE))
ATAN, FAST_SIGMOID = tl.constexpr(int(Surrogate.ATAN)), tl.constexpr(int(Surrogate.FAST_SIGMOID))
HARD, SOFT = tl.constexpr(int(Reset.HARD)), tl.constexpr(int(Reset.SOFT))
SUBTRACT_NEXT = tl.constexpr(int(Reset.SUBTRACT_NEXT))
STBP, PLIF = tl.constexpr(int(Form.STBP)), tl.constexpr(int(Form.PLIF))
SAVE_SG, SAVE_H = tl.constexpr(int(Save.SG)), tl.constexpr(int(Save.H))
NUM_WARPS = 4


@triton.jit
def _bump(z, a, SURROGATE: tl.constexpr):
    """g(z) of one threshold (fastsnn/reference/surrogate.py ``bump``)."""
    if SURROGATE == RECT:
        g = tl.where(tl.abs(z) < a * 0.5, 1.0 / a, 0.0)
    elif SURROGATE == TRIANGLE:
        g = tl.maximum(1.0 - tl.abs(z) / a, 0.0) / a
    elif SURROGATE == ATAN:  # a = alpha: (a/2) * 1 / (1 + (pi/2 * (a*z))^2)
        t = 1.5707963267948966 * (a * z)
        g = (a * 0.5) * (1.0 / (1.0 + t * t))
    elif SURROGATE == FAST_SIGMOID:  # a = slope
        d = a * tl.abs(z) + 1.0
        g = 1.0 / (d * d)
    else:  # sigmoid: logistic of 4z/a
        sig = 1.0 / (1.0 + tl.exp(-(4.0 * z / a)))
        g = (4.0 / a) * sig * (1.0 - sig)
    return g


@triton.jit
def _multi_bump(h, thr, a, LEVELS: tl.constexpr, SURROGATE: tl.constexpr):
    """sg(h) = sum_k g(h - k*threshold)."""
    sg = _bump(h - thr, a, SURROGATE)
    for k in tl.static_range(2, LEVELS + 1):
        sg += _bump(h - k * thr, a, SURROGATE)
    return sg


@triton.jit
def _staircase(h, thr, LEVELS: tl.constexpr):
    """Number of thresholds k*threshold that h reaches (>=), as float32."""
    s = (h >= thr).to(tl.float32)
    for k in tl.static_range(2, LEVELS + 1):
        s += (h >= k * thr).to(tl.float32)
    return s


@triton.jit
def _reset(h, s, thr, vr, RESET: tl.constexpr):
    """u[t] from h[t] and s[t]: hard to v_reset on h >= threshold, soft subtracts, or none
    (none and subtract_next carry h)."""
    if RESET == HARD:  # h * (1 - fired) + vr * fired, as the reference: inf h leaves NaN
        fired = (h >= thr).to(tl.float32)
        u = h * (1.0 - fired) + vr * fired
    elif RESET == SOFT:
        u = h - thr * s
    else:
        u = h
    return u


@triton.jit
def _channel_param(ptr, offs, mask, C, R, PER_CHANNEL: tl.constexpr):
    """A [1] or [C] parameter for each element of the block (one load, outside the loop)."""
    if PER_CHANNEL:
        p = tl.load(ptr + (offs // R) % C, mask=mask, other=1.0)
    else:
        p = tl.load(ptr)
    return p


@triton.jit(do_not_specialize=["T"])
def _mt_lif_fwd_kernel(x_ptr, decay_ptr, syn_ptr, v0_ptr, j0_ptr, s_ptr, saved_ptr, j_ptr,
                       ut_ptr, jt_ptr, T, step, C, R, thr, vr, a,
                       LEVELS: tl.constexpr, RESET: tl.constexpr, SURROGATE: tl.constexpr,
                       FORM: tl.constexpr, SAVE: tl.constexpr, SAVE_J: tl.constexpr,
                       HAS_SYN: tl.constexpr, HAS_V0: tl.constexpr, HAS_J0: tl.constexpr,
                       STATE: tl.constexpr, DECAY_PER_C: tl.constexpr,
                       SYN_PER_C: tl.constexpr, BLOCK: tl.constexpr):
    # int64: one step of x may hold 2^31 elements or more (8 GB in bfloat16 fits a GPU)
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < step
    lam = _channel_param(decay_ptr, offs, mask, C, R, DECAY_PER_C)
    c = 1.0 - lam  # plif input gain, rounded in float32 like the reference
    alpha = lam
    if HAS_SYN:
        alpha = _channel_param(syn_ptr, offs, mask, C, R, SYN_PER_C)
    u = tl.zeros([BLOCK], dtype=tl.float32) + vr  # at rest without v0
    if HAS_V0:
        u = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    j = tl.zeros([BLOCK], dtype=tl.float32)
    if HAS_J0:
        j = tl.load(j0_ptr + offs, mask=mask, other=0.0)
    for _ in range(T):
        xt = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        if HAS_SYN:
            j = alpha * j + xt
        else:
            j = xt
        # vr + lam * (u - vr) + c * j: exactly lam * u + c * j when vr = 0
        if FORM == STBP:
            h = (vr + lam * (u - vr)) + j
        else:
            h = (vr + lam * (u - vr)) + c * j
        if RESET == SUBTRACT_NEXT:  # the last step's spikes, off the carried membrane
            h = h - thr * _staircase(u, thr, LEVELS)
        s = _staircase(h, thr, LEVELS)
        spikes = tl.where(h != h, h, s)  # a NaN charge spikes NaN, visibly
        tl.store(s_ptr + offs, spikes.to(s_ptr.dtype.element_ty), mask=mask)
        if SAVE == SAVE_SG:
            sg = _multi_bump(h, thr, a, LEVELS, SURROGATE)
            tl.store(saved_ptr + offs, sg.to(saved_ptr.dtype.element_ty), mask=mask)
        elif SAVE == SAVE_H:
            tl.store(saved_ptr + offs, h, mask=mask)
        if SAVE_J:
            tl.store(j_ptr + offs, j, mask=mask)
        u = _reset(h, s, thr, vr, RESET)
        # Advancing the pointers (64-bit) rather than t*step keeps huge tensors safe.
        x_ptr += step
        s_ptr += step
        saved_ptr += step
        j_ptr += step
    if STATE:
        tl.store(ut_ptr + offs, u, mask=mask)
        if HAS_SYN:
            tl.store(jt_ptr + offs, j, mask=mask)


@triton.jit
def _sg_dudh(h, sg_saved, s, thr, vr, a, LEVELS: tl.constexpr, RESET: tl.constexpr,
             SURROGATE: tl.constexpr, DETACH: tl.constexpr, SAVE: tl.constexpr):
    """sg(h[t]) and du[t]/dh[t] from the saved h (mode H) or the saved sg and s (mode Sg)."""
    if SAVE == SAVE_H:
        sg = _multi_bump(h, thr, a, LEVELS, SURROGATE)
        fired = h >= thr
    else:
        sg = sg_saved
        fired = s >= 1.0  # the reset mask: s >= 1 exactly when h >= threshold
    if RESET == HARD:
        dudh = tl.where(fired, 0.0, 1.0)
        if not DETACH:  # only in mode H (the wrapper checks)
            g1 = _bump(h - thr, a, SURROGATE)
            dudh = dudh - h * g1 + vr * g1
    elif RESET == SOFT:
        if DETACH:
            dudh = tl.full(sg.shape, 1.0, tl.float32)
        else:
            dudh = 1.0 - thr * sg
    else:
        dudh = tl.full(sg.shape, 1.0, tl.float32)
    return sg, dudh


@triton.jit
def _grad_step(gs, sg, dudh, u_prev, j_cur, j_prev, gu, gj, gdec, gsyn, lam, c, alpha, vr,
               FORM: tl.constexpr, HAS_SYN: tl.constexpr, DECAY_GRAD: tl.constexpr,
               SYN_GRAD: tl.constexpr):
    """One step of backward_recursion; returns (gx[t], gu, gj, gdecay, gsyn)."""
    gh = gs * sg + gu * dudh
    gu = lam * gh
    if DECAY_GRAD:
        if FORM == STBP:
            gdec = gdec + gh * (u_prev - vr)
        else:
            gdec = gdec + gh * ((u_prev - vr) - j_cur)
    if FORM == STBP:
        gjt = gh
    else:
        gjt = c * gh
    if HAS_SYN:
        gjt = gjt + gj
        if SYN_GRAD:
            gsyn = gsyn + gjt * j_prev
        gj = alpha * gjt
    return gjt, gu, gj, gdec, gsyn


@triton.jit(do_not_specialize=["T"])
def _mt_lif_bwd_kernel(gs_ptr, gut_ptr, gjt_ptr, s_ptr, saved_ptr, j_ptr, decay_ptr, syn_ptr,
                       v0_ptr, j0_ptr, gx_ptr, gdec_ptr, gsyn_ptr, gv0_ptr, gj0_ptr,
                       T, step, C, R, thr, vr, a,
                       LEVELS: tl.constexpr, RESET: tl.constexpr, SURROGATE: tl.constexpr,
                       DETACH: tl.constexpr, FORM: tl.constexpr, SAVE: tl.constexpr,
                       HAS_SYN: tl.constexpr, HAS_V0: tl.constexpr, HAS_J0: tl.constexpr,
                       HAS_GU: tl.constexpr, HAS_GJ: tl.constexpr,
                       DECAY_PER_C: tl.constexpr, SYN_PER_C: tl.constexpr,
                       DECAY_GRAD: tl.constexpr, SYN_GRAD: tl.constexpr,
                       BLOCK: tl.constexpr):
    # j[t] is read for the plif decay gradient, j[t-1] for the synaptic one.
    LOAD_J: tl.constexpr = (DECAY_GRAD and FORM == PLIF) or (HAS_SYN and SYN_GRAD)
    LOAD_S: tl.constexpr = SAVE == SAVE_SG and RESET == HARD
    # int64: one step of x may hold 2^31 elements or more (8 GB in bfloat16 fits a GPU)
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < step
    lam = _channel_param(decay_ptr, offs, mask, C, R, DECAY_PER_C)
    c = 1.0 - lam
    alpha = lam
    if HAS_SYN:
        alpha = _channel_param(syn_ptr, offs, mask, C, R, SYN_PER_C)
    last = (T - 1).to(tl.int64) * step
    gs_ptr += last
    s_ptr += last
    saved_ptr += last
    j_ptr += last
    gx_ptr += last
    zero = tl.zeros([BLOCK], dtype=tl.float32)
    gu, gj, gdec, gsyn = zero, zero, zero, zero
    if HAS_GU:  # streaming: the final state's gradient starts the accumulators
        gu = tl.load(gut_ptr + offs, mask=mask, other=0.0)
    if HAS_GJ:
        gj = tl.load(gjt_ptr + offs, mask=mask, other=0.0)
    # Carried between steps: h[t] (mode H) and j[t]; each step loads the t-1 ones.
    h, sg_t, s_t, j_cur = zero, zero, zero, zero
    if SAVE == SAVE_H:
        h = tl.load(saved_ptr + offs, mask=mask, other=0.0)
    if LOAD_J:
        j_cur = tl.load(j_ptr + offs, mask=mask, other=0.0)
    for _ in range(T - 1):  # steps T-1 .. 1; step 0 (u[-1] = v0, j[-1] = 0) follows
        gs = tl.load(gs_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        if SAVE == SAVE_SG:
            sg_t = tl.load(saved_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        if LOAD_S:
            s_t = tl.load(s_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        h_prev, u_prev, j_prev = zero, zero, zero
        if SAVE == SAVE_H:
            h_prev = tl.load(saved_ptr - step + offs, mask=mask, other=0.0)
            if DECAY_GRAD:  # u[t-1] = reset(h[t-1]), recomputed bit for bit
                u_prev = _reset(h_prev, _staircase(h_prev, thr, LEVELS), thr, vr, RESET)
        if LOAD_J:
            j_prev = tl.load(j_ptr - step + offs, mask=mask, other=0.0)
        sg, dudh = _sg_dudh(h, sg_t, s_t, thr, vr, a, LEVELS, RESET, SURROGATE, DETACH,
                            SAVE)
        gxt, gu, gj, gdec, gsyn = _grad_step(gs, sg, dudh, u_prev, j_cur, j_prev, gu, gj,
                                             gdec, gsyn, lam, c, alpha, vr, FORM, HAS_SYN,
                                             DECAY_GRAD, SYN_GRAD)
        tl.store(gx_ptr + offs, gxt.to(gx_ptr.dtype.element_ty), mask=mask)
        h = h_prev
        j_cur = j_prev
        gs_ptr -= step
        s_ptr -= step
        saved_ptr -= step
        j_ptr -= step
        gx_ptr -= step
    gs = tl.load(gs_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if SAVE == SAVE_SG:
        sg_t = tl.load(saved_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if LOAD_S:
        s_t = tl.load(s_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    u_prev = zero + vr  # u[-1]: v0, else at rest
    if HAS_V0:
        u_prev = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    j_first = zero  # j[-1]: j0, else 0
    if HAS_J0 and SYN_GRAD:
        j_first = tl.load(j0_ptr + offs, mask=mask, other=0.0)
    sg, dudh = _sg_dudh(h, sg_t, s_t, thr, vr, a, LEVELS, RESET, SURROGATE, DETACH, SAVE)
    gxt, gu, gj, gdec, gsyn = _grad_step(gs, sg, dudh, u_prev, j_cur, j_first, gu, gj, gdec,
                                         gsyn, lam, c, alpha, vr, FORM, HAS_SYN, DECAY_GRAD,
                                         SYN_GRAD)
    tl.store(gx_ptr + offs, gxt.to(gx_ptr.dtype.element_ty), mask=mask)
    if HAS_V0:
        tl.store(gv0_ptr + offs, gu, mask=mask)
    if HAS_J0:
        tl.store(gj0_ptr + offs, gj, mask=mask)
    if DECAY_GRAD:
        tl.store(gdec_ptr + offs, gdec, mask=mask)
    if SYN_GRAD:
        tl.store(gsyn_ptr + offs, gsyn, mask=mask)


def _block(step: int) -> int:
    """Elements per program: 1024 (8 per thread at 4 warps) once that still gives a few
    hundred programs; smaller blocks for small steps so every SM gets work."""
    block = 1024
    while block > 128 and triton.cdiv(step, block) < 512:
        block //= 2
    return block


def _initial_state(u_t, j_t, v0, j0, v_reset) -> None:
    """The final state of a call without steps: the initial one (v0 or v_reset; j0 or 0)."""
    if v0 is not None:
        u_t.copy_(v0)
    else:
        u_t.fill_(float(v_reset))
    if j_t.numel() and j0 is not None:
        j_t.copy_(j0)
    elif j_t.numel():
        j_t.zero_()


def _common_args(x, decay, syn_decay, v0):
    """(grid, runtime shape args, constexprs shared by both kernels)."""
    step = x.shape[1] * x.shape[2] * x.shape[3]
    block = _block(step)
    grid = (triton.cdiv(step, block),)
    shape = (x.shape[0], step, x.shape[2], x.shape[3])
    flags = dict(HAS_SYN=syn_decay is not None, HAS_V0=v0 is not None,
                 DECAY_PER_C=decay.numel() > 1,
                 SYN_PER_C=syn_decay is not None and syn_decay.numel() > 1, BLOCK=block)
    return grid, shape, flags


def mt_lif_forward(x, decay, syn_decay, v0, j0, threshold, v_reset, levels, reset, surrogate,
                   width, detach_reset, form, save, save_j, return_state):
    """Spikes, what the backward keeps, j and the final state: ``(s, saved, j, u_T, j_T)``
    (see the contract).

    With ``save_j`` and no synaptic current, ``j`` holds x in float32 (``j[t] = x[t]``),
    which the plif decay gradient needs.
    """
    _check_contract(x, decay, syn_decay, v0, j0)
    s = torch.empty_like(x)
    saved = {Save.NONE: x.new_empty(0), Save.SG: torch.empty_like(x),
             Save.H: torch.empty_like(x, dtype=torch.float32)}[save]
    j = (torch.empty_like(x, dtype=torch.float32) if save_j
         else x.new_empty(0, dtype=torch.float32))
    # Each unused output its own empty tensor: returns of a custom op may not alias.
    u_t = x.new_empty(x.shape[1:] if return_state else (0,), dtype=torch.float32)
    j_t = x.new_empty(x.shape[1:] if return_state and syn_decay is not None else (0,),
                      dtype=torch.float32)
    if x.shape[0] == 0 or x.shape[1:].numel() == 0:  # no step: the state is the initial one
        if return_state:
            _initial_state(u_t, j_t, v0, j0, v_reset)
        return s, saved, j, u_t, j_t
    grid, (T, step, C, R), flags = _common_args(x, decay, syn_decay, v0)
    # Unused pointers get a harmless placeholder; the constexpr flags keep them unread.
    _mt_lif_fwd_kernel[grid](
        x, decay, syn_decay if syn_decay is not None else decay, v0 if v0 is not None else x,
        j0 if j0 is not None else decay, s, saved if save != Save.NONE else s,
        j if save_j else s, u_t if return_state else decay, j_t if j_t.numel() else decay,
        T, step, C, R, float(threshold), float(v_reset), float(width),
        LEVELS=int(levels), RESET=int(reset), SURROGATE=int(surrogate), FORM=int(form),
        SAVE=int(save), SAVE_J=bool(save_j), HAS_J0=j0 is not None,
        STATE=bool(return_state), **flags, num_warps=NUM_WARPS, enable_fp_fusion=False)
    return s, saved, j, u_t, j_t


def _reduce(ws: torch.Tensor, like: torch.Tensor, shape) -> torch.Tensor:
    """Fixed-order torch sum of the per-element workspace down to ``like``'s [1] or [C]."""
    _, n, c, r = shape
    if like.numel() > 1:
        return ws.view(n, c, r).sum(dim=(0, 2))
    return ws.sum().reshape(1)


def mt_lif_backward(grad_s, grad_u, grad_j, s, saved, j, decay, syn_decay, v0, j0, threshold,
                    v_reset, levels, reset, surrogate, width, detach_reset, form, save,
                    decay_grad, syn_grad):
    """``(gx, gdecay, gsyn, gv0, gj0)`` of backward_recursion (hard mode) for the
    contract; ``grad_u``/``grad_j`` (the final state's gradients) start ``gu``/``gj``."""
    _check_contract(grad_s, decay, syn_decay, v0, j0, grad_u, grad_j)
    _check_backward(grad_s, s, saved, j, reset, detach_reset, form, save, decay_grad,
                    syn_grad, syn_decay)
    gx = torch.empty_like(grad_s)
    gdecay = torch.zeros_like(decay)
    gsyn = decay.new_empty(0) if syn_decay is None else torch.zeros_like(syn_decay)
    gv0 = decay.new_empty(0) if v0 is None else torch.zeros_like(v0)
    gj0 = decay.new_empty(0) if j0 is None else torch.zeros_like(j0)
    if grad_s.shape[0] == 0 or grad_s[0].numel() == 0:
        gx.zero_()  # no step: the initial state's gradient is the final state's
        if v0 is not None and grad_u is not None:
            gv0.copy_(grad_u)
        if j0 is not None and grad_j is not None:
            gj0.copy_(grad_j)
        return gx, gdecay, gsyn, gv0, gj0
    grid, (T, step, C, R), flags = _common_args(grad_s, decay, syn_decay, v0)
    ws_dec = grad_s.new_empty(step, dtype=torch.float32) if decay_grad else gdecay
    ws_syn = grad_s.new_empty(step, dtype=torch.float32) if syn_grad else gdecay
    _mt_lif_bwd_kernel[grid](
        grad_s, grad_u if grad_u is not None else decay,
        grad_j if grad_j is not None else decay, s, saved, j if j.numel() else saved, decay,
        syn_decay if syn_decay is not None else decay, v0 if v0 is not None else decay,
        j0 if j0 is not None else decay, gx, ws_dec, ws_syn,
        gv0 if v0 is not None else gdecay, gj0 if j0 is not None else gdecay,
        T, step, C, R, float(threshold), float(v_reset), float(width),
        LEVELS=int(levels), RESET=int(reset), SURROGATE=int(surrogate),
        DETACH=bool(detach_reset), FORM=int(form), SAVE=int(save),
        DECAY_GRAD=bool(decay_grad), SYN_GRAD=bool(syn_grad), HAS_J0=j0 is not None,
        HAS_GU=grad_u is not None, HAS_GJ=grad_j is not None, **flags,
        num_warps=NUM_WARPS, enable_fp_fusion=False)
    if decay_grad:
        gdecay = _reduce(ws_dec, decay, grad_s.shape)
    if syn_grad:
        gsyn = _reduce(ws_syn, syn_decay, grad_s.shape)
    return gx, gdecay, gsyn, gv0, gj0
