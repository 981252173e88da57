"""Regressions for defects found by adversarial testing: stale packed weights after in-place
weight edits, packed state of another geometry, narrow integer inputs to ``bitpack``."""

import pytest
import torch
from helpers import DEVICE, generator

import fastsnn
from fastsnn.nn import BinaryConv2d
from fastsnn.reference.binary_conv import bitunpack


def _spikes(shape, seed):
    return (torch.rand(*shape, generator=generator(seed)) < 0.5).float().to(DEVICE)


@pytest.mark.parametrize("edit", ["fused_adam", "data_clamp", "data_copy"])
def test_eval_module_sees_in_place_weight_edits(edit):
    # Edits that change neither weight._version nor its data pointer must still reach the
    # packed kernel in eval mode.
    torch.manual_seed(0)
    m = BinaryConv2d(8, 4, 3).to(DEVICE)
    x = _spikes((2, 8, 6, 6), 1)
    m.eval()
    before = m(x)
    if edit == "fused_adam":
        if DEVICE.type != "cuda" and not _fused_adam_on_cpu():
            pytest.skip("fused Adam needs a CUDA device in this torch")
        opt = torch.optim.Adam(m.parameters(), lr=10.0, fused=True)
        m.train()
        (m(x) * torch.randn_like(before)).sum().backward()
        opt.step()
        m.eval()
    elif edit == "data_clamp":
        m.weight.data.mul_(-1).clamp_(-1, 1)
    else:
        m.weight.data.copy_(-m.weight.data)
    want = torch.nn.functional.conv2d(
        x, torch.where(m.weight.detach() >= 0, 1.0, -1.0)
        * m.weight.detach().abs().mean(dim=(1, 2, 3), keepdim=True))
    got = m(x)
    assert not torch.equal(got, before)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def _fused_adam_on_cpu() -> bool:
    p = torch.nn.Parameter(torch.ones(1))
    p.grad = torch.ones(1)
    try:
        torch.optim.Adam([p], fused=True).step()
    except RuntimeError:
        return False
    return True


def test_eval_module_compiles_fullgraph_and_exports():
    m = BinaryConv2d(8, 4, 3, padding=1).to(DEVICE).eval()
    x = _spikes((2, 8, 6, 6), 2)
    want = m(x)
    compiled = torch.compile(m, fullgraph=True)
    for _ in range(3):  # the old data_ptr() cache key failed from the second call
        torch.testing.assert_close(compiled(x), want)
    exported = torch.export.export(m, (x,))
    torch.testing.assert_close(exported.module()(x), want)


@pytest.mark.parametrize("other", [dict(in_channels=40), dict(out_channels=5),
                                   dict(kernel_size=1)])
def test_packed_state_of_another_shape_is_rejected(other):
    src_args = dict(in_channels=8, out_channels=4, kernel_size=3)
    src = BinaryConv2d(**src_args)
    src.pack()
    dst = BinaryConv2d(**{**src_args, **other})
    with pytest.raises(RuntimeError, match="size mismatch"):
        dst.load_state_dict(src.state_dict())
    same = BinaryConv2d(**src_args)
    same.load_state_dict(src.state_dict())  # the same geometry still loads
    assert same.packed and torch.equal(same.weight_packed, src.weight_packed)


@pytest.mark.parametrize("dtype,bits", [(torch.uint8, 8), (torch.int8, 7), (torch.int16, 15),
                                        (torch.int32, 31), (torch.uint8, 3),
                                        (torch.int64, 31)])
def test_bitpack_accepts_the_full_range_of_narrow_integers(dtype, bits):
    top = 2**bits - 1
    x = torch.tensor([0, top, 1, top - 1, 5 % (top + 1)], dtype=dtype).repeat(7)
    words = fastsnn.bitpack(x, bits=bits, dim=0)
    assert torch.equal(bitunpack(words, x.numel(), bits=bits, dim=0), x.to(torch.int64))


@pytest.mark.parametrize("dtype,bits,bad", [(torch.uint8, 3, 8), (torch.int8, 7, -1),
                                            (torch.int16, 4, 16), (torch.float32, 2, 2.5)])
def test_bitpack_message_quotes_the_value_out_of_range(dtype, bits, bad):
    x = torch.tensor([1, bad, 0], dtype=dtype)
    with pytest.raises(ValueError, match=f"found {bad!r}"):
        fastsnn.bitpack(x, bits=bits, dim=0)
