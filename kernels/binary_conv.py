"""Triton backend of ``binary_conv2d``: bit-packed implicit GEMM with a SWAR popcount.

Contract (packed weight layout, exact semantics): ``csrc/common/binary_conv.h`` and the
op's docstring (``fastsnn/ops/binary_conv.py``). In short: ``wpacked`` int32
``[Cout, KH*KW, words]``, bit ``i`` of word ``w`` at ``(o, kpos)`` set iff
``W[o, 32*w + i, kpos] >= 0``; ``out = alpha[o] * dot + bias[o]`` in float32 with ``dot`` the
exact integer ``F.conv2d(x, sign(W))`` (zero padding = no input).

Two kernels:

* ``_pack_kernel``: x (float32 NCHW) -> int32 ``[N*H*W, planes, words]``, channels packed
  32 to a word (bit i = channel 32*word + i), one plane per bit of a spike level
  (``planes = bits``) or the sign bit (``planes = 1``); unused bits 0. A program packs one
  word of a block of pixels: a [pixels, 32] tile of x, its shifted bits summed along the
  channels.
* ``_conv_kernel``: one program per (block of output pixels, block of output channels),
  looping over the kernel taps and words with the integer counts in registers:
  spike ``acc = sum_b 2^b popc(x_b & w)``, ``dot = 2 acc - sum_b 2^b popc(x_b)``;
  sign ``acc = popc(x ^ w)`` over in-bounds taps, ``dot = taps_in_bounds * Cin - 2 acc``
  (unused bits are 0 in both operands, so they never mismatch). Padding taps load 0
  and, for sign, are masked out of the count.

Triton has no popcount that also runs in the interpreter, so ``_popcount`` is the SWAR one
on uint32 (logical shifts). Launched with ``enable_fp_fusion=False`` so ``alpha*dot + bias``
is two roundings, like the contract.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._enums import BinaryActivation

SIGN = BinaryActivation.SIGN

PACK_BLOCK = 32  # pixels per pack program
BLOCK_M = 32  # output pixels per conv program
BLOCK_N = 32  # output channels per conv program
NUM_WARPS = 4


@triton.jit
def _popcount(v):
    """Set bits of each 32-bit lane, as int32 (SWAR on uint32: shifts are logical)."""
    u = v.to(tl.uint32, bitcast=True)
    u = u - ((u >> 1) & 0x55555555)
    u = (u & 0x33333333) + ((u >> 2) & 0x33333333)
    u = (u + (u >> 4)) & 0x0F0F0F0F
    u = u + (u >> 8)
    u = u + (u >> 16)
    return (u & 0x3F).to(tl.int32)


@triton.jit
def _pack_kernel(x_ptr, packed_ptr, NPIX, HW, CIN, WORDS,
                 PLANES: tl.constexpr, SIGN_MODE: tl.constexpr, BLOCK: tl.constexpr):
    word = tl.program_id(1)
    pix = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    lane = tl.arange(0, 32)
    c = word * 32 + lane
    n = pix // HW
    row = n * CIN * HW + (pix - n * HW)
    pix_ok = pix < NPIX
    mask = pix_ok[:, None] & (c < CIN)[None, :]
    v = tl.load(x_ptr + row[:, None] + c.to(tl.int64)[None, :] * HW, mask=mask, other=0.0)
    if SIGN_MODE:
        level = tl.where(mask & (v >= 0.0), 1, 0)
    else:
        level = v.to(tl.int32)  # valid spikes are small integers; masked lanes are 0
    dst = packed_ptr + pix * (PLANES * WORDS) + word
    for b in tl.static_range(PLANES):
        # distinct bits: their sum is their OR, in int32 range (bit 31 is -2^31)
        bits = ((level >> b) & 1) << lane
        tl.store(dst + b * WORDS, tl.sum(bits, axis=1), mask=pix_ok)


@triton.jit
def _output_pixel(m, HOUT, WOUT, SH, SW, PH, PW):
    """Image n, pixel r in it, pixels per image and the top-left input row / column of the
    window of flat output pixels m (int64). The pixel count is int64: one image's output
    may pass 2^31 pixels."""
    hw_out = (m * 0 + HOUT) * WOUT
    n = m // hw_out
    r = m - n * hw_out
    oh = r // WOUT
    return n, r, hw_out, oh * SH - PH, (r - oh * WOUT) * SW - PW


@triton.jit
def _conv_kernel(packed_ptr, w_ptr, alpha_ptr, bias_ptr, out_ptr,
                 M, COUT, CIN, H, W, HOUT, WOUT, WORDS, KW, KPOS,
                 SH, SW, PH, PW, DH, DW,
                 PLANES: tl.constexpr, SIGN_MODE: tl.constexpr, HAS_ALPHA: tl.constexpr,
                 HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    m = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    o = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = m < M
    o_ok = o < COUT
    n, r, hw_out, ih0, iw0 = _output_pixel(m, HOUT, WOUT, SH, SW, PH, PW)
    w_row = w_ptr + o.to(tl.int64) * (KPOS * WORDS)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    corr = tl.zeros((BLOCK_M,), dtype=tl.int32)  # spike: x popcounts; sign: valid bits
    for kpos in range(KPOS):
        kh = kpos // KW
        ih = ih0 + kh * DH
        iw = iw0 + (kpos - kh * KW) * DW
        inb = m_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        x_row = packed_ptr + ((n * H + ih) * W + iw) * (PLANES * WORDS)
        if SIGN_MODE:
            corr += tl.where(inb, CIN, 0)
        for word in range(WORDS):
            wv = tl.load(w_row + kpos * WORDS + word, mask=o_ok, other=0)
            for b in tl.static_range(PLANES):
                xv = tl.load(x_row + b * WORDS + word, mask=inb, other=0)
                if SIGN_MODE:
                    mismatch = _popcount(xv[:, None] ^ wv[None, :])
                    acc += tl.where(inb[:, None], mismatch, 0)
                else:
                    acc += _popcount(xv[:, None] & wv[None, :]) << b
                    corr += _popcount(xv) << b
    if SIGN_MODE:
        dot = corr[:, None] - 2 * acc
    else:
        dot = 2 * acc - corr[:, None]
    res = dot.to(tl.float32)
    if HAS_ALPHA:
        res = tl.load(alpha_ptr + o, mask=o_ok, other=0.0)[None, :] * res
    if HAS_BIAS:
        res = res + tl.load(bias_ptr + o, mask=o_ok, other=0.0)[None, :]
    dst = out_ptr + (n * COUT * hw_out + r)[:, None] + o.to(tl.int64)[None, :] * hw_out
    tl.store(dst, res, mask=m_ok[:, None] & o_ok[None, :])


def _check(x, wpacked, alpha, bias, kh, kw, activation, bits):
    if x.dtype != torch.float32 or x.dim() != 4 or not x.is_contiguous():
        raise TypeError("x must be a contiguous float32 [N, C, H, W] tensor")
    words = (x.shape[1] + 31) // 32
    if wpacked.dtype != torch.int32 or not wpacked.is_contiguous():
        raise TypeError("wpacked must be a contiguous int32 tensor")
    if wpacked.dim() != 3 or tuple(wpacked.shape[1:]) != (kh * kw, words):
        raise ValueError(f"wpacked must be [Cout, {kh * kw}, {words}], got "
                         f"{list(wpacked.shape)}")
    for name, t in (("alpha", alpha), ("bias", bias)):
        if t is not None and (t.dtype != torch.float32 or t.shape != (wpacked.shape[0],)
                              or not t.is_contiguous()):
            raise ValueError(f"{name} must be a contiguous float32 [Cout] tensor or None")
    for t in (wpacked, alpha, bias):
        if t is not None and t.device != x.device:
            raise ValueError("all tensors must be on the device of x")
    if activation not in (BinaryActivation.SPIKE, SIGN):
        raise ValueError(f"activation must be 0 (spike) or 1 (sign), got {activation}")
    if bits < 1:
        raise ValueError(f"bits must be >= 1, got {bits}")


def _out_size(size, k, stride, pad, dil):
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


def pack_input(x: torch.Tensor, activation: int, bits: int) -> torch.Tensor:
    """int32 ``[N*H*W, planes, words]`` bit-planes of x packed along channels."""
    n, cin, h, w = x.shape
    planes = 1 if activation == SIGN else bits
    words = (cin + 31) // 32
    packed = torch.empty((n * h * w, planes, words), dtype=torch.int32, device=x.device)
    if packed.numel() > 0:
        grid = (triton.cdiv(n * h * w, PACK_BLOCK), words)
        _pack_kernel[grid](x, packed, n * h * w, h * w, cin, words, PLANES=planes,
                           SIGN_MODE=activation == SIGN, BLOCK=PACK_BLOCK,
                           num_warps=NUM_WARPS)
    return packed


def binary_conv2d_forward(x, wpacked, alpha, bias, stride, padding, dilation, kh, kw,
                          activation, bits):
    """float32 ``[N, Cout, Hout, Wout]``: ``alpha[o] * dot + bias[o]`` (see module doc)."""
    _check(x, wpacked, alpha, bias, kh, kw, activation, bits)
    n, cin, h, w = x.shape
    cout = wpacked.shape[0]
    hout = _out_size(h, kh, stride[0], padding[0], dilation[0])
    wout = _out_size(w, kw, stride[1], padding[1], dilation[1])
    if hout < 1 or wout < 1:
        raise ValueError(f"output would be empty ({hout} x {wout}): kernel larger than input")
    out = torch.empty((n, cout, hout, wout), dtype=torch.float32, device=x.device)
    if out.numel() == 0:
        return out
    packed = pack_input(x, activation, bits)
    m = n * hout * wout
    grid = (triton.cdiv(m, BLOCK_M), triton.cdiv(cout, BLOCK_N))
    _conv_kernel[grid](
        packed, wpacked, alpha if alpha is not None else out,
        bias if bias is not None else out, out,
        m, cout, cin, h, w, hout, wout, (cin + 31) // 32, kw, kh * kw,
        stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1],
        PLANES=packed.shape[1], SIGN_MODE=activation == SIGN, HAS_ALPHA=alpha is not None,
        HAS_BIAS=bias is not None, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, num_warps=NUM_WARPS,
        enable_fp_fusion=False)
    return out
