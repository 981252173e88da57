"""The CUDA mt_lif kernels' arithmetic, run on the host against the reference.

``csrc/cuda/mt_lif_step.cuh`` holds the per-element arithmetic and the per-thread time loops
of the CUDA kernels as ``__host__ __device__`` code; ``tests/cuda_emu/mt_lif_emu.cpp``
runs exactly those loops for every thread of the grid with a host compiler. This checks the
kernels' arithmetic bit for bit on machines without a GPU. Not covered here (they need a
GPU): the vector loads/stores, the launch geometry and the block/segment reductions of
``mt_lif.cu``; the emulation returns each thread's per-element sums over time instead.
"""

from __future__ import annotations

import ctypes
import importlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastsnn.reference.surrogate import SURROGATES, multi_bump

# The module, not the function fastsnn.reference re-exports under the same name.
ref = importlib.import_module("fastsnn.reference.mt_lif")
ROOT = Path(__file__).resolve().parents[1]
CXX = shutil.which("g++") or shutil.which("c++")
RESETS = ("hard", "soft", "none")
FORMS = ("stbp", "plif")
SAVE_SG, SAVE_H = 1, 2


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    if CXX is None:
        pytest.skip("no host C++ compiler")
    lib_path = tmp_path_factory.mktemp("emu") / "mt_lif_emu.so"
    cmd = [CXX, "-O2", "-std=c++20", "-ffp-contract=off", "-fPIC", "-shared",
           f"-I{ROOT / 'csrc'}", str(ROOT / "tests/cuda_emu/mt_lif_emu.cpp"),
           "-o", str(lib_path)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr}"
    lib = ctypes.CDLL(str(lib_path))
    ptr = ctypes.c_void_p
    lib.emu_forward.argtypes = [ptr, ptr, ctypes.c_int] + [ptr] * 10
    lib.emu_backward.argtypes = [ptr, ptr, ctypes.c_int] + [ptr] * 15
    return lib


def _ptr(a: np.ndarray | None):
    return None if a is None else ctypes.c_void_p(a.ctypes.data)


