"""events_to_current: every available backend against tonic's ToFrame (looped over the batch)
and the eager reference, on 1M and 10M events from a 128x128x2 sensor, T in {2, 4, 10},
one stream or a batch of 32 streams, split by number with count weighting (the definition
tonic's ``ToFrame(n_event_bins=T)`` shares with ours when every stream length is divisible
by T; each such tonic row is verified equal before it is timed).

Inputs: ours get the batch as an ``[E, 4]`` tensor (int64 rows, 32 B/event, and int32 rows,
16 B/event: the two ``dtype`` columns); tonic gets its own structured array per stream
(x, y int16, t int64, p bool; 13 B/event), and the ``ToCurrent-loop`` row runs our per-sample
transform on those same structured arrays (conversion to int32 rows included).

Floor (count weighting), before optimising: every event is read once (32 B or 16 B) and
checked (4 compares against the sensor and the previous timestamp) and costs one scattered
read-modify-write into the output slab of its (stream, segment), 128 KB for 128x128x2, which
stays in L2; the output ``T*B*2*128*128*4`` bytes is written once (42 MB for T=10, B=32;
1.3 MB for one stream). On the 2-core VM this was written on (one core reads ~12-15 GB/s,
copy ~17 GB/s): 10M int64 events are 320 MB, ~11 ms at 30 GB/s for two cores at best, ~25 ms
on one; int32 halves it. The 42 MB output adds ~3 ms of writes plus the page faults of fresh
memory, ~50 ms with 4 KB pages on that VM, ~10 ms once the kernel asks for transparent huge
pages (it does, for large outputs). So 1M events into 32 x 10 frames is bound by the output,
not by the events: ~2x the bytes tonic writes (float32 against its int16 frames). Compute per
event is ~10 simple integer ops: ~1-2 ns/event/core. tonic (numpy ``add.at``) runs at
~60 ns/event on that machine. Measured there with one thread, 10M int64 events in one
stream take ~24 ms when the machine is quiet (2.4 ns/event: one core's streaming-read rate,
thanks to the software prefetch), ~45 ms when other jobs share it. The kernel uses
``torch.get_num_threads()`` threads; on an oversubscribed machine a second OpenMP thread can
cost more than it brings (it waits for a scheduler slot), so compare runs with the
``threads`` field of the JSON. On an H100 (3.35 TB/s) reading 10M int64 events takes ~0.1 ms;
the int32 atomics into L2 bound the rate first (a few G events/s), hence the 2 G events/s target.

Profile at 1M events (2026-11-30, the VM under load, one thread, CPU time, median of 7:
``python tools/cpu_time_ratios.py events``): tonic
76-88 ms per batch; ours 2.4-3.3 ms (int32 / int64 rows) in every case but B=32, T=10,
i.e. 25-32x, and 8.5-9.1 ms there (~10x). The Python layer (argument checks, offsets,
dispatch) is 0.1-0.2 ms of it; the offsets check and the segment starts are noise. At
B=32, T=10 the output is 42 MB, fresh memory in every call (above glibc's 32 MB mmap
threshold; torch's CPU allocator does not cache), and perf splits the call into the OS
zeroing those pages at their first touch (``clear_page_erms``) 35 %, the event pass 34 %,
the kernel's zero fill of each slab 18 % and page-fault handling ~12 %: the output, not
the events, is the cost. Its byte floor on one core: 42 MB zeroed by the OS + 42 MB
written + 32 MB (int64) or 16 MB (int32) of events read, ~7 ms at ~15 GB/s, which is
where the kernel is; 20x tonic (~4.4 ms) is out of reach on one core with a fresh output
and needs both cores of a quiet machine. The same holds, more so, for the quick suite's
50k events into 32 x 10 frames (~1x tonic): both sides then mostly write their frames
(ours 42 MB of float32, tonic's 21 MB of int16), and no event rate can show.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch
from harness import Row, fast_backends, median_seconds

import fastsnn

SENSOR = (128, 128, 2)
OP = "events_to_current"


def _tonic_to_frame():
    """tonic's frame kernel; tests/tonic_peer.py explains the package-import workaround."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    try:
        from tonic_peer import load_to_frame
    finally:
        sys.path.pop(0)
    return load_to_frame()


def make_streams(num_events: int, streams: int, seed: int = 0) -> np.ndarray:
    """``[E, 4]`` int64 rows of ``streams`` equal streams: uniform pixels and polarities,
    timestamps (us) sorted within each stream over one second."""
    rng = np.random.default_rng(seed)
    per = num_events // streams
    rows = np.empty((per * streams, 4), dtype=np.int64)
    rows[:, 0] = rng.integers(0, SENSOR[0], len(rows))
    rows[:, 1] = rng.integers(0, SENSOR[1], len(rows))
    rows[:, 3] = rng.integers(0, 2, len(rows))
    rows[:, 2] = np.sort(rng.integers(0, 10**6, (streams, per)), axis=1).reshape(-1)
    return rows


