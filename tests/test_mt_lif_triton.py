"""The Triton backend of ``mt_lif`` against the reference (kernels/mt_lif.py).

Without a GPU the kernels run under the Triton interpreter on CPU tensors, so shapes are
tiny (the whole file takes about 30 s on 2 cores). Float32 spikes must match bit for bit,
half-precision spikes too (the recursion runs in float32 either way); gradients to a
tolerance (the reduction order differs; half inputs keep sg in half precision).
"""

import os

import torch

if not torch.cuda.is_available():  # before triton is imported (tests/conftest.py does the same)
    os.environ.setdefault("TRITON_INTERPRET", "1")

import importlib  # noqa: E402
import inspect  # noqa: E402
import re  # noqa: E402

import pytest  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from mt_lif_compare import assert_matches_reference, random_inputs, surrogate_parameters

from fastsnn import _backends, mt_lif  # noqa: E402
from fastsnn._enums import Form, Reset, Save  # noqa: E402
from fastsnn.ops import mt_lif as op  # noqa: E402
from fastsnn.reference.mt_lif import backward_recursion  # noqa: E402
from fastsnn.reference.surrogate import SURROGATES  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
_WHY_NOT = _backends.why_not("triton", DEVICE.type, op.OP.probe)
pytestmark = [
    pytest.mark.skipif(bool(_WHY_NOT), reason=f"triton backend: {_WHY_NOT}"),
    # the interpreter's numpy exp overflows to inf for far-off sigmoid arguments: harmless
    pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning"),
]


# about 10x the worst error seen over 300 random cases per dtype (3e-7, 2e-4, 5e-3)
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}
SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck))


FWD, BWD = op.OP.kernel("mt_lif_forward", "triton"), op.OP.kernel("mt_lif_backward", "triton")


def _kernels():
    return importlib.import_module("fastsnn.kernels.mt_lif")


