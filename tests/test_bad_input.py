"""Every public op and module fed wrong arguments, one at a time.

The oracle: a call either raises ``ValueError`` / ``TypeError`` whose message names the
argument, or it is a documented, valid call, and then the fast backend and the reference
agree on it (both accept with the same result, or both raise). Never another exception
type, a crash or a silently different answer. ``CASES`` at the bottom counts the cases.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import fastsnn
from fastsnn import nn as snn

NAN, INF = float("nan"), float("inf")
# Values that are wrong for most arguments: other types, non-finite, out of range, huge.
GARBAGE = ["abc", None, [1, 2], (), {}, 1.5, -1, 0, 2**40, -(2**40), True, NAN, INF, -INF,
           1 + 1j, object(), torch.tensor(NAN), torch.ones(2, 2), torch.ones(3, dtype=torch.int64),
           torch.ones(1, dtype=torch.complex64), np.float32(NAN), np.int64(-3),
           # valid NumPy scalars, an unsigned value beyond int64, a state with a time axis
           np.float32(0.5), np.int64(2), np.uint64(2**63 + 1), torch.zeros(1, 2, 4, 5),
           torch.tensor([[0, 0, 2**63 - 1, 0], [0, 0, -(2**63), 0]])]


def _mt_lif_args():
    x = torch.randn(3, 2, 4, 5, generator=torch.Generator().manual_seed(0))
    return dict(x=x, decay=0.5, threshold=1.0, levels=2, reset="soft", surrogate="triangle",
                width=0.8, detach_reset=False, form="stbp", syn_decay=None, v0=None,
                v_reset=0.0, state=None, return_state=False)


def _binary_conv_args():
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(2, 3, 6, 6, generator=g) < 0.5).float()
    # validate=True: values outside the activation's set are documented as unspecified
    # with validate=False (the default, for speed), and rejected with it
    return dict(x=x, weight=torch.randn(4, 3, 3, 3, generator=g), alpha=None, bias=None,
                stride=1, padding=1, dilation=1, activation="spike", levels=1, validate=True)


def _events_args():
    ev = torch.tensor([[0, 1, 5, 0], [2, 2, 7, 1], [1, 0, 9, 1], [3, 2, 12, 0]])
    return dict(events=ev, sensor_size=(4, 3, 2), T=2, offsets=None, split_by="number",
                weighting="count", tau_syn=None, spatial_factor=1, merge_polarity=False,
                normalize="none")


def _stcb_args():
    a = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(2)) * 4
    return dict(a=a, T=4, levels=1, threshold=1.0, output="train")


def _spike_count_args():
    return dict(s=(torch.rand(4, 2, 3, generator=torch.Generator().manual_seed(3)) < 0.5)
                .float())


def _bitpack_args():
    return dict(x=torch.tensor([[0, 1, 1], [1, 0, 1]]), bits=1, dim=1)


OPS = {
    "mt_lif": (fastsnn.mt_lif, _mt_lif_args),
    "binary_conv2d": (fastsnn.binary_conv2d, _binary_conv_args),
    "events_to_current": (fastsnn.events_to_current, _events_args),
    "stcb": (fastsnn.stcb, _stcb_args),
    "spike_count": (fastsnn.spike_count, _spike_count_args),
    "bitpack": (fastsnn.bitpack, _bitpack_args),
}
FAST = {name: name != "bitpack" for name in OPS}  # bitpack has no backend argument


def _call(op, args, backend):
    args = dict(args)
    first = next(iter(args))
    positional = args.pop(first)
    if backend is not None:
        args["backend"] = backend
    return op(positional, **args)


def _outcome(op, args, backend):
    """('ok', result) or ('raised', exception)."""
    try:
        return "ok", _call(op, args, backend)
    except (ValueError, TypeError) as exc:
        return "raised", exc


def _cpu_available() -> bool:
    return not fastsnn.backends()["cpu"]["cpu"]


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return (isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype
                and torch.equal(a.nan_to_num(1e30), b.nan_to_num(1e30)))
    return type(a) is type(b)


def _check_case(name, arg, bad):
    op, make = OPS[name]
    args = make()
    args[arg] = bad
    fast = "cpu" if FAST[name] and _cpu_available() else None
    try:
        kind, got = _outcome(op, args, fast)
    except Exception as exc:  # anything but ValueError/TypeError
        pytest.fail(f"{name}({arg}={bad!r}) raised {type(exc).__name__}: {exc}")
    if kind == "raised":
        assert arg.lower() in str(got).lower() or _names_part(arg, str(got)), (
            f"{name}({arg}={bad!r}): the message does not name {arg!r}: {got}")
        return
    if fast is None:
        return  # accepted, and there is no second backend to compare with
    ref_kind, want = _outcome(op, args, "reference")
    assert ref_kind == "ok", f"{name}({arg}={bad!r}): cpu accepted, reference raised {want}"
    assert _same(got, want), f"{name}({arg}={bad!r}): cpu and reference differ"


# A bad value may be reported through the argument it conflicts with: a 1-d x makes
# bitpack's dim out of range; a huge dilation makes the dilated kernel larger than x.
RELATED = {"x": ("dim",), "dilation": ("dilated",), "a": ("a ",)}


def _names_part(arg: str, message: str) -> bool:
    return any(word in message for word in RELATED.get(arg, ()))


CASES = [(name, arg, bad) for name, (_, make) in OPS.items() for arg in make()
         for bad in GARBAGE]


@pytest.mark.parametrize("name,arg,bad", CASES,
                         ids=[f"{n}-{a}-{i % len(GARBAGE)}" for i, (n, a, _) in
                              enumerate(CASES)])
def test_one_bad_argument(name, arg, bad):
    _check_case(name, arg, bad)


# -- random tensors for the tensor arguments: shapes, dtypes, non-finite values ----------------

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int32, torch.int64,
          torch.uint8, torch.bool, torch.complex64]


@st.composite
def tensors(draw):
    shape = draw(st.lists(st.integers(0, 4), min_size=0, max_size=6))
    dtype = draw(st.sampled_from(DTYPES))
    fill = draw(st.sampled_from([0.0, 1.0, -1.0, 2.0, 0.5, NAN, INF]))
    return torch.full(shape, fill).to(dtype) if math.isfinite(fill) or dtype.is_floating_point \
        else torch.zeros(shape, dtype=dtype)


TENSOR_ARGS = [(name, arg) for name, (_, make) in OPS.items()
               for arg, value in make().items() if isinstance(value, torch.Tensor)]


@given(case=st.sampled_from(TENSOR_ARGS), bad=tensors())
def test_random_tensor_arguments(case, bad):
    name, arg = case
    _check_case(name, arg, bad)


# -- modules: bad constructor arguments fail at construction ----------------------------------

MODULES = {
    "MultiThresholdLIF": (snn.MultiThresholdLIF, dict(levels=-1), "levels"),
    "MultiThresholdLIF.surrogate": (snn.MultiThresholdLIF, dict(surrogate="unknown"),
                                    "surrogate"),
    "MultiThresholdLIF.reset": (snn.MultiThresholdLIF, dict(reset="later"), "reset"),
    "MultiThresholdLIF.threshold": (snn.MultiThresholdLIF, dict(threshold=-1.0), "threshold"),
    "MultiThresholdLIF.v_reset": (snn.MultiThresholdLIF, dict(v_reset=NAN), "v_reset"),
    "MultiThresholdLIF.step_rank": (snn.MultiThresholdLIF, dict(step_rank=0), "step_rank"),
    "BinaryConv2d": (lambda **kw: snn.BinaryConv2d(3, 4, 3, **kw), dict(levels=0), "levels"),
    "BinaryConv2d.activation": (lambda **kw: snn.BinaryConv2d(3, 4, 3, **kw),
                                dict(activation="relu"), "activation"),
}


@pytest.mark.parametrize("key", sorted(MODULES))
def test_module_constructor_validates(key):
    build, kwargs, arg = MODULES[key]
    with pytest.raises((ValueError, TypeError), match=arg):
        build(**kwargs)


# -- the streaming state: a state of the wrong shape, dtype or device, or a j without the
# synaptic current, is refused naming the part of the state ---------------------------------

def _state_cases():
    step = (2, 4, 5)
    good = torch.zeros(step)
    return [
        (dict(state=(torch.zeros(2, 4), None)), ValueError, "state.u"),
        (dict(state=(good.double(), None)), TypeError, "state.u"),
        (dict(state=(good.to("meta"), None)), ValueError, "state.u"),
        (dict(state=(good, good)), ValueError, "state.j"),
        (dict(state=(good, torch.zeros(3)), syn_decay=0.5), ValueError, "state.j"),
        (dict(state=(good, good.half()), syn_decay=0.5), TypeError, "state.j"),
        (dict(state=(good, None), v0=good), ValueError, "state"),
        (dict(state=good), TypeError, "state"),
        (dict(return_state="yes"), TypeError, "return_state"),
    ]


@pytest.mark.parametrize("case", range(len(_state_cases())))
def test_bad_state(case):
    changes, error, name = _state_cases()[case]
    args = dict(_mt_lif_args(), **changes)
    for backend in ["reference"] + (["cpu"] if _cpu_available() else []):
        with pytest.raises(error, match=name.replace(".", r"\.")):
            _call(fastsnn.mt_lif, args, backend)


def test_module_refuses_an_input_without_time():
    lif = snn.MultiThresholdLIF(step_rank=4)
    lif(torch.randn(2, 3, 4, 5, 5))
    with pytest.raises(ValueError, match="lacks the time dimension"):
        lif(torch.randn(3, 4, 5, 5))
