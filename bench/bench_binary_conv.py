"""binary_conv2d: the packed popcount kernels against F.conv2d in float32 and bfloat16 on the
same binarised weights (``alpha * sign(W)``, alpha per output channel), forward, spikes at
20 % density (levels 1), three shapes plus a batch scan of the first.

Every configuration first checks the kernel's integer dot exactly against ``F.conv2d`` on
``sign(W)`` and its scaled output against ``dot * alpha``; the peers are checked against the
same result (bfloat16 loosely) before anything is timed. The ``cpu`` / ``cuda`` rows take
the weight already packed (``BinaryConv2d.pack()`` / ``PackedBinaryWeight``), as inference
does; the ``<backend>+pack`` rows pass the float weight, binarised and packed in every call
(the functional form, and a training step): the headline. Every row takes x as float32
spikes, packed to bits inside the kernel. What the "+pack" rows add is alpha (``mean|W|``,
one torch op) and the weight's sign bits, packed by the C++ op
``fastsnn::binary_conv2d_pack_weight`` (AVX2 gather + compare + movemask per output
channel); it replaced ``reference.binary_conv.pack_weight`` (a dozen small torch ops) on
2026-11-30: one thread, CPU time, 128/256/64 channels: 0.59 / 2.1 / 0.25 ms in Python,
0.09 / 0.34 / 0.03 ms in C++. The row extras give the weight bytes packed, float32 and
bfloat16.

Floor (this 2-core AMD EPYC Zen 4 VM, AVX-512 VPOPCNTDQ): the kernel does
N*Hout*Wout*Cout*bits*ceil(KK*ceil(Cin/32)/2) 64-bit AND+popcount+add, 8 per zmm instruction
triple; Zen 4 retires one VPOPCNTQ zmm per cycle, so ~1 cycle per triple (measured: the
micro-kernel runs at that rate, and other blockings than 8 channels x 16 pixels change
nothing). It reads x once (float32, 4 B per element) and writes out once (4 B per element);
one core moves ~5-10 GB/s here.

=================================  ==========  ==========  ===============  =============
shape                              popc words  zmm steps   compute, 1 core  x + out bytes
=================================  ==========  ==========  ===============  =============
[32,128,16,16] 128->128 3x3 pad 1  18.9 M      2.36 M      ~0.65 ms         8.4 MB
[32,256,8,8]   256->256 3x3 pad 1  18.9 M      2.36 M      ~0.65 ms         4.2 MB
[8,64,32,32]   64->64   3x3 pad 1   4.7 M      0.59 M      ~0.16 ms         4.2 MB
=================================  ==========  ==========  ===============  =============

Measured on one core (torch-free driver, min of 200): 1.5 / 1.2 / 0.53 ms, of which the
popcount micro-kernel is ~45 %, and reading x / writing out (memory bound) most of the rest:
the float32 input and output, not the popcounts, bound the last shape (a network feeding
uint8 or bit-packed spikes would drop the 4 B per input element). Float32 ``F.conv2d`` does
1.2 / 1.2 / 0.3 GMAC for these shapes.

On an AVX2-only CPU (the same VM on 2026-11-30: an AMD EPYC without AVX-512) the popcount
is the nibble table (``tile_avx2``): two ``vpshufb`` per 4 words and channel, so at two
shuffles per cycle ~1 cycle per 4 words: ~1.6 ms per core for the first two shapes, 0.4 ms
for the third. Profile there (perf, one thread, CPU time under load): the kernel took 4.5 /
4.0 / 1.35 ms, of which the popcount micro-kernel ~80 / 80 / 67 %, the float32 epilogue
(``scale_store``) ~8 / 6 / 12 %, packing the input ~8 / 5 / 14 %, the gather ~3 / 2 / 8 %;
with the weight packed in the call add alpha and the sign bits (above) and ~0.1 ms of
Python. F.conv2d float32 took 38 / 29 / 7.6 ms there (one thread) and bfloat16 about 1 s
(no native bfloat16 convolution on that CPU), so the float32 target is bound by the
popcount rate of AVX2: ~8x, 6x, 5x with the weight packed in the call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from harness import fast_backends

import fastsnn
from fastsnn.ops.binary_conv import PackedBinaryWeight
from fastsnn.reference.binary_conv import sign

DENSITY = 0.2


def _shapes(quick):
    """(x shape, Cout, kernel, padding): the batch scan of the plot panel (128 -> 128 at
    16x16; its largest batch is the first headline shape), then the other two shapes."""
    if quick:
        return [((1, 32, 8, 8), 32, 3, 1), ((4, 32, 8, 8), 32, 3, 1), ((2, 64, 4, 4), 64, 3, 1)]
    return [((1, 128, 16, 16), 128, 3, 1), ((8, 128, 16, 16), 128, 3, 1),
            ((32, 128, 16, 16), 128, 3, 1), ((32, 256, 8, 8), 256, 3, 1),
            ((8, 64, 32, 32), 64, 3, 1)]


def _panel(quick):
    (_, c, h, w), cout, k, _ = _shapes(quick)[0]
    return f"binary_conv2d {c}->{cout} {k}x{k} {h}x{w} fwd"


def run(suite) -> None:
    device = suite.device
    fast = fast_backends("binary_conv2d", device)
    panel = _panel(suite.quick)
    ours = f"{fast[0]}+pack" if fast else "reference"
    suite.panel(panel, "batch", ours, ["F.conv2d-fp32", "F.conv2d-bf16"],
                targets={"F.conv2d-fp32": 8.0, "F.conv2d-bf16": 2.0})
    g = torch.Generator().manual_seed(0)
    first = _shapes(suite.quick)[0]
    for shape, cout, k, pad in _shapes(suite.quick):
        x = (torch.rand(shape, generator=g) < DENSITY).float().to(device)
        w = torch.randn(cout, shape[1], k, k, generator=g).to(device)
        in_panel = shape[1:] == first[0][1:] and cout == first[1]
        _bench_case(suite, x, w, pad, fast, panel if in_panel else None)


def _bench_case(suite, x, w, pad, fast, panel):
    n, cin, h, wd = x.shape
    cout, _, kh, kw = w.shape
    case = f"{n}x{cin}x{h}x{wd} {cin}->{cout} {kh}x{kw} p{pad}"
    packed = PackedBinaryWeight.from_float(w, "channel")
    alpha = packed.alpha
    wb = alpha.reshape(-1, 1, 1, 1) * sign(w)
    with torch.no_grad():
        dot = F.conv2d(x, sign(w), padding=pad)         # integers: exact in float32
        expected = dot * alpha.reshape(-1, 1, 1)        # the kernels' epilogue rounding
    hout, wout = dot.shape[-2:]
    macs = n * hout * wout * cout * cin * kh * kw
    extra = dict(weight_bytes_packed=packed.nbytes, weight_bytes_fp32=w.nbytes,
                 weight_bytes_bf16=w.nbytes // 2, density=DENSITY)
    impls = {}
    for b in fast:  # the functional call on the float weight: binarise + pack every call
        impls[f"{b}+pack"] = lambda b=b: fastsnn.binary_conv2d(x, w, "channel", padding=pad,
                                                               backend=b)
    for b in fast:  # the weight packed once ahead (BinaryConv2d.pack(), inference)
        impls[b] = lambda b=b: fastsnn.binary_conv2d(x, packed, padding=pad, backend=b)
    xb, wbb = x.bfloat16(), wb.bfloat16()
    impls["F.conv2d-fp32"] = lambda: F.conv2d(x, wb, padding=pad)
    impls["F.conv2d-bf16"] = lambda: F.conv2d(xb, wbb, padding=pad)
    no_alpha = PackedBinaryWeight(packed.words, None, cin, (kh, kw))
    copy_bps = suite.clone_bps(x)  # the floor's rate at x's size (cache effects included)
    scale = float(expected.abs().max())
    for name, fn in impls.items():
        with torch.no_grad():
            out = fn()
            if name.endswith("+pack"):
                suite.verify(f"binary_conv2d {name} {case}", out, expected, exact=True)
            elif name in fast:
                got_dot = fastsnn.binary_conv2d(x, no_alpha, padding=pad, backend=name)
                suite.verify(f"binary_conv2d {name} {case} dot", got_dot, dot, exact=True)
                suite.verify(f"binary_conv2d {name} {case}", out, expected, exact=True)
            elif name.endswith("bf16"):
                suite.verify(f"binary_conv2d {name} {case}", out, expected, rtol=2e-2,
                             atol=2e-2 * scale, peer=name)
            else:
                suite.verify(f"binary_conv2d {name} {case}", out, expected, rtol=1e-3,
                             atol=1e-3 * scale, peer=name)
        # floor: x read and out written once in float32, the weight read once (packed for
        # ours; the "+pack" rows also read the float weight)
        bytes_moved = x.numel() * 4 + expected.numel() * 4 + packed.nbytes
        if name.endswith("+pack"):
            bytes_moved += w.nbytes
        suite.time(_no_grad(fn), op="binary_conv2d", case=case, dtype="float32", impl=name,
                   direction="fwd", bytes_moved=bytes_moved, work=macs, work_unit="MAC",
                   extra=dict(extra, weight="float, packed in the call" if "+pack" in name
                              else "packed once ahead" if name in fast else "float"),
                   panel=panel, scale=n, copy_bps=copy_bps)
    suite.end_case()
    suite.note(f"binary_conv2d {case}: weights {packed.nbytes} B packed (+alpha) vs "
               f"{w.nbytes} B float32 / {w.nbytes // 2} B bfloat16 "
               f"({w.nbytes / packed.nbytes:.1f}x smaller than float32)")


def _no_grad(fn):
    def call():
        with torch.no_grad():
            return fn()
    return call
