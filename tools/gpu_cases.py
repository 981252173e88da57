"""One small call of every CUDA kernel, forward and backward, for compute-sanitizer.

``tools/gpu_check.sh`` runs this under ``compute-sanitizer --tool memcheck`` (and
racecheck): small shapes with ragged tails (sizes that are not multiples of a block), each
option that selects another kernel or code path once, both binary-conv CUDA kernels
(``FASTSNN_CUDA_BCONV=popc`` and ``mma``). Each result is compared with the reference, so
a kernel that reads garbage also fails here. ``--device cpu --backend cpu`` runs the same
calls on the C++ kernels (the dry run of gpu_check.sh).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

import fastsnn


def _close(got, want, what):
    if not torch.allclose(got.double().cpu(), want.double().cpu(), rtol=1e-3, atol=1e-3):
        raise AssertionError(f"{what}: backend differs from the reference")


def mt_lif(dev, backend):
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for reset, form, syn in (("hard", "stbp", None), ("soft", "plif", 0.7),
                                 ("none", "stbp", 0.5)):
            x = (torch.randn(5, 3, 4, 37, generator=g) * 2).to(dev, dtype).requires_grad_()
            decay = torch.full((4,), 0.6, device=dev, requires_grad=True)
            v0 = torch.randn(3, 4, 37, generator=g).to(dev).requires_grad_()
            outs = []
            for b in (backend, "reference"):
                s = fastsnn.mt_lif(x, decay, levels=3, reset=reset, form=form, syn_decay=syn,
                                   v0=v0, surrogate="sigmoid", backend=b)
                outs.append((s, *torch.autograd.grad((s * s).sum(), (x, decay, v0))))
            for got, want in zip(*outs):
                _close(got, want, f"mt_lif {dtype} {reset} {form} syn={syn}")
        with torch.no_grad():  # the forward that saves nothing
            fastsnn.mt_lif(torch.randn(2, 1, 3, 5, device=dev, dtype=dtype), backend=backend)


def stcb(dev, backend):
    a = (torch.rand(3, 5, 37) * 9 - 1).to(dev).requires_grad_()
    for output in ("train", "count"):
        outs = []
        for b in (backend, "reference"):
            y = fastsnn.stcb(a, 6, levels=2, threshold=0.7, output=output, backend=b)
            outs.append((y, *torch.autograd.grad(y.sum(), a)))
        for got, want in zip(*outs):
            _close(got, want, f"stcb {output}")
    s = torch.randint(0, 3, (6, 5, 37)).float().to(dev)
    _close(fastsnn.spike_count(s, backend=backend), fastsnn.spike_count(s, backend="reference"),
           "spike_count")


def events(dev, backend):
    g = torch.Generator().manual_seed(1)
    n = 1500
    ev = torch.stack([torch.randint(0, 33, (n,), generator=g),
                      torch.randint(0, 17, (n,), generator=g),
                      torch.cumsum(torch.randint(0, 9, (n,), generator=g), 0),
                      torch.randint(0, 2, (n,), generator=g)], 1)
    offsets = torch.tensor([0, 700, 700, n])
    for split in ("number", "time"):
        for weighting in ("count", "exp"):
            kw = dict(offsets=offsets, split_by=split, weighting=weighting, spatial_factor=2,
                      tau_syn=20.0 if weighting == "exp" else None)
            got = fastsnn.events_to_current(ev.to(dev), (33, 17, 2), 5, backend=backend, **kw)
            want = fastsnn.events_to_current(ev, (33, 17, 2), 5, backend="reference", **kw)
            _close(got, want, f"events_to_current {split} {weighting}")


def binary_conv(dev, backend):
    g = torch.Generator().manual_seed(2)
    paths = ("popc", "mma") if dev.type == "cuda" else ("default",)
    for path in paths:
        os.environ["FASTSNN_CUDA_BCONV"] = path
        for activation, levels, cin in (("spike", 1, 70), ("spike", 3, 5), ("sign", 1, 33)):
            x = torch.randint(0, levels + 1, (2, cin, 9, 7), generator=g).float()
            if activation == "sign":
                x = x * 2 - 1
            w = torch.randn(13, cin, 3, 3, generator=g).to(dev).requires_grad_()
            bias = torch.randn(13, generator=g).to(dev)
            outs = []
            for b in (backend, "reference"):
                y = fastsnn.binary_conv2d(x.to(dev), w, "channel", bias, stride=(1, 2), padding=1,
                                          activation=activation, levels=levels, backend=b)
                outs.append((y, *torch.autograd.grad(y.square().sum(), w)))
            for got, want in zip(*outs):
                _close(got, want, f"binary_conv2d {path} {activation} levels={levels}")
    os.environ.pop("FASTSNN_CUDA_BCONV", None)


def packed(dev, backend):
    """mt_lif(packed=True), binary_conv2d on PackedSpikes and binary_snn_layer: bit for bit."""
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(3, 2, 37, 5, 3, generator=g) * 2).to(dev)
    decay = torch.rand(37, generator=g).to(dev)
    for levels, reset, form in ((1, "hard", "stbp"), (3, "soft", "plif"), (7, "none", "stbp")):
        got, want = (fastsnn.mt_lif(x, decay, levels=levels, reset=reset, form=form,
                                    packed=True, backend=b) for b in (backend, "reference"))
        if not torch.equal(got.words.cpu(), want.words.cpu()):
            raise AssertionError(f"mt_lif packed levels={levels} {reset} {form}: differs")
    paths = ("popc", "mma") if dev.type == "cuda" else ("default",)
    weight = fastsnn.ops.binary_conv.PackedBinaryWeight.from_float(
        torch.randn(35, 70, 3, 3, generator=g).to(dev), None)
    scale, bias = (torch.rand(35, generator=g) * 0.2).to(dev), torch.randn(35, generator=g).to(dev)
    for path in paths:
        os.environ["FASTSNN_CUDA_BCONV"] = path
        for levels in (1, 3):
            spikes = torch.randint(0, levels + 1, (2, 3, 70, 9, 7), generator=g).float()
            px = fastsnn.PackedSpikes.from_float(spikes.to(dev), levels)
            conv = dict(stride=(1, 2), padding=1)
            got, want = (fastsnn.binary_conv2d(px, weight, scale, bias, backend=b, **conv)
                         for b in (backend, "reference"))
            if not torch.equal(got.cpu(), want.cpu()):
                raise AssertionError(f"binary_conv2d packed {path} levels={levels}: differs")
            got, want = (fastsnn.binary_snn_layer(px, weight, scale, bias, levels=3,
                                                  reset="soft", decay=0.7, backend=b, **conv)
                         for b in (backend, "reference"))
            if not torch.equal(got.words.cpu(), want.words.cpu()):
                raise AssertionError(f"binary_snn_layer {path} levels={levels}: differs")
    os.environ.pop("FASTSNN_CUDA_BCONV", None)


CASES = {"mt_lif": mt_lif, "stcb": stcb, "events": events, "binary_conv": binary_conv,
         "packed": packed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--backend", default="cuda")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(CASES))
    args = parser.parse_args()
    dev = torch.device(args.device)
    for name, case in CASES.items():
        if args.only and name not in args.only.split(","):
            continue
        case(dev, args.backend)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        print(f"{name}: ok ({args.backend} on {dev})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
