"""The SpikingJelly table of docs/peers.md, row by row, against SpikingJelly itself:
forward spikes equal, input gradients equal (float64)."""

import pytest
import torch

import fastsnn

sj = pytest.importorskip("spikingjelly.activation_based.neuron")
from spikingjelly.activation_based import functional, surrogate  # noqa: E402

THRESHOLD = 0.8


def _compare(node, **ours):
    torch.manual_seed(0)
    x = (torch.randn(6, 3, 4, 5, dtype=torch.float64) * 1.2).requires_grad_(True)
    functional.reset_net(node)
    want = node(x)
    g = torch.randn_like(want)
    (gx_want,) = torch.autograd.grad(want, x, g)
    x2 = x.detach().clone().requires_grad_(True)
    got = fastsnn.mt_lif(x2, levels=1, threshold=THRESHOLD, backend="reference", **ours)
    (gx_got,) = torch.autograd.grad(got, x2, g)
    assert torch.equal(got, want)
    torch.testing.assert_close(gx_got, gx_want, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("decay_input, form", [(True, "plif"), (False, "stbp")])
@pytest.mark.parametrize("v_reset, reset", [(0.0, "hard"), (None, "soft")])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("sg, ours", [
    (lambda: surrogate.Sigmoid(alpha=4.0), dict(surrogate="sigmoid", width=4 / 4.0)),
    (lambda: surrogate.Sigmoid(alpha=2.5), dict(surrogate="sigmoid", width=4 / 2.5)),
    (lambda: surrogate.PiecewiseQuadratic(alpha=1.5), dict(surrogate="triangle",
                                                           width=1 / 1.5)),
    (lambda: surrogate.Rect(alpha=0.8), dict(surrogate="rect", width=1 / 0.8)),
])
def test_lif_node_rows(decay_input, form, v_reset, reset, detach_reset, sg, ours):
    tau = 2.5
    node = sj.LIFNode(tau=tau, decay_input=decay_input, v_threshold=THRESHOLD,
                      v_reset=v_reset, surrogate_function=sg(), detach_reset=detach_reset,
                      step_mode="m")
    _compare(node, decay=1 - 1 / tau, form=form, reset=reset, detach_reset=detach_reset,
             **ours)


@pytest.mark.parametrize("v_reset, reset", [(0.0, "hard"), (None, "soft")])
def test_if_node_row(v_reset, reset):
    node = sj.IFNode(v_threshold=THRESHOLD, v_reset=v_reset,
                     surrogate_function=surrogate.Sigmoid(alpha=4.0), step_mode="m")
    _compare(node, decay=1.0, form="stbp", reset=reset, surrogate="sigmoid", width=1.0)


@pytest.mark.parametrize("decay_input, form", [(True, "plif"), (False, "stbp")])
def test_parametric_lif_weight_maps_to_minus_w(decay_input, form):
    node = sj.ParametricLIFNode(init_tau=2.0, decay_input=decay_input,
                                v_threshold=THRESHOLD, step_mode="m",
                                surrogate_function=surrogate.Sigmoid(alpha=4.0))
    with torch.no_grad():
        node.w.fill_(0.7)  # a trained value: 1/tau = sigmoid(0.7)
    node = node.double()
    ours = fastsnn.nn.MultiThresholdLIF(levels=1, threshold=THRESHOLD, learnable_decay=True,
                                        form=form, surrogate="sigmoid", width=1.0,
                                        backend="reference")
    with torch.no_grad():
        ours.decay_logit.fill_(-0.7)  # decay = sigmoid(-w_sj) = 1 - 1/tau
    x = torch.randn(6, 3, 4, 5, dtype=torch.float64) * 1.2
    functional.reset_net(node)
    assert torch.equal(ours(x), node(x).to(x.dtype))
