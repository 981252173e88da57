"""memory: training memory and step time of a VGG-style SNN with spikes kept as bits.

The network is ``MTSNN`` in its CIFAR-10 configuration ({256C3}x3-MP2-{256C3}x3-MP2-FC2048,
random 32x32 images, dropout off so runs are comparable), binary spikes (levels=1, hard
reset, decay 0.5, sigmoid surrogate), at T = 2, 4, 8. Three builds share one set of
parameters:

* ``fastsnn lean``: ``spike_convs=True`` (the default): convs on spikes are ``SpikeConv2d``
  and every saved copy of a neuron's spikes is kept as bits.
* ``fastsnn lean+recompute``: also ``recompute=True``: the spike convs' outputs, which the
  batch norms would keep, are recomputed in backward from the bits (one more convolution
  per layer).
* ``fastsnn``: ``spike_convs=False``: the same network keeping float spikes.
* ``spikingjelly``: the ``fastsnn`` network with every neuron replaced by SpikingJelly's
  multi-step ``LIFNode`` (tau=2, decay_input=False, the same surrogate): LIFNode +
  nn.Conv2d, as a SpikingJelly user builds it.

Memory is ``fastsnn.memory.saved_bytes`` (bytes autograd keeps for backward, each storage
once, parameters excluded); time is one training step (zero_grad, forward, sum, backward),
the three builds interleaved repetition by repetition so machine noise hits them alike; the
rows hold the wall time, the notes compare process CPU time on CPU (steadier on a shared
machine; ``extra.cpu_ms`` in the rows).
Verified before timing: lean and plain give identical logits and gradients; SpikingJelly's
logits and gradients match them to float tolerance.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
from harness import Row

from fastsnn.memory import saved_bytes
from fastsnn.models.mtsnn import CONFIGS, MTSNN
from fastsnn.nn import MultiThresholdLIF

TARGET_MEMORY = 3.0  # >= 3x less saved than SpikingJelly at T = 4 ...
TARGET_TIME = 1.15  # ... for <= 15 % more step time (CPU)
NEURON = dict(levels=1, reset="hard", decay=0.5, surrogate="sigmoid", width=1.0)


def _setup(quick):
    if quick:  # the digits network: seconds, not minutes
        return "digits", dict(CONFIGS["digits"], dropout=0.0), (2, 1, 8, 8), (2, 4), 2
    return "cifar10", dict(CONFIGS["cifar10"], dropout=0.0), (1, 3, 32, 32), (2, 4, 8), 3


def _spikingjelly_net(net):
    """``net`` with every ``MultiThresholdLIF`` a SpikingJelly multi-step ``LIFNode``."""
    from spikingjelly.activation_based import neuron, surrogate

    sj = copy.deepcopy(net)
    for module in list(sj.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, MultiThresholdLIF):
                setattr(module, name, neuron.LIFNode(
                    tau=1 / (1 - NEURON["decay"]), decay_input=False, v_threshold=1.0,
                    v_reset=0.0, surrogate_function=surrogate.Sigmoid(alpha=4.0),
                    detach_reset=False, step_mode="m"))
    return sj


def _reset(net):
    """SpikingJelly neurons keep their membrane (and its graph) between calls."""
    if any(type(m).__module__.startswith("spikingjelly") for m in net.modules()):
        from spikingjelly.activation_based import functional

        functional.reset_net(net)


def _step(net, x):
    def run():
        _reset(net)
        net.zero_grad(set_to_none=True)
        out = net(x)
        out.sum().backward()
        return out
    return run


def _grads(net):
    return [p.grad.detach().clone() for p in net.parameters()]


def run(suite) -> None:
    device = suite.device
    dataset, cfg, shape, steps, reps = _setup(suite.quick)
    try:
        import spikingjelly  # noqa: F401
        have_sj = True
    except Exception as exc:  # not installed
        suite.note(f"memory: spikingjelly unavailable ({exc}); its rows are skipped")
        have_sj = False
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(device)
    results = {}
    for T in steps:
        torch.manual_seed(0)
        nets = {"fastsnn lean": MTSNN(shape[1], 10, shape[2:], T=T, **NEURON, **cfg)}
        nets["fastsnn lean+recompute"] = MTSNN(shape[1], 10, shape[2:], T=T, recompute=True,
                                               **NEURON, **cfg)
        nets["fastsnn"] = MTSNN(shape[1], 10, shape[2:], T=T, spike_convs=False, **NEURON,
                                **cfg)
        for k in ("fastsnn", "fastsnn lean+recompute"):
            nets[k].load_state_dict(nets["fastsnn lean"].state_dict())
        if have_sj:
            nets["spikingjelly"] = _spikingjelly_net(nets["fastsnn"])
        nets = {k: v.to(device).train() for k, v in nets.items()}
        fns = {k: _step(v, x) for k, v in nets.items()}
        case = f"mtsnn {dataset} T={T} N={shape[0]}"
        _verify(suite, case, nets, fns)
        saved = {}
        for k, net in nets.items():
            _reset(net)
            saved[k] = saved_bytes(net, x).total
        times = _interleaved(fns, device, reps)
        for impl, (sec, cpu) in times.items():
            suite.rows.append(Row(op="memory", case=case, dtype="float32", impl=impl,
                                  direction="fwd+bwd", median_ms=sec * 1e3, work=shape[0],
                                  work_unit="img", extra={"saved_bytes": saved[impl],
                                                          "cpu_ms": cpu * 1e3}))
            results[(T, impl)] = (cpu if device.type == "cpu" else sec, saved[impl])
    _summarise(suite, steps, results, have_sj)


def _verify(suite, case, nets, fns):
    got = {k: (fn(), _grads(nets[k])) for k, fn in fns.items()}
    plain = got["fastsnn"]
    for name in ("lean", "lean+recompute"):
        lean = got[f"fastsnn {name}"]
        suite.verify(f"memory {case} {name} logits", lean[0], plain[0], exact=True)
        suite.verify(f"memory {case} {name} grads", lean[1], plain[1], exact=True)
    if "spikingjelly" in got:
        sj = got["spikingjelly"]
        suite.verify(f"memory {case} spikingjelly logits", sj[0], plain[0], atol=1e-4,
                     rtol=1e-4)
        suite.verify(f"memory {case} spikingjelly grads", sj[1], plain[1], atol=1e-3,
                     rtol=1e-3)


def _interleaved(fns, device, reps):
    """Median wall and process-CPU seconds per step of each function, one repetition of
    each in turn (the verification and the memory measurement ran each once before: the
    warm-up). On a shared CPU the CPU time is the steadier of the two."""
    wall, cpu = {k: [] for k in fns}, {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            wall[k].append(time.perf_counter() - start)
            cpu[k].append(time.process_time() - start_cpu)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def _summarise(suite, steps, results, have_sj):
    label = "CPU time" if suite.device.type == "cpu" else "time"
    for T in steps:
        lean_t, lean_b = results[(T, "fastsnn lean")]
        plain_t, plain_b = results[(T, "fastsnn")]
        line = (f"memory T={T}: saved for backward lean {lean_b / 2**20:.1f} MiB, fastsnn "
                f"{plain_b / 2**20:.1f} MiB ({plain_b / lean_b:.2f}x)")
        if have_sj:
            sj_t, sj_b = results[(T, "spikingjelly")]
            line += f", spikingjelly {sj_b / 2**20:.1f} MiB ({sj_b / lean_b:.2f}x)"
        line += (f"; step {label} lean {lean_t * 1e3:.0f} ms, fastsnn {plain_t * 1e3:.0f} ms "
                 f"(lean {lean_t / plain_t:.2f}x)")
        if have_sj:
            line += f", spikingjelly {sj_t * 1e3:.0f} ms"
        rec_t, rec_b = results[(T, "fastsnn lean+recompute")]
        line += (f"; lean+recompute {rec_b / 2**20:.1f} MiB, step {rec_t * 1e3:.0f} ms")
        suite.note(line)
    if have_sj and 4 in steps:
        sj_t, sj_b = results[(4, "spikingjelly")]
        for impl in ("fastsnn lean", "fastsnn lean+recompute"):
            lean_t, lean_b = results[(4, impl)]
            mem, slower = sj_b / lean_b, lean_t / sj_t
            ok = mem >= TARGET_MEMORY and slower <= TARGET_TIME
            suite.note(f"memory T=4 {impl}: {mem:.2f}x less saved than spikingjelly at "
                       f"{slower:.2f}x its step {label} (target >= {TARGET_MEMORY:.0f}x at "
                       f"<= {TARGET_TIME:.2f}x: {'met' if ok else 'NOT met'})")