def structured(rows: np.ndarray) -> np.ndarray:
    out = np.empty(len(rows), dtype=[("x", np.int16), ("y", np.int16), ("t", np.int64),
                                     ("p", bool)])
    for k, name in enumerate("xytp"):
        out[name] = rows[:, k]
    return out


def _cases(quick: bool):
    sizes = (50_000, 200_000) if quick else (1_000_000, 10_000_000)
    for n in sizes:
        for streams in (1, 32):
            for T in ((2, 10) if quick else (2, 4, 10)):
                yield n, streams, T


def run(suite) -> None:
    device = suite.device
    fast = fast_backends("events_to_current", device)
    to_frame, tonic_note = _tonic_to_frame()
    if to_frame is None:
        suite.note(f"{OP}: tonic peer skipped: {tonic_note}")
    panel = f"{OP} B=32 T=10 int64 events"
    suite.panel(panel, "events", fast[0] if fast else "reference", ["tonic-ToFrame"],
                targets={"tonic-ToFrame": 20.0})
    current = None  # (n, streams) -> rows and per-stream structured arrays, one at a time
    for n, streams, T in _cases(suite.quick):
        if current is None or current[0] != (n, streams):
            rows = make_streams(n, streams)
            current = ((n, streams), rows, [structured(s) for s in np.split(rows, streams)])
        in_panel = streams == 32 and T == 10
        _bench_case(suite, current[1], current[2], streams, T, fast, to_frame,
                    panel if in_panel else None)


def _bench_case(suite, rows, samples, streams, T, fast, to_frame, panel):
    device = suite.device
    n = len(rows)
    case = f"{n / 1e6:g}M ev B={streams} T={T}"
    offsets = torch.arange(streams + 1) * (n // streams)
    want = fastsnn.events_to_current(torch.from_numpy(rows), SENSOR, T, offsets=offsets,
                                     backend="reference")
    tonic_s = _time_tonic(suite, samples, T, to_frame, want, n // streams)
    offsets = offsets.to(device)
    out_bytes = T * streams * 2 * SENSOR[0] * SENSOR[1] * 4
    for dtype in (torch.int64, torch.int32):
        ev = torch.from_numpy(rows).to(device=device, dtype=dtype)
        dt = str(dtype).replace("torch.", "")
        floor = n * 4 * dtype.itemsize + out_bytes
        fields = dict(op=OP, case=case, dtype=dt, direction="fwd", work=n, work_unit="event",
                      bytes_moved=floor, panel=panel if dtype == torch.int64 else None,
                      scale=n)
        for backend in fast:
            def call(b=backend, ev=ev):
                return fastsnn.events_to_current(ev, SENSOR, T, offsets=offsets, backend=b)
            suite.verify(f"{OP} {backend} {case} {dt}", call(), want, exact=True)
            suite.time(call, impl=backend, **fields)
        if tonic_s is not None:
            suite.add(Row(impl="tonic-ToFrame", median_ms=tonic_s * 1e3,
                          extra={"input": "structured arrays, one call per stream"}, **fields))
        if n <= 1_000_000 and dtype == torch.int64 and not suite.quick:  # slow: ~1 s a call
            def reference(ev=ev):
                return fastsnn.events_to_current(ev, SENSOR, T, offsets=offsets,
                                                 backend="reference")
            _time_few(suite, reference, impl="reference", **fields)
    if device.type == "cpu":
        transform = fastsnn.data.ToCurrent(SENSOR, T)
        got = torch.stack([transform(s) for s in samples], dim=1)
        suite.verify(f"{OP} ToCurrent {case}", got, want, exact=True)
        _time_few(suite, lambda: [transform(s) for s in samples], impl="ToCurrent-loop",
                  op=OP, case=case, dtype="int64", direction="fwd", work=n, work_unit="event",
                  bytes_moved=n * 4 * 8 + out_bytes,
                  extra={"input": "structured arrays, one call per stream"})
    suite.end_case()


def _time_tonic(suite, samples, T, to_frame, want, per):
    """Median seconds of tonic's ToFrame(n_event_bins=T) over the batch, verified equal to
    ours (``want``) when the stream length ``per`` is divisible by T (else tonic drops the
    last ``per % T`` events of each stream)."""
    if to_frame is None:
        return None

    def loop():
        return [to_frame(s, SENSOR, n_event_bins=T) for s in samples]
    if per % T == 0:
        frames = torch.from_numpy(np.stack(loop(), axis=1).astype(np.float32))
        suite.verify(f"{OP} tonic T={T} B={len(samples)}", frames, want, exact=True,
                     peer="tonic-ToFrame")
    else:
        suite.note(f"{OP}: tonic B={len(samples)} T={T} not verified: {per} events per "
                   f"stream is not divisible by T, tonic drops the last {per % T} of each")
    reps = 2 if per * len(samples) > 2_000_000 else 3
    return median_seconds(loop, torch.device("cpu"), warmup=1, reps=reps)


def _time_few(suite, fn, *, impl, **fields):
    """Slow peers: a median of a few runs, recorded like ``suite.time``."""
    sec = median_seconds(fn, suite.device, warmup=1, reps=3)
    suite.add(Row(impl=impl, median_ms=sec * 1e3, **fields))
