"""Stream a long sequence through a small spiking network in chunks, with stateful neurons.

    python examples/stream_chunks.py           # T = 4000 steps in chunks of 250
    python examples/stream_chunks.py --quick   # T = 96 in chunks of 20 (CI)

Each ``MultiThresholdLIF(stateful=True)`` keeps its membrane (and synaptic current) between
calls, so feeding the sequence chunk by chunk gives exactly the spikes of one call over the
whole sequence, and, the kept states staying in the graph, the same gradients. For
truncated BPTT (a bounded graph on an endless stream) call ``detach_state()`` after each
window's backward; ``reset_state()`` starts a new sequence. The example checks both claims
and then runs a few truncated-BPTT training steps.
"""

import argparse

import torch
from torch import nn

from fastsnn.nn import MultiThresholdLIF


def network(features: int, hidden: int, classes: int) -> nn.Sequential:
    """Linear -> LIF (synaptic current) -> Linear -> LIF (soft reset, rest at -0.2): every
    layer runs on [T, N, features] and the neurons keep their state between calls."""
    return nn.Sequential(
        nn.Linear(features, hidden),
        MultiThresholdLIF(decay=0.9, syn_decay=0.7, levels=2, threshold=0.5,
                          stateful=True, step_rank=2),
        nn.Linear(hidden, classes),
        MultiThresholdLIF(tau=4.0, reset="soft", v_reset=-0.2, learnable_decay=True,
                          stateful=True, step_rank=2))


def reset(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, MultiThresholdLIF):
            m.reset_state()


def run(model, x, chunk):
    """Output spikes over x ([T, N, F]) fed in chunks of `chunk` steps, and the gradients
    of a loss over all of them with respect to the parameters and x."""
    reset(model)
    x = x.detach().requires_grad_()
    out = torch.cat([model(part) for part in x.split(chunk)])
    loss = (out * torch.linspace(-1, 1, out.shape[-1])).sum()
    grads = torch.autograd.grad(loss, [x, *model.parameters()])
    return out, grads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a short sequence (CI)")
    args = p.parse_args()
    T, chunk = (96, 20) if args.quick else (4000, 250)
    torch.manual_seed(0)
    model = network(features=16, hidden=64, classes=4)
    x = torch.randn(T, 8, 16)

    whole, g_whole = run(model, x, chunk=T)
    chunked, g_chunked = run(model, x, chunk=chunk)
    assert torch.equal(chunked, whole), "chunked spikes differ from the whole-sequence run"
    worst = max(((a - b).abs().max() / (1 + b.abs().max())).item()
                for a, b in zip(g_chunked, g_whole))
    assert worst < 1e-4, f"gradients differ by {worst:.2e}"
    print(f"T = {T}, chunks of {chunk}: {int(whole.sum())} output spikes, identical "
          f"to the whole-sequence run; gradients equal (largest relative difference "
          f"{worst:.1e})")

    # Truncated BPTT: one optimiser step per window, the state carried but detached.
    reset(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    target = torch.randint(0, 4, (8,))
    for i, part in enumerate(x.split(chunk)):
        loss = nn.functional.cross_entropy(model(part).mean(0), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        for m in model.modules():
            if isinstance(m, MultiThresholdLIF):
                m.detach_state()
        if i in (0, len(x.split(chunk)) - 1):
            print(f"truncated BPTT window {i}: loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
