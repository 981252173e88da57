"""``fastsnn.mt_lif``: multi-threshold LIF over time (docs/mt_lif.md).

The public function validates its arguments (the only validation pass), normalises them
to the kernel contract below and runs one backend. ``reference`` is plain autograd over
``fastsnn.reference.mt_lif``; the fast backends run the kernels declared in ``OP`` (torch
ops ``fastsnn::mt_lif_forward`` / ``mt_lif_backward`` for cpu and cuda, ``..._triton`` for
triton; see ``fastsnn/ops/_spine.py``), whose fake impls and autograd are attached there, so
they pass ``torch.library.opcheck`` and trace under ``torch.compile(fullgraph=True)``.

Kernel contract (``csrc/torch/mt_lif.cpp`` and ``kernels/mt_lif.py``):

* ``x``: contiguous ``[T, N, C, R]`` (float32/16, bfloat16; float64 on cpu);
  ``decay``/``syn_decay``: contiguous ``[1]`` or ``[C]`` in the compute dtype (float32,
  float64 for float64 input); ``v0`` (initial membrane, else ``v_reset``) and ``j0``
  (initial synaptic current, else 0; only with ``syn_decay``): contiguous ``[N, C, R]`` in
  the compute dtype. ``threshold``, ``v_reset`` and ``width`` are already rounded to the
  compute dtype.
* enums ``reset``, ``surrogate``, ``form``, ``save``: ``fastsnn/_enums.py`` (the C++ side:
  ``csrc/common/enums.h``); save is what the backward keeps:

  ============  ===========================================  ===========================
  save          kept per element per step                    used when
  ============  ===========================================  ===========================
  0 ``none``    nothing                                      no gradient is needed
  1 ``sg``      sg(h) in x's dtype (2 B half, 4 B float32)   soft/none reset, or hard
                (hard reset also reads the spikes it returns   reset with detach_reset,
                for the reset mask ``s >= 1``: no extra bytes) and decay needs no grad
  2 ``h``       h in the compute dtype (4 B)                 hard reset without
                                                             detach_reset, or decay grad
  ============  ===========================================  ===========================

  plus ``j`` (compute dtype, 4 B) when the synaptic decay needs a gradient, or a plif
  decay does (``save_j``); without the synaptic current ``j[t]`` is ``x[t]`` and the
  forward stores that.
* forward returns ``(s, saved, j, u_T, j_T)``; ``u_T``/``j_T`` are the state after the
  last step (``[N, C, R]``, compute dtype; ``u_T = u0``, ``j_T = j0`` when T = 0), written
  only with ``return_state`` (``j_T`` only with the synaptic current); unused outputs are
  empty ``[0]`` tensors.
* backward takes ``grad_u``/``grad_j`` (optional ``[N, C, R]``, compute dtype): the
  gradients of ``u_T``/``j_T``, the initial values of the reverse-time accumulators
  ``gu``/``gj``; absent means zero. It returns ``(gx, gdecay, gsyn, gv0, gj0)``: ``gx`` like
  ``x``; ``gdecay``/``gsyn`` shaped like ``decay``/``syn_decay`` (zeros when not asked for;
  ``gsyn`` empty without the synaptic current), reduced deterministically; ``gv0``/``gj0``
  ``[N, C, R]`` (empty without ``v0``/``j0``). ``j0`` also enters ``gsyn`` as ``j[-1]``.
"""

from __future__ import annotations

import math
import struct
from typing import Optional, Union

import torch
from torch import Tensor

from .._enums import Form, Reset, Save, Surrogate, options, parse
from ..packed_spikes import PackedSpikes
from ..reference.mt_lif import compute_dtype
from ..reference.mt_lif import mt_lif as reference_mt_lif
from . import _checks
from ._spine import Kernel, Op
from .lif_options import decay_from, surrogate_parameter
from .mt_lif_packed import check_packed_call, mt_lif_packed
from .mt_lif_state import MtLifState, unpack

