"""binary_conv2d: every backend against F.conv2d on the binarised weights, each CPU popcount
path forced, bit packing, gradients of the op and the module, state_dict, bad input."""

import pytest
import torch
import torch.nn.functional as F
from helpers import DEVICE, fast_backends, generator, require_backend
from hypothesis import given, settings
from hypothesis import strategies as st

import fastsnn
from fastsnn.nn import BinaryConv2d
from fastsnn.ops.binary_conv import OP, PackedBinaryWeight
from fastsnn.reference import binary_conv as ref

KERNEL = "binary_conv2d"


def _backends():
    """Backend parameters; the cuda backend once per CUDA kernel (popcount and tensor-core)."""
    names = ["reference"] + fast_backends(KERNEL)
    return [b for b in names if b != "cuda"] + [
        pytest.param("cuda", id=f"cuda-{path}", marks=pytest.mark.cuda_bconv(path))
        for path in ("popc", "mma") if "cuda" in names]


@pytest.fixture(autouse=True)
def _cuda_kernel_path(request, monkeypatch):
    """Sets FASTSNN_CUDA_BCONV (read per call) for the ``cuda_bconv`` parameters of _backends."""
    mark = request.node.get_closest_marker("cuda_bconv")
    if mark is not None:
        monkeypatch.setenv("FASTSNN_CUDA_BCONV", mark.args[0])


def _cpu_isas():
    if "cpu" not in fast_backends(KERNEL, torch.device("cpu")):
        return []
    return list(torch.ops.fastsnn.binary_conv2d_cpu_isas())


@st.composite
def conv_cases(draw, max_channels=300):
    """A convolution problem kept small in total: many channels come with small images."""
    cin = draw(st.one_of(st.integers(1, 70), st.sampled_from([31, 32, 33, 63, 64, 65, 127,
                                                              128, 129, 255, 256, 300]),
                         st.integers(1, max_channels)))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    size = []
    for k, d, p in ((kh, dil[0], pad[0]), (kw, dil[1], pad[1])):
        size.append(max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 4)))
    activation = draw(st.sampled_from(["spike", "sign"]))
    return dict(
        cin=cin, cout=draw(st.integers(1, 20)), kernel=(kh, kw), size=tuple(size),
        stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))), padding=pad,
        dilation=dil, batch=draw(st.integers(1, 3)), steps=draw(st.sampled_from([None, 2])),
        activation=activation,
        levels=draw(st.integers(1, 7)) if activation == "spike" else 1,
        alpha=draw(st.booleans()), bias=draw(st.booleans()), density=draw(st.floats(0.05, 0.9)))


def _inputs(case, seed, device=DEVICE):
    g = generator(seed)
    lead = (case["batch"],) if case["steps"] is None else (case["steps"], case["batch"])
    shape = (*lead, case["cin"], *case["size"])
    if case["activation"] == "spike":
        fire = torch.rand(shape, generator=g) < case["density"]
        x = fire * torch.randint(1, case["levels"] + 1, shape, generator=g)
    else:
        x = torch.where(torch.rand(shape, generator=g) < case["density"], 1, -1)
    w = torch.randn(case["cout"], case["cin"], *case["kernel"], generator=g)
    w[torch.rand(w.shape, generator=g) < 0.05] = 0.0  # sign(0) = +1 must hold
    alpha = torch.rand(case["cout"], generator=g) + 0.1 if case["alpha"] else None
    bias = torch.randn(case["cout"], generator=g) if case["bias"] else None
    return tuple(None if t is None else t.to(device) for t in (x.float(), w, alpha, bias))


def _expected(x, w, alpha, bias, case):
    """F.conv2d on the binarised weights, integer part exact (float64), then the epilogue."""
    x4 = x.reshape(-1, *x.shape[-3:]).double()
    dot = F.conv2d(x4, ref.sign(w).double(), None, case["stride"], case["padding"],
                   case["dilation"]).float()
    out = dot if alpha is None else dot * alpha.reshape(-1, 1, 1)
    out = out if bias is None else out + bias.reshape(-1, 1, 1)
    return out.reshape(*x.shape[:-3], *out.shape[1:])


