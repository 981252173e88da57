"""A learnable decay = sigmoid(decay_logit) cannot leave [0, 1]: logits far past float32's
range (sigmoid rounds to exactly 0 or 1) still train, on every backend, with the same
spikes as the fixed decay 0 / 1."""

import pytest
import torch
from helpers import DEVICE

import fastsnn
from fastsnn.nn import MultiThresholdLIF


@pytest.mark.parametrize("backend", fastsnn.available_backends("mt_lif", DEVICE))
@pytest.mark.parametrize("logit, decay", [(-200.0, 0.0), (200.0, 1.0)])
def test_extreme_decay_logits_train(backend, logit, decay):
    torch.manual_seed(0)
    lif = MultiThresholdLIF(levels=3, learnable_decay=True, per_channel=4,
                            backend=backend).to(DEVICE)
    with torch.no_grad():
        lif.decay_logit.fill_(logit)
    assert bool((lif.decay == decay).all())  # rounds to the end of the interval exactly
    x = (torch.rand(3, 2, 4, 5, device=DEVICE) * 2).requires_grad_()
    opt = torch.optim.SGD(lif.parameters(), lr=1.0)
    s = lif(x)
    s.sum().backward()
    opt.step()
    assert torch.isfinite(x.grad).all() and torch.isfinite(lif.decay_logit).all()
    fixed = MultiThresholdLIF(levels=3, decay=decay, backend=backend).to(DEVICE)
    assert torch.equal(s, fixed(x.detach()))

