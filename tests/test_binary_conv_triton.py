"""The Triton binary_conv2d kernel (kernels/binary_conv.py) called directly, against
F.conv2d on the binarised weights: the integer dot exactly, then alpha * dot + bias in
float32. Runs under the Triton interpreter on CPU (tiny shapes) or on CUDA with
FASTSNN_TEST_DEVICE=cuda."""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():  # before triton is imported (as tests/conftest.py does)
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

triton = pytest.importorskip("triton")

import triton.language as tl  # noqa: E402
from binary_conv_cases import (  # noqa: E402
    SIGN,
    SPIKE,
    bits_for,
    expected,
    float_conv,
    pack_weight,
    random_input,
    random_weight,
)
from helpers import DEVICE, generator  # noqa: E402
from hypothesis import assume, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fastsnn.kernels import binary_conv as kbc  # noqa: E402


def out_size(size, k, stride, pad, dil):
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


def check_case(seed, n, cin, cout, h, w, k, stride, padding, dilation, activation, levels,
               with_alpha, with_bias):
    g = generator(seed)
    x = random_input((n, cin, h, w), activation, levels, g)
    weight = random_weight((cout, cin, *k), g)
    alpha = torch.rand(cout, generator=g) + 0.1 if with_alpha else None
    bias = torch.randn(cout, generator=g) if with_bias else None
    bits = bits_for(levels) if activation == SPIKE else 1
    dev = [t.to(DEVICE) if t is not None else None for t in (x, pack_weight(weight), alpha, bias)]
    got = kbc.binary_conv2d_forward(*dev, list(stride), list(padding), list(dilation), *k,
                                    activation, bits).cpu()
    torch.testing.assert_close(got, expected(x, weight, alpha, bias, stride, padding, dilation),
                               rtol=0, atol=0)
    # and the user-facing statement, up to float rounding of alpha * sign(W) sums
    torch.testing.assert_close(got, float_conv(x, weight, alpha, bias, stride, padding, dilation),
                               rtol=1e-5, atol=1e-4)


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 2), cin=st.integers(1, 40),
       cout=st.integers(1, 36), h=st.integers(1, 6), w=st.integers(1, 6),
       kh=st.integers(1, 3), kw=st.integers(1, 3), stride=st.tuples(*[st.integers(1, 2)] * 2),
       padding=st.tuples(*[st.integers(0, 2)] * 2),
       dilation=st.tuples(*[st.integers(1, 2)] * 2),
       activation=st.sampled_from([SPIKE, SIGN]), levels=st.integers(1, 7),
       with_alpha=st.booleans(), with_bias=st.booleans())
def test_matches_conv2d(seed, n, cin, cout, h, w, kh, kw, stride, padding, dilation,
                        activation, levels, with_alpha, with_bias):
    assume(out_size(h, kh, stride[0], padding[0], dilation[0]) >= 1)
    assume(out_size(w, kw, stride[1], padding[1], dilation[1]) >= 1)
    check_case(seed, n, cin, cout, h, w, (kh, kw), stride, padding, dilation, activation,
               levels, with_alpha, with_bias)


@pytest.mark.parametrize("activation", [SPIKE, SIGN])
def test_several_words_and_blocks(activation):
    """Three words per tap (bit 31 used), two pixel and two channel blocks."""
    check_case(11, 2, 70, 40, 5, 5, (3, 3), (1, 1), (1, 1), (1, 1), activation, 7, True, True)


@triton.jit
def _popcount_kernel(src, dst, n, BLOCK: tl.constexpr):
    i = tl.arange(0, BLOCK)
    tl.store(dst + i, kbc._popcount(tl.load(src + i, mask=i < n)), mask=i < n)


def test_popcount_edge_words():
    g = generator(5)
    words = torch.cat([torch.tensor([0, -1, -(2**31), 2**31 - 1, 1, 0x55555555, -0x55555556],
                                    dtype=torch.int32),
                       torch.randint(-(2**31), 2**31 - 1, (57,), generator=g, dtype=torch.int32)])
    out = torch.empty_like(words, device=DEVICE)
    _popcount_kernel[(1,)](words.to(DEVICE), out, words.numel(), BLOCK=64)
    want = [bin(v & 0xFFFFFFFF).count("1") for v in words.tolist()]
    assert out.cpu().tolist() == want


def test_bad_input_raises():
    x = torch.zeros(1, 33, 4, 4, device=DEVICE)
    wp = torch.zeros(3, 9, 2, dtype=torch.int32, device=DEVICE)
    args = ([1, 1], [1, 1], [1, 1], 3, 3)
    with pytest.raises(ValueError, match="wpacked"):
        kbc.binary_conv2d_forward(x, wp[:, :, :1].contiguous(), None, None, *args, SPIKE, 1)
    with pytest.raises(TypeError, match="x must"):
        kbc.binary_conv2d_forward(x.double(), wp, None, None, *args, SPIKE, 1)
    with pytest.raises(TypeError, match="wpacked"):
        kbc.binary_conv2d_forward(x, wp.long(), None, None, *args, SPIKE, 1)
    with pytest.raises(ValueError, match="alpha"):
        kbc.binary_conv2d_forward(x, wp, torch.ones(2, device=DEVICE), None, *args, SPIKE, 1)
    with pytest.raises(ValueError, match="activation"):
        kbc.binary_conv2d_forward(x, wp, None, None, *args, 2, 1)
    with pytest.raises(ValueError, match="bits"):
        kbc.binary_conv2d_forward(x, wp, None, None, *args, SPIKE, 0)
    with pytest.raises(ValueError, match="empty"):
        kbc.binary_conv2d_forward(x, torch.zeros(3, 25, 2, dtype=torch.int32, device=DEVICE),
                                  None, None, [1, 1], [0, 0], [1, 1], 5, 5, SPIKE, 1)