def _run(x, w, alpha, bias, case, backend, **kw):
    return fastsnn.binary_conv2d(x, w, alpha, bias, stride=case["stride"],
                                 padding=case["padding"], dilation=case["dilation"],
                                 activation=case["activation"], levels=case["levels"],
                                 backend=backend, **kw)


# ------------------------------------------------------------------------- forward

@pytest.mark.parametrize("backend", [b for b in _backends() if b != "triton"])
@given(case=conv_cases(), seed=st.integers(0, 2**31 - 1))
def test_matches_conv2d_on_binarised_weights(backend, case, seed):
    x, w, alpha, bias = _inputs(case, seed)
    out = _run(x, w, alpha, bias, case, backend, validate=True)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, _expected(x, w, alpha, bias, case), rtol=0, atol=0)
    if alpha is not None:  # the float convolution itself, up to its float32 rounding
        wb = alpha.reshape(-1, 1, 1, 1) * ref.sign(w)
        conv = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
        x4 = x.reshape(-1, *x.shape[-3:])
        plain = F.conv2d(x4, wb, bias, **conv)
        # float32 summation error grows with the sum of |terms| (thousands of them at 258
        # channels x 5x3 x 6 levels): bound each element by it, not by one fixed atol
        terms = F.conv2d(x4.abs(), wb.abs(), None, **conv)
        err = (out.reshape(plain.shape) - plain).abs()
        assert bool((err <= 4e-6 * terms + 1e-5).all()), float((err - 4e-6 * terms).max())


@settings(max_examples=8)
@given(case=conv_cases(max_channels=70), seed=st.integers(0, 2**31 - 1))
def test_triton_matches_conv2d(case, seed):
    require_backend("triton", KERNEL)
    x, w, alpha, bias = _inputs(case, seed)
    out = _run(x, w, alpha, bias, case, "triton")
    torch.testing.assert_close(out, _expected(x, w, alpha, bias, case), rtol=0, atol=0)


@pytest.mark.parametrize("isa", _cpu_isas())
@settings(max_examples=15)
@given(case=conv_cases(), seed=st.integers(0, 2**31 - 1))
def test_every_cpu_popcount_path(isa, case, seed):
    x, w, alpha, bias = _inputs(case, seed, torch.device("cpu"))
    with pytest.MonkeyPatch.context() as mp:  # read by the kernel at each call
        mp.setenv("FASTSNN_CPU_ISA", isa)
        assert torch.ops.fastsnn.binary_conv2d_cpu_isa() == isa
        out = _run(x, w, alpha, bias, case, "cpu")
    torch.testing.assert_close(out, _expected(x, w, alpha, bias, case), rtol=0, atol=0)


def test_unknown_cpu_isa_is_an_error(monkeypatch):
    require_backend("cpu", KERNEL, torch.device("cpu"))
    monkeypatch.setenv("FASTSNN_CPU_ISA", "sse9")
    x, w = torch.ones(1, 3, 4, 4), torch.randn(2, 3, 3, 3)
    with pytest.raises(RuntimeError, match="FASTSNN_CPU_ISA"):
        fastsnn.binary_conv2d(x, w, backend="cpu")


@pytest.mark.parametrize("backend", _backends())
def test_hand_computed_padding_and_sign(backend):
    """One channel, 3x3 all-plus weight, padding 1: corners see 4 taps, edges 6, centre 9."""
    x = torch.ones(1, 1, 3, 3, device=DEVICE)
    w = torch.zeros(1, 1, 3, 3, device=DEVICE)  # sign(0) = +1
    out = fastsnn.binary_conv2d(x, w, padding=1, backend=backend)
    want = torch.tensor([[4.0, 6, 4], [6, 9, 6], [4, 6, 4]], device=DEVICE)
    assert torch.equal(out[0, 0], want)
    out = fastsnn.binary_conv2d(-x, -torch.ones_like(w), padding=1, activation="sign",
                                backend=backend)
    assert torch.equal(out[0, 0], want)  # (-1) * (-1) per valid tap, padding adds nothing


