"""The C++ CPU backend of ``mt_lif`` against the reference (csrc/cpu/mt_lif.cpp, bound in
csrc/torch/mt_lif.cpp).

Spikes must equal the reference's bit for bit in every dtype: the recursion runs in float32
(float64 for float64) either way. Gradients are compared to this tolerance table (rtol,
and atol times 1 + the largest reference value); "seen" is the worst error over 200-300
random cases of the strategies below per dtype:

==========  =======  =======  ========================================================
dtype       tol      seen     where the differences come from
==========  =======  =======  ========================================================
float64     1e-12    2e-15    summation order (autograd vs the kernel's fixed order)
float32     1e-5     5e-7     summation order; the sigmoid bump's exp (ulps apart)
float16     4e-3     4e-4     sg(h) is kept in float16 for the backward (save mode sg)
bfloat16    3e-2     3e-3     same, in bfloat16
==========  =======  =======  ========================================================
"""

import pytest
import torch
from helpers import generator, require_backend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mt_lif_compare import assert_matches_reference, random_inputs, surrogate_parameters
from torch.utils._python_dispatch import TorchDispatchMode

from fastsnn import mt_lif
from fastsnn._enums import Form, Reset, Save
from fastsnn.ops import mt_lif as op
from fastsnn.reference.mt_lif import backward_recursion
from fastsnn.reference.surrogate import SURROGATES

CPU = torch.device("cpu")
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 4e-3,
             torch.bfloat16: 3e-2}
SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(autouse=True)
def _cpu_backend():
    require_backend("cpu", "mt_lif", CPU)


@st.composite
def cases(draw, dtypes=(torch.float32,)):
    """Shape ([T, N], [T, N, C] or [T, N, C] + 1 or 2 trailing dims), options, parameters
    (float / 0-d / [C], with or without grad), v0, layout and a seed for the values."""
    shape = [draw(st.integers(1, 5)), draw(st.integers(0, 3))]
    shape += draw(st.lists(st.integers(1, 4), max_size=3))
    options = dict(levels=draw(st.integers(1, 4)), reset=draw(st.sampled_from(op.RESETS)),
                   surrogate=draw(st.sampled_from(SURROGATES)),
                   detach_reset=draw(st.booleans()), form=draw(st.sampled_from(op.FORMS)),
                   threshold=draw(st.floats(0.2, 2.0)),
                   v_reset=draw(st.sampled_from([0.0, 0.0, -0.5, 0.3])))
    options.update(draw(surrogate_parameters(options["surrogate"])))
    return dict(shape=shape, options=options, dtype=draw(st.sampled_from(dtypes)),
                decay=draw(st.sampled_from(["float", "0d", "0d_grad", "C", "C_grad"])),
                syn=draw(st.sampled_from([None, "float", "0d", "0d_grad", "C_grad"])),
                v0=draw(st.sampled_from([None, "full", "full_grad", "broadcast_grad"])),
                x_grad=draw(st.booleans()),
                layout=draw(st.sampled_from(["contiguous", "strided", "transposed"])),
                seed=draw(st.integers(0, 2**31 - 1)))


def _compare(case):
    inputs = random_inputs(case, torch.device("cpu"))
    assert_matches_reference("cpu", case["options"], inputs, TOLERANCE[inputs[0].dtype])


@settings(max_examples=150, **SETTINGS)
@given(case=cases())
def test_matches_reference_float32(case):
    _compare(case)


@settings(max_examples=60, **SETTINGS)
@given(case=cases(dtypes=(torch.float64,)))
def test_matches_reference_float64(case):
    _compare(case)


@settings(max_examples=80, **SETTINGS)
@given(case=cases(dtypes=(torch.float16, torch.bfloat16)))
def test_matches_reference_half(case):
    _compare(case)


def _case(shape, **overrides):
    case = dict(shape=shape, options=dict(levels=3, reset="soft", surrogate="triangle",
                                          threshold=0.6),
                dtype=torch.float32, decay="C_grad", syn="C_grad", v0="full_grad",
                x_grad=True, layout="contiguous", seed=11)
    case.update(overrides)
    return case


@pytest.mark.parametrize("form", op.FORMS)
@pytest.mark.parametrize("shape", [[3, 2, 3, 300], [3, 2, 3, 16, 33], [4, 40, 7, 3]])
def test_many_tiles(form, shape):
    """Rows longer than a tile (cut in pieces, a partial last piece) and short rows grouped
    into tiles, with per-channel parameters and their gradients across tile boundaries."""
    case = _case(shape)
    case["options"]["form"] = form
    _compare(case)


@pytest.mark.parametrize("reset", op.RESETS)
def test_single_step_and_empty_batch(reset):
    for shape in ([1, 2, 3, 4], [3, 0, 2, 5], [2, 0]):
        case = _case(shape, seed=len(shape) + shape[1])
        case["options"].update(reset=reset, levels=2)
        if len(shape) < 3:
            case.update(decay="0d_grad", syn="0d_grad")
        _compare(case)


