"""Autograd modes the fast kernels do not follow are refused with an error naming the op and
``backend="reference"`` (never zero tangents or an error from deep inside torch); the
reference supports them. Also: an in-place edit of mt_lif's spikes before backward, and
a gradient of the gradient."""

import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from helpers import DEVICE, fast_backends, generator

import fastsnn


def _x(seed, shape=(3, 2, 4, 2)):
    return torch.randn(*shape, generator=generator(seed)).to(DEVICE)


def _spikes(seed, shape=(3, 2, 4, 2)):
    return (torch.rand(*shape, generator=generator(seed)) < 0.5).float().to(DEVICE)


# op name -> (function of one differentiable tensor, input maker)
OPS = {
    "mt_lif": (lambda x, b: fastsnn.mt_lif(x, 0.5, levels=2, backend=b), _x),
    "spike_count": (lambda s, b: fastsnn.spike_count(s, backend=b), _spikes),
    "stcb": (lambda a, b: fastsnn.stcb(a * 4, 3, levels=2, backend=b), _x),
    "binary_conv2d": (lambda x, b: fastsnn.binary_conv2d(
        x, torch.ones(2, 2, 1, 1, device=x.device), backend=b), _spikes),
}
CASES = [(op, b) for op in OPS for b in fast_backends(op)]


@pytest.mark.parametrize("op,backend", CASES)
def test_forward_mode_ad_is_refused_by_the_fast_backends(op, backend):
    f, make = OPS[op]
    x, t = make(1), make(2)
    with pytest.raises(NotImplementedError, match=f"{op}: forward-mode AD.*'reference'"):
        torch.func.jvp(lambda x: f(x, backend), (x,), (t,))
    with fwAD.dual_level(), pytest.raises(NotImplementedError, match=f"{op}: forward-mode"):
        f(fwAD.make_dual(x, t), backend)


@pytest.mark.parametrize("op,backend", CASES)
def test_func_grad_is_refused_by_the_fast_backends(op, backend):
    f, make = OPS[op]
    with pytest.raises(NotImplementedError, match=f"{op}: torch.func gradient.*'reference'"):
        torch.func.grad(lambda x: f(x, backend).sum())(make(3))


@pytest.mark.parametrize("op,backend", CASES)
def test_plain_calls_and_vmap_still_work_on_the_fast_backends(op, backend):
    f, make = OPS[op]
    x = make(4)
    # no tangent: forward AD active but unused, and vmap (torch's per-sample fallback)
    with fwAD.dual_level():
        torch.testing.assert_close(f(x, backend), f(x, "reference"))
    torch.testing.assert_close(torch.func.vmap(lambda x: f(x, backend))(x[None]),
                               f(x, "reference")[None])


@pytest.mark.parametrize("op", OPS)
def test_reference_supports_forward_mode_and_func_grad(op):
    f, make = OPS[op]
    x, t = make(5), make(6)
    _, tangent = torch.func.jvp(lambda x: f(x, "reference"), (x,), (t,))
    assert tangent.shape == f(x, "reference").shape
    grad = torch.func.grad(lambda x: f(x, "reference").sum())(x)
    xr = x.clone().requires_grad_()
    f(xr, "reference").sum().backward()
    torch.testing.assert_close(grad, xr.grad)


def test_spike_count_tangent_of_the_reference_is_the_count_of_the_tangent():
    s, t = _spikes(7), _x(8)
    _, tangent = torch.func.jvp(lambda s: fastsnn.spike_count(s, backend="reference"), (s,),
                                (t,))
    torch.testing.assert_close(tangent, t.sum(0))


# -- mt_lif: spikes modified in place before backward -----------------------------------------

@pytest.mark.parametrize("backend", fast_backends("mt_lif"))
@pytest.mark.parametrize("edit", ["dropout", "mul_"])
def test_in_place_edit_of_the_spikes_says_what_to_do(backend, edit):
    x = _x(9).requires_grad_()
    s = fastsnn.mt_lif(x, 0.5, backend=backend)
    if edit == "dropout":
        s = F.dropout(s, 0.5, training=True, inplace=True)
    else:
        s.mul_(_spikes(10))
    with pytest.raises(RuntimeError, match=r"mt_lif: the spikes it returned were modified "
                                           r"in place.*s\.clone\(\)"):
        s.sum().backward()


@pytest.mark.parametrize("backend", fast_backends("mt_lif"))
def test_out_of_place_edit_of_the_spikes_matches_the_reference(backend):
    mask = _spikes(11)
    grads = []
    for b in (backend, "reference"):
        x = _x(12).requires_grad_()
        (fastsnn.mt_lif(x, 0.5, backend=b) * mask).sum().backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1])


# -- gradient of the gradient ------------------------------------------------------------------

DOUBLE = [(op, b) for op in ("mt_lif", "stcb") for b in fast_backends(op)]


@pytest.mark.parametrize("op,backend", DOUBLE)
def test_double_backward_names_the_op(op, backend):
    f, make = OPS[op]
    x = make(13).requires_grad_()
    y = f(x, backend)
    (g,) = torch.autograd.grad(y, x, torch.ones_like(y).requires_grad_(), create_graph=True)
    with pytest.raises(RuntimeError, match=f"{op} does not support double backward.*"
                                           f"'reference'"):
        g.sum().backward()


@pytest.mark.parametrize("op,backend", DOUBLE)
def test_create_graph_alone_still_gives_the_first_gradient(op, backend):
    f, make = OPS[op]
    grads = []
    for b in (backend, "reference"):
        x = make(14).requires_grad_()
        (g,) = torch.autograd.grad(f(x, b).sum(), x, create_graph=True)
        grads.append(g.detach())
    torch.testing.assert_close(grads[0], grads[1])