RESETS, SURROGATES, FORMS = options(Reset), options(Surrogate), options(Form)
# The Triton kernels unroll the levels at compile time (tl.static_range): bounded so that
# one compilation stays bounded. cpu and cuda loop (up to 2^20).
TRITON_MAX_LEVELS = 64
_HALVES = (torch.float32, torch.float16, torch.bfloat16)


def _forward_fake(x, decay, syn_decay, v0, j0, threshold, v_reset, levels, reset, surrogate,
                  width, detach_reset, form, save, save_j, return_state):
    acc = compute_dtype(x.dtype)
    saved = {Save.NONE: x.new_empty(0), Save.SG: torch.empty_like(x),
             Save.H: torch.empty_like(x, dtype=acc)}[save]
    j = torch.empty_like(x, dtype=acc) if save_j else x.new_empty(0, dtype=acc)
    step = x.new_empty(x.shape[1:], dtype=acc)
    u_t = torch.empty_like(step) if return_state else x.new_empty(0, dtype=acc)
    j_t = (torch.empty_like(step) if return_state and syn_decay is not None
           else x.new_empty(0, dtype=acc))
    return torch.empty_like(x), saved, j, u_t, j_t


def _backward_fake(grad_s, grad_u, grad_j, s, saved, j, decay, syn_decay, v0, j0, threshold,
                   v_reset, levels, reset, surrogate, width, detach_reset, form, save,
                   decay_grad, syn_grad):
    gsyn = decay.new_empty(0) if syn_decay is None else torch.empty_like(syn_decay)
    gv0 = decay.new_empty(0) if v0 is None else torch.empty_like(v0)
    gj0 = decay.new_empty(0) if j0 is None else torch.empty_like(j0)
    return torch.empty_like(grad_s), torch.empty_like(decay), gsyn, gv0, gj0


OP = Op("mt_lif", triton_module="mt_lif", kernels=(
    Kernel("mt_lif_forward",
           "(Tensor x, Tensor decay, Tensor? syn_decay, Tensor? v0, Tensor? j0, "
           "float threshold, float v_reset, int levels, int reset, int surrogate, "
           "float width, bool detach_reset, int form, int save, bool save_j, "
           "bool return_state) -> (Tensor, Tensor, Tensor, Tensor, Tensor)", _forward_fake),
    Kernel("mt_lif_backward",
           "(Tensor grad_s, Tensor? grad_u, Tensor? grad_j, Tensor s, Tensor saved, "
           "Tensor j, Tensor decay, Tensor? syn_decay, Tensor? v0, Tensor? j0, "
           "float threshold, float v_reset, int levels, int reset, int surrogate, "
           "float width, bool detach_reset, int form, int save, bool decay_grad, "
           "bool syn_grad) -> (Tensor, Tensor, Tensor, Tensor, Tensor)", _backward_fake)),
    dtypes={"reference": _HALVES + (torch.float64,), "cpu": _HALVES + (torch.float64,),
            "triton": _HALVES, "cuda": _HALVES})


def _setup_context(ctx, inputs, output):
    x, decay, syn_decay, v0, j0, *options, save, save_j, _return_state = inputs
    s, saved, j, _, _ = output
    ctx.save_for_backward(s, saved, j, decay, syn_decay, v0, j0)
    ctx.set_materialize_grads(False)  # saved and j take no gradient: skip their zero fills
    ctx.options = tuple(options)
    ctx.save = save


def _saved_tensors(ctx) -> tuple:
    """``ctx.saved_tensors``, with torch's error for a saved tensor modified in place
    (which names an internal tensor) turned into one that says what to do."""
    try:
        return ctx.saved_tensors
    except RuntimeError as exc:
        if "output 0 of" not in str(exc):
            raise
        raise RuntimeError(
            "mt_lif: the spikes it returned were modified in place (e.g. "
            "F.dropout(s, inplace=True) or s.mul_(mask)) before backward, and the backward of "
            "the fast backends reads them; use the out-of-place op (F.dropout(s), s * mask), "
            "modify a copy (s.clone()), or use backend='reference'") from exc


