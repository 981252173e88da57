"""Regressions for defects found by adversarial testing: stale packed weights after in-place
weight edits, packed state of another geometry, narrow integer inputs to ``bitpack``,
argument checks under torch.compile, and the edges (v0 shapes, NumPy scalars, meta tensors,
Triton's level cap, the sign of zero, the full int64 time range, stcb's non-finite policy).
Autograd modes: tests/test_autograd_modes.py."""

import re

import numpy as np
import pytest
import torch
from helpers import DEVICE, generator

import fastsnn
from fastsnn.nn import BinaryConv2d
from fastsnn.reference.binary_conv import bitunpack

NAN, INF = float("nan"), float("inf")


def _spikes(shape, seed):
    return (torch.rand(*shape, generator=generator(seed)) < 0.5).float().to(DEVICE)


@pytest.mark.parametrize("edit", ["fused_adam", "data_clamp", "data_copy"])
def test_eval_module_sees_in_place_weight_edits(edit):
    # Edits that change neither weight._version nor its data pointer must still reach the
    # packed kernel in eval mode.
    torch.manual_seed(0)
    m = BinaryConv2d(8, 4, 3).to(DEVICE)
    x = _spikes((2, 8, 6, 6), 1)
    m.eval()
    before = m(x)
    if edit == "fused_adam":
        if DEVICE.type != "cuda" and not _fused_adam_on_cpu():
            pytest.skip("fused Adam needs a CUDA device in this torch")
        opt = torch.optim.Adam(m.parameters(), lr=10.0, fused=True)
        m.train()
        (m(x) * torch.randn_like(before)).sum().backward()
        opt.step()
        m.eval()
    elif edit == "data_clamp":
        m.weight.data.mul_(-1).clamp_(-1, 1)
    else:
        m.weight.data.copy_(-m.weight.data)
    want = torch.nn.functional.conv2d(
        x, torch.where(m.weight.detach() >= 0, 1.0, -1.0)
        * m.weight.detach().abs().mean(dim=(1, 2, 3), keepdim=True))
    got = m(x)
    assert not torch.equal(got, before)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def _fused_adam_on_cpu() -> bool:
    p = torch.nn.Parameter(torch.ones(1))
    p.grad = torch.ones(1)
    try:
        torch.optim.Adam([p], fused=True).step()
    except RuntimeError:
        return False
    return True


def test_eval_module_compiles_fullgraph_and_exports():
    m = BinaryConv2d(8, 4, 3, padding=1).to(DEVICE).eval()
    x = _spikes((2, 8, 6, 6), 2)
    want = m(x)
    compiled = torch.compile(m, fullgraph=True)
    for _ in range(3):  # the old data_ptr() cache key failed from the second call
        torch.testing.assert_close(compiled(x), want)
    exported = torch.export.export(m, (x,))
    torch.testing.assert_close(exported.module()(x), want)


@pytest.mark.parametrize("other", [dict(in_channels=40), dict(out_channels=5),
                                   dict(kernel_size=1)])
def test_packed_state_of_another_shape_is_rejected(other):
    src_args = dict(in_channels=8, out_channels=4, kernel_size=3)
    src = BinaryConv2d(**src_args)
    src.pack()
    dst = BinaryConv2d(**{**src_args, **other})
    with pytest.raises(RuntimeError, match="size mismatch"):
        dst.load_state_dict(src.state_dict())
    same = BinaryConv2d(**src_args)
    same.load_state_dict(src.state_dict())  # the same geometry still loads
    assert same.packed and torch.equal(same.weight_packed, src.weight_packed)


@pytest.mark.parametrize("dtype,bits", [(torch.uint8, 8), (torch.int8, 7), (torch.int16, 15),
                                        (torch.int32, 31), (torch.uint8, 3),
                                        (torch.int64, 31)])
def test_bitpack_accepts_the_full_range_of_narrow_integers(dtype, bits):
    top = 2**bits - 1
    x = torch.tensor([0, top, 1, top - 1, 5 % (top + 1)], dtype=dtype).repeat(7)
    words = fastsnn.bitpack(x, bits=bits, dim=0)
    assert torch.equal(bitunpack(words, x.numel(), bits=bits, dim=0), x.to(torch.int64))


@pytest.mark.parametrize("dtype,bits,bad", [(torch.uint8, 3, 8), (torch.int8, 7, -1),
                                            (torch.int16, 4, 16), (torch.float32, 2, 2.5)])
