"""Streaming ``mt_lif``: a sequence run in chunks, each starting from the state the last one
returned, equals the whole sequence run at once: the same spikes, the same gradients
(with respect to x, decay, syn_decay and v0), on every backend, the gradient flowing through
the states between chunks."""

import os

import torch

if not torch.cuda.is_available():  # before triton is imported (tests/conftest.py does the same)
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
from helpers import DEVICE, fast_backends, generator  # noqa: E402

from fastsnn import mt_lif  # noqa: E402
from fastsnn.ops.mt_lif_state import MtLifState  # noqa: E402

BACKENDS = ["reference"] + fast_backends("mt_lif")
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")

# Option sets: hard / soft / none / subtract_next, synaptic current, plif, v_reset,
# multi-threshold, detached reset, per-channel parameters.
COMBOS = [
    dict(reset="hard"),
    dict(reset="hard", v_reset=-0.5, syn=True, form="plif"),
    dict(reset="hard", v_reset=0.3, detach_reset=True, levels=3, surrogate="sigmoid"),
    dict(reset="soft", syn=True, levels=2, surrogate="atan"),
    dict(reset="soft", v_reset=0.3, per_channel=True, syn=True),
    dict(reset="none", v_reset=-0.5, form="plif", surrogate="triangle"),
    dict(reset="subtract_next", syn=True, surrogate="fast_sigmoid"),
    dict(reset="subtract_next", levels=2, v_reset=0.3, per_channel=True),
]
CHUNKS = [(8,), (3, 5), (1, 0, 4, 3)]  # a 0-step chunk passes its state through


def _inputs(combo, seed):
    gen = generator(seed)
    T, N, C, R = 8, 2, 3, 4
    x = (torch.randn(T, N, C, R, generator=gen) * 1.2 + 0.3).to(DEVICE).requires_grad_()
    size = C if combo.get("per_channel") else 1
    decay = (torch.rand(size, generator=gen) * 0.8 + 0.1).reshape(() if size == 1 else -1)
    decay = decay.to(DEVICE).requires_grad_()
    syn = None
    if combo.get("syn"):
        syn = (torch.rand(size, generator=gen) * 0.8 + 0.1).reshape(() if size == 1 else -1)
        syn = syn.to(DEVICE).requires_grad_()
    v0 = (torch.randn(N, C, R, generator=gen) * 0.5).to(DEVICE).requires_grad_()
    weight = torch.randn(T, N, C, R, generator=gen).to(DEVICE)
    options = {k: v for k, v in combo.items() if k not in ("syn", "per_channel")}
    return x, decay, syn, v0, weight, options


def _run(backend, chunks, x, decay, syn, v0, weight, options):
    """Spikes and the gradients of sum(s * weight) (+ the final state, so its gradient is
    not zero) over x, decay, syn and v0."""
    state = MtLifState(v0, None)
    spikes, t = [], 0
    for n in chunks:
        s, state = mt_lif(x[t:t + n], decay, syn_decay=syn, state=state, return_state=True,
                          backend=backend, **options)
        spikes.append(s)
        t += n
    s = torch.cat(spikes)
    loss = (s * weight).sum() + (state.u * 0.3).sum()
    if state.j is not None:
        loss = loss + (state.j * 0.2).sum()
    leaves = [p for p in (x, decay, syn, v0) if p is not None]
    return s, state, torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("combo", range(len(COMBOS)))
def test_chunks_equal_the_whole_sequence(backend, combo):
    inputs = _inputs(COMBOS[combo], combo)
    s_whole, state_whole, g_whole = _run(backend, (8,), *inputs)
    for chunks in CHUNKS[1:]:
        s, state, grads = _run(backend, chunks, *inputs)
        assert torch.equal(s, s_whole), chunks
        assert torch.equal(state.u, state_whole.u)
        assert (state.j is None) == (state_whole.j is None)
        if state.j is not None:
            assert torch.equal(state.j, state_whole.j)
        # gx and gv0 run through the same operations; the parameter gradients are sums over
        # time, added per chunk: equal to rounding
        for name, got, want in zip(("x", "decay", "syn", "v0"), grads, g_whole):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_matches_the_reference_trajectory(backend):
    """The returned state is the recursion's own u[T] (and j[T]), in the compute dtype."""
    x, decay, syn, v0, _, options = _inputs(COMBOS[1], 5)
    _, state = mt_lif(x.detach().half(), decay.detach(), syn_decay=syn.detach(),
                      v0=v0.detach(), return_state=True, backend=backend, **options)
    _, want = mt_lif(x.detach().half(), decay.detach(), syn_decay=syn.detach(),
                     v0=v0.detach(), return_state=True, backend="reference", **options)
    assert state.u.dtype == torch.float32 and state.j.dtype == torch.float32
    assert torch.equal(state.u, want.u) and torch.equal(state.j, want.j)


