"""Packed spikes end to end: the fused binary SNN layer and a packed ALBSNN.

Block rows (T = 4, spikes at 20 % density, 3x3 conv, padding 1, levels 1 and 3 for the
input and the LIF): one binary SNN layer (conv + batch norm + multi-threshold LIF) run as

* ``cpu+fused``: ``fastsnn.binary_snn_layer`` on ``PackedSpikes`` in and out (batch norm
  folded into the per-channel affine, LIF in the convolution's epilogue);
* ``cpu+unfused``: ``binary_conv2d`` on float spikes (packed weight, batch norm folded into
  its epilogue) then ``mt_lif`` on the float current: the best unfused fastsnn path;
* ``F.conv2d-fp32`` / ``F.conv2d-bf16``: PyTorch's convolution on ``alpha * sign(W)``,
  ``F.batch_norm``, then fastsnn's ``mt_lif``.

Every contender is checked against the reference composition first (ours exactly; the
peers, whose batch norm rounds differently, count their differing spikes). Byte floor:
the least traffic of the layer's form; the fused layer reads bits per input element-step
and writes bits per output element-step (``bytes_per_elem_step`` in the extras), the float
forms read and write 4 B (2 B for bf16) around each op.

Network rows: a packed ALBSNN (``export_packed()``, every stage after the first binarised
and fused) against the same network in eval mode on float spikes, images/s, on digits-sized
(1x8x8) and CIFAR-sized (3x32x32) random inputs; predictions checked equal first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from harness import fast_backends

import fastsnn
from fastsnn.models.albsnn import ALBSNN
from fastsnn.nn import BinarySNNBlock
from fastsnn.packed_spikes import PackedSpikes

DENSITY = 0.2
T = 4


def _blocks(quick):
    if quick:
        return [(2, 32, 8, 8), (2, 64, 4, 4)]
    return [(32, 128, 16, 16), (32, 256, 8, 8)]


def run(suite) -> None:
    if suite.device.type != "cpu" or "cpu" not in fast_backends("binary_snn_layer",
                                                                suite.device):
        suite.note("bench_packed: the fused layer has a cpu kernel only; skipped here")
        return
    g = torch.Generator().manual_seed(0)
    for shape in _blocks(suite.quick):
        for levels in (1, 3):
            _bench_block(suite, shape, levels, g)
    _bench_network(suite, "digits", (1, 8, 8), 8 if suite.quick else 64, g)
    _bench_network(suite, "cifar10", (3, 32, 32), 2 if suite.quick else 8, g)


def _block(cin, levels, g):
    block = BinarySNNBlock(cin, cin, 3, padding=1, levels=levels, decay=0.5, reset="soft")
    with torch.no_grad():
        block.conv.weight.copy_(torch.randn(block.conv.weight.shape, generator=g))
        block.bn.running_mean.copy_(torch.randn(cin, generator=g) * 2)
        block.bn.running_var.copy_(torch.rand(cin, generator=g) * 20 + 1)
        block.bn.weight.copy_(torch.rand(cin, generator=g) + 0.5)
        block.bn.bias.copy_(torch.rand(cin, generator=g))
    return block.eval()


def _bench_block(suite, shape, levels, g):
    n, c, h, w = shape
    x = torch.randint(0, levels + 1, (T, n, c, h, w), generator=g).float()
    x = x * (torch.rand(x.shape, generator=g) < DENSITY / (1 - 1 / (levels + 1)))
    px = PackedSpikes.from_float(x, levels)
    block = _block(c, levels, g)
    weight, scale, shift = block.folded()
    lif = dict(threshold=1.0, levels=levels, decay=0.5, reset="soft")
    case = f"T{T} {n}x{c}x{h}x{w} levels {levels}"
    with torch.no_grad():
        expected = fastsnn.binary_snn_layer(px, weight, scale, shift, padding=1,
                                            backend="reference", **lif).unpack()
    bn = block.bn
    wb = (block.conv.weight.detach() >= 0).float() * 2 - 1
    wb = wb * fastsnn.reference.binary_conv.channel_alpha(block.conv.weight.detach()).reshape(
        -1, 1, 1, 1)
    xb, wbb = x.bfloat16(), wb.bfloat16()

    def torch_layer(xx, ww):
        y = F.conv2d(xx.flatten(0, 1), ww, padding=1)
        y = F.batch_norm(y, bn.running_mean.to(y.dtype), bn.running_var.to(y.dtype),
                         bn.weight.detach().to(y.dtype), bn.bias.detach().to(y.dtype),
                         False, 0.0, bn.eps)
        return fastsnn.mt_lif(y.unflatten(0, (T, n)), 0.5, threshold=1.0, levels=levels,
                              reset="soft")

    impls = {
        "cpu+fused": lambda: fastsnn.binary_snn_layer(px, weight, scale, shift, padding=1,
                                                      backend="cpu", **lif),
        "cpu+unfused": lambda: fastsnn.mt_lif(
            fastsnn.binary_conv2d(x, weight, scale, shift, padding=1, levels=levels,
                                  backend="cpu"), 0.5, threshold=1.0, levels=levels,
            reset="soft", backend="cpu"),
        "F.conv2d-fp32": lambda: torch_layer(x, wb),
        "F.conv2d-bf16": lambda: torch_layer(xb, wbb),
    }
    elems = T * n * c * h * w  # output element-steps (Cout = Cin, same size)
    packed_bytes = px.nbytes  # in and out alike: same shape and levels
    floors = {"cpu+fused": 2 * packed_bytes + weight.nbytes,
              "cpu+unfused": elems * (4 + 4 + 4 + 4) + weight.nbytes,  # x, current w+r, s
              "F.conv2d-fp32": elems * (4 + 4 * 4 + 4) + wb.nbytes,  # x, conv, bn, lif
              "F.conv2d-bf16": elems * (2 + 2 * 4 + 2) + wbb.nbytes}
    copy_bps = suite.clone_bps(x)
    for name, fn in impls.items():
        with torch.no_grad():
            out = fn()
            out = out.unpack() if isinstance(out, PackedSpikes) else out.float()
            suite.verify(f"packed block {name} {case}", out, expected, exact=True,
                         peer=None if name.startswith("cpu") else name)
        suite.time(_no_grad(fn), op="binary_snn_layer", case=case, dtype="float32",
                   impl=name, direction="fwd", bytes_moved=floors[name], work=elems,
                   work_unit="elem-step",
                   extra=dict(bytes_per_elem_step=floors[name] / elems, levels=levels,
                              density=DENSITY), copy_bps=copy_bps)
    suite.end_case()


def _bench_network(suite, dataset, image, batch, g):
    model = ALBSNN.from_dataset(dataset, T=T, levels=1, num_classes=10,
                                in_channels=image[0])
    for stage in list(model.features)[1:]:
        stage.conv.set_binarized(True)
    model.train()
    warm = torch.rand(batch, *image, generator=g)
    with torch.no_grad():
        model(warm)  # batch-norm statistics of this input
    model.eval()
    packed = model.export_packed()
    x = torch.rand(batch, *image, generator=g)
    case = f"ALBSNN {dataset} T{T} batch {batch}"
    with torch.no_grad():
        want = model(x)
        got = packed(x)
    suite.verify(f"{case} predictions", got.argmax(1), want.argmax(1), exact=True)
    suite.verify(f"{case} logits", got, want, atol=1e-5, rtol=1e-5)
    for name, net in (("cpu+fused", packed), ("cpu+unfused", model)):
        suite.time(_no_grad(lambda net=net: net(x)), op="albsnn_inference", case=case,
                   dtype="float32", impl=name, direction="fwd", work=batch,
                   work_unit="image")
    suite.end_case()


def _no_grad(fn):
    def call():
        with torch.no_grad():
            return fn()
    return call
