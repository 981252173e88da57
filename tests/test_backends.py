"""Every backend of every op against its reference, parametrised from the op registry.

The cases come from ``fastsnn.ops._spine.OPS``: a new op or a new backend of an op is in
this test by construction (an op without an entry in ``CASES`` fails
``test_every_op_has_a_case``); a backend that cannot run here is skipped with the reason.
Each case draws fresh random inputs (hypothesis seeds) and compares outputs and gradients
with the reference on the same inputs; the per-op test modules go deeper.
"""

import numpy as np
import pytest
import torch
from helpers import DEVICE, generator, require_backend
from hypothesis import given, settings
from hypothesis import strategies as st
from mt_lif_compare import assert_matches_reference

import fastsnn
from fastsnn.ops._spine import OPS


def _grads(out, leaves):
    weight = torch.randn(out.shape, generator=generator(1)).to(out.device, out.dtype)
    return torch.autograd.grad((out * weight).sum(), leaves)


def _close(got, want, tol):
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * (1 + b.abs().max().item()))


def _mt_lif(backend, seed):
    g = generator(seed)
    x = (torch.randn(3, 2, 3, 4, generator=g) * 1.5).to(DEVICE).requires_grad_()
    decay = (torch.rand(3, generator=g) * 0.9 + 0.05).to(DEVICE).requires_grad_()
    syn = torch.tensor(0.4, device=DEVICE, requires_grad=True)
    v0 = torch.randn(2, 3, 4, generator=g).to(DEVICE).requires_grad_()
    weight = torch.randn(x.shape, generator=g).to(DEVICE)
    resets, surrogates = ("hard", "soft", "none"), ("rect", "triangle", "sigmoid")
    options = dict(levels=int(seed % 3) + 1, reset=resets[seed % 3], form="plif",
                   surrogate=surrogates[(seed // 3) % 3], threshold=0.8)
    assert_matches_reference(backend, options, (x, decay, syn, v0, weight), 1e-5)


def _binary_conv2d(backend, seed):
    g = generator(seed)
    x = torch.randint(0, 4, (2, 5, 6, 6), generator=g).float().to(DEVICE).requires_grad_()
    w = torch.randn(4, 5, 3, 3, generator=g).to(DEVICE).requires_grad_()
    bias = torch.randn(4, generator=g).to(DEVICE).requires_grad_()

    def run(b):
        out = fastsnn.binary_conv2d(x, w, "channel", bias, padding=1, stride=(1, 2),
                                    levels=3, backend=b)
        return out, _grads(out, [x, w, bias])

    out, grads = run(backend)
    want, want_grads = run("reference")
    torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-5)
    _close(grads, want_grads, 1e-5)


def _events_to_current(backend, seed):
    rng = np.random.default_rng(seed)
    W, H, P = 6, 5, 2
    streams, offsets = [], [0]
    for _ in range(3):
        n = int(rng.integers(0, 40))
        rows = np.stack([rng.integers(0, W, n), rng.integers(0, H, n),
                         np.cumsum(rng.integers(0, 9, n)), rng.integers(0, P, n)], axis=1)
        streams.append(rows)
        offsets.append(offsets[-1] + n)
    ev = torch.as_tensor(np.concatenate(streams).reshape(-1, 4), device=DEVICE)
    off = torch.as_tensor(offsets, device=DEVICE)
    for options in (dict(split_by="number"), dict(split_by="time", spatial_factor=2),
                    dict(weighting="exp", tau_syn=3.0, merge_polarity=True)):
        got = fastsnn.events_to_current(ev, (W, H, P), 4, offsets=off, backend=backend,
                                        **options)
        want = fastsnn.events_to_current(ev, (W, H, P), 4, offsets=off, backend="reference",
                                         **options)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def _stcb(backend, seed):
    g = generator(seed)
    a = ((torch.rand(3, 4, 5, generator=g) * 1.2 - 0.1) * 4).to(DEVICE).requires_grad_()
    for output in ("train", "count"):
        got = fastsnn.stcb(a, 4, levels=2, output=output, backend=backend)
        want = fastsnn.stcb(a, 4, levels=2, output=output, backend="reference")
        assert torch.equal(got, want)
        _close(_grads(got, [a]), _grads(want, [a]), 1e-6)


def _spike_count(backend, seed):
    g = generator(seed)
    s = torch.randint(0, 3, (5, 2, 3, 4), generator=g).float().to(DEVICE).requires_grad_()
    got = fastsnn.spike_count(s, backend=backend)
    want = fastsnn.spike_count(s, backend="reference")
    assert torch.equal(got, want)
    _close(_grads(got, [s]), _grads(want, [s]), 0)


def _packed_input(seed, levels=3, shape=(2, 2, 35, 6, 5)):
    x = torch.randint(0, levels + 1, shape, generator=generator(seed)).float().to(DEVICE)
    return x, fastsnn.PackedSpikes.from_float(x, levels)


def _binary_conv2d_packed(backend, seed):
    x, px = _packed_input(seed)
    w = torch.randn(9, 35, 3, 3, generator=generator(seed + 1)).to(DEVICE)
    got = fastsnn.binary_conv2d(px, w, "channel", padding=1, stride=(2, 1), backend=backend)
    want = fastsnn.binary_conv2d(x, w, "channel", padding=1, stride=(2, 1), levels=3,
                                 backend="reference")
    assert torch.equal(got, want)


def _mt_lif_packed(backend, seed):
    g = generator(seed)
    x = (torch.randn(3, 2, 37, 4, generator=g) * 1.5).to(DEVICE)
    decay = torch.rand(37, generator=g).to(DEVICE)
    options = dict(levels=int(seed % 4) + 1, reset=("hard", "soft", "none")[seed % 3])
    got = fastsnn.mt_lif(x, decay, packed=True, backend=backend, **options)
    assert torch.equal(got.unpack(), fastsnn.mt_lif(x, decay, backend="reference", **options))


def _binary_snn_layer(backend, seed):
    _, px = _packed_input(seed)
    g = generator(seed + 2)
    w = fastsnn.ops.binary_conv.PackedBinaryWeight.from_float(
        torch.randn(40, 35, 3, 3, generator=g).to(DEVICE), None)
    scale, bias = (torch.rand(40, generator=g) * 0.2).to(DEVICE), torch.randn(40).to(DEVICE)
    options = dict(padding=1, levels=int(seed % 3) + 1, decay=0.6, threshold=0.9,
                   reset=("hard", "soft", "none")[seed % 3])
    got = fastsnn.binary_snn_layer(px, w, scale, bias, backend=backend, **options)
    want = fastsnn.binary_snn_layer(px, w, scale, bias, backend="reference", **options)
    assert torch.equal(got.words, want.words)


CASES = {"mt_lif": _mt_lif, "binary_conv2d": _binary_conv2d,
         "events_to_current": _events_to_current, "stcb": _stcb, "spike_count": _spike_count,
         "binary_conv2d_packed": _binary_conv2d_packed, "mt_lif_packed": _mt_lif_packed,
         "binary_snn_layer": _binary_snn_layer}
PAIRS = [(op, backend) for op, declared in OPS.items() for backend in declared.backends
         if backend != "reference"]


def test_every_op_has_a_case():
    assert set(OPS) == set(CASES)
    assert {"mt_lif", "binary_conv2d", "events_to_current", "stcb", "spike_count"} <= set(OPS)


@pytest.mark.parametrize("op,backend", PAIRS, ids=[f"{o}-{b}" for o, b in PAIRS])
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_backend_matches_reference(op, backend, seed):
    require_backend(backend, op)
    CASES[op](backend, seed)


def test_available_backends_takes_a_device_and_names_bad_arguments():
    assert fastsnn.available_backends("mt_lif", torch.device("cpu")) == \
        fastsnn.available_backends("mt_lif", "cpu")
    with pytest.raises(ValueError, match="op must be one of"):
        fastsnn.available_backends("mt_lfi")
    with pytest.raises(ValueError, match="device must be"):
        fastsnn.available_backends("mt_lif", "tpu")


def test_spine_autograd_refuses_schemas_it_does_not_handle():
    """The spine's autograd formula passes a kernel's arguments through as they are: a
    schema with a default value (which the dispatcher may drop from the call), a
    keyword-only argument or a tensor list is refused at registration, not mis-called."""
    from fastsnn.ops._spine import _autograd_formula

    def nothing(*args):
        return None

    for op in (torch.ops.aten.add.Tensor,  # alpha=1: a default value
               torch.ops.aten.cat.default):  # Tensor[] tensors
        with pytest.raises(RuntimeError, match="no default values"):
            _autograd_formula(op, nothing, nothing)
    for declared in OPS.values():  # every fastsnn kernel passes
        for op in declared._ops.values():
            _autograd_formula(op, nothing, nothing)
