"""The CUDA binary_conv2d kernels, run without a GPU: their bodies (csrc/cuda/*.cuh) are
compiled with g++ against the host execution model of tests/cuda_emu/host_env.h (one host
thread per CUDA thread, std::barrier for __syncthreads, the PTX fragment layout for the
1-bit mma) and checked against F.conv2d on the binarised weights.

The main build runs under AddressSanitizer + UndefinedBehaviorSanitizer with buffers of
exact size, so out-of-bounds reads or writes, bad shifts and overflows fail the test; a
ThreadSanitizer build checks that every shared-memory hand-off is behind a barrier.
What this cannot check: the real hardware (the PTX string, timing, bank conflicts); run
the GPU tests (``make gpu-check``) on a GPU for that.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
from binary_conv_cases import (
    SIGN,
    SPIKE,
    bits_for,
    expected,
    pack_weight,
    random_input,
    random_weight,
)
from helpers import generator
from hypothesis import assume, given
from hypothesis import strategies as st

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "tests", "cuda_emu", "binary_conv_emu.cpp")
CXX = shutil.which("g++")

pytestmark = pytest.mark.skipif(CXX is None, reason="g++ not found")


def _build(out_dir, sanitize: str) -> str:
    exe = os.path.join(out_dir, f"binary_conv_emu_{sanitize.replace(',', '_')}")
    cmd = [CXX, "-std=c++20", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-pthread",
           f"-fsanitize={sanitize}", "-fno-sanitize-recover=all",
           "-I" + os.path.join(ROOT, "csrc"), SOURCE, "-o", exe]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    return _build(str(tmp_path_factory.mktemp("bconv_emu")), "address,undefined")


@pytest.fixture(scope="module")
def emu_tsan(tmp_path_factory):
    return _build(str(tmp_path_factory.mktemp("bconv_emu_tsan")), "thread")


def run_emu(exe, tmp_path, x, wpacked, alpha, bias, stride, padding, dilation, kernel,
            activation, bits, out_shape, path):
    header = [*x.shape, wpacked.shape[0], *kernel, *stride, *padding, *dilation,
              *out_shape[2:], bits, activation, alpha is not None, bias is not None]
    src, dst = tmp_path / "in.bin", tmp_path / "out.bin"
    with open(src, "wb") as f:
        f.write(np.asarray(header, dtype=np.int64).tobytes())
        for t in (x, wpacked, alpha, bias):
            if t is not None:
                f.write(t.contiguous().numpy().tobytes())
    proc = subprocess.run([exe, str(src), str(dst), path], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return torch.from_numpy(np.fromfile(dst, dtype=np.float32)).reshape(out_shape)


def check_case(exe, tmp_path, seed, n, cin, cout, h, w, k, stride, padding, dilation,
               activation, levels, with_alpha, with_bias, path):
    g = generator(seed)
    x = random_input((n, cin, h, w), activation, levels, g)
    weight = random_weight((cout, cin, *k), g)
    alpha = torch.rand(cout, generator=g) + 0.1 if with_alpha else None
    bias = torch.randn(cout, generator=g) if with_bias else None
    want = expected(x, weight, alpha, bias, stride, padding, dilation)
    bits = bits_for(levels) if activation == SPIKE else 1
    got = run_emu(exe, tmp_path, x, pack_weight(weight), alpha, bias, stride, padding,
                  dilation, k, activation, bits, tuple(want.shape), path)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def out_size(size, k, stride, pad, dil):
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 2), cin=st.integers(1, 70),
       cout=st.integers(1, 70), h=st.integers(1, 7), w=st.integers(1, 7),
       kh=st.integers(1, 3), kw=st.integers(1, 3), stride=st.tuples(*[st.integers(1, 2)] * 2),
       padding=st.tuples(*[st.integers(0, 2)] * 2),
       dilation=st.tuples(*[st.integers(1, 2)] * 2),
       activation=st.sampled_from([SPIKE, SIGN]),
       levels=st.sampled_from([1, 2, 3, 5, 7, 31]),  # 31: 5 planes, two plane groups
       with_alpha=st.booleans(), with_bias=st.booleans(),
       path=st.sampled_from(["popc", "mma"]))
def test_kernels_match_conv2d(emu, tmp_path_factory, seed, n, cin, cout, h, w, kh, kw, stride,
                              padding, dilation, activation, levels, with_alpha, with_bias,
                              path):
    assume(out_size(h, kh, stride[0], padding[0], dilation[0]) >= 1)
    assume(out_size(w, kw, stride[1], padding[1], dilation[1]) >= 1)
    check_case(emu, tmp_path_factory.mktemp("case"), seed, n, cin, cout, h, w, (kh, kw), stride,
               padding, dilation, activation, levels, with_alpha, with_bias, path)


@pytest.mark.parametrize("path", ["popc", "mma"])
@pytest.mark.parametrize("activation", [SPIKE, SIGN])
def test_several_tiles_and_chunks(emu, tmp_path, path, activation):
    """Two M tiles, two channel tiles, three K chunks, partial last tiles everywhere."""
    check_case(emu, tmp_path, 7, 2, 100, 70, 6, 7, (3, 3), (1, 1), (1, 1), (1, 1),
               activation, 3, True, True, path)


@pytest.mark.parametrize("path", ["popc", "mma"])
@pytest.mark.parametrize("activation", [SPIKE, SIGN])
def test_shared_memory_hand_offs_are_synchronised(emu_tsan, tmp_path, path, activation):
    check_case(emu_tsan, tmp_path, 3, 1, 40, 9, 4, 5, (3, 2), (2, 1), (1, 2), (1, 1),
               activation, 7, True, False, path)
