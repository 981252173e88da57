"""``from_spikingjelly`` against the real SpikingJelly: identical forward spikes and equal
gradients (input and PLIF weight) over the grid of options that map."""

import copy
import itertools

import pytest
import torch
from torch import nn

from fastsnn.compat import NotConvertible, from_spikingjelly
from fastsnn.nn import MultiThresholdLIF

pytest.importorskip("spikingjelly.activation_based", reason="spikingjelly is not installed")
from spikingjelly.activation_based import functional, neuron, surrogate  # noqa: E402

SURROGATES = [lambda: surrogate.Sigmoid(alpha=4.0), lambda: surrogate.Sigmoid(alpha=2.5),
              lambda: surrogate.PiecewiseQuadratic(alpha=1.0),
              lambda: surrogate.PiecewiseQuadratic(alpha=2.0), lambda: surrogate.Rect(alpha=1.5),
              lambda: surrogate.ATan(), lambda: surrogate.ATan(alpha=3.0)]


def _node(kind, decay_input, v_reset, sg, detach, threshold, tau):
    common = dict(v_threshold=threshold, v_reset=v_reset, surrogate_function=sg(),
                  detach_reset=detach, step_mode="m")
    if kind == "IFNode":
        return neuron.IFNode(**common)
    if kind == "LIFNode":
        return neuron.LIFNode(tau=tau, decay_input=decay_input, **common)
    node = neuron.ParametricLIFNode(init_tau=tau, decay_input=decay_input, **common)
    with torch.no_grad():
        node.w.add_(0.3)  # away from the initial value, so a dropped weight shows
    return node


GRID = [c for c in itertools.product(["IFNode", "LIFNode", "ParametricLIFNode"],
                                     [True, False], [0.0, None, -0.5, 0.3],
                                     range(len(SURROGATES)),
                                     [False, True], [1.0, 0.5], [2.0, 3.5])
        if c[0] != "IFNode" or (c[1] and c[6] == 2.0)]  # IF has neither decay_input nor tau


@pytest.mark.parametrize("kind,decay_input,v_reset,sg,detach,threshold,tau", GRID)
def test_converted_node_equals_spikingjelly(kind, decay_input, v_reset, sg, detach,
                                            threshold, tau):
    torch.manual_seed(0)
    node = _node(kind, decay_input, v_reset, SURROGATES[sg], detach, threshold, tau)
    theirs = nn.Sequential(nn.Identity(), node)
    ours = from_spikingjelly(copy.deepcopy(theirs))
    assert isinstance(ours[1], MultiThresholdLIF)
    x = (torch.randn(8, 4, 3, 5) * threshold * 1.5).requires_grad_()
    xo = x.detach().clone().requires_grad_()
    functional.reset_net(theirs)
    s_theirs = theirs(x)
    s_ours = ours(xo)
    assert torch.equal(s_ours, s_theirs)
    weight = torch.randn_like(s_theirs)
    (s_theirs * weight).sum().backward()
    (s_ours * weight).sum().backward()
    torch.testing.assert_close(xo.grad, x.grad, rtol=1e-4, atol=1e-5)
    if kind == "ParametricLIFNode":
        logit = ours[1].decay_logit
        torch.testing.assert_close(logit.grad, -node.w.grad, rtol=1e-4, atol=1e-5)


def test_plif_weights_are_carried_over():
    node = neuron.ParametricLIFNode(init_tau=3.0, step_mode="m")
    with torch.no_grad():
        node.w.fill_(0.7)
    lif = from_spikingjelly(node)
    assert isinstance(lif, MultiThresholdLIF)
    torch.testing.assert_close(lif.decay, torch.sigmoid(torch.tensor(-0.7)))


def test_nested_models_and_single_step_nodes():
    model = nn.Sequential(nn.Linear(3, 4), nn.Sequential(neuron.LIFNode(step_mode="m")),
                          neuron.IFNode(step_mode="s"))
    out = from_spikingjelly(model)
    assert out is model
    assert isinstance(model[1][0], MultiThresholdLIF)
    assert isinstance(model[2], neuron.IFNode)  # single-step: left in place


@pytest.mark.parametrize("node,match", [
    (lambda: neuron.LIFNode(v_reset=float("nan"), step_mode="m"), "v_reset=nan"),
    (lambda: neuron.LIFNode(surrogate_function=surrogate.Erf(), step_mode="m"), "Erf"),
    (lambda: neuron.IFNode(store_v_seq=True, step_mode="m"), "store_v_seq"),
])
def test_options_without_equivalent_name_the_node_and_option(node, match):
    model = nn.Sequential(nn.Identity(), node())
    with pytest.raises(NotConvertible, match=rf"1 \(.*Node\).*{match}"):
        from_spikingjelly(model)


@pytest.mark.parametrize("v_reset", [0.0, None, -0.5])
def test_stateful_conversion_keeps_the_membrane_between_calls(v_reset):
    """SpikingJelly's nodes keep v between calls; with stateful=True ours do too: two calls
    on consecutive chunks give the spikes and input gradients of SpikingJelly's."""
    torch.manual_seed(1)
    theirs = nn.Sequential(nn.Identity(), neuron.LIFNode(tau=3.0, v_reset=v_reset,
                                                         step_mode="m"))
    ours = from_spikingjelly(copy.deepcopy(theirs), stateful=True)
    x = (torch.randn(10, 3, 4) * 1.5).requires_grad_()
    xo = x.detach().clone().requires_grad_()
    functional.reset_net(theirs)
    s_theirs = torch.cat([theirs(x[:4]), theirs(x[4:])])
    s_ours = torch.cat([ours(xo[:4]), ours(xo[4:])])
    assert torch.equal(s_ours, s_theirs)
    weight = torch.randn_like(s_theirs)
    (s_theirs * weight).sum().backward()
    (s_ours * weight).sum().backward()
    torch.testing.assert_close(xo.grad, x.grad, rtol=1e-4, atol=1e-5)
    ours[1].reset_state()
    assert ours[1].state is None
