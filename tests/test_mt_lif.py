"""mt_lif: the reference against its docs, gradcheck, SpikingJelly, the public API and bad input.

Backend-against-reference equivalence lives in test_mt_lif_<backend>.py.
"""

import pytest
import torch
from helpers import generator, require_backend
from hypothesis import given
from hypothesis import strategies as st

import fastsnn
from fastsnn.ops.mt_lif import saved_bytes_per_step
from fastsnn.reference.mt_lif import backward_recursion, staircase
from fastsnn.reference.mt_lif import mt_lif as ref_mt_lif
from fastsnn.reference.surrogate import SURROGATES

OPTIONS = st.fixed_dictionaries({
    "levels": st.integers(1, 4),
    "reset": st.sampled_from(["hard", "soft", "none", "subtract_next"]),
    "surrogate": st.sampled_from(list(SURROGATES)),
    "detach_reset": st.booleans(),
    "form": st.sampled_from(["stbp", "plif"]),
    "synaptic": st.booleans(),
    "threshold": st.sampled_from([0.5, 0.7, 1.0]),
})


def _inputs(seed, T=4, N=3, C=4, R=2, dtype=torch.float64, synaptic=True):
    g = generator(seed)
    x = (torch.randn(T, N, C, R, generator=g, dtype=dtype) * 1.5).requires_grad_(True)
    decay = (torch.rand(C, generator=g, dtype=dtype) * 0.8 + 0.1).requires_grad_(True)
    syn = (torch.rand((), generator=g, dtype=dtype) * 0.8 + 0.1).requires_grad_(synaptic)
    v0 = torch.randn(N, C, R, generator=g, dtype=dtype).requires_grad_(True)
    return x, decay, syn if synaptic else None, v0


@pytest.mark.parametrize("smooth", [True, False])
@given(seed=st.integers(0, 2**31 - 1), opts=OPTIONS)
def test_backward_recursion_equals_autograd(smooth, seed, opts):
    """docs/mt_lif.md check 1 (smooth) and 2 (hard): the written-out recursion equals autograd."""
    synaptic = opts.pop("synaptic")
    x, decay, syn, v0 = _inputs(seed, synaptic=synaptic)
    kw = dict(opts, syn_decay=syn, v0=v0, smooth=smooth)
    s = ref_mt_lif(x, decay, **kw)
    gs = torch.randn(s.shape, generator=generator(seed + 1), dtype=s.dtype)
    params = [x, decay, v0] + ([syn] if synaptic else [])
    auto = torch.autograd.grad(s, params, gs, allow_unused=True)
    detached = dict(kw, syn_decay=None if syn is None else syn.detach(), v0=v0.detach())
    gx, gdecay, gsyn, gv0 = backward_recursion(gs, x.detach(), decay.detach(), **detached)
    for got, want in zip([gx, gdecay, gv0] + ([gsyn] if synaptic else []), auto):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("surrogate", list(SURROGATES))
@pytest.mark.parametrize("reset", ["hard", "soft", "none"])
@pytest.mark.parametrize("form", ["stbp", "plif"])
def test_gradcheck_smooth_reference(surrogate, reset, form):
    """The smooth stand-in is differentiable: gradcheck through time, decay, syn, v0."""
    x, decay, syn, v0 = _inputs(7, T=3, N=2, C=2, R=1)
    width = 1.5 if surrogate != "sigmoid" else None  # wide bumps: kinks are rarely hit

    def f(x, decay, syn, v0):
        return ref_mt_lif(x, decay, threshold=0.7, levels=2, reset=reset,
                          surrogate=surrogate, width=width, form=form, syn_decay=syn, v0=v0,
                          smooth=True)
    assert torch.autograd.gradcheck(f, (x, decay, syn, v0), atol=1e-6)


def test_hand_computed_trajectory():
    """Two neurons, levels 3, soft reset: values worked out by hand."""
    x = torch.tensor([[[1.2]], [[2.5]], [[0.1]]])  # [T=3, N=1, C=1]
    s = fastsnn.mt_lif(x, 0.5, levels=3, reset="soft", backend="reference")
    # h1 = 1.2 -> s=1, u=0.2; h2 = 0.1+2.5 = 2.6 -> s=2, u=0.6; h3 = 0.3+0.1 -> s=0
    assert s.flatten().tolist() == [1.0, 2.0, 0.0]
    s = fastsnn.mt_lif(x, 0.5, levels=3, reset="hard", backend="reference")
    # hard: h2 = 0 + 2.5 -> 2, u=0; h3 = 0.1 -> 0
    assert s.flatten().tolist() == [1.0, 2.0, 0.0]
    x = torch.tensor([[[1.0]], [[1.0]]])
    s = fastsnn.mt_lif(x, 0.5, syn_decay=0.5, levels=3, reset="none", backend="reference")
    # j = 1, 1.5; h = 1, 0.5 + 1.5 = 2 (the >= convention fires 2 at exactly 2*vth)
    assert s.flatten().tolist() == [1.0, 2.0]


