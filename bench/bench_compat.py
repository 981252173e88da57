"""compat: a SpikingJelly network against the same network after
``fastsnn.compat.from_spikingjelly`` (its LIF nodes replaced by ``mt_lif``), forward+backward.

The network is a small VGG-style SNN in SpikingJelly's multi-step layers (conv + batch norm
+ LIFNode, x3, pooling, linear readout) on CIFAR-sized random input. Each case first checks
that the converted network gives the same output and input gradient as the original.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from fastsnn.compat import from_spikingjelly


def _network(channels=(32, 64, 64)):
    from spikingjelly.activation_based import layer, neuron, surrogate

    blocks, cin = [], 3
    for cout in channels:
        blocks += [layer.Conv2d(cin, cout, 3, padding=1, bias=False, step_mode="m"),
                   layer.BatchNorm2d(cout, step_mode="m"),
                   neuron.LIFNode(tau=2.0, surrogate_function=surrogate.Sigmoid(),
                                  detach_reset=True, step_mode="m"),
                   layer.MaxPool2d(2, step_mode="m")]
        cin = cout
    blocks += [layer.Flatten(step_mode="m"), layer.Linear(cin * 4 * 4, 10, step_mode="m")]
    return nn.Sequential(*blocks)


def _step(model, x, grad):
    def run():
        from spikingjelly.activation_based import functional

        functional.reset_net(model)
        xi = x.detach().requires_grad_()
        out = model(xi)
        out.backward(grad)
        return out, xi.grad
    return run


def run(suite) -> None:
    try:
        theirs = _network().to(suite.device)
    except Exception as exc:  # not installed, or incompatible with this torch
        suite.note(f"compat: spikingjelly unavailable ({exc.__class__.__name__}: {exc})")
        return
    ours = from_spikingjelly(copy.deepcopy(theirs))
    for T, N in ((2, 8), (4, 8)) if suite.quick else ((2, 16), (4, 16), (8, 16)):
        gen = torch.Generator().manual_seed(T)
        x = (torch.rand(T, N, 3, 32, 32, generator=gen) * 2).to(suite.device)
        grad = torch.randn(T, N, 10, generator=gen).to(suite.device)
        theirs_step, ours_step = _step(theirs, x, grad), _step(ours, x, grad)
        suite.verify("compat converted", ours_step(), theirs_step(), atol=1e-4, rtol=1e-4)
        case = f"vgg3 T={T} N={N} 32x32"
        for impl, fn in (("spikingjelly", theirs_step), ("fastsnn-converted", ours_step)):
            suite.time(fn, op="compat", case=case, dtype="float32", impl=impl,
                       direction="fwd+bwd", work=T * N, work_unit="sample-step")