@st.composite
def cases(draw, dtypes=(torch.float32,)):
    """Shape, options, parameters (float / 0-d / [C], with or without grad), layout."""
    shape = [draw(st.integers(1, 4)), draw(st.integers(0, 2))]  # [T, N, C, ...], C optional
    shape += draw(st.lists(st.integers(1, 3), max_size=3))
    options = dict(levels=draw(st.integers(1, 3)), reset=draw(st.sampled_from(op.RESETS)),
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
    inputs = random_inputs(case, DEVICE)
    assert_matches_reference("triton", case["options"], inputs, TOLERANCE[inputs[0].dtype])


@settings(max_examples=200, **SETTINGS)
@given(case=cases())
def test_matches_reference_float32(case):
    _compare(case)


@settings(max_examples=80, **SETTINGS)
@given(case=cases(dtypes=(torch.float16, torch.bfloat16)))
def test_matches_reference_half(case):
    _compare(case)


@pytest.mark.parametrize("form", op.FORMS)
def test_several_programs(form):
    """Steps larger than one block: per-channel parameters across block boundaries and a
    partial last block."""
    case = dict(shape=[3, 3, 5, 4, 5], options=dict(form=form, levels=3, reset="soft",
                                                    surrogate="triangle", threshold=0.6),
                dtype=torch.float32, decay="C_grad", syn="C_grad", v0="full_grad",
                x_grad=True, layout="contiguous", seed=11)
    _compare(case)


@pytest.mark.parametrize("reset", op.RESETS)
def test_single_step_and_empty_batch(reset):
    for shape in ([1, 2, 3, 4], [3, 0, 2, 5]):
        case = dict(shape=shape, options=dict(reset=reset, levels=2, threshold=0.7),
                    dtype=torch.float32, decay="C_grad", syn="0d_grad", v0="full_grad",
                    x_grad=True, layout="contiguous", seed=len(shape) + shape[1])
        _compare(case)


def _direct(x4, decay, syn, v0, opts, save, save_j, decay_grad, syn_grad, grad_s):
    opts = dict(dict(v_reset=0.0), **opts)
    s, saved, j, _, _ = FWD(x4, decay, syn, v0, None, save=save, save_j=save_j,
                            return_state=False, **opts)
    return s, BWD(grad_s, None, None, s, saved, j, decay, syn, v0, None, save=save,
                  decay_grad=decay_grad, syn_grad=syn_grad, **opts)[:4]


@pytest.mark.parametrize("decay_shape", [1, 3])
def test_kernel_plif_decay_grad_without_synaptic_current(decay_shape):
    """The kernel side of the plif decay gradient without j: it reads x saved as j."""
    gen = torch.Generator().manual_seed(decay_shape)
    x4 = (torch.randn(4, 2, 3, 5, generator=gen) * 1.5).to(DEVICE)
    decay = (torch.rand(decay_shape, generator=gen) * 0.9 + 0.05).to(DEVICE)
    decay[0] = 1.0  # c = 0: u[t-1] - j[t] cannot be recovered from h, only from x
    v0 = torch.randn(2, 3, 5, generator=gen).to(DEVICE)
    grad_s = torch.randn(x4.shape, generator=gen).to(DEVICE)
    opts = dict(threshold=0.75, levels=3, reset=Reset.SOFT, surrogate=1, width=0.75,
                detach_reset=False, form=Form.PLIF)
    s, (gx, gdecay, gsyn, gv0) = _direct(x4, decay, None, v0, opts, Save.H, True, True,
                                         False, grad_s)
    ref_decay = decay.reshape(-1, 1, 1) if decay_shape > 1 else decay.reshape(())
    want = backward_recursion(grad_s, x4, ref_decay.clone().requires_grad_(), threshold=0.75,
                              levels=3, reset="soft", surrogate="triangle", width=0.75,
                              form="plif", v0=v0)
    torch.testing.assert_close(gx, want[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gdecay, want[1].reshape(-1), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gv0, want[3], rtol=1e-4, atol=1e-4)
    assert gsyn.numel() == 0


def test_plif_decay_grad_without_synaptic_current_public():
    """Through the public op: the op keeps x for this gradient, which matches the reference."""
    case = dict(shape=[3, 2, 2, 3], options=dict(form="plif", reset="hard"),
                dtype=torch.float32, decay="C_grad", syn=None, v0=None, x_grad=True,
                layout="contiguous", seed=7)
    _compare(case)


def test_backward_rejects_save_mode_it_cannot_use():
    x4 = torch.randn(2, 1, 2, 3).to(DEVICE)
    decay = torch.full((1,), 0.5).to(DEVICE)
    opts = dict(threshold=1.0, levels=1, reset=Reset.HARD, surrogate=0, width=1.0,
                detach_reset=False, form=Form.STBP)
    with pytest.raises(ValueError, match="save mode sg"):
        _direct(x4, decay, None, None, opts, Save.SG, False, False, False, x4)
    with pytest.raises(ValueError, match="contiguous"):
        FWD(x4.transpose(2, 3), decay, None, None, None, save=Save.NONE, save_j=False,
            return_state=False, v_reset=0.0, **opts)


@pytest.mark.parametrize("save", [Save.SG, Save.H])
def test_opcheck(save):
    """The custom ops with the triton backend: schema, fake impl, autograd registration."""
    gen = torch.Generator().manual_seed(save)
    x = torch.randn(3, 2, 3, 4, generator=gen).to(DEVICE).requires_grad_()
    decay = torch.tensor([0.5, 0.7, 1.0]).to(DEVICE).requires_grad_(save == Save.H)
    syn = torch.tensor([0.3]).to(DEVICE).requires_grad_()
    v0 = torch.randn(2, 3, 4, generator=gen).to(DEVICE).requires_grad_()
    j0 = torch.randn(2, 3, 4, generator=gen).to(DEVICE).requires_grad_()
    options = (0.8, 0.3, 2, Reset.SOFT, 2, 0.8, False, Form.PLIF)
    args = (x, decay, syn, v0, j0, *options, save, True, True)
    torch.library.opcheck(FWD, args)
    s, saved, j, u_t, j_t = (t.detach() for t in FWD(*args))
    torch.library.opcheck(BWD, (
        torch.randn_like(s), torch.randn_like(u_t), torch.randn_like(j_t), s, saved, j,
        decay.detach(), syn.detach(), v0.detach(), j0.detach(), *options, save,
        save == Save.H, True))


@pytest.mark.parametrize("name", ["_mt_lif_fwd_kernel", "_mt_lif_bwd_kernel"])
def test_time_steps_are_not_compiled_in(name):
    """T is a runtime argument excluded from specialisation (T == 1, T % 16 == 0)."""
    kernel = getattr(_kernels(), name)
    param = inspect.signature(kernel.fn).parameters["T"]
    assert "constexpr" not in str(param.annotation)
    # the decorator as written (Triton's own record of it differs between versions)
    source = inspect.getsource(_kernels())
    assert re.search(r'@triton\.jit\(do_not_specialize=\["T"\]\)\s*def ' + name + r"\(", source)


@pytest.mark.skipif(DEVICE.type != "cuda", reason="compilation cache exists only on a GPU")
def test_changing_T_does_not_recompile(monkeypatch):
    import triton

    knobs = getattr(getattr(triton, "knobs", None), "runtime", None)
    if knobs is None or not hasattr(knobs, "jit_cache_hook"):
        pytest.skip(f"triton {triton.__version__} has no jit_cache_hook")
    x = torch.randn(1, 2, 3, 64, device=DEVICE)
    mt_lif(x, backend="triton")
    compiled = []  # Triton calls the hook before compiling a variant it has not cached
    monkeypatch.setattr(knobs, "jit_cache_hook", lambda **kw: compiled.append(kw["fn"]))
    for steps in (2, 5, 16, 33):
        mt_lif(torch.randn(steps, 2, 3, 64, device=DEVICE), backend="triton")
    assert compiled == []


def _compile_for_cuda(arch: int) -> None:
    """Compile a spread of kernel variants to PTX for sm_<arch> (no GPU needed) and check
    that no multiply-add was fused: the bit-exact forward depends on it."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    k = _kernels()
    for reset, save, form, syn, v0, per_c, dtype in [
            (0, 2, 0, True, True, True, "fp32"), (0, 1, 1, False, False, False, "bf16"),
            (1, 1, 1, True, False, True, "fp16"), (2, 2, 1, True, True, False, "fp32")]:
        flags = dict(LEVELS=3, RESET=reset, SURROGATE=2, FORM=form, SAVE=save, HAS_SYN=syn,
                     HAS_V0=v0, DECAY_PER_C=per_c, SYN_PER_C=per_c and syn, BLOCK=1024)
        bwd = dict(flags, DETACH=save == 1, DECAY_GRAD=save == 2, SYN_GRAD=syn)
        for kernel, consts in ((k._mt_lif_fwd_kernel, dict(flags, SAVE_J=True)),
                               (k._mt_lif_bwd_kernel, bwd)):
            storage = {"x_ptr", "s_ptr", "gs_ptr", "gx_ptr"} | (
                {"saved_ptr"} if save == 1 else set())
            signature = {n: "constexpr" if n in consts else f"*{dtype}" if n in storage
                         else "*fp32" if n.endswith("_ptr") else "fp32" if n in ("thr", "a")
                         else "i32" for n in kernel.arg_names}
            compiled = triton.compile(ASTSource(kernel, signature, consts),
                                      target=GPUTarget("cuda", arch, 32),
                                      options=dict(num_warps=4, enable_fp_fusion=False))
            assert "fma." not in compiled.asm["ptx"], (kernel, consts)


@pytest.mark.parametrize("arch", [80, 90])
def test_kernels_compile_for_cuda_without_fma(arch):
    """Catches GPU-only compile errors on machines without a GPU (the interpreter accepts
    some code the compiler rejects). Runs in a subprocess without the interpreter."""
    import subprocess
    import sys

    pytest.importorskip("triton.backends.nvidia")
    env = dict(os.environ, TRITON_INTERPRET="0", PYTHONPATH=os.pathsep.join(sys.path))
    here = os.path.dirname(os.path.abspath(__file__))
    code = (f"import sys; sys.path.insert(0, {here!r}); "
            f"import test_mt_lif_triton as t; t._compile_for_cuda({arch})")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
