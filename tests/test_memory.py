"""fastsnn.memory: exact saved-byte counts per module, storages counted once, no lasting
effect on the model; spikes marked inside spike_saving kept as bits with unchanged
gradients."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import DEVICE, generator
from torch import nn

from fastsnn.memory import mark_spikes, saved_bytes, spike_saving
from fastsnn.nn import SpikeConv2d, SpikeLinear, save_spikes_as_bits


def spikes(shape, levels=1, seed=0):
    return torch.randint(0, levels + 1, shape, generator=generator(seed)).float().to(DEVICE)


def test_conv2d_keeps_its_float_input():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False)).to(DEVICE)
    x = torch.rand(2, 3, 10, 10, device=DEVICE)
    report = saved_bytes(model, x)
    assert report.modules == {"0": 4 * x.numel()}  # the weight is a parameter: not counted
    assert report.total == 4 * x.numel() and report.tensors == 1
    assert report.peak == report.total


@pytest.mark.parametrize("levels,bits", [(1, 1), (3, 2), (7, 3)])
def test_spike_conv_keeps_bits(levels, bits):
    model = nn.Sequential(SpikeConv2d(3, 8, 3, padding=1, levels=levels)).to(DEVICE)
    x = spikes((2, 3, 10, 11), levels)
    report = saved_bytes(model, x)
    assert report.total == bits * math.ceil(x.numel() / 8) == report.modules["0"]


def test_linear_and_spike_linear():
    x = spikes((4, 3, 20))
    plain = saved_bytes(nn.Linear(20, 5).to(DEVICE), x)
    lean = saved_bytes(SpikeLinear(20, 5).to(DEVICE), x)
    assert plain.total == 4 * x.numel() and lean.total == math.ceil(x.numel() / 8)
    assert plain.modules == {"": plain.total}


def test_storage_counted_once_and_attributed_to_first():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(2, 3, 1)
            self.b = nn.Conv2d(2, 3, 1)

        def forward(self, x):
            return self.a(x) + self.b(x)

    x = torch.rand(1, 2, 4, 4, device=DEVICE)
    report = saved_bytes(Two().to(DEVICE), x)
    assert report.modules == {"a": 4 * x.numel()} and report.total == 4 * x.numel()


def test_no_lasting_effect_and_table():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).to(DEVICE)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model[0].weight.grad = torch.ones_like(model[0].weight)
    report = saved_bytes(model, torch.rand(2, 3, 6, 6, device=DEVICE))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # batch-norm statistics
    assert torch.equal(model[0].weight.grad, torch.ones_like(model[0].weight))
    assert model[1].weight.grad is None
    text = str(report)
    assert "total" in text and "peak" in text and "\n1 " in text
    assert report.as_dict()["total"] == report.total == sum(report.modules.values())
    assert report.total == 4 * (2 * 3 * 6 * 6) + 4 * (2 * 4 * 4 * 4) * 2 + 4 * 4 * 2


def test_bad_arguments():
    with pytest.raises(TypeError, match="model"):
        saved_bytes(lambda x: x, torch.zeros(1))
    with pytest.raises(ValueError, match="loss_fn"):
        saved_bytes(nn.Identity(), torch.zeros(2))
    assert saved_bytes(nn.Identity(), torch.zeros(2), backward=False).total == 0


class Fire(torch.autograd.Function):
    """A spike producer that, like mt_lif, keeps its own output for the backward."""

    @staticmethod
    def forward(ctx, x):
        s = (x > 0.5).float()
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, g):
        (s,) = ctx.saved_tensors
        return g * (1 + s)


class Net(nn.Module):
    def __init__(self, mark: bool):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = SpikeConv2d(4, 2, 3, padding=1)
        self.mark = mark

    def forward(self, x):
        with spike_saving(self.mark):
            s = Fire.apply(self.conv(x))
            if self.mark:
                mark_spikes(s, 1)
            return self.head(self.pool(s)), s


def run(net, x):
    out, s = net(x)
    out.sum().backward()
    return out, [p.grad for p in net.parameters()]


def test_marked_spikes_kept_as_bits_everywhere():
    torch.manual_seed(0)
    plain, lean = Net(False).to(DEVICE), Net(True).to(DEVICE)
    lean.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 8, 8, device=DEVICE)
    (ya, ga), (yb, gb) = run(plain, x), run(lean, x)
    assert torch.equal(ya, yb) and all(torch.equal(a, b) for a, b in zip(ga, gb))
    loss = lambda out: out[0].sum()  # noqa: E731
    rp, rl = saved_bytes(plain, x, loss_fn=loss), saved_bytes(lean, x, loss_fn=loss)
    n = 2 * 4 * 8 * 8  # the spikes: kept by Fire and by the pool
    assert rp.modules[""] == 4 * n  # Fire runs in the model itself: one float copy
    assert rl.modules[""] == math.ceil(n / 8)  # the same storage, now bits
    assert rl.modules["pool"] == rp.modules["pool"]  # indices only (its input: counted once)
    assert rl.total == rp.total - 4 * n + n // 8
    assert rl.peak == rl.modules["conv"] + 4 * n  # the float copy lived until the mark


def test_foreign_hooks_take_precedence():
    """Inside other saved-tensor hooks (checkpointing, offloading) nothing is converted."""
    torch.manual_seed(0)
    lean = Net(True).to(DEVICE)
    x = torch.rand(2, 3, 8, 8, device=DEVICE)
    seen = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: seen.append(t) or t, lambda t: t):
        out, _ = lean(x)
    assert any(t.dtype == torch.float32 and t.shape == (2, 4, 8, 8) for t in seen)
    out.sum().backward()


def test_checkpoint_of_lean_model_same_gradients():
    from torch.utils.checkpoint import checkpoint

    torch.manual_seed(0)
    plain, lean = Net(False).to(DEVICE), Net(True).to(DEVICE)
    lean.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 8, 8, device=DEVICE)
    ya = plain(x)[0]
    yb = checkpoint(lambda t: lean(t)[0], x, use_reentrant=False)
    ya.sum().backward(), yb.sum().backward()
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(plain.parameters(),
                                                           lean.parameters()))


class Scale(nn.Module):
    def __init__(self, mark):
        super().__init__()
        self.p = nn.Parameter(torch.ones(()))
        self.mark = mark

    def forward(self, x):
        with spike_saving():
            s = (x > 0.5).float()
            out = self.p * s  # keeps s for the gradient of p
            mark_spikes(self.mark(s), 1)
            return out


@pytest.mark.parametrize("mark,converted", [(lambda s: s, True),
                                            (lambda s: s.view(-1), True),
                                            (lambda s: s[:1], False),
                                            (lambda s: s.t(), False),
                                            (lambda s: s.double(), False)])
def test_mark_covers_exactly_the_marked_elements(mark, converted):
    x = torch.rand(4, 6, device=DEVICE)
    report = saved_bytes(Scale(mark).to(DEVICE), x)
    assert report.total == (3 if converted else 4 * 24)


def _conv_bn(conv_cls, **kw):
    torch.manual_seed(0)
    return nn.Sequential(conv_cls(4, 6, 3, padding=1, bias=False, **kw),
                         nn.BatchNorm2d(6)).to(DEVICE).train()


def test_batch_norm_after_spike_conv_keeps_a_recipe_with_equal_gradients():
    # The batch norm's input (the convolution's output) is recomputed in backward from the
    # spike bits the convolution keeps anyway: no float copy, the same gradients bit for bit.
    plain, lean = _conv_bn(nn.Conv2d), _conv_bn(SpikeConv2d)
    lean.load_state_dict(plain.state_dict())
    x = spikes((3, 4, 9, 9), seed=3).requires_grad_()
    grads = []
    for net in (plain, lean):
        x.grad = None
        with spike_saving(recompute=True):
            out = net(x)
        (out * torch.linspace(-1, 1, out.numel(), device=DEVICE).view_as(out)).sum().backward()
        grads.append([x.grad.clone()] + [p.grad.clone() for p in net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads))
    bits = math.ceil(x.numel() / 8)
    out_bytes = 4 * 3 * 6 * 9 * 9
    rp, rl = saved_bytes(plain, x), saved_bytes(lean, x)
    assert saved_bytes(lean, x).modules["1"] >= out_bytes  # recompute is off by default
    save_spikes_as_bits(lean, recompute=True)
    rl = saved_bytes(lean, x)
    assert rp.modules["1"] >= out_bytes  # torch's batch norm keeps its float input
    assert rl.modules.get("1", 0) < out_bytes // 8 and rl.modules["0"] == bits


def test_recomputation_refuses_a_weight_changed_in_place():
    lean = _conv_bn(SpikeConv2d)
    with spike_saving(recompute=True):
        out = lean(spikes((2, 4, 5, 5)))
    with torch.no_grad():
        lean[0].weight.add_(1)
    with pytest.raises(RuntimeError, match="SpikeConv2d.*modified in place"):
        out.sum().backward()


def test_part_of_a_recomputable_output_is_saved_as_it_is():
    # y[:1] is contiguous but covers only part of the registered output: kept as floats
    report = saved_bytes(_FirstImageScaled().to(DEVICE), spikes((2, 4, 5, 5)))
    assert report.modules[""] == 4 * 2 * 6 * 5 * 5  # the view keeps the whole storage


class _FirstImageScaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = SpikeConv2d(4, 6, 3, padding=1)
        self.scale = nn.Parameter(torch.ones(1, 6, 1, 1))

    def forward(self, x):
        return self.conv(x)[:1] * self.scale
