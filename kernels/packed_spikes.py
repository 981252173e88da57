"""Triton backends of the packed-spike ops: ``binary_conv2d_packed_forward``,
``binary_snn_layer_forward`` and ``mt_lif_packed_forward`` (contracts in
``fastsnn/ops/binary_conv_packed.py``, ``binary_snn_layer.py``, ``mt_lif_packed.py``; the
packed layout in ``fastsnn/packed_spikes.py``).

The packed words ``[N, H, W, bits, words]`` are exactly the bit image the binary conv kernel
(``kernels/binary_conv.py``) packs float input into, so ``binary_conv2d_packed_forward``
runs its ``_conv_kernel`` on them directly. The fused layer's program owns a block of output
pixels and one output word (32 channels): for each step it computes the popcount dot, the
affine ``float32(dot) * scale + bias`` and the LIF step of ``kernels/mt_lif.py`` (same
helpers, same order of operations) with the membrane in registers, and ORs the spikes'
bits into the word (a sum of distinct bits). Launched with ``enable_fp_fusion=False``:
every multiply and add rounds, as in the reference.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .binary_conv import BLOCK_M, NUM_WARPS, _conv_kernel, _out_size, _output_pixel, _popcount
from .mt_lif import PLIF, SUBTRACT_NEXT, _reset, _staircase

BLOCK_LIF = 32  # positions per mt_lif_packed program (x 32 channels of one word)


def _check_words(x, wpacked, cin, kh, kw, dims):
    if x.dtype != torch.int32 or x.dim() != dims or not x.is_contiguous():
        raise TypeError(f"x must be a contiguous int32 tensor with {dims} dims")
    words = (cin + 31) // 32
    if x.shape[-1] != words or not 1 <= x.shape[-2] <= 8:
        raise ValueError(f"x must end in [bits (1..8), {words}], got {list(x.shape)}")
    if wpacked.dtype != torch.int32 or tuple(wpacked.shape[1:]) != (kh * kw, words):
        raise ValueError(f"wpacked must be int32 [Cout, {kh * kw}, {words}]")


def binary_conv2d_packed_forward(x, wpacked, alpha, bias, stride, padding, dilation, kh, kw,
                                 cin):
    """float32 ``[N, Cout, Hout, Wout]`` of packed spikes x ``[N, H, W, bits, words]``."""
    _check_words(x, wpacked, cin, kh, kw, 5)
    n, h, w, planes, words = x.shape
    cout = wpacked.shape[0]
    hout = _out_size(h, kh, stride[0], padding[0], dilation[0])
    wout = _out_size(w, kw, stride[1], padding[1], dilation[1])
    out = torch.empty((n, cout, hout, wout), dtype=torch.float32, device=x.device)
    if out.numel() == 0:
        return out
    m = n * hout * wout
    grid = (triton.cdiv(m, BLOCK_M), triton.cdiv(cout, 32))
    _conv_kernel[grid](
        x, wpacked, alpha if alpha is not None else out, bias if bias is not None else out,
        out, m, cout, cin, h, w, hout, wout, words, kw, kh * kw, stride[0], stride[1],
        padding[0], padding[1], dilation[0], dilation[1], PLANES=planes, SIGN_MODE=False,
        HAS_ALPHA=alpha is not None, HAS_BIAS=bias is not None, BLOCK_M=BLOCK_M, BLOCK_N=32,
        num_warps=NUM_WARPS, enable_fp_fusion=False)
    return out


@triton.jit
def _lif_step(xt, u, lam, c, thr, LEVELS: tl.constexpr, RESET: tl.constexpr,
              FORM: tl.constexpr):
    """(s, u) after one step of kernels/mt_lif.py's forward without synaptic current."""
    if FORM == PLIF:
        h = lam * u + c * xt
    else:
        h = lam * u + xt
    if RESET == SUBTRACT_NEXT:
        h = h - thr * _staircase(u, thr, LEVELS)
    s = _staircase(h, thr, LEVELS)
    return s, _reset(h, s, thr, 0.0, RESET)  # the packed layers rest at 0 (no v_reset)


