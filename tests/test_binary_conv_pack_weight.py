"""binary_conv2d's weight packer (``fastsnn::binary_conv2d_pack_weight``, run for a float
weight in every call and by ``PackedBinaryWeight.from_float``) against
``fastsnn.reference.binary_conv.pack_weight``, bit for bit: each CPU path forced, every
float dtype, signed zeros, NaN, infinities and channel counts around word boundaries."""

import pytest
import torch
from helpers import fast_backends, generator
from hypothesis import given, settings
from hypothesis import strategies as st

from fastsnn.ops import binary_conv as ops
from fastsnn.reference import binary_conv as ref

KERNEL = "binary_conv2d"


def _cpu_isas():
    if "cpu" not in fast_backends(KERNEL, torch.device("cpu")):
        return []
    return list(torch.ops.fastsnn.binary_conv2d_cpu_isas())


def _weight(shape, dtype, seed):
    g = generator(seed)
    w = torch.randn(shape, generator=g, dtype=torch.float64)
    pick = torch.rand(shape, generator=g)
    w = torch.where(pick < 0.05, torch.zeros(()), w)
    w = torch.where((pick >= 0.05) & (pick < 0.1), torch.tensor(-0.0, dtype=w.dtype), w)
    w = torch.where((pick >= 0.1) & (pick < 0.12), torch.tensor(float("nan"), dtype=w.dtype), w)
    w = torch.where((pick >= 0.12) & (pick < 0.14), torch.tensor(float("-inf"), dtype=w.dtype), w)
    if dtype == torch.float64:  # below float32's range: must not round to -0.0 and flip
        w = torch.where((pick >= 0.14) & (pick < 0.2), torch.tensor(-1e-300, dtype=w.dtype), w)
    return w.to(dtype)


@pytest.mark.parametrize("isa", _cpu_isas())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@settings(max_examples=10, deadline=None)
@given(cin=st.one_of(st.integers(1, 70), st.sampled_from([31, 32, 33, 64, 65, 255, 256, 300])),
       cout=st.integers(1, 40), kh=st.integers(1, 5), kw=st.integers(1, 5),
       seed=st.integers(0, 2**31 - 1))
def test_matches_the_reference_packer(isa, dtype, cin, cout, kh, kw, seed):
    w = _weight((cout, cin, kh, kw), dtype, seed)
    with pytest.MonkeyPatch.context() as mp:  # read by the kernel at each call
        mp.setenv("FASTSNN_CPU_ISA", isa)
        got = ops.pack_weight(w)
    want = ref.pack_weight(w)
    assert got.dtype == torch.int32 and got.shape == want.shape
    assert torch.equal(got, want)


@pytest.mark.parametrize("isa", _cpu_isas())
def test_large_and_strided_weights(isa):
    """Enough work for the threaded path; a non-contiguous weight is packed as its values."""
    w = _weight((128, 256, 3, 3), torch.float32, 7)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FASTSNN_CPU_ISA", isa)
        assert torch.equal(ops.pack_weight(w), ref.pack_weight(w))
        t = w.transpose(0, 1).contiguous().transpose(0, 1)
        assert torch.equal(ops.pack_weight(t), ref.pack_weight(w))


def test_packed_weight_from_float_uses_the_same_bits():
    w = _weight((9, 40, 3, 2), torch.float32, 3)
    packed = ops.PackedBinaryWeight.from_float(w, None)
    assert torch.equal(packed.words, ref.pack_weight(w))


def test_bad_weight_is_named():
    if not _cpu_isas():
        pytest.skip("no cpu kernel")
    with pytest.raises(ValueError, match="weight"):
        torch.ops.fastsnn.binary_conv2d_pack_weight(torch.randn(2, 3, 3))
    with pytest.raises((TypeError, ValueError), match="weight"):
        torch.ops.fastsnn.binary_conv2d_pack_weight(torch.ones(2, 3, 3, 3, dtype=torch.int32))


def test_opcheck():
    if not _cpu_isas():
        pytest.skip("no cpu kernel")
    w = _weight((6, 40, 3, 2), torch.float32, 5)
    torch.library.opcheck(torch.ops.fastsnn.binary_conv2d_pack_weight.default, (w,))