def test_staircase_matches_floor_away_from_thresholds():
    h = torch.linspace(-3, 10, 1001, dtype=torch.float64) + 1e-7
    for levels in (1, 3, 5):
        want = torch.clamp(torch.floor(h / 0.7), 0, levels)
        assert torch.equal(staircase(h, 0.7, levels), want)


def _spikingjelly_lif():
    sj = pytest.importorskip("spikingjelly.activation_based.neuron")
    from spikingjelly.activation_based import functional, surrogate
    return sj, functional, surrogate


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_matches_spikingjelly_lif(backend):
    """levels=1, plif, hard reset == SpikingJelly's multi-step LIFNode (an outside check)."""
    neuron, functional, surrogate = _spikingjelly_lif()
    if backend != "reference":
        require_backend(backend, "mt_lif", torch.device("cpu"))
    tau = 2.5
    node = neuron.LIFNode(tau=tau, decay_input=True, v_threshold=1.0, v_reset=0.0,
                          surrogate_function=surrogate.Sigmoid(alpha=4.0), detach_reset=False,
                          step_mode="m")
    x = (torch.randn(6, 4, 3, 5, dtype=torch.float64) * 1.5).requires_grad_(True)
    functional.reset_net(node)
    want = node(x)
    g = torch.randn_like(want)
    (gx_want,) = torch.autograd.grad(want, x, g)
    x2 = x.detach().clone().requires_grad_(True)
    got = fastsnn.mt_lif(x2, 1 - 1 / tau, levels=1, reset="hard", surrogate="sigmoid",
                         width=1.0, form="plif", backend=backend)
    (gx_got,) = torch.autograd.grad(got, x2, g)
    assert torch.equal(got, want)
    torch.testing.assert_close(gx_got, gx_want, atol=1e-10, rtol=1e-9)


def test_public_api_shapes_and_grads():
    x = torch.randn(3, 2, 4, 5, 5, requires_grad=True)
    decay = torch.full((4,), 0.6, requires_grad=True)
    s = fastsnn.mt_lif(x, decay, levels=3, backend="reference")
    assert s.shape == x.shape and s.dtype == x.dtype
    s.sum().backward()
    assert decay.grad.shape == (4,) and x.grad.shape == x.shape
    assert fastsnn.mt_lif(torch.randn(2, 3), 0.5).shape == (2, 3)  # [T, N] only


def test_module_learnable_decay():
    m = fastsnn.nn.MultiThresholdLIF(levels=3, learnable_decay=True, per_channel=4,
                                     form="plif", syn_decay=0.5, learnable_syn=True)
    assert torch.allclose(m.decay, torch.full((4,), 0.5))
    x = torch.randn(2, 3, 4, 6, requires_grad=True)
    m(x).sum().backward()
    assert m.decay_logit.grad.shape == (4,) and m.syn_logit.grad.shape == (4,)


def test_saved_bytes_table():
    f32, bf16 = torch.float32, torch.bfloat16
    assert saved_bytes_per_step(f32, reset="hard") == 4
    assert saved_bytes_per_step(bf16, reset="soft") == 2
    assert saved_bytes_per_step(bf16, reset="hard", detach_reset=True) == 2
    assert saved_bytes_per_step(bf16, reset="soft", decay_grad=True) == 4
    assert saved_bytes_per_step(f32, reset="soft", synaptic=True, syn_grad=True) == 8


BAD = [
    (dict(x=torch.randn(3)), ValueError, "x must be"),
    (dict(x=torch.randint(0, 3, (2, 3))), TypeError, "dtype"),
    (dict(decay=-0.1), ValueError, "decay must lie in"),
    (dict(decay=1.5), ValueError, "decay must lie in"),
    (dict(decay=torch.full((5,), 0.5)), ValueError, "C = x.shape"),
    (dict(syn_decay=-0.1), ValueError, "syn_decay must lie in"),
    (dict(levels=0), ValueError, "levels"),
    (dict(levels=1.5), ValueError, "levels"),
    (dict(reset="zero"), ValueError, "reset must be"),
    (dict(surrogate="erf"), ValueError, "surrogate must be"),
    (dict(form="lif"), ValueError, "form must be"),
    (dict(threshold=0.0), ValueError, "threshold"),
    (dict(width=-1.0), ValueError, "width"),
    (dict(v0=torch.randn(7)), ValueError, "v0"),
    (dict(backend="fpga"), ValueError, "backend must be"),
    (dict(decay="0.5"), TypeError, "decay must be"),
    (dict(tau=2.0), ValueError, "decay or tau, not both"),
    (dict(decay=None, tau=0.5), ValueError, "tau must be a finite float >= 1"),
    (dict(decay=None, tau="2"), TypeError, "tau must be"),
    (dict(alpha=2.0), ValueError, "alpha is the parameter of surrogate='atan'"),
    (dict(surrogate="atan", width=1.0), ValueError, "width is the parameter of"),
    (dict(surrogate="fast_sigmoid", slope=0.0), ValueError, "slope must be a finite"),
    (dict(surrogate="atan", slope=3.0), ValueError, "slope is the parameter of"),
]