@triton.jit
def _store_bits(dst, s, ok, row_ok, word_stride, lane, BITS: tl.constexpr):
    """The [rows, 32] spikes s (0..levels; NaN and lanes not ok -> 0) as one word per plane
    and row: a sum of distinct bits is their OR (bit 31 is -2^31, still in int32 range)."""
    v = tl.where(ok & (s == s), s, 0.0).to(tl.int32)
    for b in tl.static_range(BITS):
        tl.store(dst + b * word_stride, tl.sum(((v >> b) & 1) << lane[None, :], axis=1),
                 mask=row_ok)


@triton.jit(do_not_specialize=["T"])
def _snn_layer_kernel(x_ptr, w_ptr, scale_ptr, bias_ptr, decay_ptr, out_ptr,
                      T, NB, M, COUT, H, W, HOUT, WOUT, WORDS, KW, KPOS,
                      SH, SW, PH, PW, DH, DW, thr,
                      PLANES: tl.constexpr, BITS: tl.constexpr, LEVELS: tl.constexpr,
                      RESET: tl.constexpr, FORM: tl.constexpr, HAS_SCALE: tl.constexpr,
                      HAS_BIAS: tl.constexpr, DECAY_PER_C: tl.constexpr,
                      BLOCK_M: tl.constexpr):
    m = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)  # pixel of (nb, r)
    word = tl.program_id(1)
    lane = tl.arange(0, 32)
    o = word * 32 + lane
    m_ok = m < M
    o_ok = o < COUT
    nb, r, hw_out, ih0, iw0 = _output_pixel(m, HOUT, WOUT, SH, SW, PH, PW)
    w_row = w_ptr + o.to(tl.int64) * (KPOS * WORDS)
    if DECAY_PER_C:
        lam = tl.load(decay_ptr + o, mask=o_ok, other=1.0)[None, :]
    else:
        lam = tl.load(decay_ptr)
    c = 1.0 - lam
    scale = tl.load(scale_ptr + o, mask=o_ok, other=0.0)[None, :]
    bias = tl.load(bias_ptr + o, mask=o_ok, other=0.0)[None, :]
    words_out = (COUT + 31) // 32
    u = tl.zeros((BLOCK_M, 32), dtype=tl.float32)
    for t in range(T):
        img = t * NB + nb
        acc = tl.zeros((BLOCK_M, 32), dtype=tl.int32)
        corr = tl.zeros((BLOCK_M,), dtype=tl.int32)
        for kpos in range(KPOS):
            kh = kpos // KW
            ih = ih0 + kh * DH
            iw = iw0 + (kpos - kh * KW) * DW
            inb = m_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            x_row = x_ptr + ((img * H + ih) * W + iw) * (PLANES * WORDS)
            for wd in range(WORDS):
                wv = tl.load(w_row + kpos * WORDS + wd, mask=o_ok, other=0)
                for b in tl.static_range(PLANES):
                    xv = tl.load(x_row + b * WORDS + wd, mask=inb, other=0)
                    acc += _popcount(xv[:, None] & wv[None, :]) << b
                    corr += _popcount(xv) << b
        cur = (2 * acc - corr[:, None]).to(tl.float32)
        if HAS_SCALE:
            cur = cur * scale
        if HAS_BIAS:
            cur = cur + bias
        s, u = _lif_step(cur, u, lam, c, thr, LEVELS, RESET, FORM)
        dst = out_ptr + ((t * NB + nb) * hw_out + r) * (BITS * words_out) + word
        _store_bits(dst, s, m_ok[:, None] & o_ok[None, :], m_ok, words_out, lane, BITS)


