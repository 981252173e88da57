"""Triton kernels of ``fastsnn.stcb`` / ``fastsnn.spike_count`` (docs/stcb.md, a
reconstruction of paper C); the kernel contract is the docstring of ``fastsnn/ops/stcb.py``.

Same arithmetic as the reference and the C++/CUDA kernels (``csrc/common/stcb.h``):
``x = A / vth`` with a correctly rounded division (``div_rn``: Triton's ``/`` on float32 is
an approximate division), then the exact integer/float64 recursion of the evenly spaced
train (the state update of ``stcb_step`` in ``csrc/common/stcb.h``). One program handles
``BLOCK`` consecutive elements and writes its train row by row (each output element once)
and ``BLOCK // 8`` whole mask bytes. float32 only. Runs under the Triton interpreter
(``TRITON_INTERPRET=1``) on CPU tensors and compiled on CUDA.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 256  # a multiple of 8: a program owns whole mask bytes


@triton.jit
def _forward_kernel(a_ptr, out_ptr, mask_ptr, E, T, levels, vth, COUNT_ONLY: tl.constexpr,
                    SAVE_MASK: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inb = offs < E
    a = tl.load(a_ptr + offs, mask=inb, other=0.0)
    x = tl.math.div_rn(a, tl.full([BLOCK], vth, tl.float32))
    kt = tl.full([BLOCK], levels * T, tl.int32)  # K*T <= 2^24: exact in float32
    mid = (x > 0.0) & (x < kt.to(tl.float32))
    # floor(x) is truncation inside (0, K*T), where x > 0; zeroed first: no cast of inf/NaN.
    x_mid = tl.where(mid, x, 0.0)
    n_mid = x_mid.to(tl.int32)
    n = tl.where(mid, n_mid, tl.where(x >= kt.to(tl.float32), kt, 0))
    nan = tl.where(x != x, x, 0.0)
    if COUNT_ONLY:
        tl.store(out_ptr + offs, n.to(tl.float32) + nan, mask=inb)
    else:
        qa = n // T
        rb = n % T
        f = (x_mid - n_mid.to(tl.float32)).to(tl.float64)  # x - floor(x), exact; 0 outside
        r = tl.zeros([BLOCK], dtype=tl.int32)
        c = tl.zeros([BLOCK], dtype=tl.int32)
        for t in range(1, T + 1):
            r += rb
            wrap = (r >= T).to(tl.int32)
            r -= wrap * T
            tt = tl.full([BLOCK], t, tl.int32).to(tl.float64)
            c_t = (tt * f >= (T - r).to(tl.float64)).to(tl.int32)
            row = (tl.full([BLOCK], t, tl.int64) - 1) * E
            tl.store(out_ptr + row + offs, (qa + wrap + c_t - c).to(tl.float32) + nan, mask=inb)
            c = c_t
    if SAVE_MASK:
        bits = tl.reshape((mid & inb).to(tl.int32), [BLOCK // 8, 8])
        weights = (1 << tl.arange(0, 8))[None, :]
        byte = tl.sum(bits * weights, axis=1).to(tl.uint8)
        byte_offs = pid.to(tl.int64) * (BLOCK // 8) + tl.arange(0, BLOCK // 8)
        tl.store(mask_ptr + byte_offs, byte, mask=byte_offs < (E + 7) // 8)


@triton.jit
def _backward_kernel(grad_ptr, mask_ptr, ga_ptr, E, T, scale, COUNT_ONLY: tl.constexpr,
                     BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inb = offs < E
    byte = tl.load(mask_ptr + (offs >> 3), mask=inb, other=0).to(tl.int32)
    bit = (byte >> (offs & 7).to(tl.int32)) & 1
    if COUNT_ONLY:
        g = tl.load(grad_ptr + offs, mask=inb, other=0.0)
    else:
        g = tl.zeros([BLOCK], dtype=tl.float32)
        for t in range(0, T):
            row = tl.full([BLOCK], t, tl.int64) * E
            g += tl.load(grad_ptr + row + offs, mask=inb, other=0.0)
    tl.store(ga_ptr + offs, tl.where(bit != 0, g * scale, 0.0), mask=inb)


@triton.jit
def _spike_count_kernel(s_ptr, out_ptr, E, T, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inb = offs < E
    total = tl.zeros([BLOCK], dtype=tl.float32)
    for t in range(0, T):
        row = tl.full([BLOCK], t, tl.int64) * E
        total += tl.load(s_ptr + row + offs, mask=inb, other=0.0)
    tl.store(out_ptr + offs, total, mask=inb)


def _grid(E: int):
    return (triton.cdiv(E, BLOCK),)


def _check_float32(t: torch.Tensor, name: str) -> None:
    if t.dtype != torch.float32 or not t.is_contiguous():
        raise TypeError(f"stcb (triton): {name} must be a contiguous float32 tensor")


def stcb_forward(a: torch.Tensor, T: int, levels: int, threshold: float, count_only: bool,
                 save_mask: bool) -> tuple[torch.Tensor, torch.Tensor]:
    _check_float32(a, "a")
    E = a.numel()
    out = torch.empty((E,) if count_only else (T, E), dtype=a.dtype, device=a.device)
    mask = torch.empty(((E + 7) // 8 if save_mask else 0,), dtype=torch.uint8,
                       device=a.device)
    if E:
        _forward_kernel[_grid(E)](a, out, mask, E, T, levels, threshold,
                                  COUNT_ONLY=count_only, SAVE_MASK=save_mask, BLOCK=BLOCK,
                                  enable_fp_fusion=False)
    return out, mask


def stcb_backward(grad: torch.Tensor, mask: torch.Tensor, T: int, scale: float,
                  count_only: bool) -> torch.Tensor:
    _check_float32(grad, "grad")
    E = grad.shape[0] if count_only else grad.shape[1]
    ga = torch.empty(E, dtype=grad.dtype, device=grad.device)
    if E:
        _backward_kernel[_grid(E)](grad, mask, ga, E, T, scale, COUNT_ONLY=count_only,
                                   BLOCK=BLOCK, enable_fp_fusion=False)
    return ga


def spike_count(s: torch.Tensor) -> torch.Tensor:
    _check_float32(s, "s")
    out = torch.empty(s.shape[1:], dtype=s.dtype, device=s.device)
    E = out.numel()
    if E:
        _spike_count_kernel[_grid(E)](s, out, E, s.shape[0], BLOCK=BLOCK,
                                      enable_fp_fusion=False)
    return out