@pytest.mark.parametrize("backend", BACKENDS)
def test_v0_defaults_to_v_reset(backend):
    x = torch.randn(3, 2, 3, generator=generator(1)).to(DEVICE)
    for reset in ("hard", "soft"):
        got = mt_lif(x, 0.7, v_reset=-0.4, reset=reset, backend=backend)
        want = mt_lif(x, 0.7, v_reset=-0.4, reset=reset, v0=torch.full((2, 3), -0.4),
                      backend="reference")
        assert torch.equal(got, want)
    # no step: the state is the initial one (v_reset without v0)
    _, state = mt_lif(x[:0], 0.7, v_reset=-0.4, return_state=True, backend=backend)
    assert torch.equal(state.u, torch.full((2, 3), -0.4))


def test_detached_state_cuts_the_graph():
    x = torch.randn(4, 2, 3, requires_grad=True)
    _, state = mt_lif(x[:2], 0.8, return_state=True)
    s, _ = mt_lif(x[2:], 0.8, state=state.detach(), return_state=True)
    (g,) = torch.autograd.grad((s * torch.randn_like(s)).sum(), x)
    assert torch.equal(g[:2], torch.zeros_like(g[:2]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_stateful_module_in_chunks_equals_one_call(backend):
    from fastsnn.nn import MultiThresholdLIF

    torch.manual_seed(3)
    lif = MultiThresholdLIF(levels=2, threshold=0.6, learnable_decay=True, per_channel=3,
                            syn_decay=0.6, learnable_syn=True, v_reset=-0.3, stateful=True,
                            step_rank=3, backend=backend)
    x = (torch.randn(9, 2, 3, 4) * 1.5).to(DEVICE).requires_grad_()
    weight = torch.randn(x.shape).to(DEVICE)
    params = list(lif.parameters())

    def run(chunks):
        lif.reset_state()
        s = torch.cat([lif(part) for part in x.split(chunks)])
        return s, torch.autograd.grad((s * weight).sum(), [x, *params])

    s_whole, g_whole = run(9)
    s, grads = run(4)
    assert torch.equal(s, s_whole)
    for got, want in zip(grads, g_whole):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # detach_state keeps the values, cuts the graph; reset_state forgets them
    lif.reset_state()
    lif(x[:4].detach())
    kept = lif.state.u.clone()
    lif.detach_state()
    assert torch.equal(lif.state.u, kept) and not lif.state.u.requires_grad
    lif.reset_state()
    assert lif.state is None
    with pytest.raises(ValueError, match="step of rank 3"):
        lif(x[0])
    lif(x[:2].detach())
    with pytest.raises(ValueError, match="v0 given to a stateful module"):
        lif(x[2:4].detach(), torch.zeros(2, 3, 4))


@pytest.mark.parametrize("backend", fast_backends("mt_lif"))
@pytest.mark.parametrize("return_state", [False, True])
def test_forward_outputs_never_alias(backend, return_state):
    # A custom op's returns may not share storage (torch refuses it under inductor): the
    # unused state outputs are separate empty tensors, not one shared.
    from fastsnn.ops.mt_lif import OP

    x = torch.rand(2, 3, 4, 5, device=DEVICE)
    decay = torch.full((1,), 0.5, device=DEVICE)
    outs = OP.kernel("mt_lif_forward", backend)(
        x, decay, None, None, None, 1.0, 0.0, 1, 0, 0, 1.0, False, 0, 0, False, return_state)
    storages = [o.untyped_storage()._cdata for o in outs]
    assert len(set(storages)) == len(outs)
