"""SpikeConv2d / SpikeLinear: nn.Conv2d / nn.Linear with the same parameters, forward and
gradients (bit for bit), that keep their spike input for backward as bits."""

from __future__ import annotations

import pytest
import torch
from helpers import DEVICE, generator
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from fastsnn.nn import SpikeConv2d, SpikeLinear, SpikeMaxPool2d


def spikes(shape, levels, seed):
    g = generator(seed)
    return torch.randint(0, levels + 1, shape, generator=g).float().to(DEVICE)


def twins(plain, lean):
    lean.load_state_dict(plain.state_dict())
    return plain.to(DEVICE), lean.to(DEVICE)


def run_both(plain, lean, x, seed=0):
    """Forward + backward of both layers on copies of ``x``; returns their outputs and
    the (input, parameter) gradients."""
    results = []
    for layer in (plain, lean):
        xi = x.clone().requires_grad_()
        y = layer(xi)
        g = torch.randn(y.shape, generator=generator(seed)).to(DEVICE)
        y.backward(g)
        results.append((y.detach(), xi.grad, [p.grad for p in layer.parameters()]))
    return results


def assert_same(a, b):
    (ya, gxa, gpa), (yb, gxb, gpb) = a, b
    assert torch.equal(ya, yb)
    assert torch.equal(gxa, gxb)
    assert len(gpa) == len(gpb) and all(torch.equal(p, q) for p, q in zip(gpa, gpb))


CONV_CASES = [
    dict(),
    dict(stride=2, bias=False),
    dict(padding=2, dilation=2),
    dict(groups=2),
    dict(padding="same"),
    dict(padding="valid", stride=(1, 2)),
    dict(padding=1, padding_mode="reflect"),
    dict(padding=1, padding_mode="circular", bias=False),
]