def binary_snn_layer_forward(x, wpacked, scale, bias, decay, stride, padding, dilation, kh,
                             kw, cin, threshold, levels, reset, form):
    """int32 ``[T, N, Hout, Wout, bits_out, ceil(Cout/32)]`` packed spikes (module doc)."""
    _check_words(x, wpacked, cin, kh, kw, 6)
    t, nb, h, w, planes, words = x.shape
    cout = wpacked.shape[0]
    hout = _out_size(h, kh, stride[0], padding[0], dilation[0])
    wout = _out_size(w, kw, stride[1], padding[1], dilation[1])
    bits = int(levels).bit_length()
    out = torch.zeros((t, nb, hout, wout, bits, (cout + 31) // 32), dtype=torch.int32,
                      device=x.device)
    if out.numel() == 0:
        return out
    m = nb * hout * wout
    grid = (triton.cdiv(m, BLOCK_M), triton.cdiv(cout, 32))
    _snn_layer_kernel[grid](
        x, wpacked, scale if scale is not None else decay, bias if bias is not None else decay,
        decay, out, t, nb, m, cout, h, w, hout, wout, words, kw, kh * kw, stride[0], stride[1],
        padding[0], padding[1], dilation[0], dilation[1], threshold, PLANES=planes, BITS=bits,
        LEVELS=levels, RESET=reset, FORM=form, HAS_SCALE=scale is not None,
        HAS_BIAS=bias is not None, DECAY_PER_C=decay.numel() > 1, BLOCK_M=BLOCK_M,
        num_warps=NUM_WARPS, enable_fp_fusion=False)
    return out


@triton.jit(do_not_specialize=["T"])
def _mt_lif_packed_kernel(x_ptr, decay_ptr, out_ptr, T, N, C, R, X_STEP, OUT_STEP, thr,
                          BITS: tl.constexpr, LEVELS: tl.constexpr, RESET: tl.constexpr,
                          FORM: tl.constexpr, DECAY_PER_C: tl.constexpr,
                          BLOCK: tl.constexpr):
    p = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # (n, r) positions
    word = tl.program_id(1)
    lane = tl.arange(0, 32)
    ch = word * 32 + lane
    p_ok = p < N * R
    c_ok = ch < C
    ok = p_ok[:, None] & c_ok[None, :]
    n = p // R
    r = p - n * R
    if DECAY_PER_C:
        lam = tl.load(decay_ptr + ch, mask=c_ok, other=1.0)[None, :]
    else:
        lam = tl.load(decay_ptr)
    c = 1.0 - lam
    words = (C + 31) // 32
    u = tl.zeros((BLOCK, 32), dtype=tl.float32)
    src = x_ptr + (n * C * R + r)[:, None] + ch.to(tl.int64)[None, :] * R
    dst = out_ptr + p * (BITS * words) + word
    for _ in range(T):  # advancing 64-bit pointers: safe for 2^31 elements and more
        xt = tl.load(src, mask=ok, other=0.0)
        s, u = _lif_step(xt, u, lam, c, thr, LEVELS, RESET, FORM)
        _store_bits(dst, s, ok, p_ok, words, lane, BITS)
        src += X_STEP
        dst += OUT_STEP


def mt_lif_packed_forward(x, decay, threshold, levels, reset, form):
    """int32 ``[T, N, R, bits, ceil(C/32)]`` packed spikes of x ``[T, N, C, R]``."""
    if x.dtype != torch.float32 or x.dim() != 4 or not x.is_contiguous():
        raise TypeError("x must be a contiguous float32 [T, N, C, R] tensor")
    t, n, c, r = x.shape
    bits = int(levels).bit_length()
    out = torch.zeros((t, n, r, bits, (c + 31) // 32), dtype=torch.int32, device=x.device)
    if out.numel() == 0:
        return out
    grid = (triton.cdiv(n * r, BLOCK_LIF), triton.cdiv(c, 32))
    _mt_lif_packed_kernel[grid](x, decay, out, t, n, c, r, n * c * r, out[0].numel(),
                                threshold, BITS=bits,
                                LEVELS=levels, RESET=reset, FORM=form,
                                DECAY_PER_C=decay.numel() > 1, BLOCK=BLOCK_LIF,
                                num_warps=NUM_WARPS, enable_fp_fusion=False)
    return out
