"""stcb / spike_count: the rule against an exact IF loop, the equivalent gradient against
gradcheck of the relaxed block, every backend against the reference, memory that does not
grow with T, the STCB module's two modes, and bad input.

How the IF loop's rounding relates to the closed form: the closed form is exact once
``x = A/vth`` is rounded (``fastsnn.reference.stcb``), so it is compared with an IF loop run
in exact rational arithmetic (``fractions.Fraction``) on that same ``x``: equal for every
input, no exclusions. With a power-of-two threshold ``x`` is exact, so the loop is driven by
the literal current ``A/T`` against ``vth``. For other thresholds the loop on the exact
``A/vth`` is compared too, excluding only the elements whose rounded ``x`` lands on the other
side of a spike boundary than the exact one (such elements are counted and must be rare).
"""

import importlib
import math
from fractions import Fraction

import pytest
import torch
from helpers import DEVICE, fast_backends, generator, require_backend
from hypothesis import given, settings
from hypothesis import strategies as st

import fastsnn
from fastsnn.models import STCSNN
from fastsnn.nn import STCB
from fastsnn.ops import spike_count as count_ops
from fastsnn.ops import stcb as stcb_ops

# fastsnn.reference re-exports the functions under the modules' names: fetch the module.
ref = importlib.import_module("fastsnn.reference.stcb")
KERNEL, COUNT_KERNEL = "stcb", "spike_count"

SEEDS = st.integers(0, 2**31 - 1)