class Folded(nn.Module):
    """A torch layer on ``[T, N, ...]`` through the ``[T*N, ...]`` fold."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x.flatten(0, 1)).unflatten(0, x.shape[:2])


@pytest.mark.parametrize("kw", CONV_CASES, ids=[str(k) for k in CONV_CASES])
@pytest.mark.parametrize("levels", [1, 3])
def test_conv_matches_conv2d(kw, levels):
    plain, lean = twins(nn.Conv2d(4, 6, 3, **kw), SpikeConv2d(4, 6, 3, levels=levels, **kw))
    x = spikes((2, 3, 4, 9, 8), levels, levels)  # [T, N, C, H, W]
    assert_same(*run_both(Folded(plain), lean, x))
    plain.zero_grad(), lean.zero_grad()
    assert_same(*run_both(plain, lean, x.flatten(0, 1)))  # the [T*N, ...] fold


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_conv_even_kernel_same_padding_and_unbatched():
    plain, lean = twins(nn.Conv2d(3, 5, (2, 4), padding="same", dilation=(1, 3)),
                        SpikeConv2d(3, 5, (2, 4), padding="same", dilation=(1, 3)))
    assert_same(*run_both(plain, lean, spikes((2, 3, 7, 11), 1, 3)))
    plain.zero_grad(), lean.zero_grad()
    assert_same(*run_both(plain, lean, spikes((3, 7, 11), 1, 4)))


@given(seed=st.integers(0, 2**31 - 1), levels=st.sampled_from([1, 2, 3, 7]),
       cin=st.integers(1, 5), cout=st.integers(1, 5), k=st.integers(1, 3),
       stride=st.integers(1, 2), hw=st.integers(3, 9))
def test_conv_random_configs(seed, levels, cin, cout, k, stride, hw):
    torch.manual_seed(seed)
    plain, lean = twins(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2),
                        SpikeConv2d(cin, cout, k, stride=stride, padding=k // 2,
                                    levels=levels))
    assert_same(*run_both(plain, lean, spikes((3, cin, hw, hw + 1), levels, seed), seed))


def test_state_dict_compatible_both_ways():
    conv, lean = nn.Conv2d(3, 4, 3, bias=True), SpikeConv2d(3, 4, 3, bias=True, levels=3)
    assert conv.state_dict().keys() == lean.state_dict().keys()
    lean.load_state_dict(conv.state_dict())
    conv.load_state_dict(lean.state_dict())
    lin, slin = nn.Linear(5, 2), SpikeLinear(5, 2)
    assert lin.state_dict().keys() == slin.state_dict().keys()
    slin.load_state_dict(lin.state_dict())
    assert isinstance(lean, nn.Conv2d) and isinstance(slin, nn.Linear)
    assert "levels=3" in repr(lean)


def saved_besides_weight(layer, x):
    """The tensors ``layer(x)`` saves for backward, its weight left out."""
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        layer(x)
    weight = layer.weight.untyped_storage().data_ptr()
    return [t for t in saved if t.untyped_storage().data_ptr() != weight]


@pytest.mark.parametrize("levels,per_value", [(1, 1), (3, 2), (7, 3)])
def test_saves_only_bits(levels, per_value):
    """What the backward keeps: the packed input (ceil(n/8) bytes a bit-plane) and the
    weight, nothing in float the size of the input."""
    lean = SpikeConv2d(4, 6, 3, padding=1, levels=levels).to(DEVICE)
    x = spikes((2, 3, 4, 5, 5), levels, 1).requires_grad_()  # checked, not recorded
    kept = saved_besides_weight(lean, x)
    assert len(kept) == 1 and kept[0].dtype == torch.uint8
    assert kept[0].numel() == per_value * ((x.numel() + 7) // 8)


def test_nothing_packed_without_grad():
    lean = SpikeConv2d(2, 3, 3).to(DEVICE)
    x = spikes((2, 2, 5, 5), 1, 0)
    saved = []
    with torch.no_grad(), torch.autograd.graph.saved_tensors_hooks(
            lambda t: saved.append(t) or t, lambda t: t):
        y = lean(x)
    assert not saved and torch.equal(y, nn.functional.conv2d(x, lean.weight, lean.bias))


def test_frozen_weight_input_grad_only():
    plain, lean = twins(nn.Conv2d(3, 4, 3, padding=1), SpikeConv2d(3, 4, 3, padding=1))
    for p in (*plain.parameters(), *lean.parameters()):
        p.requires_grad_(False)
    (ya, gxa, _), (yb, gxb, _) = run_both(plain, lean, spikes((2, 3, 6, 6), 1, 5))
    assert torch.equal(ya, yb) and torch.equal(gxa, gxb)


def test_input_without_grad_weight_grad_only():
    plain, lean = twins(nn.Conv2d(3, 4, 3), SpikeConv2d(3, 4, 3, levels=3))
    x = spikes((2, 3, 6, 6), 3, 6)
    g = torch.randn(2, 4, 4, 4, device=DEVICE)
    plain(x).backward(g)
    lean(x).backward(g)
    assert torch.equal(plain.weight.grad, lean.weight.grad)
    assert torch.equal(plain.bias.grad, lean.bias.grad)


@pytest.mark.parametrize("shape", [(3, 2, 20), (6, 20), (20,), (2, 2, 3, 20)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_linear(shape, bias):
    plain, lean = twins(nn.Linear(20, 7, bias=bias), SpikeLinear(20, 7, bias=bias, levels=3))
    assert_same(*run_both(plain, lean, spikes(shape, 3, 7)))


def test_linear_saves_only_bits():
    lean = SpikeLinear(40, 3).to(DEVICE)
    x = spikes((4, 2, 40), 1, 2).requires_grad_()
    kept = saved_besides_weight(lean, x)
    assert len(kept) == 1 and kept[0].dtype == torch.uint8
    assert kept[0].numel() == (x.numel() + 7) // 8


@pytest.mark.parametrize("layer", [SpikeConv2d(2, 2, 1, levels=1), SpikeLinear(2, 2, levels=1)])
def test_check_spikes_in_training(layer):
    layer = layer.to(DEVICE)
    shape = (3, 2, 4, 4) if isinstance(layer, SpikeConv2d) else (3, 2)
    x = spikes(shape, 1, 0)
    x[0, 0] = 0.5
    with pytest.raises(ValueError, match="input must hold spikes"):
        layer(x)
    x[0, 0] = 2.0
    with pytest.raises(ValueError, match="input must hold spikes"):
        layer(x)
    layer.eval()
    layer(x)  # no check in eval mode
    layer.train()
    layer.check_spikes = False
    layer(x)  # checked off by the flag
    SpikeLinear(2, 2, check_spikes=False)


def test_bad_arguments():
    with pytest.raises(ValueError, match="levels"):
        SpikeConv2d(2, 2, 3, levels=0)
    with pytest.raises(ValueError, match="input"):
        SpikeConv2d(2, 2, 3)(torch.zeros(2, 2, device=DEVICE))
    with pytest.raises(TypeError, match="input"):
        SpikeLinear(2, 2)([1.0, 0.0])


POOL_CASES = [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
              dict(kernel_size=2, ceil_mode=True), dict(kernel_size=(2, 3), dilation=2)]


@pytest.mark.parametrize("kw", POOL_CASES, ids=[str(k) for k in POOL_CASES])
@pytest.mark.parametrize("levels", [1, 3])
def test_max_pool_matches_max_pool2d(kw, levels):
    plain, lean = nn.MaxPool2d(**kw), SpikeMaxPool2d(levels=levels, **kw)
    x = spikes((2, 3, 4, 9, 7), levels, levels)  # ties everywhere: the first max wins
    assert_same(*run_both(Folded(plain), lean, x))
    assert_same(*run_both(plain, lean, x.flatten(0, 1)))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        lean(x.requires_grad_())
    assert [t.dtype for t in saved] == [torch.uint8]  # no float input, no int64 indices


def test_max_pool_bad_arguments():
    with pytest.raises(ValueError, match="return_indices"):
        SpikeMaxPool2d(2, return_indices=True)
    with pytest.raises(ValueError, match="input must hold spikes"):
        SpikeMaxPool2d(2)(torch.full((1, 2, 2, 2), 0.5, device=DEVICE))


def test_double_backward_refused():
    lean = SpikeConv2d(2, 2, 3).to(DEVICE)
    y = lean(spikes((1, 2, 5, 5), 1, 0))
    (gw,) = torch.autograd.grad(y.sum(), lean.weight, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        torch.autograd.grad(gw.sum(), lean.weight)


def test_packed_spikes_input_equals_float_spikes():
    # mt_lif(..., packed=True) output feeds the spike layers directly (inference)
    import fastsnn

    torch.manual_seed(0)
    x = torch.randn(3, 2, 5, 6, 6) * 2
    conv, pool = SpikeConv2d(5, 4, 3, padding=1, levels=3), SpikeMaxPool2d(2, levels=3)
    with torch.no_grad():
        packed = fastsnn.mt_lif(x, 0.5, levels=3, packed=True)
        spikes = fastsnn.mt_lif(x, 0.5, levels=3)
        assert torch.equal(conv(packed), conv(spikes))
        assert torch.equal(pool(packed), pool(spikes))
        linear = SpikeLinear(5, 3, levels=3)
        flat = fastsnn.mt_lif(x[..., 0, 0], 0.5, levels=3, packed=True)  # [T, N, C]
        assert torch.equal(linear(flat), linear(flat.unpack()))
    with pytest.raises(ValueError, match="levels=3, more than this layer's levels=1"):
        SpikeConv2d(5, 4, 3, levels=1)(packed)
