"""mt_lif under torch.compile(fullgraph=True): no graph breaks, no recompilation per T."""

import pytest
import torch
from helpers import DEVICE, fast_backends

import fastsnn


def _compile_counter():
    from torch._dynamo.testing import CompileCounter

    return CompileCounter()


def test_reference_traces_fullgraph():
    """The reference is plain torch: it compiles whole (its Python loop unrolls per T)."""
    torch._dynamo.reset()
    x = torch.randn(3, 2, 4, device=DEVICE, requires_grad=True)
    f = torch.compile(fastsnn.reference.mt_lif, fullgraph=True, backend="eager")
    assert torch.equal(f(x, 0.5, levels=2), fastsnn.reference.mt_lif(x, 0.5, levels=2))


@pytest.mark.parametrize("backend", fast_backends("mt_lif"))
def test_fullgraph_no_recompile_across_T(backend):
    """The fused op takes T at run time: one graph serves every T."""
    torch._dynamo.reset()
    counter = _compile_counter()
    decay = torch.full((4,), 0.6, device=DEVICE, requires_grad=True)

    def step(x):
        return fastsnn.mt_lif(x, decay, levels=3, reset="soft", surrogate="triangle",
                              backend=backend)

    compiled = torch.compile(step, backend=counter, fullgraph=True, dynamic=True)
    for T in (2, 5, 7, 9):  # sizes distinct from N, C, R: no duck-sizing coincidences
        x = torch.randn(T, 3, 4, 6, device=DEVICE, requires_grad=True)
        got = compiled(x)
        want = step(x)
        assert torch.equal(got, want)
        got.sum().backward()
    assert counter.frame_count == 1, f"recompiled: {counter.frame_count} frames for 4 T values"


@pytest.mark.parametrize("backend", fast_backends("mt_lif"))
def test_inductor_end_to_end(backend):
    """The real compiler (inductor) around the custom op, forward and backward."""
    torch._dynamo.reset()
    conv = torch.nn.Conv2d(3, 4, 3, padding=1).to(DEVICE)

    def net(x):
        y = conv(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        return fastsnn.mt_lif(y, 0.5, levels=2, backend=backend).mean()

    x = torch.randn(2, 2, 3, 6, 6, device=DEVICE)
    compiled = torch.compile(net, fullgraph=True)
    got = compiled(x)
    got.backward()
    grad = conv.weight.grad.clone()
    conv.weight.grad = None
    want = net(x)
    want.backward()
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(grad, conv.weight.grad, atol=1e-5, rtol=1e-4)
