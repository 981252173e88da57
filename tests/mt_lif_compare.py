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


def _param(kind, channels, gen, dtype, device):
    """A decay-like parameter in (0, 1] (1.0 included now and then): a float, 0-d or [C]."""
    if kind is None:
        return None
    values = torch.rand(channels, generator=gen, dtype=dtype) * 0.95 + 0.05
    values[torch.rand(channels, generator=gen) < 0.15] = 1.0
    if kind == "float":
        return float(values[0])
    p = values[:1].reshape(()) if kind.startswith("0d") else values
    return p.to(device).requires_grad_(kind.endswith("grad"))


def _x(case, gen, acc, device):
    """x with exact threshold hits at t = 0 (h = x there without v0/syn/plif) and a
    non-contiguous layout when asked."""
    shape, dtype = case["shape"], case["dtype"]
    thr = torch.tensor(case["options"].get("threshold", 1.0), dtype=acc)
    x = torch.randn(shape, generator=gen, dtype=acc) * 1.5 + 0.5 * thr
    hits = torch.rand(x[0].shape, generator=gen) < 0.3
    levels = torch.randint(0, 5, x[0].shape, generator=gen).to(acc)
    x[0] = torch.where(hits, levels * thr, x[0])
    layout = case.get("layout", "contiguous")
    if layout == "strided":
        x = torch.stack([x, x + 1], dim=-1)[..., 0]
    elif layout == "transposed":
        x = x.transpose(0, 1).contiguous().transpose(0, 1)
    return x.to(device, dtype).requires_grad_(case["x_grad"])


def random_inputs(case, device):
    """``(x, decay, syn, v0, weight)`` on ``device`` for a drawn case (keys shape, options,
    dtype, decay, syn, v0, x_grad, seed and optionally layout), from the case's seed."""
    gen = torch.Generator().manual_seed(case["seed"])
    acc = torch.float64 if case["dtype"] == torch.float64 else torch.float32
    x = _x(case, gen, acc, device)
    channels = case["shape"][2] if len(case["shape"]) > 2 else 1
    decay = _param(case["decay"], channels, gen, acc, device)
    syn = _param(case["syn"], channels, gen, acc, device)
    v0 = None
    if case["v0"] is not None:
        # "broadcast": one value per channel, expanded by the op over N and the rest
        v0_shape = x.shape[1:] if case["v0"].startswith("full") else (channels,) + (1,) * max(
            x.dim() - 3, 0)
        v0 = torch.randn(v0_shape, generator=gen, dtype=acc).to(device)
        v0.requires_grad_(case["v0"].endswith("grad"))
    weight = torch.randn(x.shape, generator=gen).to(device, x.dtype)
    return x, decay, syn, v0, weight