@pytest.mark.parametrize("backend", _backends())
def test_packed_weight_and_folded_time(backend):
    g = generator(3)
    x = (torch.rand(3, 2, 40, 6, 5, generator=g) < 0.3).float().to(DEVICE)
    w = torch.randn(7, 40, 3, 2, generator=g).to(DEVICE)
    packed = PackedBinaryWeight.from_float(w, "channel")
    out = fastsnn.binary_conv2d(x, packed, padding=1, backend=backend)
    want = fastsnn.binary_conv2d(x.reshape(6, 40, 6, 5), w, "channel", padding=1,
                                 backend="reference")
    assert out.shape == (3, 2, 7, 6, 6)
    torch.testing.assert_close(out.reshape(want.shape), want, rtol=0, atol=0)
    assert packed.nbytes == 7 * 6 * 2 * 4 + 7 * 4  # 6 taps x 2 words (40 channels) + alpha


@pytest.mark.parametrize("backend", _backends())
def test_empty_batch_and_other_dtypes(backend):
    w = torch.randn(4, 3, 3, 3, device=DEVICE)
    out = fastsnn.binary_conv2d(torch.zeros(0, 3, 5, 5, device=DEVICE), w, backend=backend)
    assert out.shape == (0, 4, 3, 3)
    x = (torch.rand(2, 3, 5, 5, device=DEVICE) < 0.5).float()
    want = fastsnn.binary_conv2d(x, w, backend="reference")
    for dtype in (torch.bfloat16, torch.float64):
        out = fastsnn.binary_conv2d(x.to(dtype), w, backend=backend)
        assert out.dtype == dtype
        torch.testing.assert_close(out.float(), want.to(dtype).float(), rtol=0, atol=0)


# ------------------------------------------------------------------------- packing

@given(shape=st.lists(st.integers(1, 70), min_size=1, max_size=3), bits=st.integers(1, 4),
       dim_seed=st.integers(0, 10), seed=st.integers(0, 2**31 - 1))
