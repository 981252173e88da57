"""The Triton packed-spike kernels (kernels/packed_spikes.py) against the reference, bit for
bit: binary_conv2d on packed input, mt_lif(packed=True) and binary_snn_layer. Tiny shapes
under the Triton interpreter on CPU; on CUDA with FASTSNN_TEST_DEVICE=cuda."""

from __future__ import annotations

import pytest
import torch
from helpers import DEVICE, generator, require_backend

import fastsnn
from fastsnn.ops.binary_conv import PackedBinaryWeight
from fastsnn.packed_spikes import PackedSpikes

LIFS = [dict(levels=1), dict(levels=3, reset="soft", form="plif"),
        dict(levels=2, reset="subtract_next", threshold=0.7), dict(levels=5, reset="none")]


@pytest.mark.parametrize("options", LIFS)
def test_fused_layer(options):
    require_backend("triton", "binary_snn_layer")
    g = generator(options["levels"])
    x = torch.randint(0, 4, (2, 2, 35, 5, 4), generator=g).float()
    px = PackedSpikes.from_float(x, 3).to(DEVICE)
    w = PackedBinaryWeight.from_float(torch.randn(40, 35, 3, 3, generator=g), None).to(DEVICE)
    scale = (torch.rand(40, generator=g) * 0.2).to(DEVICE)
    bias = torch.randn(40, generator=g).to(DEVICE)
    decay = torch.rand(40, generator=g).to(DEVICE)
    args = dict(padding=1, stride=(1, 2), decay=decay, **options)
    got = fastsnn.binary_snn_layer(px, w, scale, bias, backend="triton", **args)
    want = fastsnn.binary_snn_layer(px, w, scale, bias, backend="reference", **args)
    assert torch.equal(got.words, want.words)
    assert want.unpack().sum() > 0


def test_conv_on_packed_input():
    require_backend("triton", "binary_conv2d_packed")
    g = generator(5)
    x = torch.randint(0, 2, (2, 1, 33, 6, 5), generator=g).float().to(DEVICE)
    w = torch.randn(7, 33, 3, 3, generator=g).to(DEVICE)
    bias = torch.randn(7, generator=g).to(DEVICE)
    got = fastsnn.binary_conv2d(PackedSpikes.from_float(x, 1), w, "channel", bias, padding=1,
                                dilation=2, backend="triton")
    want = fastsnn.binary_conv2d(x, w, "channel", bias, padding=1, dilation=2,
                                 backend="reference")
    assert torch.equal(got, want)


@pytest.mark.parametrize("options", LIFS)
def test_mt_lif_packed(options):
    require_backend("triton", "mt_lif_packed")
    g = generator(options["levels"] + 10)
    x = (torch.randn(3, 2, 37, 5, generator=g) * 1.5).to(DEVICE)
    decay = torch.rand(37, generator=g).to(DEVICE)
    got = fastsnn.mt_lif(x, decay, packed=True, backend="triton", **options)
    want = fastsnn.mt_lif(x, decay, backend="reference", **options)
    assert torch.equal(got.unpack(), want)
