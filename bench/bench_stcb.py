"""stcb: a 4-block STCSNN forward+backward in count mode (the STCB rule: one convolution per
block, a 1-bit mask for the backward) against the same network run step by step
(``mode="stepwise"``: per-step convolutions and an IF neuron with surrogate BPTT through
``fastsnn.mt_lif``), at T in {2, 4, 8, 32}; plus the ``stcb`` / ``spike_count`` ops on their
own against the reference.

Memory, side by side with time:
* ``saved``: bytes autograd keeps for the backward (distinct storages packed by
  ``torch.autograd.graph.saved_tensors_hooks``, parameters excluded): the activation memory,
  measured on every device.
* ``peak``: on CUDA also ``torch.cuda.max_memory_allocated`` over forward+backward, above
  what was allocated before. On CPU torch has no allocator statistics, so the saved bytes
  are the memory figure there.

Both networks share their parameters; each configuration is verified before it is timed
(count mode with the fast backends against the reference backend: identical logits and
gradients; stepwise against stepwise on the reference backend).
"""

from __future__ import annotations

import torch
from harness import fast_backends

import fastsnn
from fastsnn.models import STCSNN

TARGET_SPEEDUP_T8 = 4.0


def _network_shapes(quick):
    if quick:
        return (8, 16, "A", 16, 32), (2, 3, 16, 16), (2, 8)
    return (16, 32, "A", 32, 64), (8, 3, 32, 32), (2, 4, 8, 32)


def saved_tensor_bytes(fn, exclude=()) -> int:
    """Bytes of the distinct storages autograd saves while ``fn()`` runs."""
    skip = {p.untyped_storage().data_ptr() for p in exclude}
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def _peak_bytes(fn, device) -> int | None:
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def _train_step(net, x):
    def step():
        net.zero_grad(set_to_none=True)
        logits = net(x)
        logits.sum().backward()
        return logits
    return step


def _grads(net):
    return [p.grad.detach().clone() for p in net.parameters()]


def _verify(suite, name, net, ref_net, x):
    out = _train_step(net, x)()
    want = _train_step(ref_net, x)()
    suite.verify(f"{name} logits", out, want, atol=1e-4, rtol=1e-4)
    suite.verify(f"{name} grads", _grads(net), _grads(ref_net), atol=1e-3, rtol=1e-3)


def run(suite) -> None:
    device = suite.device
    _bench_network(suite, device)
    _bench_ops(suite, device)


def _bench_network(suite, device):
    cfg, shape, steps = _network_shapes(suite.quick)
    x = torch.randn(shape, device=device)
    panel = f"stcsnn fwd+bwd {'x'.join(map(str, shape))} 4 STCBs"
    suite.panel(panel, "T", "count", ["stepwise"])
    results = {}
    for T in steps:
        torch.manual_seed(0)
        nets = {mode: STCSNN(cfg, in_channels=shape[1], num_classes=10, T=T, levels=1,
                             mode=mode).to(device) for mode in ("count", "stepwise")}
        nets["stepwise"].load_state_dict(nets["count"].state_dict())
        case = f"T={T} {'x'.join(map(str, shape))} 4 STCBs"
        for mode, net in nets.items():
            reference = STCSNN(cfg, in_channels=shape[1], num_classes=10, T=T, mode=mode,
                               backend="reference").to(device)
            reference.load_state_dict(net.state_dict())
            _verify(suite, f"stcsnn {mode} {case}", net, reference, x)
            step = _train_step(net, x)
            saved = saved_tensor_bytes(step, exclude=list(net.parameters()))
            peak = _peak_bytes(step, device)
            row = suite.time(step, op="stcsnn", case=case, dtype="float32", impl=mode,
                             direction="fwd+bwd", work=x.shape[0], work_unit="img",
                             extra={"saved_bytes": saved, "peak_bytes": peak}, panel=panel,
                             scale=T)
            results[(T, mode)] = (row.median_ms, saved, peak)
    _summarise(suite, steps, results)


def _summarise(suite, steps, results):
    lif = fastsnn.available_backends("mt_lif", suite.device.type)[0]  # what None picks
    suite.note(f"stcsnn stepwise: IF neuron = fastsnn.mt_lif on its {lif!r} backend; memory "
               f"figures are bytes saved for backward (parameters excluded)")
    for T in steps:
        (tc, sc, pc), (ts, ss, ps) = results[(T, "count")], results[(T, "stepwise")]
        peak = "" if pc is None else f", peak {pc / 2**20:.1f} vs {ps / 2**20:.1f} MiB"
        suite.note(f"stcsnn T={T}: count {tc:.1f} ms vs stepwise {ts:.1f} ms "
                   f"({ts / tc:.1f}x faster); saved for backward {sc / 2**20:.2f} vs "
                   f"{ss / 2**20:.2f} MiB{peak}")
    first, last = steps[0], steps[-1]
    growth = results[(last, "count")][0] / results[(first, "count")][0]
    mem = results[(last, "count")][1] / results[(first, "count")][1]
    suite.note(f"stcsnn count mode T={first}->{last}: time x{growth:.2f}, saved bytes "
               f"x{mem:.2f} (target: flat)")
    if 8 in steps:
        speedup = results[(8, "stepwise")][0] / results[(8, "count")][0]
        verdict = "met" if speedup >= TARGET_SPEEDUP_T8 else "NOT met"
        suite.note(f"stcsnn T=8: count mode {speedup:.1f}x faster than stepwise "
                   f"(target >= {TARGET_SPEEDUP_T8:.0f}x: {verdict})")


def _op_backends(device, op):
    return fast_backends(op, device) + ["reference"]


def _bench_ops(suite, device):
    E = (1 << 14) if suite.quick else (1 << 20)
    panel = f"spike_count E={E}"
    suite.panel(panel, "T", _op_backends(device, "spike_count")[0], ["torch.sum"],
                targets={"torch.sum": 1.0})
    for T in ((2, 8) if suite.quick else (4, 8, 32)):
        _bench_ops_case(suite, device, E, T, panel)


def _bench_ops_case(suite, device, E, T, panel):
    a = (torch.rand(E, device=device) * 1.2 - 0.1) * T
    case = f"T={T} E={E}"
    # the floor's rate: a clone of the train [T, E], the size the ops read (cache effects)
    train_like = torch.empty(T, E, device=device).fill_(1.0)
    common = dict(case=case, dtype="float32", direction="fwd", bytes_moved=4 * E * (T + 1),
                  work=E * T, copy_bps=suite.clone_bps(train_like))
    want = fastsnn.stcb(a, T, backend="reference")
    for backend in _op_backends(device, "stcb"):
        suite.verify(f"stcb {backend} {case}", fastsnn.stcb(a, T, backend=backend), want,
                     exact=True)
        suite.time(lambda b=backend: fastsnn.stcb(a, T, backend=b), op="stcb train",
                   impl=backend, **common)
    s = want.contiguous()
    for backend in _op_backends(device, "spike_count"):
        suite.verify(f"spike_count {backend} {case}", fastsnn.spike_count(s, backend=backend),
                     s.sum(0), exact=True)
        suite.time(lambda b=backend: fastsnn.spike_count(s, backend=b), op="spike_count",
                   impl=backend, panel=panel, scale=T, **common)
    suite.time(lambda: s.sum(0), op="spike_count", impl="torch.sum", panel=panel, scale=T,
               **common)