def _f32(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else np.ascontiguousarray(t.detach().numpy(), dtype=np.float32)


def _f32_value(v: float) -> float:
    return float(np.float32(v))


# (reset, detach_reset, save): every code path of the backward's local derivative. Save mode
# Sg never serves an attached hard reset (the op keeps h there).
PATHS = [(r, d, save) for r in RESETS for d in (False, True) for save in (SAVE_SG, SAVE_H)
         if not (r == "hard" and not d and save == SAVE_SG)]


@st.composite
def cases(draw, reset, detach, save):
    c = dict(T=draw(st.integers(0, 5)), N=draw(st.integers(1, 3)), C=draw(st.integers(1, 4)),
             R=draw(st.integers(1, 4)), levels=draw(st.integers(1, 3)), reset=reset,
             surrogate=draw(st.sampled_from(SURROGATES)), form=draw(st.sampled_from(FORMS)),
             detach=detach, save=save, decay_per_channel=draw(st.booleans()),
             syn=draw(st.sampled_from([None, "shared", "channel"])),
             has_v0=draw(st.booleans()), syn_grad=draw(st.booleans()),
             threshold=_f32_value(draw(st.sampled_from([1.0, 0.5, 0.3, 0.7, 1.1]))),
             vec=draw(st.sampled_from([1, 2, 4])), seed=draw(st.integers(0, 2**31 - 1)),
             v_reset=_f32_value(draw(st.sampled_from([0.0, 0.0, -0.5, 0.3]))),
             stream=draw(st.booleans()))
    # Width 2*threshold puts the rect bump's edge |z| = a/2 on inputs that sit on a level.
    width = draw(st.sampled_from([1.0, 2.0, 0.5, 1.3]))
    c["width"] = _f32_value(c["threshold"] * width if width in (1.0, 2.0) else width)
    c["decay_grad"] = save == SAVE_H and draw(st.booleans())  # gdecay needs h
    c["syn_grad"] = c["syn_grad"] and c["syn"] is not None
    if (c["N"] * c["C"] * c["R"]) % c["vec"]:
        c["vec"] = 1
    # j is kept for gsyn and for a plif gdecay (j = x without the synaptic current).
    c["save_j"] = c["syn_grad"] or (c["decay_grad"] and c["form"] == "plif")
    return c


def _inputs(c):
    g = torch.Generator().manual_seed(c["seed"])
    T, N, C, R = c["T"], c["N"], c["C"], c["R"]
    x = torch.randn(T, N, C, R, generator=g) * 1.5
    # Some inputs exactly on a threshold k*vth (rounded like the kernels): at t = 0 without
    # v0 they give h exactly on it, which checks the >= convention bit for bit.
    k = torch.randint(0, c["levels"] + 2, x.shape, generator=g).to(torch.float32)
    on_level = (k * torch.tensor(c["threshold"], dtype=torch.float32))
    x = torch.where(torch.rand(x.shape, generator=g) < 0.3, on_level, x)
    decay = torch.rand(C if c["decay_per_channel"] else 1, generator=g) * 0.95 + 0.05
    syn = None
    if c["syn"] is not None:
        syn = torch.rand(C if c["syn"] == "channel" else 1, generator=g) * 0.95 + 0.05
    v0 = torch.randn(N, C, R, generator=g) * 0.5 if c["has_v0"] else None
    grad_s = torch.randn(T, N, C, R, generator=g)
    # streaming: an initial synaptic current, and gradients of the final state
    stream = [torch.randn(N, C, R, generator=g) if c["stream"] else None for _ in range(3)]
    if syn is None:
        stream[0] = stream[2] = None
    return x, decay, syn, v0, grad_s, stream


def _int_args(c):
    return np.array([c["T"], c["N"], c["C"], c["R"], 1 if not c["decay_per_channel"] else c["C"],
                     0 if c["syn"] is None else (1 if c["syn"] == "shared" else c["C"]),
                     c["has_v0"], c["levels"], RESETS.index(c["reset"]),
                     SURROGATES.index(c["surrogate"]), FORMS.index(c["form"]), c["save"],
                     c["detach"], c["save_j"], c["decay_grad"], c["syn_grad"],
                     c["stream"] and c["syn"] is not None, c["stream"], c["stream"],
                     c["stream"] and c["syn"] is not None], dtype=np.int64)


def _dbl_args(c):
    return np.array([c["threshold"], c["width"], c["v_reset"]], dtype=np.float64)


def _ref_param(p: torch.Tensor | None):
    """The contract's [1] / [C] parameter as the reference takes it (0-d when shared)."""
    if p is None:
        return None
    return p.reshape(()) if p.numel() == 1 else p


def _ref_options(c):
    return dict(threshold=c["threshold"], levels=c["levels"], reset=c["reset"],
                surrogate=c["surrogate"], width=c["width"], detach_reset=c["detach"],
                form=c["form"], v_reset=c["v_reset"])


def _run_forward(emu, c, x, decay, syn, v0, j0):
    shape = tuple(x.shape)
    s, saved, j = (np.full(shape, np.nan, np.float32) for _ in range(3))
    u_final, j_final = (np.full(shape[1:], np.nan, np.float32) for _ in range(2))
    args = [_f32(x), _f32(decay), _f32(syn), _f32(v0), _f32(j0)]
    rc = emu.emu_forward(_ptr(_int_args(c)), _ptr(_dbl_args(c)), c["vec"], *map(_ptr, args),
                         _ptr(s), _ptr(saved), _ptr(j), _ptr(u_final), _ptr(j_final))
    assert rc == 0
    return s, saved, j, u_final, j_final


def _exact(actual: np.ndarray, expected: torch.Tensor, what: str):
    np.testing.assert_array_equal(actual, expected.numpy(), err_msg=what)


def _close(actual: np.ndarray, expected: torch.Tensor, what: str, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(actual, expected.numpy(), rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("path", PATHS)
@settings(deadline=None)
@given(data=st.data())
def test_forward_matches_reference(emu, path, data):
    c = data.draw(cases(*path))
    x, decay, syn, v0, _, (j0, _, _) = _inputs(c)
    s, saved, j, u_final, j_final = _run_forward(emu, c, x, decay, syn, v0, j0)
    s_ref, h_ref, j_ref, u_ref = ref.trajectory(x, _ref_param(decay), syn_decay=_ref_param(syn),
                                                v0=v0, j0=j0, **_ref_options(c))
    if c["stream"]:
        _exact(u_final, u_ref[-1], "final u")
        if syn is not None:
            _exact(j_final, j_ref[-1], "final j")
    if c["T"] == 0:
        return
    _exact(s, torch.stack(s_ref), "spikes")
    h_ref = torch.stack(h_ref)
    if c["save"] == SAVE_H:
        _exact(saved, h_ref, "saved h")
    else:
        sg_ref = multi_bump(h_ref, c["threshold"], c["levels"], c["surrogate"], c["width"])
        check = _close if c["surrogate"] == "sigmoid" else _exact
        check(saved, sg_ref, "saved sg")
    if c["save_j"]:
        _exact(j, torch.stack(j_ref[1:]), "saved j")


def _channel_sums(acc: np.ndarray, per_channel: bool) -> np.ndarray:
    """The reduction the GPU does (float64 here): over everything, or all but the channel."""
    sums = acc.astype(np.float64).sum(axis=(0, 2))
    return sums if per_channel else np.array([sums.sum()])


@pytest.mark.parametrize("path", PATHS)
@settings(deadline=None)
@given(data=st.data())
def test_backward_matches_reference_recursion(emu, path, data):
    c = data.draw(cases(*path))
    x, decay, syn, v0, grad_s, (j0, grad_u, grad_j) = _inputs(c)
    s, saved, j, _, _ = _run_forward(emu, c, x, decay, syn, v0, j0)
    shape, step = tuple(x.shape), tuple(x.shape[1:])
    gx = np.full(shape, np.nan, np.float32)
    gv0, gj0, acc_decay, acc_syn = (np.full(step, np.nan, np.float32) for _ in range(4))
    args = [_f32(grad_s), _f32(grad_u), _f32(grad_j), s, saved, j if c["save_j"] else None,
            _f32(decay), _f32(syn), _f32(v0), _f32(j0)]
    rc = emu.emu_backward(_ptr(_int_args(c)), _ptr(_dbl_args(c)), c["vec"], *map(_ptr, args),
                          _ptr(gx), _ptr(gv0), _ptr(gj0), _ptr(acc_decay), _ptr(acc_syn))
    assert rc == 0
    gx_ref, gdecay_ref, gsyn_ref, gv0_ref, *gj0_ref = ref.backward_recursion(
        grad_s, x, _ref_param(decay), syn_decay=_ref_param(syn), v0=v0, j0=j0, grad_u=grad_u,
        grad_j=grad_j, **_ref_options(c))
    # rect and triangle are computed operation by operation as the reference does them;
    # sigmoid uses expf, torch's sigmoid another formula: equal to tolerance only.
    check = _close if c["surrogate"] == "sigmoid" else _exact
    check(gx, gx_ref, "gx")
    if c["has_v0"]:
        check(gv0, gv0_ref, "gv0")
    if j0 is not None:
        check(gj0, gj0_ref[0], "gj0")
    if c["decay_grad"]:
        _close(_channel_sums(acc_decay, c["decay_per_channel"]), gdecay_ref.reshape(-1),
               "gdecay", rtol=1e-4, atol=1e-4)
    if c["syn_grad"]:
        _close(_channel_sums(acc_syn, c["syn"] == "channel"), gsyn_ref.reshape(-1), "gsyn",
               rtol=1e-4, atol=1e-4)