def test_bitpack_round_trip(shape, bits, dim_seed, seed):
    x = torch.randint(0, 2**bits, shape, generator=generator(seed))
    dim = dim_seed % len(shape) - (len(shape) if dim_seed % 2 else 0)
    words = fastsnn.bitpack(x, bits=bits, dim=dim)
    d = dim % len(shape)
    expected = list(shape)
    expected[d:d + 1] = ([bits] if bits > 1 else []) + [-(-shape[d] // 32)]
    assert words.dtype == torch.int32 and list(words.shape) == expected
    assert torch.equal(ref.bitunpack(words, shape[d], bits=bits, dim=dim), x)


def test_bitpack_layout():
    x = torch.zeros(70, dtype=torch.int64)
    x[[0, 5, 31, 33, 69]] = 1
    words = fastsnn.bitpack(x, dim=0)
    assert words.tolist() == [(1 | 1 << 5 | 1 << 31) - 2**32, 1 << 1, 1 << 5]
    planes = fastsnn.bitpack(torch.tensor([[3, 2, 1]]), bits=2, dim=1)  # [1, 2 planes, 1]
    assert planes.tolist() == [[[0b101], [0b011]]]


def test_weight_pack_round_trip():
    w = torch.randn(5, 70, 3, 2, generator=generator(1))
    w[0, 0, 0, 0] = 0.0
    packed = ref.pack_weight(w)
    assert packed.shape == (5, 6, 3) and packed.dtype == torch.int32
    assert torch.equal(ref.unpack_weight(packed, 70, (3, 2)), ref.sign(w))
    assert ref.sign(w)[0, 0, 0, 0] == 1


@pytest.mark.parametrize("bad", [0.5, -1.0, 4.0])
def test_bitpack_rejects_bad_values(bad):
    x = torch.zeros(3, 4)
    x[1, 2] = bad
    with pytest.raises(ValueError, match="integers in 0..3"):
        fastsnn.bitpack(x, bits=2)
    with pytest.raises(ValueError, match="bits"):
        fastsnn.bitpack(torch.zeros(3), bits=0, dim=0)
    with pytest.raises(ValueError, match="dim"):
        fastsnn.bitpack(torch.zeros(3), dim=1)


# ------------------------------------------------------------------------- gradients

def _grads(out, tensors, seed):
    g = torch.randn(out.shape, generator=generator(seed)).to(out.device)
    return torch.autograd.grad(out, tensors, g, allow_unused=True)


# The backward is the same Python code for every kernel backend (the interpreted triton
# forward is slow; its gradients are covered by the clipped-estimator test below).
@pytest.mark.parametrize("backend", [b for b in _backends() if b != "triton"])
@pytest.mark.parametrize("alpha_kind", ["channel", "tensor", None])
@given(case=conv_cases(max_channels=80), seed=st.integers(0, 2**31 - 1))
@settings(max_examples=10)
def test_gradients_equal_the_float_path(backend, alpha_kind, case, seed):
    x, w, _, bias = _inputs(case, seed)
    w = (w * 1.5).requires_grad_(True)  # some |W| > 1: the clipped estimator zeroes them
    x.requires_grad_(True)
    alpha = {"channel": "channel", None: None,
             "tensor": (torch.rand(case["cout"], generator=generator(seed)) + 0.5).to(
                 DEVICE).requires_grad_(True)}[alpha_kind]
    bias = None if bias is None else bias.requires_grad_(True)
    params = [t for t in (x, w, alpha, bias) if isinstance(t, torch.Tensor)]
    out = _run(x, w, alpha, bias, case, backend)
    got = _grads(out, params, seed)
    float_out = ref.float_path(x, w, alpha, bias, case["stride"], case["padding"],
                               case["dilation"])
    want = _grads(float_out, params, seed)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", _backends())
def test_straight_through_estimator_is_clipped(backend):
    g = generator(5)
    x = (torch.rand(2, 6, 5, 5, generator=g) < 0.4).float().to(DEVICE)
    w = (torch.randn(3, 6, 3, 3, generator=g) * 1.5).to(DEVICE).requires_grad_(True)
    gout = torch.randn(2, 3, 5, 5, generator=g).to(DEVICE)
    out = fastsnn.binary_conv2d(x, w, None, padding=1, backend=backend)
    (gw,) = torch.autograd.grad(out, w, gout)
    gwb = torch.nn.grad.conv2d_weight(x, w.shape, gout, padding=1)
    torch.testing.assert_close(gw, gwb * (w.abs() <= 1), rtol=1e-5, atol=1e-5)
    assert bool((gw[w.abs() > 1] == 0).all())


def test_module_gradients_equal_the_float_path():
    """The module (train mode) against the packed op's autograd, and against x grads in eval."""
    g = generator(11)
    m = BinaryConv2d(20, 9, 3, padding=1, bias=True).to(DEVICE)
    with torch.no_grad():
        m.weight.mul_(3.0)  # push some latent weights outside [-1, 1]
    x = (torch.rand(2, 3, 20, 6, 6, generator=g) < 0.3).float().to(DEVICE).requires_grad_()
    out = m(x)
    got = _grads(out, [x, m.weight, m.bias], 1)
    backend = (["reference"] + fast_backends(KERNEL))[-1]
    out2 = fastsnn.binary_conv2d(x, m.weight, "channel", m.bias, padding=1, backend=backend)
    want = _grads(out2, [x, m.weight, m.bias], 1)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    m.eval()
    (gx_eval,) = _grads(m(x), [x], 1)
    torch.testing.assert_close(gx_eval, got[0], rtol=1e-4, atol=1e-4)


def test_opcheck():
    require_backend("cpu", KERNEL, torch.device("cpu"))
    g = generator(2)
    x = (torch.rand(2, 5, 6, 6, generator=g) < 0.5).float().requires_grad_(True)
    w = torch.randn(4, 5, 3, 3, generator=g)
    args = (x, ref.pack_weight(w), ref.sign(w).requires_grad_(True),
            torch.rand(4, generator=g).requires_grad_(True), torch.randn(4, generator=g),
            [1, 2], [1, 0], [1, 1], 3, 3, 0, 1)
    torch.library.opcheck(OP.kernel("binary_conv2d_forward", "cpu"), args)


@pytest.mark.parametrize("backend", [b for b in _backends() if b != "triton"])
def test_fullgraph_no_recompile_across_T(backend):
    """Under torch.compile(fullgraph=True): one graph for every T, forward and backward."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    counter = CompileCounter()
    w = torch.randn(5, 6, 3, 3, generator=generator(9)).to(DEVICE).requires_grad_(True)
    packed = PackedBinaryWeight.from_float(w.detach())

    def step(x):
        a = fastsnn.binary_conv2d(x, w, "channel", padding=1, backend=backend)
        return a + fastsnn.binary_conv2d(x, packed, padding=1, backend=backend)

    compiled = torch.compile(step, backend=counter, fullgraph=True, dynamic=True)
    for t in (2, 3, 7):
        x = (torch.rand(t, 4, 6, 5, 5, generator=generator(t)) < 0.3).float().to(DEVICE)
        got = compiled(x)
        assert torch.equal(got, step(x))
        got.sum().backward()
    assert counter.frame_count == 1


# ------------------------------------------------------------------------- module

def test_module_modes_and_state_dict_round_trip():
    g = generator(4)
    m = BinaryConv2d(70, 12, 3, stride=1, padding=1, bias=True).to(DEVICE)
    with torch.no_grad():
        m.bias.copy_(torch.randn(12, generator=g))
    x = (torch.rand(2, 2, 70, 7, 7, generator=g) < 0.3).float().to(DEVICE)
    train_out = m(x)
    m.eval()
    eval_out = m(x)
    torch.testing.assert_close(eval_out, train_out, rtol=1e-5, atol=1e-4)
    exact = fastsnn.binary_conv2d(x, m.weight, "channel", m.bias, padding=1,
                                  backend="reference")
    assert torch.equal(eval_out, exact)
    fp = m.set_binarized(False)(x)
    torch.testing.assert_close(fp, F.conv2d(x.reshape(4, 70, 7, 7), m.weight, m.bias,
                                            padding=1).reshape(fp.shape))
    m.set_binarized(True)
    float_bytes = m.weight.nbytes
    packed = m.pack()
    assert m.weight is None and packed.words.nbytes * 32 >= float_bytes
    assert packed.words.nbytes == 12 * 9 * 3 * 4  # 3 words of 32 bits for 70 channels
    state = m.state_dict()
    assert set(state) == {"weight_packed", "alpha", "bias"}
    assert state["weight_packed"].dtype == torch.int32
    assert torch.equal(m(x), eval_out)
    fresh = BinaryConv2d(70, 12, 3, padding=1, bias=True).to(DEVICE)
    fresh.load_state_dict(state)
    assert fresh.packed and fresh.training
    assert torch.equal(fresh(x), eval_out)  # packed modules run the kernel in any mode
    with pytest.raises(RuntimeError, match="full-precision"):
        fresh.set_binarized(False)
    with pytest.raises(RuntimeError, match="latent float"):
        fresh.load_state_dict(BinaryConv2d(70, 12, 3, bias=True).state_dict())


def test_module_without_alpha_and_sign_activation():
    m = BinaryConv2d(5, 3, (1, 3), padding=(0, 1), alpha=None, activation="sign").eval()
    x = torch.where(torch.rand(2, 5, 4, 4, generator=generator(6)) < 0.5, 1.0, -1.0)
    out = m(x.to(DEVICE))
    want = F.conv2d(x.double(), ref.sign(m.weight.detach().cpu()).double(),
                    padding=(0, 1)).float()
    assert torch.equal(out.cpu(), want)


def test_module_validates_its_first_call_only():
    m = BinaryConv2d(4, 2, 3, levels=3).to(DEVICE)
    bad = torch.full((1, 4, 5, 5), 0.5, device=DEVICE)
    with pytest.raises(ValueError, match="not valid"):
        m(bad)
    good = torch.full((1, 4, 5, 5), 3.0, device=DEVICE)
    m(good)
    m(torch.full((1, 4, 5, 5), 7.0, device=DEVICE))  # no longer checked: caller's contract


def test_module_eval_cache_follows_weight_updates():
    m = BinaryConv2d(8, 4, 3).to(DEVICE).eval()
    x = (torch.rand(1, 8, 5, 5, generator=generator(8)) < 0.5).float().to(DEVICE)
    first = m(x)
    with torch.no_grad():
        m.weight.neg_()
    assert bool((m.weight != 0).all())  # kaiming init: negating flips every sign
    assert torch.equal(m(x), -first)


# ------------------------------------------------------------------------- bad input

def _bad(match, exc=ValueError, **kw):
    args = dict(x=torch.ones(1, 3, 5, 5), weight=torch.randn(2, 3, 3, 3))
    args.update(kw)
    x, w = args.pop("x"), args.pop("weight")
    with pytest.raises(exc, match=match):
        fastsnn.binary_conv2d(x, w, backend="reference" if not _cpu_isas() else "cpu", **args)


def test_bad_input():
    _bad("x dtype", TypeError, x=torch.ones(1, 3, 5, 5, dtype=torch.int32))
    _bad(r"\[N, C, H, W\]", x=torch.ones(3, 5, 5))
    _bad("input channels", weight=torch.randn(2, 4, 3, 3))
    _bad("weight must be", weight=torch.randn(2, 3, 3))
    _bad("floating", TypeError, weight=torch.ones(2, 3, 3, 3, dtype=torch.int64))
    _bad("stride", stride=0)
    _bad("padding", padding=-1)
    _bad("dilation", dilation=(1, 0))
    _bad("stride", TypeError, stride=1.5)
    _bad("dilated kernel", weight=torch.randn(2, 3, 7, 3))
    _bad("alpha", alpha=torch.ones(3))
    _bad("alpha", alpha="tensor")
    _bad("bias", bias=torch.ones(5))
    _bad("levels", levels=0)
    _bad("levels", levels=2, activation="sign")
    _bad("activation", activation="relu")
    _bad("not valid", x=torch.full((1, 3, 5, 5), 0.5), validate=True)
    _bad("not valid", x=torch.full((1, 3, 5, 5), 7.0), levels=3, validate=True)
    _bad("not valid", x=torch.zeros(1, 3, 5, 5), activation="sign", validate=True)
    packed = PackedBinaryWeight.from_float(torch.randn(2, 3, 3, 3))
    _bad("alpha given twice", weight=packed, alpha=torch.ones(2))
    with pytest.raises(ValueError, match="backend"):
        fastsnn.binary_conv2d(torch.ones(1, 3, 5, 5), torch.randn(2, 3, 3, 3), backend="gpu")


def test_kernel_binding_checks_its_contract():
    require_backend("cpu", KERNEL, torch.device("cpu"))
    forward = OP.kernel("binary_conv2d_forward", "cpu")

    def op(x, w, alpha, bias, *rest):
        return forward(x, w, None, alpha, bias, *rest)

    x, w = torch.ones(1, 40, 5, 5), ref.pack_weight(torch.randn(2, 40, 3, 3))
    op(x, w, None, None, [1, 1], [0, 0], [1, 1], 3, 3, 0, 1)
    with pytest.raises(ValueError, match="wpacked"):
        op(x, w[:, :, :1].contiguous(), None, None, [1, 1], [0, 0], [1, 1], 3, 3, 0, 1)
    with pytest.raises(TypeError, match="x must be float32"):
        op(x.double(), w, None, None, [1, 1], [0, 0], [1, 1], 3, 3, 0, 1)
    with pytest.raises(ValueError, match="bits"):
        op(x, w, None, None, [1, 1], [0, 0], [1, 1], 3, 3, 1, 2)
    with pytest.raises(ValueError, match="alpha"):
        op(x, w, torch.ones(3), None, [1, 1], [0, 0], [1, 1], 3, 3, 0, 1)
    with pytest.raises(ValueError, match="larger than the padded input"):
        op(torch.ones(1, 40, 2, 2), w, None, None, [1, 1], [0, 0], [1, 1], 3, 3, 0, 1)