def test_bitpack_message_quotes_the_value_out_of_range(dtype, bits, bad):
    x = torch.tensor([1, bad, 0], dtype=dtype)
    with pytest.raises(ValueError, match=f"found {bad!r}"):
        fastsnn.bitpack(x, bits=bits, dim=0)


# -- argument checks that hold under torch.compile -------------------------------------------

def _compiled_raises(fn, *args, match):
    """``fn`` compiled with fullgraph raises, by a message that matches (torch may wrap the
    exception: a ValueError met while tracing, a RuntimeError from a graph assertion)."""
    torch._dynamo.reset()
    with pytest.raises(Exception) as info:
        torch.compile(fn, fullgraph=True)(*args)
    assert re.search(match, str(info.value)), str(info.value)


@pytest.mark.parametrize("decay", [1.5, NAN, torch.tensor(1.5), torch.tensor([0.5, NAN])])
def test_mt_lif_decay_is_checked_under_compile(decay):
    x = torch.randn(3, 2, 2, generator=generator(20))
    _compiled_raises(lambda x, d: fastsnn.mt_lif(x, d, backend="cpu"), x, decay,
                     match=r"decay must lie in \[0, 1\]")


def test_mt_lif_tau_tensor_is_checked_under_compile():
    x = torch.randn(3, 2, 2, generator=generator(21))
    _compiled_raises(lambda x, t: fastsnn.mt_lif(x, tau=t, backend="cpu"), x,
                     torch.tensor([0.5, 2.0]), match="tau must be >= 1")


def test_bitpack_value_range_is_checked_under_compile():
    _compiled_raises(lambda x: fastsnn.bitpack(x, bits=1), torch.tensor([[0, 2, 1]]),
                     match=r"x must hold integers in 0\.\.1 for bits=1")


def test_binary_conv_validate_is_checked_under_compile():
    x = torch.full((1, 2, 3, 3), 2.0)
    w = torch.randn(2, 2, 1, 1, generator=generator(22))
    _compiled_raises(lambda x: fastsnn.binary_conv2d(x, w, backend="cpu", validate=True), x,
                     match="not valid for activation='spike'")


def test_good_values_still_compile_in_one_graph():
    x = torch.randn(3, 2, 2, generator=generator(23))
    torch._dynamo.reset()
    got = torch.compile(lambda x: fastsnn.mt_lif(x, torch.tensor([0.3, 0.9]), backend="cpu"),
                        fullgraph=True)(x)
    torch.testing.assert_close(got, fastsnn.mt_lif(x, torch.tensor([0.3, 0.9]),
                                                   backend="reference"))


# -- smaller edges -----------------------------------------------------------------------------

def test_v0_with_a_time_axis_is_refused_by_name():
    x = torch.randn(3, 2, 4, generator=generator(24))
    with pytest.raises(ValueError, match=r"v0 of shape \(1, 2, 4\).*v0\[0\]"):
        fastsnn.mt_lif(x, v0=torch.zeros(1, 2, 4))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_numpy_scalars_are_accepted(backend):
    x = torch.randn(3, 2, 4, generator=generator(25))
    got = fastsnn.mt_lif(x, np.float32(0.25), threshold=np.float32(0.5), levels=np.int64(2),
                         width=np.float32(0.5), backend=backend)
    want = fastsnn.mt_lif(x, 0.25, threshold=0.5, levels=2, width=0.5, backend="reference")
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(fastsnn.mt_lif(x, tau=np.float32(4), backend=backend),
                               fastsnn.mt_lif(x, 0.75, backend="reference"))
    assert torch.equal(fastsnn.bitpack(torch.tensor([[1, 0, 1]]), bits=np.int64(1),
                                       dim=np.int64(1)), torch.tensor([[5]], dtype=torch.int32))


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_meta_tensors_give_shapes(backend):
    x = torch.empty(3, 2, 4, 5, device="meta")
    for decay in (0.5, torch.full((4,), 0.5, device="meta")):
        assert fastsnn.mt_lif(x, decay, backend=backend).shape == x.shape
    assert fastsnn.mt_lif(x, tau=torch.full((4,), 2.0, device="meta"),
                          backend=backend).shape == x.shape
    assert fastsnn.bitpack(torch.empty(2, 40, device="meta")).shape == (2, 2)


def test_meta_tensors_with_the_automatic_backend():
    m = lambda *shape: torch.empty(*shape, device="meta")  # noqa: E731
    assert fastsnn.mt_lif(m(3, 2, 4, 5), m(4)).shape == (3, 2, 4, 5)
    assert fastsnn.stcb(m(2, 3), 3).shape == (3, 2, 3)
    assert fastsnn.spike_count(m(3, 2)).shape == (2,)
    assert fastsnn.binary_conv2d(m(1, 2, 4, 4), m(3, 2, 3, 3), validate=True).shape == (
        1, 3, 2, 2)