@pytest.mark.parametrize("kwargs,exc,match", BAD)
@pytest.mark.parametrize("backend", ["reference", None])
def test_bad_input(kwargs, exc, match, backend):
    kwargs = dict(kwargs)
    x = kwargs.pop("x", torch.randn(2, 3, 4, 2))
    kwargs.setdefault("backend", backend)
    decay = kwargs.pop("decay", 0.5)
    with pytest.raises(exc, match=match):
        fastsnn.mt_lif(x, decay, **kwargs)


def test_forced_unavailable_backend_raises():
    with pytest.raises(RuntimeError, match="unavailable"):
        fastsnn.mt_lif(torch.randn(2, 3), backend="cuda")


def test_saved_bytes_plif_decay_grad_keeps_j():
    assert saved_bytes_per_step(torch.float32, reset="soft", decay_grad=True,
                                form="plif") == 8


def test_module_loads_state_dicts_with_the_former_names():
    """The decay logits were called ``w`` and ``v``; such state dicts still load."""
    m = fastsnn.nn.MultiThresholdLIF(learnable_decay=True, per_channel=2, syn_decay=0.5,
                                     learnable_syn=True)
    old = {"w": torch.tensor([0.3, -0.2]), "v": torch.tensor([1.5, 0.1])}
    m.load_state_dict(old)
    assert torch.equal(m.decay_logit.detach(), old["w"])
    assert torch.equal(m.syn_logit.detach(), old["v"])
    assert set(m.state_dict()) == {"decay_logit", "syn_logit"}


@pytest.mark.parametrize("backend", ["reference", None])
@pytest.mark.parametrize("levels", [1, 3])
def test_subtract_next_is_the_snntorch_recursion(backend, levels):
    """h[t] = lam*h[t-1] + x[t] - thr*s[t-1], s[t-1] counted off h[t-1] (v0 at t = 0)."""
    g = generator(11)
    x = torch.randn(9, 3, 5, generator=g) * 1.5
    v0 = torch.randn(3, 5, generator=g) * 1.5
    lam, thr = 0.8, 0.6
    h, want = v0.clone(), []
    for t in range(x.shape[0]):
        prev = sum((h >= k * thr).float() for k in range(1, levels + 1))
        h = (lam * h + x[t]) - thr * prev
        want.append(sum((h >= k * thr).float() for k in range(1, levels + 1)))
    got = fastsnn.mt_lif(x, lam, threshold=thr, levels=levels, reset="subtract_next", v0=v0,
                         backend=backend)
    assert torch.equal(got, torch.stack(want))


@pytest.mark.parametrize("backend", ["reference", None])
def test_tau_and_decay_zero(backend):
    x = torch.randn(5, 2, 3, 4, generator=generator(12)) * 2
    assert torch.equal(fastsnn.mt_lif(x, tau=4.0, backend=backend),
                       fastsnn.mt_lif(x, 0.75, backend=backend))
    # tau = 1: no memory, every step sees its own input alone
    no_memory = fastsnn.mt_lif(x, tau=1.0, reset="none", backend=backend)
    assert torch.equal(no_memory, (x >= 1).to(x.dtype))
    assert torch.equal(fastsnn.mt_lif(x, 0.0, reset="none", backend=backend), no_memory)


@pytest.mark.parametrize("reset", ["hard", "soft", "none", "subtract_next"])
def test_non_finite_input_policy_on_every_backend(reset):
    """docs/mt_lif.md, "Non-finite input": a NaN charge spikes NaN (and its membrane stays
    NaN), +inf reaches every level, -inf none; the membrane follows IEEE arithmetic (a hard
    reset of +inf leaves NaN). Every backend gives the reference's spikes."""
    x = torch.randn(6, 2, 3, 4, generator=generator(13))
    x[0, 0, 0, 0], x[2, 1, 1, 1], x[3, 0, 2, 3] = float("nan"), float("inf"), -float("inf")
    options = dict(levels=2, reset=reset, threshold=0.7, surrogate="triangle")
    want = fastsnn.mt_lif(x, 0.6, backend="reference", **options)
    assert want[0, 0, 0, 0].isnan() and want[2, 1, 1, 1] == 2 and want[3, 0, 2, 3] == 0
    for backend in fastsnn.available_backends("mt_lif", "cpu"):
        got = fastsnn.mt_lif(x, 0.6, backend=backend, **options)
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)
