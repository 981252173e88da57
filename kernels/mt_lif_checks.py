"""Guards of the Triton ``mt_lif`` wrappers (kernels/mt_lif.py): the cheap checks that keep
a direct call of the kernel ops in bounds (the public op has validated its arguments)."""

from __future__ import annotations

import torch

from .._enums import Form, Reset, Save


def check_contract(x: torch.Tensor, decay: torch.Tensor, syn_decay, v0, j0=None,
                    grad_u=None, grad_j=None) -> None:
    """Cheap guards so a contract violation can never turn into an out-of-bounds access."""
    if x.dim() != 4 or not x.is_contiguous():
        raise ValueError(f"x must be a contiguous [T, N, C, R] tensor, got shape "
                         f"{tuple(x.shape)} (contiguous: {x.is_contiguous()})")
    channels = x.shape[2]
    for name, p in (("decay", decay), ("syn_decay", syn_decay)):
        if p is not None and (p.dim() != 1 or p.numel() not in (1, channels)
                              or p.dtype != torch.float32 or not p.is_contiguous()):
            raise ValueError(f"{name} must be a contiguous float32 [1] or [C] tensor, got "
                             f"{p.dtype} {tuple(p.shape)}")
    for name, t in (("v0", v0), ("j0", j0), ("grad_u", grad_u), ("grad_j", grad_j)):
        if t is not None and (t.shape != x.shape[1:] or t.dtype != torch.float32
                              or not t.is_contiguous()):
            raise ValueError(f"{name} must be a contiguous float32 {tuple(x.shape[1:])} "
                             f"tensor, got {t.dtype} {tuple(t.shape)}")
    for name, t in (("j0", j0), ("grad_j", grad_j)):
        if t is not None and syn_decay is None:
            raise ValueError(f"{name} without syn_decay")
    if x.shape[1] * x.shape[2] * x.shape[3] >= 2**31:
        raise ValueError("mt_lif (triton): one time step must have fewer than 2**31 elements")


def check_backward(grad_s, s, saved, j, reset, detach_reset, form, save, decay_grad,
                    syn_grad, syn_decay):
    if save not in (Save.SG, Save.H):
        raise RuntimeError("mt_lif (triton): backward needs save mode sg or h")
    if save == Save.SG and (decay_grad or (reset == Reset.HARD and not detach_reset)):
        raise ValueError("mt_lif (triton): save mode sg cannot give the decay gradient or "
                         "the attached hard-reset gradient; use save mode h")
    if syn_grad and syn_decay is None:
        raise ValueError("mt_lif (triton): syn_grad without syn_decay")
    needs_j = (decay_grad and form == Form.PLIF) or syn_grad
    if needs_j and j.numel() != grad_s.numel():
        raise RuntimeError("mt_lif (triton): this gradient needs j[t] (the synaptic current, "
                           "or x without one) saved by the forward (save_j)")
    for name, t in (("s", s), ("saved", saved)):
        if t.shape != grad_s.shape:
            raise ValueError(f"{name} must have the shape of grad_s {tuple(grad_s.shape)}, "
                             f"got {tuple(t.shape)}")