def test_triton_levels_are_capped_by_name():
    x = torch.randn(3, 2, 4, generator=generator(26))
    with pytest.raises(ValueError, match="levels must be <= 64 on the triton backend"):
        fastsnn.mt_lif(x, levels=65, backend="triton")


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_sign_activation_reads_zero_as_plus_one_on_every_backend(backend):
    g = generator(27)
    x = torch.randint(-1, 2, (2, 40, 5, 5), generator=g).float()  # -1, 0, +1
    x[0, :, 2, 2] = 0.0
    w = torch.randn(3, 40, 3, 3, generator=g)
    got = fastsnn.binary_conv2d(x, w, padding=1, activation="sign", backend=backend)
    want = fastsnn.binary_conv2d(torch.where(x >= 0, 1.0, -1.0), w, padding=1,
                                 activation="sign", backend="reference")
    assert torch.equal(got, want)
    assert torch.equal(fastsnn.binary_conv2d(x, w, padding=1, activation="sign",
                                             backend="reference"), want)


# -- events_to_current over the whole int64 time range -----------------------------------------

LOW, HIGH = -(2**63), 2**63 - 1


@pytest.mark.parametrize("backend", ["reference", "cpu", "triton"])
@pytest.mark.parametrize("weighting", ["count", "exp"])
@pytest.mark.parametrize("T", [1, 4])
def test_events_split_by_time_over_the_full_int64_range(backend, weighting, T):
    times = [LOW, LOW + 1, -1, 0, 2**62, HIGH - 1, HIGH]
    ev = torch.tensor([[i % 3, 0, t, 0] for i, t in enumerate(times)], dtype=torch.int64)
    out = fastsnn.events_to_current(ev, (3, 1, 1), T, split_by="time", weighting=weighting,
                                    tau_syn=2.0**62, backend=backend)
    # segment j = floor((t - t_first) * T / 2^64): exact integers in Python
    seg = [((t - LOW) * T) >> 64 for t in times]
    assert seg == ([0] * 7 if T == 1 else [0, 0, 1, 2, 3, 3, 3])
    counts = torch.zeros(T, 3)
    for i, j in enumerate(seg):
        counts[j, i % 3] += 1
    got = out.reshape(T, 3)
    if weighting == "count":
        assert torch.equal(got, counts)
    else:
        assert torch.all(torch.isfinite(got)) and torch.all((got > 0) == (counts > 0))
        assert torch.all(got <= counts)
    if backend != "reference":
        want = fastsnn.events_to_current(ev, (3, 1, 1), T, split_by="time",
                                         weighting=weighting, tau_syn=2.0**62,
                                         backend="reference")
        torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)


def test_uint64_timestamps_beyond_int64_are_refused_with_the_value():
    big = 2**63 + 7
    arr = np.zeros(2, dtype=[("x", "u8"), ("y", "u8"), ("t", "u8"), ("p", "u8")])
    arr["t"] = [5, big]
    with pytest.raises(ValueError, match=f"field 't' holds {big}"):
        fastsnn.events_to_current(arr, (1, 1, 1), 2)
    plain = np.array([[0, 0, 5, 0], [0, 0, big, 0]], dtype=np.uint64)
    with pytest.raises(ValueError, match=f"events holds {big}"):
        fastsnn.events_to_current(plain, (1, 1, 1), 2)
    with pytest.raises(ValueError, match=f"events holds {big}"):
        fastsnn.events_to_current(torch.from_numpy(plain), (1, 1, 1), 2)


# -- stcb: non-finite charges (docs/stcb.md) ---------------------------------------------------

@pytest.mark.parametrize("backend", ["reference", "cpu", "triton"])
def test_stcb_non_finite_policy(backend):
    a = torch.tensor([NAN, INF, -INF, 2.5], requires_grad=True)
    count = fastsnn.stcb(a, 3, levels=2, output="count", backend=backend)
    assert torch.equal(count.nan_to_num(-7.0), torch.tensor([-7.0, 6.0, 0.0, 2.0]))
    train = fastsnn.stcb(a.detach(), 3, levels=2, output="train", backend=backend)
    assert torch.isnan(train[:, 0]).all()
    assert torch.equal(train[:, 1:3], torch.tensor([[2.0, 0.0]] * 3))
    count.sum().backward()
    assert torch.equal(a.grad, torch.tensor([0.0, 0.0, 0.0, 1.0]))