def _autograd_backward(ctx, grad_s, _grad_saved, _grad_j, grad_u, grad_jt):
    s, saved, j, decay, syn_decay, v0, j0 = _saved_tensors(ctx)
    _, decay_grad, syn_grad, v0_grad, j0_grad = ctx.needs_input_grad[:5]
    if ctx.save == Save.NONE:
        raise RuntimeError("mt_lif: backward through a call made without grad enabled")
    grad_s = torch.zeros_like(s) if grad_s is None else grad_s  # only the state was used
    state_grads = [None if g is None or g.numel() == 0 else g.contiguous()
                   for g in (grad_u, grad_jt)]
    gx, gdecay, gsyn, gv0, gj0 = OP.kernel("mt_lif_backward", ctx.backend)(
        grad_s.contiguous(), *state_grads, s, saved, j, decay, syn_decay, v0, j0,
        *ctx.options, ctx.save, decay_grad, syn_grad and syn_decay is not None)
    return (gx, gdecay if decay_grad else None,
            gsyn if syn_grad and syn_decay is not None else None,
            gv0 if v0_grad else None, gj0 if j0_grad else None) + (None,) * 11


OP.autograd("mt_lif_forward", _autograd_backward, _setup_context)


def _param(p, name: str, x: Tensor, acc: torch.dtype) -> Tensor:
    """A float / 0-d / [C] parameter as the contract's ``[1]`` or ``[C]`` tensor."""
    channels = x.shape[2] if x.dim() > 2 else 1
    if not isinstance(p, Tensor):
        try:
            value = _checks.real(p, name)
        except TypeError:
            raise TypeError(f"{name} must be a float or a tensor, got "
                            f"{type(p).__name__}") from None
        if not 0 <= value <= 1:  # a plain Python test: it holds under torch.compile too
            raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
        return torch.tensor([value], dtype=acc, device=x.device)
    _checks.floating(p, name)
    _checks.same_device(p, name, x)
    if p.dim() > 1 or (p.dim() == 1 and p.numel() not in (1, channels)):
        raise ValueError(f"{name} must be a float, a 0-d tensor or a [C] tensor with "
                         f"C = x.shape[2] = {channels}; got shape {tuple(p.shape)}")
    if p.numel() and not _checks.values_hold(
            (p >= 0) & (p <= 1), lambda: f"{name} must lie in [0, 1] (NaN is refused)"):
        raise ValueError(f"{name} must lie in [0, 1]; got values in "
                         f"[{p.min().item():g}, {p.max().item():g}]")
    return p.reshape(-1).to(acc).contiguous()


def _check(x, threshold, levels, width, v0, backend):
    _checks.tensor(x, "x")
    if x.dim() < 2:
        raise ValueError(f"x must be [T, N, ...] with at least 2 dims, got shape "
                         f"{tuple(x.shape)}")
    OP.check_dtype(x, "x", backend)
    _checks.integer(levels, "levels", 1)
    if backend == "triton" and levels > TRITON_MAX_LEVELS:
        raise ValueError(f"levels must be <= {TRITON_MAX_LEVELS} on the triton backend (its "
                         f"kernels unroll the levels when they compile), got {levels}; use "
                         f"backend='cpu', 'cuda' or 'reference'")
    _checks.positive_float(threshold, "threshold")
    if v0 is not None:
        _checks.same_device(_checks.tensor(v0, "v0"), "v0", x)
        try:
            fits = torch.broadcast_shapes(v0.shape, x.shape[1:]) == x.shape[1:]
        except RuntimeError:
            fits = False
        if not fits:  # e.g. [1, N, C, ...]: a state with a time axis; pass v0[0]
            raise ValueError(f"v0 of shape {tuple(v0.shape)} does not broadcast to one "
                             f"step of x, {tuple(x.shape[1:])} (no time axis: for a "
                             f"[1, N, ...] state pass v0[0])")


