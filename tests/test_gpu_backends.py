"""The ``cuda`` backend of ``mt_lif`` against the reference, on fresh random inputs.

Runs with CUDA tensors (``FASTSNN_TEST_DEVICE=cuda``, ``make gpu-check``); skipped with the
reason elsewhere. Spikes must match the reference bit for bit in every dtype (the kernels
are compiled without fused multiply-adds and recur in float32), gradients to a tolerance
(reduction order). The host emulation (tests/test_mt_lif_cuda_emu.py) checks the same
arithmetic without a GPU; this is the compiled kernel on the device.
"""


import pytest
import torch
from helpers import require_backend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mt_lif_compare import assert_matches_reference, random_inputs, surrogate_parameters

from fastsnn.ops import mt_lif as op  # noqa: E402
from fastsnn.reference.surrogate import SURROGATES

CUDA = torch.device("cuda")
# the triton backend's tolerances (tests/test_mt_lif_triton.py): same reduction-order error
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}
SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(autouse=True)
def _needs_cuda_backend():
    require_backend("cuda", "mt_lif", CUDA)


@st.composite
def cases(draw, dtypes):
    """Shape ``[T, N, C, ...]``, options, parameters (float / 0-d / [C], grad or not)."""
    shape = [draw(st.integers(1, 6)), draw(st.integers(0, 3)), draw(st.integers(1, 4))]
    shape += draw(st.lists(st.integers(1, 40), max_size=2))
    options = dict(levels=draw(st.integers(1, 4)), reset=draw(st.sampled_from(op.RESETS)),
                   surrogate=draw(st.sampled_from(SURROGATES)),
                   detach_reset=draw(st.booleans()), form=draw(st.sampled_from(op.FORMS)),
                   threshold=draw(st.floats(0.2, 2.0)),
                   v_reset=draw(st.sampled_from([0.0, 0.0, -0.5, 0.3])))
    options.update(draw(surrogate_parameters(options["surrogate"])))
    return dict(shape=shape, options=options, dtype=draw(st.sampled_from(dtypes)),
                decay=draw(st.sampled_from(["float", "0d", "0d_grad", "C", "C_grad"])),
                syn=draw(st.sampled_from([None, "float", "0d_grad", "C", "C_grad"])),
                v0=draw(st.sampled_from([None, "full", "full_grad"])),
                x_grad=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)))


def _compare(case):
    inputs = random_inputs(case, CUDA)
    assert_matches_reference("cuda", case["options"], inputs, TOLERANCE[case["dtype"]])


@settings(max_examples=150, **SETTINGS)
@given(case=cases(dtypes=(torch.float32,)))
def test_mt_lif_cuda_matches_reference_float32(case):
    _compare(case)


@settings(max_examples=80, **SETTINGS)
@given(case=cases(dtypes=(torch.float16, torch.bfloat16)))
def test_mt_lif_cuda_matches_reference_half(case):
    _compare(case)


@pytest.mark.parametrize("reset", op.RESETS)
@pytest.mark.parametrize("shape", [[3, 2, 3, 3000], [2, 64, 7, 33, 5], [40, 1, 1, 1]])
def test_mt_lif_cuda_many_blocks(reset, shape):
    """Several thread blocks, tails, long time axes."""
    _compare(dict(shape=shape, options=dict(levels=3, reset=reset, surrogate="triangle",
                                            detach_reset=False, form="plif", threshold=0.7,
                                            width=None),
                  dtype=torch.float32, decay="C_grad", syn="C_grad", v0="full_grad",
                  x_grad=True, seed=5))

