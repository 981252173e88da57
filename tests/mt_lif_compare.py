"""mt_lif backend-against-reference comparison shared by the per-backend test modules."""

import torch
from hypothesis import strategies as st

from fastsnn import mt_lif
from fastsnn.reference.surrogate import PEER_PARAMETERS


def surrogate_parameters(surrogate):
    """A strategy for the keyword of ``surrogate``'s parameter: ``width`` (or none, the
    threshold) for the width surrogates, ``alpha`` / ``slope`` (or the peer's default)."""
    name = PEER_PARAMETERS.get(surrogate, ("width",))[0]
    values = {"width": st.floats(0.1, 2.0), "alpha": st.floats(0.5, 4.0),
              "slope": st.floats(1.0, 30.0)}[name]
    return st.one_of(st.just({}), values.map(lambda v: {name: v}))


def run(backend, options, x, decay, syn, v0, weight):
    """Spikes and the gradients of sum(s * weight) with respect to every leaf needing one."""
    leaves = [t for t in (x, decay, syn, v0) if isinstance(t, torch.Tensor) and t.requires_grad]
    s = mt_lif(x, decay, syn_decay=syn, v0=v0, backend=backend, **options)
    grads = torch.autograd.grad((s * weight).sum(), leaves) if leaves else ()
    return s, grads


def assert_matches_reference(backend, options, inputs, tol):
    """Spikes bit for bit; gradients within ``tol`` (relative to their largest value)."""
    x = inputs[0]
    s_ref, g_ref = run("reference", options, *inputs)
    s, g = run(backend, options, *inputs)
    assert s.dtype == x.dtype and s.shape == x.shape
    assert torch.equal(s, s_ref)
    for got, want in zip(g, g_ref, strict=True):
        assert got.shape == want.shape and got.dtype == want.dtype
        scale = 1 + want.abs().max().item() if want.numel() else 1
        torch.testing.assert_close(got.double(), want.double(), rtol=tol, atol=tol * scale)
