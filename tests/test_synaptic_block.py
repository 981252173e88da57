"""SynapticConvBlock and CausalTemporalConv against their definitions (docs/mt_lif.md)."""

import pytest
import torch
from helpers import DEVICE, generator
from hypothesis import given
from hypothesis import strategies as st

import fastsnn
from fastsnn.nn import CausalTemporalConv, SynapticConvBlock


def _input(seed, T=3, N=2, C=2, H=5, W=4):
    return torch.randn(T, N, C, H, W, generator=generator(seed)).to(DEVICE) * 2


def _conv_bn(block, x):
    T, N = x.shape[:2]
    y = block.bn(block.conv(x.flatten(0, 1)))
    return y.reshape(T, N, *y.shape[1:])


@pytest.mark.parametrize("per_channel", [False, True])
def test_filter_block_is_conv_bn_plif_with_synaptic_current(per_channel):
    torch.manual_seed(0)
    block = SynapticConvBlock(2, 3, per_channel=per_channel).to(DEVICE)
    with torch.no_grad():  # move the learnable constants off their initial values
        logit = block.neuron.decay_logit
        logit.add_(torch.linspace(-1, 1, logit.numel()).reshape(logit.shape).to(DEVICE))
        block.neuron.syn_logit.add_(0.7)
    x = _input(1)
    got = block(x)
    want = fastsnn.mt_lif(_conv_bn(block, x), torch.sigmoid(block.neuron.decay_logit),
                          levels=3, form="plif",
                          syn_decay=torch.sigmoid(block.neuron.syn_logit), backend="reference")
    assert torch.equal(got, want)
    assert got.shape == (3, 2, 3, 5, 4) and set(got.unique().tolist()) <= {0, 1, 2, 3}
    shape = (3,) if per_channel else ()
    assert block.neuron.decay_logit.shape == shape and block.neuron.syn_logit.shape == shape


def test_initial_constants():
    block = SynapticConvBlock(1, 2)
    assert block.neuron.decay.item() == 0.5  # tau = 2
    assert torch.sigmoid(block.neuron.syn_logit).item() == 0.5  # alpha init 0.5
    fixed = SynapticConvBlock(1, 2, learnable_decay=False, learnable_syn=False)
    assert not hasattr(fixed.neuron, "decay_logit") and not hasattr(fixed.neuron, "syn_logit")
    assert fixed.neuron.syn_decay == 0.5
    names = {n for n, _ in SynapticConvBlock(1, 2, temporal="conv").named_parameters()}
    assert names == {"conv.weight", "bn.weight", "bn.bias", "temporal_conv.weight",
                     "neuron.decay_logit"}


def test_gradients_reach_every_parameter():
    torch.manual_seed(1)
    for temporal in ("filter", "conv"):
        block = SynapticConvBlock(2, 3, temporal=temporal, surrogate="sigmoid").to(DEVICE)
        x = _input(2).requires_grad_(True)
        block(x).sum().backward()
        for name, p in block.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, (temporal, name)
        assert x.grad.abs().sum() > 0


def _loop_causal_conv(x, weight):
    """y[t, :, c] = sum_k weight[c, 0, k] * x[t - (K-1) + k, :, c] (zero before t = 0)."""
    K = weight.shape[-1]
    y = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for k in range(K):
            s = t - (K - 1) + k
            if s >= 0:
                w = weight[:, 0, k].reshape((1, -1) + (1,) * (x.dim() - 3))
                y[t] += w * x[s]
    return y


@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 6))
def test_causal_temporal_conv_equals_loop(seed, T):
    conv = CausalTemporalConv(3).to(DEVICE)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator(seed)))
    x = _input(seed + 1, T=T, C=3)
    torch.testing.assert_close(conv(x), _loop_causal_conv(x, conv.weight))


def test_causal_temporal_conv_is_causal_and_starts_as_the_filter():
    conv = CausalTemporalConv(2).to(DEVICE)
    impulse = torch.zeros(5, 1, 2, 1, 1, device=DEVICE)
    impulse[1] = 1
    response = conv(impulse)[:, 0, 0, 0, 0].tolist()
    assert response == [0.0, 1.0, 0.5, 0.25, 0.0]  # truncated j[t] = 0.5*j[t-1] + x[t]
    x = _input(3, T=5)
    y = conv(x)
    x2 = x.clone()
    x2[3] += 10
    y2 = conv(x2)
    assert torch.equal(y[:3], y2[:3]) and not torch.equal(y[3:], y2[3:])


def test_conv_block_uses_no_synaptic_current():
    torch.manual_seed(2)
    block = SynapticConvBlock(2, 3, temporal="conv").to(DEVICE)
    x = _input(4)
    want = fastsnn.mt_lif(block.temporal_conv(_conv_bn(block, x)), torch.sigmoid(
        block.neuron.decay_logit), levels=3, form="plif", backend="reference")
    assert torch.equal(block(x), want)


def test_block_accepts_compressed_events():
    """The intended pipeline: events -> T steps of current -> SCB."""
    ev = torch.tensor([[x % 8, (3 * x) % 8, x, x % 2] for x in range(64)])
    current = fastsnn.events_to_current(ev.to(DEVICE), (8, 8, 2), 4,
                                        offsets=torch.tensor([0, 32, 64]))
    out = SynapticConvBlock(2, 4).to(DEVICE)(current)
    assert out.shape == (4, 2, 4, 8, 8)


def test_bad_arguments():
    with pytest.raises(ValueError, match="temporal must be one of"):
        SynapticConvBlock(1, 2, temporal="rnn")
    with pytest.raises(ValueError, match=r"expects \[T, N, C, H, W\]"):
        SynapticConvBlock(1, 2)(torch.zeros(2, 1, 4, 4))
