"""CPU-time ratios of the CPU kernels against their peers on a shared machine.

    python tools/cpu_time_ratios.py binary_conv   # the three headline shapes
    python tools/cpu_time_ratios.py events        # 1M events, the six cases of bench_events
    python tools/cpu_time_ratios.py mt_lif        # the bench's headline neuron, T = 1..32

Wall-clock medians mean little when other jobs hold the cores, so this runs everything on
one thread (``torch.set_num_threads(1)``; pin the process with ``taskset -c 0``; ``--threads
N`` for N) and takes medians of ``time.process_time`` (the CPU time of the process, page
faults included), ours and the peer side by side in one process. The inputs are those of
the bench rows.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def median_cpu_ms(fn, *args, reps: int = 21, warmup: int = 3, **kwargs) -> float:
    for _ in range(warmup):
        fn(*args, **kwargs)
    times = []
    for _ in range(reps):
        t = time.process_time()
        fn(*args, **kwargs)
        times.append(time.process_time() - t)
    return sorted(times)[len(times) // 2] * 1e3


def binary_conv() -> None:
    import fastsnn
    from fastsnn.ops.binary_conv import PackedBinaryWeight
    from fastsnn.reference.binary_conv import sign

    g = torch.Generator().manual_seed(0)
    for shape, cout in [((32, 128, 16, 16), 128), ((32, 256, 8, 8), 256),
                        ((8, 64, 32, 32), 64)]:
        x = (torch.rand(shape, generator=g) < 0.2).float()
        w = torch.randn(cout, shape[1], 3, 3, generator=g)
        packed = PackedBinaryWeight.from_float(w, "channel")
        wb = packed.alpha.reshape(-1, 1, 1, 1) * sign(w)
        xb, wbb = x.bfloat16(), wb.bfloat16()
        with torch.no_grad():
            fp32 = median_cpu_ms(F.conv2d, x, wb, padding=1)
            bf16 = median_cpu_ms(F.conv2d, xb, wbb, padding=1, reps=5, warmup=1)
            ours = median_cpu_ms(fastsnn.binary_conv2d, x, w, "channel", padding=1,
                                 backend="cpu")
            ahead = median_cpu_ms(fastsnn.binary_conv2d, x, packed, padding=1, backend="cpu")
            pack = median_cpu_ms(PackedBinaryWeight.from_float, w, "channel")
        print(f"binary_conv2d {list(shape)} ->{cout}: cpu+pack {ours:.3f} ms (packed ahead "
              f"{ahead:.3f}, from_float {pack:.3f}); F.conv2d fp32 {fp32:.2f} ms = "
              f"{fp32 / ours:.1f}x, bf16 {bf16:.1f} ms = {bf16 / ours:.1f}x", flush=True)


def _tonic_loop(to_frame, samples, sensor, T):
    return [to_frame(s, sensor, n_event_bins=T) for s in samples]


def events() -> None:
    sys.path[:0] = [os.path.join(ROOT, "bench"), os.path.join(ROOT, "tests")]
    from bench_events import SENSOR, make_streams, structured
    from tonic_peer import load_to_frame

    import fastsnn

    to_frame, why = load_to_frame()
    if to_frame is None:
        raise SystemExit(f"tonic unavailable: {why}")
    n = 1_000_000
    for streams in (1, 32):
        rows = make_streams(n, streams)
        samples = [structured(s) for s in np.split(rows, streams)]
        offsets = torch.arange(streams + 1) * (n // streams)
        for T in (2, 4, 10):
            tonic = median_cpu_ms(_tonic_loop, to_frame, samples, SENSOR, T, reps=3, warmup=1)
            line = f"events_to_current 1M B={streams} T={T}: tonic {tonic:.1f} ms"
            for dtype in (torch.int64, torch.int32):
                ev = torch.from_numpy(rows).to(dtype)
                ms = median_cpu_ms(fastsnn.events_to_current, ev, SENSOR, T, offsets=offsets,
                                   backend="cpu", reps=7, warmup=2)
                line += f", {str(dtype)[6:]} {ms:.2f} ms = {tonic / ms:.1f}x"
            print(line, flush=True)


def _mt_lif_fwd_bwd(fn, x, grad):
    x.grad = None
    fn(x).backward(grad)


def _no_grad(fn, x):
    with torch.no_grad():
        return fn(x)


def mt_lif() -> None:
    """bench_mt_lif's headline row (plif, hard reset, sigmoid, decay 0.5, float32,
    [T, 32, 128, 16, 16]): the no-grad forward and forward+backward of the cpu kernel
    against ``torch.compile`` of the reference loop and against the byte floor (8 B per
    element and step forward, 24 B forward+backward, at ``clone()``'s rate)."""
    sys.path[:0] = [os.path.join(ROOT, "bench")]
    from bench_mt_lif import DECAY, OPTIONS

    import fastsnn
    from fastsnn.reference.mt_lif import mt_lif as reference_mt_lif

    torch._dynamo.config.recompile_limit = 1024
    compiled = torch.compile(reference_mt_lif, dynamic=True)
    decay = torch.tensor(DECAY)
    ours = lambda v: fastsnn.mt_lif(v, DECAY, backend="cpu", **OPTIONS)  # noqa: E731
    peer = lambda v: compiled(v, decay, **OPTIONS)  # noqa: E731
    for T in (1, 2, 4, 8, 32):
        g = torch.Generator().manual_seed(T)
        x = (torch.randn((T, 32, 128, 16, 16), generator=g) * 1.5).requires_grad_(True)
        grad = torch.ones_like(x)
        reps = 21 if T <= 8 else 7
        clone = median_cpu_ms(torch.Tensor.clone, x.detach(), reps=reps)
        fwd = median_cpu_ms(_no_grad, ours, x, reps=reps)
        both = median_cpu_ms(_mt_lif_fwd_bwd, ours, x, grad, reps=reps)
        ref = median_cpu_ms(_mt_lif_fwd_bwd, peer, x, grad, reps=reps)
        print(f"mt_lif T={T}: clone {clone:.2f} ms; no-grad fwd {fwd:.2f} ms = "
              f"{fwd / clone:.2f} floor; fwd+bwd {both:.2f} ms = {both / (3 * clone):.2f} "
              f"floor; compiled ref fwd+bwd {ref:.2f} ms = {ref / both:.2f}x", flush=True)


if __name__ == "__main__":
    # --threads N: N intra-op threads (CPU time then sums over them: pin N cores)
    args = sys.argv[1:]
    threads = 1
    if "--threads" in args:
        i = args.index("--threads")
        threads = int(args[i + 1])
        del args[i:i + 2]
    torch.set_num_threads(threads)
    which = args or ["binary_conv", "events"]
    for name in which:
        {"binary_conv": binary_conv, "events": events, "mt_lif": mt_lif}[name]()