def _rounded(value: float, acc: torch.dtype) -> float:
    """``value`` rounded to the compute dtype: kernels and reference then agree bit for bit.

    Under torch.compile floats may be symbolic; the kernels round the value themselves when
    they convert it, so only the eager reference path relies on this.
    """
    if acc == torch.float64 or torch.compiler.is_compiling():
        return value
    return struct.unpack("f", struct.pack("f", float(value)))[0]


def mt_lif(x: Tensor, decay: Union[None, float, Tensor] = None, *, threshold: float = 1.0,
           levels: int = 1, reset: str = "hard", surrogate: str = "rect",
           width: Optional[float] = None, detach_reset: bool = False, form: str = "stbp",
           syn_decay: Union[None, float, Tensor] = None, v0: Optional[Tensor] = None,
           tau: Union[None, float, Tensor] = None, alpha: Optional[float] = None,
           slope: Optional[float] = None, v_reset: float = 0.0,
           state: Optional[MtLifState] = None, return_state: bool = False,
           backend: Optional[str] = None,
           packed: bool = False) -> Union[Tensor, PackedSpikes, tuple[Tensor, MtLifState]]:
    """Spikes of a multi-threshold LIF neuron over time; same shape and dtype as ``x``.

    ``x`` is ``[T, N, C, ...]``. Per element and step: optional synaptic current ``j =
    syn_decay*j + x``, charge ``h = v_reset + decay*(u - v_reset) + c*j`` (``c = 1`` for
    ``form="stbp"``, ``1 - decay`` for ``"plif"``), spike ``s`` = number of thresholds
    ``k*threshold`` (k = 1..``levels``) reached, then ``reset`` ("hard" to ``v_reset``,
    "soft" subtracts ``threshold*s``, "none", or "subtract_next": snnTorch's subtraction of
    ``threshold*s`` from the next step's charge, undecayed and detached).
    ``decay``/``syn_decay`` are floats, 0-d or ``[C]`` tensors (C = ``x.shape[2]``) in [0,
    1] (default 0.5) and may require grad; ``tau`` is the alternative spelling ``decay = 1 -
    1/tau`` (tau >= 1), never given with ``decay``. ``v_reset`` (default 0) is the
    hard-reset value and the rest potential the membrane leaks toward, as SpikingJelly
    defines it; ``v0`` is the initial membrane (default ``v_reset``).
    Streaming: ``return_state=True`` returns ``(spikes, state)``, an ``MtLifState`` holding
    the membrane (and synaptic current) after the last step; ``state=`` (instead of ``v0``)
    starts from such a state, so chunks run one after the other equal the whole sequence,
    spikes and gradients (gradients flow through the state; ``state.detach()`` cuts it).
    Gradients use the surrogate ``surrogate`` per threshold: "rect", "triangle" and
    "sigmoid" of width ``width`` (default ``threshold``; a reconstruction of paper A's
    approximated derivatives), "atan" with SpikingJelly's ``alpha`` (default 2) and
    "fast_sigmoid" with snnTorch's ``slope`` (default 25) (docs/mt_lif.md).
    ``packed=True`` (inference only) returns the same spikes as ``fastsnn.PackedSpikes``
    written by the kernel (``fastsnn/ops/mt_lif_packed.py``; docs/packed_spikes.md).
    """
    decay = decay_from(decay, tau)
    chosen = OP.choose(backend, x)
    _check(x, threshold, levels, width, v0, chosen)
    detach_reset = _checks.boolean(detach_reset, "detach_reset")
    return_state = _checks.boolean(return_state, "return_state")
    v_reset = _checks.finite_float(v_reset, "v_reset")
    v0, j0 = unpack(state, v0, syn_decay, x, compute_dtype(x.dtype))
    threshold = float(threshold)
    reset_e, surrogate_e = parse(Reset, reset, "reset"), parse(Surrogate, surrogate, "surrogate")
    form_e = parse(Form, form, "form")
    acc = compute_dtype(x.dtype)
    decay_t = _param(decay, "decay", x, acc)
    syn_t = None if syn_decay is None else _param(syn_decay, "syn_decay", x, acc)
    threshold, v_reset = _rounded(threshold, acc), _rounded(v_reset, acc)
    if _checks.boolean(packed, "packed"):
        if v_reset != 0 or state is not None or return_state:
            raise ValueError("packed=True (inference) supports neither v_reset nor state / "
                             "return_state; use the float spikes of packed=False")
        check_packed_call(x, (x, decay_t), syn_decay, v0, levels)
        return mt_lif_packed(x, decay_t, threshold=threshold, levels=levels, reset=reset,
                             form=form, backend=backend)
    width = _rounded(surrogate_parameter(surrogate, threshold, width, alpha, slope), acc)
    if chosen == "reference":
        out = reference_mt_lif(x, decay_t if decay_t.numel() > 1 else decay_t.reshape(()),
                               threshold=threshold, levels=levels, reset=reset,
                               surrogate=surrogate, width=width, detach_reset=detach_reset,
                               form=form, syn_decay=syn_t if syn_t is None or syn_t.numel() > 1
                               else syn_t.reshape(()), v0=v0, v_reset=v_reset, j0=j0,
                               return_state=return_state)
        return (out[0], MtLifState(*out[1])) if return_state else out
    shape = x.shape
    x4 = x.reshape(shape[0], shape[1], shape[2] if x.dim() > 2 else 1,
                   math.prod(shape[3:])).contiguous()
    if v0 is None and v_reset != 0:  # the membrane starts at rest, v_reset
        v0 = x.new_full((), v_reset, dtype=acc)
    v0_t = None if v0 is None else v0.to(acc).expand(shape[1:]).reshape(x4.shape[1:])
    j0_t = None if j0 is None or syn_t is None else j0.reshape(x4.shape[1:]).contiguous()
    save, save_j = _save_mode(x, decay_t, syn_t, v0_t, reset, detach_reset, form, j0_t)
    s, _, _, u_t, j_t = OP.kernel("mt_lif_forward", chosen)(
        x4, decay_t, syn_t, None if v0_t is None else v0_t.contiguous(), j0_t, threshold,
        v_reset, levels, int(reset_e), int(surrogate_e), width, detach_reset, int(form_e),
        int(save), save_j, return_state)
    if not return_state:
        return s.reshape(shape)
    return s.reshape(shape), MtLifState(u_t.reshape(shape[1:]), None if syn_t is None
                                        else j_t.reshape(shape[1:]))


