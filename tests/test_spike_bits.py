"""Spikes packed as bit-planes (fastsnn/spike_bits.py, kernels/spike_bits.py): the layout,
exact round trips, the spike check, and the Triton kernels against the torch version
(under the Triton interpreter on CPU, small sizes)."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import DEVICE, generator
from hypothesis import given
from hypothesis import strategies as st

from fastsnn.spike_bits import SpikeBits, bits_for, check_spikes, pack


def spikes(shape, levels, seed, dtype=torch.float32):
    g = generator(seed)
    return torch.randint(0, levels + 1, shape, generator=g).to(dtype).to(DEVICE)


@pytest.mark.parametrize("levels,bits", [(1, 1), (2, 2), (3, 2), (4, 3), (7, 3), (8, 4),
                                         (255, 8)])
def test_bits_per_value(levels, bits):
    assert bits_for(levels) == bits


@pytest.mark.parametrize("levels", [0, -1, 256, 1.0, True])
def test_bad_levels(levels):
    with pytest.raises(ValueError, match="levels"):
        bits_for(levels)


def test_layout_little_endian_planes():
    x = torch.tensor([1.0, 0, 3, 2, 0, 0, 0, 1, 2], device=DEVICE)
    bits = pack(x, 3, backend="reference")
    assert bits.data.dtype == torch.uint8 and bits.data.shape == (2, 2)
    # plane 0 (low bits): values 0,2,7 -> 0b10000101; value 8 (=2) has low bit 0
    assert bits.data[0].tolist() == [0b10000101, 0]
    # plane 1 (high bits): values 2,3,8
    assert bits.data[1].tolist() == [0b00001100, 1]
    assert bits.nbytes == 2 * math.ceil(9 / 8)


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(0, 70),
       levels=st.sampled_from([1, 2, 3, 5, 15]),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]))
def test_round_trip_exact(seed, n, levels, dtype):
    x = spikes((n,), levels, seed, dtype)
    bits = pack(x, levels, backend="reference")
    assert bits.data.shape == (bits_for(levels), (n + 7) // 8)
    y = bits.unpack(backend="reference")
    assert y.dtype == dtype and torch.equal(y, x)


def test_round_trip_keeps_shape():
    x = spikes((3, 2, 5, 4, 3), 3, 0)
    y = pack(x, 3).unpack()
    assert y.shape == x.shape and y.is_contiguous() and torch.equal(y, x)


def test_check_spikes_accepts_spikes():
    check_spikes(spikes((4, 9), 3, 1), 3)
    check_spikes(torch.empty(0), 1)


@pytest.mark.parametrize("bad", [2.0, -1.0, 0.5, float("nan"), float("inf")])
def test_check_spikes_rejects(bad):
    x = spikes((4, 9), 1, 2)
    x[2, 3] = bad
    with pytest.raises(ValueError, match="spikes_in must hold spikes"):
        check_spikes(x, 1, "spikes_in")


def test_check_spikes_needs_float():
    with pytest.raises(TypeError, match="input"):
        check_spikes(torch.ones(3, dtype=torch.int64), 1)


# ---- Triton kernels against the torch version ------------------------------------------
triton_reason = ""
try:
    from fastsnn import _backends

    triton_reason = _backends.why_not("triton", DEVICE.type)
except Exception as exc:  # pragma: no cover
    triton_reason = str(exc)


@pytest.mark.skipif(bool(triton_reason), reason=f"triton unavailable: {triton_reason}")
@given(seed=st.integers(0, 2**31 - 1), n=st.sampled_from([1, 7, 8, 9, 1023, 1030, 2500]),
       levels=st.sampled_from([1, 3, 6]))
def test_triton_pack_unpack_match_torch(seed, n, levels):
    from fastsnn.kernels import spike_bits as kernel

    x = spikes((n,), levels, seed)
    want = pack(x, levels, backend="reference")
    got = kernel.pack(x, bits_for(levels))
    assert torch.equal(got, want.data)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        back = kernel.unpack(got, n, dtype)
        assert back.dtype == dtype and torch.equal(back, x.to(dtype))
    assert torch.equal(SpikeBits(got, x.shape, x.dtype, levels).unpack(backend="triton"), x)


@pytest.mark.skipif(bool(triton_reason), reason=f"triton unavailable: {triton_reason}")
def test_triton_bad_arguments():
    from fastsnn.kernels import spike_bits as kernel

    with pytest.raises(TypeError, match="flat"):
        kernel.pack(torch.zeros(2, 3, device=DEVICE), 1)
    with pytest.raises(ValueError, match="bytes"):
        kernel.unpack(torch.zeros(1, 3, dtype=torch.uint8, device=DEVICE), 8, torch.float32)