def test_plif_decay_grad_without_synaptic_current():
    """plif's decay gradient reads j[t] = x[t]: the forward saves x (as j) for it."""
    for dtype in (torch.float32, torch.float64):
        case = _case([4, 2, 3, 5], syn=None, dtype=dtype, decay="C_grad")
        case["options"].update(form="plif", reset="hard")
        _compare(case)


def test_parameter_gradients_do_not_depend_on_thread_count():
    gen = generator(3)
    x = torch.randn(4, 8, 16, 600, generator=gen, requires_grad=True)
    decay = torch.full((16,), 0.7, requires_grad=True)
    syn = torch.full((1,), 0.4, requires_grad=True)
    weight = torch.randn(x.shape, generator=gen)
    threads = torch.get_num_threads()
    grads = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            s = mt_lif(x, decay, syn_decay=syn, levels=2, form="plif", backend="cpu")
            grads.append(torch.autograd.grad((s * weight).sum(), (decay, syn)))
    finally:
        torch.set_num_threads(threads)
    for g in grads[1:]:
        assert all(torch.equal(a, b) for a, b in zip(g, grads[0], strict=True))


class _Outputs(TorchDispatchMode):
    """Records the outputs of every fastsnn::mt_lif_forward call."""

    def __init__(self):
        super().__init__()
        self.saved = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.fastsnn.mt_lif_forward.default:
            self.saved.append(out)
        return out


@pytest.mark.parametrize("reset", op.RESETS)
def test_no_grad_forward_saves_nothing(reset):
    x = torch.randn(3, 2, 4, 5, requires_grad=True)
    decay = torch.full((4,), 0.6, requires_grad=True)
    syn = torch.tensor(0.5, requires_grad=True)
    with _Outputs() as rec, torch.no_grad():
        mt_lif(x, decay, syn_decay=syn, form="plif", reset=reset, backend="cpu")
    (_, saved, j, _, _), = rec.saved
    assert saved.numel() == 0 and j.numel() == 0
    with _Outputs() as rec:  # with grad: the kept tensors are there (save mode h and j)
        mt_lif(x, decay, syn_decay=syn, form="plif", reset=reset, backend="cpu")
    (_, saved, j, _, _), = rec.saved
    assert saved.shape == j.shape == (3, 2, 4, 5)


# ------------------------------------------------------------------ the C++ ops directly

OPTIONS = dict(threshold=0.75, v_reset=0.0, levels=3, reset=Reset.SOFT, surrogate=1,
               width=0.75, detach_reset=False, form=Form.PLIF)
FWD, BWD = op.OP.kernel("mt_lif_forward", "cpu"), op.OP.kernel("mt_lif_backward", "cpu")


def _direct(x4, decay, syn, v0, save, save_j, decay_grad, syn_grad, grad_s, **options):
    named = dict(OPTIONS, **options)
    s, saved, j, _, _ = FWD(x4, decay, syn, v0, None, save=save, save_j=save_j,
                            return_state=False, **named)
    gx, gdecay, gsyn, gv0, _ = BWD(grad_s, None, None, s, saved, j, decay, syn, v0, None,
                                   save=save, decay_grad=decay_grad, syn_grad=syn_grad, **named)
    return (s, saved, j), (gx, gdecay, gsyn, gv0)