def _save_mode(x, decay, syn, v0, reset, detach_reset, form, j0=None) -> tuple[Save, bool]:
    """What the backward must keep for this option set (table in the module docstring)."""
    needs = [t is not None and t.requires_grad for t in (x, decay, syn, v0, j0)]
    if not torch.is_grad_enabled() or not any(needs):
        return Save.NONE, False
    decay_grad, syn_grad = needs[1], needs[2]
    hard_attached = reset == "hard" and not detach_reset
    save = Save.H if hard_attached or decay_grad else Save.SG
    # plif's decay gradient reads j[t] (= x[t] without the synaptic current)
    save_j = (syn is not None and syn_grad) or (decay_grad and form == "plif")
    return save, save_j


def saved_bytes_per_step(dtype: torch.dtype, *, reset="hard", detach_reset=False,
                         decay_grad=False, syn_grad=False, synaptic=False,
                         form="stbp") -> int:
    """Bytes the backward keeps per element per time step for an option set."""
    x = torch.empty(0, dtype=dtype, requires_grad=True)
    dec = torch.empty(1, requires_grad=decay_grad)
    syn = torch.empty(1, requires_grad=syn_grad) if synaptic else None
    with torch.enable_grad():
        save, save_j = _save_mode(x, dec, syn, None, reset, detach_reset, form)
    acc_size = compute_dtype(dtype).itemsize
    kept = {Save.NONE: 0, Save.SG: dtype.itemsize, Save.H: acc_size}[save]
    return kept + (acc_size if save_j else 0)
