"""``from_snntorch`` against the real snnTorch: the converted module equals unrolling
``snntorch.Leaky`` over T (spikes identical, input gradients equal) for every reset
mechanism and the surrogates that map."""

import itertools

import pytest
import torch

from fastsnn.compat import NotConvertible, from_snntorch
from fastsnn.nn import MultiThresholdLIF

snntorch = pytest.importorskip("snntorch", reason="snntorch is not installed")
from snntorch import surrogate  # noqa: E402

GRADS = {"default": None, "atan1.5": lambda: surrogate.atan(alpha=1.5),
         "fast25": lambda: surrogate.fast_sigmoid(slope=25),
         "fast5": lambda: surrogate.fast_sigmoid(slope=5),
         "sigmoid10": lambda: surrogate.sigmoid(slope=10)}


def _leaky(beta, threshold, reset, grad):
    fn = GRADS[grad]
    return snntorch.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset,
                          spike_grad=None if fn is None else fn())


def _unrolled(leaky, x):
    mem = leaky.reset_mem()
    spikes = []
    for t in range(x.shape[0]):
        spk, mem = leaky(x[t], mem if t else None)
        spikes.append(spk)
    return torch.stack(spikes)


GRID = list(itertools.product([0.9, 0.5, 1.0], [1.0, 0.6], ["subtract", "zero", "none"],
                              list(GRADS)))


@pytest.mark.parametrize("beta,threshold,reset,grad", GRID)
def test_converted_leaky_equals_the_unrolled_loop(beta, threshold, reset, grad):
    torch.manual_seed(1)
    leaky = _leaky(beta, threshold, reset, grad)
    ours = from_snntorch(leaky)
    assert isinstance(ours, MultiThresholdLIF)
    x = (torch.randn(12, 4, 6) * threshold).requires_grad_()
    xo = x.detach().clone().requires_grad_()
    want = _unrolled(leaky, x)
    got = ours(xo)
    assert torch.equal(got, want)
    weight = torch.randn_like(want)
    (want * weight).sum().backward()
    (got * weight).sum().backward()
    # surrogate formulas and exp differ in their last bits: tolerance scaled to the gradient
    torch.testing.assert_close(xo.grad, x.grad, rtol=1e-4,
                               atol=1e-5 * (1 + x.grad.abs().max().item()))


def test_per_feature_beta():
    beta = torch.tensor([0.2, 0.5, 0.9, 1.0, 0.7, 0.95])
    leaky = snntorch.Leaky(beta=beta)
    x = torch.randn(10, 3, 6) * 1.2
    assert torch.equal(from_snntorch(leaky)(x), _unrolled(leaky, x))


@pytest.mark.parametrize("kwargs,match", [
    (dict(learn_beta=True), "learn_beta"),
    (dict(learn_threshold=True), "learn_threshold"),
    (dict(reset_delay=False), "reset_delay"),
    (dict(graded_spikes_factor=2.0), "graded_spikes_factor"),
    (dict(spike_grad=surrogate.triangular()), "spike_grad"),
])
def test_options_without_equivalent(kwargs, match):
    with pytest.raises(NotConvertible, match=match):
        from_snntorch(snntorch.Leaky(beta=0.9, **kwargs))


def test_not_a_leaky():
    with pytest.raises(TypeError, match="snntorch.Leaky"):
        from_snntorch(torch.nn.ReLU())