@pytest.mark.parametrize("decay_shape", [1, 3])
def test_kernel_saves_x_as_j_without_synaptic_current(decay_shape):
    gen = generator(decay_shape)
    x4 = torch.randn(4, 2, 3, 5, generator=gen) * 1.5
    decay = torch.rand(decay_shape, generator=gen) * 0.9 + 0.05
    decay[0] = 1.0  # c = 0: u[t-1] - j[t] cannot be recovered from h, only from x
    v0 = torch.randn(2, 3, 5, generator=gen)
    grad_s = torch.randn(x4.shape, generator=gen)
    (s, saved, j), (gx, gdecay, gsyn, gv0) = _direct(x4, decay, None, v0, Save.H, True,
                                                     True, False, grad_s)
    assert torch.equal(j, x4)
    ref_decay = decay.reshape(-1, 1, 1) if decay_shape > 1 else decay.reshape(())
    want = backward_recursion(grad_s, x4, ref_decay, threshold=0.75, levels=3, reset="soft",
                              surrogate="triangle", width=0.75, form="plif", v0=v0)
    torch.testing.assert_close(gx, want[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gdecay, want[1].reshape(-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gv0, want[3], rtol=1e-5, atol=1e-5)
    assert gsyn.numel() == 0


def test_kernel_rejects_bad_calls():
    """The binding's own checks: a direct call with bad arguments never reaches a kernel."""
    x4 = torch.randn(2, 1, 2, 3)
    decay = torch.full((1,), 0.5)
    nothing = dict(OPTIONS, save=Save.NONE, save_j=False, return_state=False, j0=None)
    with pytest.raises(ValueError, match="contiguous"):
        FWD(x4.transpose(2, 3), decay, None, None, **nothing)
    with pytest.raises(ValueError, match=r"\[T, N, C, R\]"):
        FWD(x4[0], decay, None, None, **nothing)
    with pytest.raises(TypeError, match="decay must have dtype"):
        FWD(x4, decay.double(), None, None, **nothing)
    with pytest.raises(TypeError, match="x must be"):
        FWD(x4.int(), decay, None, None, **nothing)
    with pytest.raises(ValueError, match="syn_decay must be"):
        FWD(x4, decay, torch.full((3,), 0.5), None, **nothing)
    with pytest.raises(ValueError, match="v0 must have shape"):
        FWD(x4, decay, None, torch.zeros(1, 2, 4), **nothing)
    with pytest.raises(ValueError, match="levels"):
        FWD(x4, decay, None, None, **dict(nothing, levels=0))
    hard = dict(reset=Reset.HARD)
    with pytest.raises(ValueError, match="save mode sg cannot serve a hard reset"):
        _direct(x4, decay, None, None, Save.SG, False, False, False, x4, **hard)
    with pytest.raises(ValueError, match="decay gradient"):
        _direct(x4, decay, None, None, Save.SG, False, True, False, x4)
    with pytest.raises(ValueError, match="j must have shape"):  # plif decay grad needs j
        _direct(x4, decay, None, None, Save.H, False, True, False, x4)
    grads = dict(decay_grad=False, syn_grad=False)
    with pytest.raises(ValueError, match="j0 without syn_decay"):
        FWD(x4, decay, None, None, **dict(nothing, j0=torch.zeros(1, 2, 3)))
    s, saved, j, _, _ = FWD(x4, decay, None, None, **nothing)
    none = dict(grad_u=None, grad_j=None, j0=None)
    with pytest.raises(ValueError, match="save = 1 or 2"):
        BWD(x4, s=s, saved=saved, j=j, decay=decay, syn_decay=None, v0=None, **OPTIONS,
            save=Save.NONE, **grads, **none)
    s, saved, j, _, _ = FWD(x4, decay, None, None, **dict(nothing, save=Save.SG))
    with pytest.raises(ValueError, match="grad_s must match"):
        BWD(x4[:1], s=s, saved=saved, j=j, decay=decay, syn_decay=None, v0=None, **OPTIONS,
            save=Save.SG, **grads, **none)
    with pytest.raises(ValueError, match="grad_u must have shape"):
        BWD(x4, s=s, saved=saved, j=j, decay=decay, syn_decay=None, v0=None, **OPTIONS,
            save=Save.SG, **grads, **dict(none, grad_u=torch.zeros(2, 2, 3)))


OPCHECK = [  # (dtype, save, reset, form, per-channel decay)
    (torch.float32, Save.SG, "soft", "plif", False),
    (torch.float32, Save.H, "hard", "stbp", True),
    (torch.float64, Save.H, "none", "plif", True),
    (torch.bfloat16, Save.SG, "hard", "stbp", False),
]


@pytest.mark.parametrize("dtype,save,reset,form,per_channel", OPCHECK)
def test_opcheck(dtype, save, reset, form, per_channel):
    """The custom ops with the cpu backend: schema, fake impl, autograd registration."""
    gen = generator(save)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    x = torch.randn(3, 2, 3, 4, generator=gen).to(dtype).requires_grad_()
    decay = (torch.tensor([0.5, 0.7, 1.0]) if per_channel else torch.tensor([0.6])).to(acc)
    decay.requires_grad_(save == Save.H)
    syn = torch.tensor([0.3], dtype=acc).requires_grad_()
    v0 = torch.randn(2, 3, 4, generator=gen, dtype=acc).requires_grad_()
    detach = reset == "hard" and save == Save.SG
    j0 = torch.randn(2, 3, 4, generator=gen, dtype=acc).requires_grad_()
    options = (0.8, -0.2, 2, Reset[reset.upper()], 2, 0.8, detach, Form[form.upper()])
    args = (x, decay, syn, v0, j0, *options, save, True, True)
    torch.library.opcheck(FWD, args)
    s, saved, j, u_t, j_t = (t.detach() for t in FWD(*args))
    torch.library.opcheck(BWD, (
        torch.randn_like(s), torch.randn_like(u_t), torch.randn_like(j_t), s, saved, j,
        decay.detach(), syn.detach(), v0.detach(), j0.detach(), *options, save,
        save == Save.H, True))