def _charges(seed, n, T, levels, threshold, dtype=torch.float32):
    """Negative, zero, in-range, exact multiples of vth/T, huge and infinite charges."""
    g = generator(seed)
    top = levels * T * threshold
    parts = [
        (torch.rand(n, generator=g, dtype=torch.float64) * 1.4 - 0.2) * top,
        torch.randint(-3, levels * T * T + 3, (n // 4,), generator=g).double() * threshold / T,
        torch.randn(n // 4, generator=g, dtype=torch.float64) * 1e30,
        torch.tensor([0.0, -0.0, top, -top, math.inf, -math.inf, 1e-30, -1e-30]),
    ]
    return torch.cat(parts).to(dtype)


def _if_loop(charge: Fraction, threshold: Fraction, T: int, levels: int) -> list[int]:
    """IF neuron, soft reset, driven by the constant current charge/T, in exact arithmetic."""
    u, out = Fraction(0), []
    for _ in range(T):
        u += charge / T
        s = min(levels, max(0, math.floor(u / threshold)))
        u -= s * threshold
        out.append(s)
    return out


def _train_of(x: Fraction, T: int, levels: int) -> list[int]:
    return _if_loop(x, Fraction(1), T, levels)


# ---- the rule ----------------------------------------------------------------------------


@given(seed=SEEDS, T=st.integers(1, 16), levels=st.integers(1, 4),
       threshold=st.sampled_from([1.0, 0.5, 0.25, 2.0]))
def test_train_equals_exact_if_loop(seed, T, levels, threshold):
    a = _charges(seed, 64, T, levels, threshold)
    s = ref.stcb(a, T, levels, threshold, "train")
    for i, value in enumerate(a.tolist()):
        if math.isinf(value):
            want = [levels if value > 0 else 0] * T
        else:
            want = _if_loop(Fraction(value), Fraction(threshold), T, levels)
        assert s[:, i].tolist() == want, (value, T, levels, threshold)


@given(seed=SEEDS, T=st.integers(1, 16), levels=st.integers(1, 4),
       threshold=st.floats(0.3, 2.0))
def test_train_general_threshold(seed, T, levels, threshold):
    """Exact on the rounded x = A/vth; on the exact A/vth up to rare boundary cases."""
    vth = ref.rounded(threshold, torch.float32)
    a = _charges(seed, 64, T, levels, vth)[:-4]  # finite charges
    s = ref.stcb(a, T, levels, vth, "train")
    x = ref.normalized_charge(a, vth)
    for i, (value, xi) in enumerate(zip(a.tolist(), x.tolist())):
        got = s[:, i].tolist()
        assert got == _train_of(Fraction(xi), T, levels)
        exact = _if_loop(Fraction(value), Fraction(vth), T, levels)
        if exact != got:  # allowed only where t*x/T is within rounding of an integer
            ratio = Fraction(value) / Fraction(vth)
            assert _train_of(ratio, T, levels) == exact
            assert any(abs(t * ratio / T - round(t * ratio / T)) <= 2**-20 * max(1, t * ratio)
                       for t in range(1, T + 1)), (value, vth, T)


@pytest.mark.parametrize("threshold", [1.0, 0.5])
def test_train_equals_mt_lif_if_neuron(threshold):
    """The package's own IF neuron (mt_lif, decay 1, soft reset) on the constant current A/T.

    Charges are multiples of 1/64 and T a power of two, so the float loop is exact too.
    """
    g = generator(3)
    for T in (1, 2, 4, 8, 16):
        for levels in (1, 3):
            a = torch.randint(-64, 64 * levels * T + 64, (400,), generator=g).double() / 64
            current = (a / T).expand(T, -1).reshape(T, 1, -1)
            want = fastsnn.mt_lif(current, 1.0, threshold=threshold, levels=levels,
                                  reset="soft", backend="reference").reshape(T, -1)
            assert torch.equal(ref.stcb(a, T, levels, threshold, "train"), want)


@given(seed=SEEDS, T=st.integers(1, 32), levels=st.integers(1, 4),
       threshold=st.floats(0.1, 3.0), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_train_sums_to_count(seed, T, levels, threshold, dtype):
    a = _charges(seed, 200, T, levels, threshold, dtype)
    s = fastsnn.stcb(a, T, levels=levels, threshold=threshold, backend="reference")
    n = fastsnn.stcb(a, T, levels=levels, threshold=threshold, output="count",
                     backend="reference")
    assert torch.equal(s.sum(0), n)
    assert bool(((s >= 0) & (s <= levels)).all())
    x = ref.normalized_charge(a, ref.rounded(threshold, dtype))
    assert torch.equal(n, torch.clamp(torch.floor(x), 0, levels * T).to(dtype))


def test_nan_propagates():
    a = torch.tensor([float("nan"), 1.5])
    assert torch.isnan(fastsnn.stcb(a, 3, backend="reference")[:, 0]).all()
    assert torch.isnan(fastsnn.stcb(a, 3, output="count", backend="reference")[0])


# ---- the equivalent gradient ---------------------------------------------------------------


def _away_from_kinks(seed, shape, T, levels, threshold):
    """float64 charges in (-top/2, 3*top/2), none within 1e-3*top of 0 or top = K*T*vth."""
    top = levels * T * threshold
    a = (torch.rand(shape, generator=generator(seed), dtype=torch.float64) * 2 - 0.5) * top
    near = ((a.abs() < 1e-3 * top) | ((a - top).abs() < 1e-3 * top))
    return torch.where(near, torch.full_like(a, 0.3 * top), a)


@pytest.mark.parametrize("output", ["count", "train"])
@pytest.mark.parametrize("T,levels,threshold", [(1, 1, 1.0), (4, 2, 0.7), (6, 3, 1.3)])
def test_relaxed_block_gradcheck(output, T, levels, threshold):
    a = _away_from_kinks(0, (3, 4), T, levels, threshold).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda v: ref.relaxed_stcb(v, T, levels, threshold, output), (a,))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("output", ["count", "train"])
@given(seed=SEEDS, T=st.integers(1, 12), levels=st.integers(1, 4),
       threshold=st.sampled_from([0.5, 0.7, 1.0, 1.3]))
def test_backward_equals_relaxed_block(backend, output, seed, T, levels, threshold):
    """float64: the op's backward is exactly the gradient of the block with floor removed."""
    require_backend(backend, KERNEL, torch.device("cpu"))
    a = _away_from_kinks(seed, (2, 3, 5), T, levels, threshold)
    a1, a2 = a.clone().requires_grad_(True), a.clone().requires_grad_(True)
    out = fastsnn.stcb(a1, T, levels=levels, threshold=threshold, output=output,
                       backend=backend)
    relaxed = ref.relaxed_stcb(a2, T, levels, threshold, output)
    g = torch.randn(out.shape, generator=generator(seed + 1), dtype=torch.float64)
    (got,) = torch.autograd.grad(out, a1, g)
    (want,) = torch.autograd.grad(relaxed, a2, g)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_train_backward_through_count_equals_count_backward(backend):
    """spike_count(train) has the count's gradient: the train rule is the count rule per step."""
    require_backend(backend, KERNEL, torch.device("cpu"))
    a = _away_from_kinks(5, (4, 6), 5, 2, 0.75)
    a1, a2 = a.clone().requires_grad_(True), a.clone().requires_grad_(True)
    n1 = fastsnn.spike_count(fastsnn.stcb(a1, 5, levels=2, threshold=0.75, backend=backend),
                             backend=backend)
    n2 = fastsnn.stcb(a2, 5, levels=2, threshold=0.75, output="count", backend=backend)
    assert torch.equal(n1, n2)
    g = torch.randn(n1.shape, generator=generator(6), dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(n1, a1, g)[0],
                               torch.autograd.grad(n2, a2, g)[0], rtol=1e-12, atol=0)


# ---- every backend against the reference ------------------------------------------------------


def _same(got, want):
    return torch.equal(got.nan_to_num(-7.0), want.nan_to_num(-7.0)) and torch.equal(
        got.isnan(), want.isnan())


def _check_backend(backend, seed, shape, T, levels, threshold, output, dtype,
                   device=torch.device("cpu")):
    """``backend`` on ``device`` against the reference on CPU: spikes and counts bit for bit."""
    a = _charges(seed, math.prod(shape), T, levels, threshold, dtype)[:math.prod(shape)]
    a = a.reshape(shape)
    ar, ab = a.clone().requires_grad_(True), a.to(device).requires_grad_(True)
    kw = dict(levels=levels, threshold=threshold, output=output)
    want = fastsnn.stcb(ar, T, backend="reference", **kw)
    got = fastsnn.stcb(ab, T, backend=backend, **kw)
    assert got.shape == want.shape and got.dtype == want.dtype and got.device == device
    assert _same(got.cpu(), want)
    g = torch.randn(want.shape, generator=generator(seed + 2), dtype=dtype)
    (gw,) = torch.autograd.grad(want, ar, g)
    (gg,) = torch.autograd.grad(got, ab, g.to(device))
    if output == "count":
        assert torch.equal(gg.cpu(), gw)
    else:  # summed over T in another order than autograd's
        torch.testing.assert_close(gg.cpu(), gw, rtol=1e-6, atol=1e-6)


SHAPES = st.lists(st.integers(1, 9), min_size=1, max_size=4).map(tuple)
OPTIONS = dict(seed=SEEDS, shape=SHAPES, T=st.integers(1, 12), levels=st.integers(1, 4),
               threshold=st.sampled_from([0.3, 0.7, 1.0, 1.9]),
               output=st.sampled_from(["train", "count"]))


@given(dtype=st.sampled_from([torch.float32, torch.float64]), **OPTIONS)
def test_cpu_matches_reference(seed, shape, T, levels, threshold, output, dtype):
    require_backend("cpu", KERNEL, torch.device("cpu"))
    _check_backend("cpu", seed, shape, T, levels, threshold, output, dtype)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
@settings(max_examples=6)
@given(**OPTIONS)
def test_triton_and_cuda_match_reference(backend, seed, shape, T, levels, threshold, output):
    """triton: under the interpreter on CPU here, on the GPU with FASTSNN_TEST_DEVICE=cuda."""
    device = torch.device("cuda") if backend == "cuda" else DEVICE
    require_backend(backend, KERNEL, device)
    _check_backend(backend, seed, shape, T, levels, threshold, output, torch.float32, device)


def test_cpu_large_and_odd_sizes():
    """Several OpenMP chunks and a tail that is not a multiple of 8 (mask bytes)."""
    require_backend("cpu", KERNEL, torch.device("cpu"))
    for shape in [(3, 7, 61), (2, 1030), (1,)]:
        _check_backend("cpu", 11, shape, 5, 3, 0.7, "train", torch.float32)
        _check_backend("cpu", 12, shape, 5, 3, 0.7, "count", torch.float32)


@pytest.mark.parametrize("backend", ["reference", "cpu", "triton"])
def test_empty_and_non_contiguous(backend):
    require_backend(backend, KERNEL, torch.device("cpu"))
    for output in ("train", "count"):
        a = torch.zeros(0, 3, requires_grad=True)
        y = fastsnn.stcb(a, 4, output=output, backend=backend)
        y.sum().backward()
        assert y.shape == ((4, 0, 3) if output == "train" else (0, 3))
        assert a.grad.shape == (0, 3)
        a = torch.randn(4, 6, generator=generator(1)).t() * 3
        assert torch.equal(fastsnn.stcb(a, 3, output=output, backend=backend),
                           fastsnn.stcb(a.contiguous(), 3, output=output, backend="reference"))
    assert fastsnn.spike_count(torch.zeros(3, 0, 2), backend=backend).shape == (0, 2)
    assert torch.equal(fastsnn.spike_count(torch.ones(0, 2, 2), backend=backend),
                       torch.zeros(2, 2))
    s = torch.randn(5, 3, 4, generator=generator(2)).transpose(1, 2)
    assert torch.equal(fastsnn.spike_count(s, backend=backend), ref.spike_count(s.contiguous()))


@pytest.mark.parametrize("backend", ["cpu", "triton", "cuda"])
def test_spike_count_matches_reference(backend):
    device = {"cpu": torch.device("cpu"), "cuda": torch.device("cuda")}.get(backend, DEVICE)
    require_backend(backend, COUNT_KERNEL, device)
    g = generator(9)
    for shape in [(1, 3), (5, 2, 3, 4), (8, 300)]:
        s = torch.randn(shape, generator=g).to(device).requires_grad_(True)  # order matters
        got = fastsnn.spike_count(s, backend=backend)
        want = fastsnn.spike_count(s.detach().cpu(), backend="reference")
        assert torch.equal(got.cpu(), want)
        (gs,) = torch.autograd.grad(got, s, torch.ones_like(got))
        assert torch.equal(gs, torch.ones_like(s))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computes_in_float32(dtype):
    a = _charges(2, 40, 4, 2, 1.0)[:40].to(dtype)
    want = fastsnn.stcb(a.float(), 4, levels=2, backend="reference").to(dtype)
    for backend in ["reference"] + fast_backends(KERNEL):
        got = fastsnn.stcb(a.to(DEVICE), 4, levels=2, backend=backend)
        assert got.dtype == dtype and _same(got.cpu(), want)


def test_opcheck():
    backend = "cpu" if "cpu" in fast_backends(KERNEL) else None
    if backend is None:
        pytest.skip("cpu backend unavailable")
    a = torch.randn(37) * 3
    forward = stcb_ops.OP.kernel("stcb_forward", backend)
    torch.library.opcheck(forward, (a, 4, 2, 1.0, False, True))
    torch.library.opcheck(forward, (a, 4, 2, 1.0, True, False),
                          test_utils=("test_schema", "test_faketensor"))
    mask = forward(a, 4, 2, 1.0, False, True)[1]
    torch.library.opcheck(stcb_ops.OP.kernel("stcb_backward", backend),
                          (torch.randn(4, 37), mask, 4, 0.25, False))
    torch.library.opcheck(count_ops.OP.kernel("spike_count", backend), (torch.randn(3, 5, 2),))


def test_compiles_fullgraph():
    backend = "cpu" if "cpu" in fast_backends(KERNEL) else "reference"
    fn = torch.compile(lambda a: fastsnn.spike_count(fastsnn.stcb(a, 4, levels=2,
                                                                  backend=backend)),
                       fullgraph=True, backend="eager")
    a = torch.randn(3, 5) * 4
    assert torch.equal(fn(a), fastsnn.stcb(a, 4, levels=2, output="count",
                                           backend="reference"))


# ---- memory --------------------------------------------------------------------------------


def saved_tensor_bytes(fn) -> tuple[int, list]:
    """Bytes of the distinct storages autograd saves while ``fn()`` runs, and the tensors."""
    seen, kept = {}, []

    def pack(t):
        kept.append(t)
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values()), kept


@pytest.mark.parametrize("output", ["train", "count"])
def test_backward_keeps_one_bit_per_element(output):
    for backend in fast_backends(KERNEL):
        for T in (4, 32):
            a = torch.randn(5, 13, device=DEVICE, requires_grad=True)
            nbytes, kept = saved_tensor_bytes(
                lambda: fastsnn.stcb(a, T, output=output, backend=backend))  # noqa: B023
            assert [t.dtype for t in kept] == [torch.uint8]
            assert nbytes == stcb_ops.saved_bytes(65) == 9


@pytest.mark.parametrize("backend", ["reference", None])
def test_chain_of_three_blocks_memory_independent_of_T(backend):
    def saved(T):
        torch.manual_seed(0)
        blocks = torch.nn.Sequential(*[STCB(c_in, 8, T=T, levels=2, backend=backend)
                                       for c_in in (3, 8, 8)])
        counts = torch.randint(0, 2 * T + 1, (2, 3, 8, 8)).float()
        return saved_tensor_bytes(lambda: blocks(counts).sum())[0]

    assert saved(4) == saved(32) > 0


# ---- the module and the network -------------------------------------------------------------


def test_modes_agree_on_time_constant_input():
    """A train constant over time drives the IF neuron with exactly the count mode's A/T.

    Integer weights, integer input and T a power of two keep every float operation exact,
    so the stepwise IF loop and the closed form must agree spike for spike.
    """
    torch.manual_seed(1)
    T = 8
    count = STCB(3, 6, T=T, levels=2, batch_norm=False, output="train").double()
    with torch.no_grad():
        count.conv.weight.copy_(torch.randint(-2, 3, count.conv.weight.shape))
        count.conv.bias.copy_(torch.randint(-1, 2, (6,)) / 4)
    step = STCB(3, 6, T=T, levels=2, batch_norm=False, mode="stepwise", output="train")
    step.load_state_dict(count.state_dict())
    step.double()
    frame = torch.randint(0, 2, (2, 3, 6, 6)).double()
    train = frame.expand(T, -1, -1, -1, -1)
    assert torch.equal(count(train), step(train))
    assert torch.equal(count(T * frame), step(train))  # counts in, same train out


@pytest.mark.parametrize("mode", ["count", "stepwise"])
def test_stcsnn_both_modes(mode):
    torch.manual_seed(0)
    net = STCSNN((8, "A", 16, "M", 16), in_channels=2, num_classes=5, T=3, levels=2,
                 mode=mode)
    for x in (torch.randn(2, 2, 8, 8), torch.randint(0, 2, (3, 2, 2, 8, 8)).float()):
        logits = net(x)
        assert logits.shape == (2, 5)
        logits.sum().backward()
        assert all(p.grad is not None for p in net.parameters())
        net.zero_grad()


def test_stcsnn_presets_and_shared_parameters():
    count = STCSNN("fmnist", in_channels=1, T=2)
    step = STCSNN("fmnist", in_channels=1, T=2, mode="stepwise")
    step.load_state_dict(count.state_dict())
    assert STCSNN("vgg11", T=2).classifier.in_features == 512


# ---- bad input ------------------------------------------------------------------------------

BAD = [
    (dict(T=0), ValueError, "T must be"),
    (dict(T=2.0), ValueError, "T must be"),
    (dict(T=True), ValueError, "T must be"),
    (dict(levels=0), ValueError, "levels must be"),
    (dict(threshold=0.0), ValueError, "threshold must be"),
    (dict(threshold=-1.0), ValueError, "threshold must be"),
    (dict(threshold=math.nan), ValueError, "threshold must be"),
    (dict(threshold="1"), TypeError, "threshold must be"),
    (dict(output="spikes"), ValueError, "output must be"),
    (dict(levels=2**12, T=2**13), ValueError, "levels \\* T"),
    (dict(a=torch.tensor(1.0)), ValueError, "a must be"),
    (dict(a=torch.ones(3, dtype=torch.int32)), TypeError, "a dtype"),
    (dict(a=[1.0, 2.0]), TypeError, "a must be a tensor"),
    (dict(backend="fpga"), ValueError, "backend must be"),
]


@pytest.mark.parametrize("kwargs,exc,match", BAD)
@pytest.mark.parametrize("backend", ["reference", None])
def test_bad_input(kwargs, exc, match, backend):
    kwargs = dict(kwargs)
    a = kwargs.pop("a", torch.randn(2, 3))
    T = kwargs.pop("T", 4)
    kwargs.setdefault("backend", backend)
    with pytest.raises(exc, match=match):
        fastsnn.stcb(a, T, **kwargs)


def test_bad_spike_count_input():
    with pytest.raises(ValueError, match="s must be"):
        fastsnn.spike_count(torch.ones(4))
    with pytest.raises(TypeError, match="s dtype"):
        fastsnn.spike_count(torch.ones(4, 2, dtype=torch.int64))
    with pytest.raises(RuntimeError, match="unavailable"):
        fastsnn.spike_count(torch.ones(4, 2), backend="cuda")


def test_bad_module_input():
    with pytest.raises(ValueError, match="mode must be"):
        STCB(3, 4, mode="bptt")
    with pytest.raises(ValueError, match="output must be"):
        STCB(3, 4, output="rate")
    with pytest.raises(ValueError, match="T must be"):
        STCB(3, 4, T=0)
    block = STCB(3, 4, T=4)
    with pytest.raises(ValueError, match="counts \\[N, C, H, W\\] or a train"):
        block(torch.ones(3, 8, 8))
    with pytest.raises(ValueError, match="steps"):
        block(torch.ones(5, 1, 3, 8, 8))
    with pytest.raises(ValueError, match="channels"):
        block(torch.ones(1, 2, 8, 8))
    with pytest.raises(ValueError, match="stepwise"):
        STCB(3, 4, mode="stepwise")(torch.ones(1, 3, 8, 8))
    with pytest.raises(ValueError, match="cfg"):
        STCSNN((8, "X"))
