"""The packed-spike CUDA kernels' per-thread bodies, run on the host against the reference.

``csrc/cuda/packed_lif.cuh`` holds what one CUDA thread of ``csrc/cuda/packed_spikes.cu``
does as ``__host__ __device__`` code; ``tests/cuda_emu/packed_emu.cpp`` runs it for every
thread of the grid with a host compiler. This checks the kernels' index math and arithmetic
bit for bit on machines without a GPU (words start as garbage, so a word no thread writes
shows). Not covered here (needs a GPU): the launch itself.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import fastsnn
from fastsnn._enums import Form, Reset
from fastsnn.ops.binary_conv import PackedBinaryWeight
from fastsnn.packed_spikes import PackedSpikes

ROOT = Path(__file__).resolve().parents[1]
CXX = shutil.which("g++") or shutil.which("c++")
GARBAGE = np.uint32(0xA5A5A5A5)


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    if CXX is None:
        pytest.skip("no host C++ compiler")
    lib_path = tmp_path_factory.mktemp("emu") / "packed_emu.so"
    cmd = [CXX, "-O1", "-std=c++20", "-ffp-contract=off", "-fPIC", "-shared", "-pthread",
           f"-I{ROOT / 'csrc'}", str(ROOT / "tests/cuda_emu/packed_emu.cpp"), "-o",
           str(lib_path)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr}"
    lib = ctypes.CDLL(str(lib_path))
    ptr = ctypes.c_void_p
    lib.emu_mt_lif_packed.argtypes = [ptr, ctypes.c_double, ptr, ptr, ptr]
    lib.emu_conv_packed.argtypes = [ptr] * 6 + [ctypes.c_int]
    lib.emu_snn_layer.argtypes = [ptr, ptr, ctypes.c_double] + [ptr] * 6 + [ctypes.c_int]
    return lib


def _ptr(a: np.ndarray | None):
    return None if a is None else ctypes.c_void_p(a.ctypes.data)


def _ints(*values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _threshold(v: float) -> float:
    return float(np.float32(v))


# ---------------------------------------------------------------------- mt_lif packed

RESETS = ("hard", "soft", "none", "subtract_next")


def _emu_mt_lif_packed(emu, x, decay, threshold, levels, reset, form):
    t, n, c = x.shape[:3]
    r = int(np.prod(x.shape[3:], dtype=np.int64))
    x4 = np.ascontiguousarray(x.float().reshape(t, n, c, r).numpy())
    d = np.ascontiguousarray(decay.float().numpy())
    out = np.full((t, n, r, levels.bit_length(), -(-c // 32)), GARBAGE, dtype=np.uint32)
    ip = _ints(t, n, c, r, d.size, levels, int(Reset[reset.upper()]), int(Form[form.upper()]))
    assert emu.emu_mt_lif_packed(_ptr(ip), threshold, _ptr(x4), _ptr(d), _ptr(out)) == 0
    return torch.from_numpy(out.view(np.int32))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("form", ["stbp", "plif"])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("levels", [1, 3, 7])
def test_mt_lif_packed_thread_matches_reference(emu, levels, reset, form, dtype):
    g = torch.Generator().manual_seed(levels * 100 + RESETS.index(reset) * 10 + len(form))
    for shape in [(4, 2, 40, 3, 5), (3, 5, 70), (2, 1, 33, 7), (0, 2, 5, 2), (5, 1, 1, 1)]:
        for per_channel in (False, True):
            x = (torch.randn(shape, generator=g) * 1.5 * levels).to(dtype)
            decay = torch.rand(shape[2] if per_channel else 1, generator=g)
            threshold = _threshold(float(torch.empty(()).uniform_(0.3, 1.2, generator=g)))
            want = fastsnn.mt_lif(x, decay if per_channel else decay.reshape(()),
                                  threshold=threshold, levels=levels, reset=reset, form=form,
                                  backend="reference", packed=True)
            got = _emu_mt_lif_packed(emu, x, decay, threshold, levels, reset, form)
            assert torch.equal(got.reshape(want.words.shape), want.words), (shape, per_channel)


def test_mt_lif_packed_thread_non_finite_input_spikes_like_reference(emu):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(4, 2, 37, 3, generator=g) * 2
    x[1, 0, 3, 1], x[2, 1, 36, 0], x[0, 1, 5, 2] = float("nan"), float("inf"), -float("inf")
    decay = torch.rand(37, generator=g)
    for reset in RESETS:
        want = fastsnn.mt_lif(x, decay, levels=3, reset=reset, backend="reference",
                              packed=True)
        got = _emu_mt_lif_packed(emu, x, decay, 1.0, 3, reset, "stbp")
        assert torch.equal(got.reshape(want.words.shape), want.words), reset


# ---------------------------------------------------------------------- conv on packed input

CONVS = [  # (T, N, Cin, H, W, Cout, k, stride, padding, dilation)
    (2, 1, 5, 7, 6, 9, 3, 1, 1, 1),
    (1, 2, 40, 9, 9, 33, 3, 2, 0, 1),
    (2, 1, 70, 6, 7, 8, 3, (1, 2), (2, 1), 2),
    (3, 1, 32, 5, 5, 70, 1, 1, 0, 1),
]


def _pair(v):
    return (v, v) if isinstance(v, int) else v


def _conv_header(words: torch.Tensor, cin, cout, k, stride, padding, dilation):
    *_, h, w, bits, _ = words.shape
    images = int(np.prod(words.shape[:-4]))
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    hout = (h + 2 * ph - dh * (k - 1) - 1) // sh + 1
    wout = (w + 2 * pw - dw * (k - 1) - 1) // sw + 1
    return _ints(images, cin, h, w, cout, k, k, sh, sw, ph, pw, dh, dw, hout, wout,
                 bits), hout, wout


def _np(t: torch.Tensor | None, dtype=np.float32):
    return None if t is None else np.ascontiguousarray(t.numpy()).view(dtype)


def _conv_case(case, levels, seed):
    t, n, cin, h, w, cout, k, stride, padding, dilation = case
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, levels + 1, (t, n, cin, h, w), generator=g).float()
    x[x < levels / 2] = 0  # sparser spikes: the dot takes both signs
    weight = PackedBinaryWeight.from_float(torch.randn(cout, cin, k, k, generator=g), None)
    scale = torch.rand(cout, generator=g) * 0.2 + 0.01
    bias = torch.randn(cout, generator=g) * 0.5 + 0.5
    return PackedSpikes.from_float(x, levels), weight, scale, bias, g


@pytest.mark.parametrize("mma", [0, 1], ids=["popc", "mma"])
@pytest.mark.parametrize("levels", [1, 3, 7])
@pytest.mark.parametrize("case", CONVS)
def test_conv_packed_matches_reference(emu, case, levels, mma):
    px, weight, alpha, bias, _ = _conv_case(case, levels, 17 * levels + case[2])
    t, n, cin, _, _, cout, k, stride, padding, dilation = case
    conv = dict(stride=stride, padding=padding, dilation=dilation)
    for a, b in ((alpha, bias), (None, None), (alpha, None)):
        want = fastsnn.binary_conv2d(px, weight, a, b, backend="reference", **conv)
        header, hout, wout = _conv_header(px.words, cin, cout, k, stride, padding, dilation)
        out = np.full((t, n, cout, hout, wout), np.nan, dtype=np.float32)
        assert emu.emu_conv_packed(_ptr(header), _ptr(_np(px.words, np.uint32)),
                                   _ptr(_np(weight.words, np.uint32)), _ptr(_np(a)),
                                   _ptr(_np(b)), _ptr(out), mma) == 0
        assert torch.equal(torch.from_numpy(out), want), (a is None, b is None)


# ---------------------------------------------------------------------- fused layer

LAYER_LIFS = [dict(levels=1), dict(levels=3, reset="soft", form="plif"),
              dict(levels=7, reset="none", threshold=0.7),
              dict(levels=2, reset="subtract_next", threshold=0.3)]


@pytest.mark.parametrize("mma", [0, 1], ids=["popc", "mma"])
@pytest.mark.parametrize("options", LAYER_LIFS)
@pytest.mark.parametrize("case", CONVS)
def test_snn_layer_matches_reference(emu, case, options, mma):
    in_levels = 3 if options["levels"] > 1 else 1
    px, weight, scale, bias, g = _conv_case(case, in_levels, 31 * options["levels"] + case[2])
    t, n, cin, _, _, cout, k, stride, padding, dilation = case
    for per_channel in (True, False):
        decay = torch.rand(cout if per_channel else 1, generator=g)
        threshold = _threshold(options.get("threshold", 1.0))
        levels = options["levels"]
        args = dict(stride=stride, padding=padding, dilation=dilation,
                    decay=decay if per_channel else float(decay), **options)
        want = fastsnn.binary_snn_layer(px, weight, scale, bias, backend="reference", **args)
        header, _, _ = _conv_header(px.words, cin, cout, k, stride, padding, dilation)
        lp = _ints(t, decay.numel(), levels, int(Reset[options.get("reset", "hard").upper()]),
                   int(Form[options.get("form", "stbp").upper()]))
        out = np.full(tuple(want.words.shape), GARBAGE, dtype=np.uint32)
        d = _np(decay.float()) if per_channel else np.array([np.float32(float(decay))])
        assert emu.emu_snn_layer(_ptr(header), _ptr(lp), threshold,
                                 _ptr(_np(px.words, np.uint32)),
                                 _ptr(_np(weight.words, np.uint32)), _ptr(_np(scale)),
                                 _ptr(_np(bias)), _ptr(d), _ptr(out), mma) == 0
        got = torch.from_numpy(out.view(np.int32))
        assert torch.equal(got, want.words), per_channel
        spikes = want.unpack()
        assert spikes.sum() > 0 and (spikes == 0).any()  # neither silent nor saturated
