"""events_to_current: the reference against a plain loop over docs/events_to_current.md, every
backend against the reference, conservation, the grouped-sum identity, tonic's ToFrame, the
transform, torch.compile and bad input."""

import math

import numpy as np
import pytest
import torch
from helpers import DEVICE, fast_backends, require_backend
from hypothesis import given
from hypothesis import strategies as st
from tonic_peer import to_frame_numpy

import fastsnn
from fastsnn.data import ToCurrent
from fastsnn.ops.events_to_current import OP, exp_frac_bits
from fastsnn.reference import events_to_current as ref

KERNEL = "events_to_current"

TAUS = (0.5, 3.0, 40.0)
OPTIONS = st.fixed_dictionaries({
    "split_by": st.sampled_from(ref.SPLITS),
    "weighting": st.sampled_from(ref.WEIGHTINGS),
    "tau_syn": st.sampled_from(TAUS),
    "spatial_factor": st.integers(1, 3),
    "merge_polarity": st.booleans(),
    "normalize": st.sampled_from(ref.NORMALIZATIONS),
})
KINDS = ("empty", "one", "one_pixel", "equal_t", "random")


# -- random streams ---------------------------------------------------------------------------

def make_stream(rng: np.random.Generator, kind: str, sensor, max_events: int,
                n: int = None) -> np.ndarray:
    """``[n, 4]`` int64 rows (x, y, t, p), t sorted; ``kind`` is one of ``KINDS``."""
    W, H, P = sensor
    if n is None:
        n = {"empty": 0, "one": 1}[kind] if kind in ("empty", "one") else int(
            rng.integers(2, max_events + 1))
    rows = np.stack([rng.integers(0, W, n), rng.integers(0, H, n), np.zeros(n, np.int64),
                     rng.integers(0, P, n)], axis=1).astype(np.int64)
    if kind == "one_pixel":
        rows[:, 0], rows[:, 1], rows[:, 3] = rows[0, 0], rows[0, 1], rows[0, 3]
    steps = rng.integers(0, 2, n) if kind == "equal_t" else rng.integers(0, 25, n)
    rows[:, 2] = int(rng.integers(-50, 1000)) + np.cumsum(steps)
    return rows


@st.composite
def batches(draw, max_streams: int = 4, max_events: int = 40):
    """(streams, sensor_size, T): a list of ``[n, 4]`` arrays mixing every kind."""
    sensor = (draw(st.integers(1, 7)), draw(st.integers(1, 6)), draw(st.sampled_from([1, 2])))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=max_streams))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    streams = [make_stream(rng, k, sensor, max_events) for k in kinds]
    return streams, sensor, draw(st.integers(1, 12))


def concat(streams, device=DEVICE, dtype=torch.int64):
    """Streams as the op's batch: ``[E, 4]`` tensor and ``[B+1]`` offsets."""
    lengths = [len(s) for s in streams]
    ev = np.concatenate(streams) if streams else np.zeros((0, 4), np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return (torch.as_tensor(ev.reshape(-1, 4), dtype=dtype, device=device),
            torch.as_tensor(offsets, device=device))


# -- the independent implementation: docs/events_to_current.md as plain loops ------------

def loop_segments(t: list[int], T: int, split_by: str) -> list[int]:
    n = len(t)
    seg = [0] * n
    if split_by == "number":
        for j in range(T):
            for i in range(j * n // T, (j + 1) * n // T):
                seg[i] = j
        return seg
    for i in range(n):
        seg[i] = min(T - 1, (t[i] - t[0]) * T // (t[-1] - t[0] + 1))
    return seg


def loop_events_to_current(streams, sensor, T, *, split_by="number", weighting="count",
                           tau_syn=None, spatial_factor=1, merge_polarity=False,
                           normalize="none") -> np.ndarray:
    W, H, P = sensor
    f = spatial_factor
    out = np.zeros((T, len(streams), 1 if merge_polarity else P, -(-H // f), -(-W // f)))
    for b, rows in enumerate(streams):
        t = [int(r[2]) for r in rows]
        seg = loop_segments(t, T, split_by)
        t_end = {}
        for i, j in enumerate(seg):
            t_end[j] = t[i]  # the last event of segment j wins
        for i, (x, y, ti, p) in enumerate(rows.tolist()):
            w = 1.0 if weighting == "count" else math.exp(-(t_end[seg[i]] - ti) / tau_syn)
            out[seg[i], b, 0 if merge_polarity else p, y // f, x // f] += w
    if normalize == "max":
        for b in range(len(streams)):
            peak = out[:, b].max() if out[:, b].size else 0.0
            if peak > 0:
                out[:, b] = out[:, b].astype(np.float32) / np.float32(peak)
    elif normalize == "log1p":
        out = np.log1p(out.astype(np.float32))
    return out.astype(np.float32)


def assert_matches(got: torch.Tensor, want, weighting: str, exact_count: bool = True):
    want = torch.as_tensor(np.asarray(want)) if not isinstance(want, torch.Tensor) else want
    got, want = got.cpu(), want.cpu()
    assert got.shape == want.shape and got.dtype == torch.float32
    if weighting == "count" and exact_count:
        assert torch.equal(got, want), (got - want).abs().max()
    else:
        torch.testing.assert_close(got, want, rtol=2e-6, atol=1e-7)


# -- reference against the loops --------------------------------------------------------------

@given(batch=batches(), opts=OPTIONS)
def test_reference_equals_loop(batch, opts):
    streams, sensor, T = batch
    ev, off = concat(streams, device="cpu")
    got = fastsnn.events_to_current(ev, sensor, T, offsets=off, backend="reference", **opts)
    want = loop_events_to_current(streams, sensor, T, **opts)
    # "max" divides float32 sums in both; log1p may differ by an ulp between numpy and torch
    assert_matches(got, want, opts["weighting"], exact_count=opts["normalize"] != "log1p")


def test_hand_computed_example():
    """Two streams, worked out by hand from the docs/events_to_current.md rules."""
    ev = torch.tensor([[0, 0, 0, 0], [1, 1, 5, 1], [1, 1, 6, 1], [2, 0, 9, 0],  # stream 0
                       [1, 0, 3, 1]])                                          # stream 1
    off = torch.tensor([0, 4, 5])
    out = fastsnn.events_to_current(ev, (3, 2, 2), 2, offsets=off, backend="reference")
    # by number: stream 0 segments [0, 2) and [2, 4); stream 1: [0, 0) and [0, 1)
    assert out[0, 0, 0, 0, 0] == 1 and out[0, 0, 1, 1, 1] == 1 and out[1, 0, 1, 1, 1] == 1
    assert out[1, 0, 0, 0, 2] == 1 and out[1, 1, 1, 0, 1] == 1 and out.sum() == 5
    out = fastsnn.events_to_current(ev, (3, 2, 2), 2, offsets=off, split_by="time",
                                    weighting="exp", tau_syn=2.0, backend="reference")
    # by time: span 10, segment 1 from t >= 5 (t = 5, 6, 9), t_end 9
    torch.testing.assert_close(out[1, 0, 1, 1, 1], torch.tensor(math.exp(-2) + math.exp(-1.5)))
    assert out[0, 0, 0, 0, 0] == 1 and out[1, 0, 0, 0, 2] == 1
    assert out[0, 1].sum() == 1 and out[1, 1].sum() == 0  # one event: span 1, segment 0


# -- every backend against the reference ------------------------------------------------------

@pytest.mark.parametrize("backend", ["cpu", "triton", "cuda"])
@given(batch=batches(max_streams=3, max_events=30), opts=OPTIONS,
       dtype=st.sampled_from([torch.int32, torch.int64]))
def test_backend_equals_reference(backend, batch, opts, dtype):
    require_backend(backend, KERNEL)
    streams, sensor, T = batch
    ev, off = concat(streams, dtype=dtype)
    got = fastsnn.events_to_current(ev, sensor, T, offsets=off, backend=backend, **opts)
    want = fastsnn.events_to_current(ev.cpu(), sensor, T, offsets=off.cpu(),
                                     backend="reference", **opts)
    assert got.device == ev.device
    assert_matches(got, want, opts["weighting"])


@pytest.mark.parametrize("split_by", ref.SPLITS)
@pytest.mark.parametrize("weighting", ref.WEIGHTINGS)
def test_backends_agree_on_a_larger_batch(split_by, weighting):
    """Big enough for the parallel CPU path; counts equal bit for bit across backends."""
    rng = np.random.default_rng(7)
    sensor = (64, 48, 2)  # with 120k events, above the kernel's threshold for threads
    streams = [make_stream(rng, "random", sensor, 0, n=40000) for _ in range(3)]
    streams.insert(1, make_stream(rng, "empty", sensor, 0))
    ev, off = concat(streams)
    kw = dict(offsets=off, split_by=split_by, weighting=weighting, tau_syn=30.0)
    want = fastsnn.events_to_current(ev.cpu(), sensor, 6, backend="reference",
                                     **dict(kw, offsets=off.cpu()))
    for backend in fast_backends(KERNEL):
        if backend == "triton" and DEVICE.type == "cpu":
            continue  # the interpreter is covered on small inputs above
        got = fastsnn.events_to_current(ev, sensor, 6, backend=backend, **kw)
        assert_matches(got, want, weighting)


@pytest.mark.parametrize("weighting", ref.WEIGHTINGS)
def test_cpu_threads_do_not_change_results(weighting):
    """The kernel follows torch.set_num_threads; integer sums make any split identical."""
    require_backend("cpu", KERNEL, torch.device("cpu"))
    rng = np.random.default_rng(11)
    ev, off = concat([make_stream(rng, "random", (64, 48, 2), 0, n=50000) for _ in range(5)],
                     device="cpu")
    kw = dict(offsets=off, split_by="time", weighting=weighting, tau_syn=30.0, backend="cpu")
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(fastsnn.events_to_current(ev, (64, 48, 2), 7, **kw))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])


def test_exp_fixed_point_error_bound():
    """Exp weights are exact int64 sums of weights rounded to 2^-S: |error| <= n * 2^-S-1."""
    require_backend("cpu", KERNEL, torch.device("cpu"))
    rng = np.random.default_rng(3)
    stream = make_stream(rng, "one_pixel", (4, 4, 2), 3000)
    ev, off = concat([stream], device="cpu")
    got = fastsnn.events_to_current(ev, (4, 4, 2), 3, offsets=off, weighting="exp",
                                    tau_syn=200.0, backend="cpu")
    want = ref.accumulate(ev, off, (4, 4, 2), 3, weighting="exp", tau_syn=200.0)
    bound = len(stream) * 2.0 ** -(exp_frac_bits(len(stream)) + 1)
    rounding = want.abs() * 2.0 ** -24  # one float32 rounding
    assert bool(((got - want).abs() <= bound + rounding).all())


# -- properties -------------------------------------------------------------------------------

@given(batch=batches(), split_by=st.sampled_from(ref.SPLITS), f=st.integers(1, 3),
       merge=st.booleans())
def test_conservation(batch, split_by, f, merge):
    """Count weighting: every event lands in exactly one segment and pixel."""
    streams, sensor, T = batch
    ev, off = concat(streams)
    out = fastsnn.events_to_current(ev, sensor, T, offsets=off, split_by=split_by,
                                    spatial_factor=f, merge_polarity=merge)
    per_stream = out.sum(dim=(0, 2, 3, 4)).cpu()
    assert per_stream.tolist() == [float(len(s)) for s in streams]


@given(batch=batches(), k=st.integers(1, 4), opts=OPTIONS)
def test_grouped_sum_identity(batch, k, opts):
    """docs/events_to_current.md: by number with T_ref = k*T, summing each k consecutive
    frames gives T."""
    streams, sensor, T = batch
    ev, off = concat(streams)
    opts = dict(opts, split_by="number", weighting="count", normalize="none")
    coarse = fastsnn.events_to_current(ev, sensor, T, offsets=off, **opts)
    fine = fastsnn.events_to_current(ev, sensor, k * T, offsets=off, **opts)
    assert torch.equal(coarse, fine.reshape(T, k, *fine.shape[1:]).sum(1))


@given(batch=batches(max_streams=1))
def test_time_split_segments_are_equal_durations(batch):
    """Split by time: segment j holds exactly the events with floor((t-t0)*T/span) == j."""
    (stream,), sensor, T = batch
    ev, off = concat([stream])
    out = fastsnn.events_to_current(ev, sensor, T, offsets=off, split_by="time")
    if len(stream):
        t = stream[:, 2]
        span = int(t[-1] - t[0] + 1)
        expected = np.bincount((t - t[0]) * T // span, minlength=T)
        assert out.sum(dim=(1, 2, 3, 4)).cpu().tolist() == expected.tolist()


def test_normalize():
    ev = torch.tensor([[0, 0, 0, 0], [0, 0, 1, 0], [1, 0, 2, 1], [0, 0, 0, 0]])
    off = torch.tensor([0, 3, 3, 4])  # the middle stream is empty
    raw = fastsnn.events_to_current(ev, (2, 1, 2), 1, offsets=off)
    peak = fastsnn.events_to_current(ev, (2, 1, 2), 1, offsets=off, normalize="max")
    assert raw[0, 0, 0, 0].tolist() == [2.0, 0.0] and peak[0, 0, 0, 0].tolist() == [1.0, 0.0]
    assert peak[0, 0, 1, 0].tolist() == [0.0, 0.5] and peak[:, 1].abs().sum() == 0
    assert peak[:, 2].max() == 1.0
    logs = fastsnn.events_to_current(ev, (2, 1, 2), 1, offsets=off, normalize="log1p")
    assert torch.equal(logs, torch.log1p(raw))


# -- input forms, transform, compile ----------------------------------------------------------

def structured(rows: np.ndarray, t_dtype=np.int64) -> np.ndarray:
    """tonic's event dtype: x, y int16, t int64 (microseconds), p bool."""
    dtype = np.dtype([("x", np.int16), ("y", np.int16), ("t", t_dtype), ("p", bool)])
    out = np.empty(len(rows), dtype=dtype)
    for k, name in enumerate("xytp"):
        out[name] = rows[:, k]
    return out


def test_structured_array_and_single_stream():
    rng = np.random.default_rng(0)
    rows = make_stream(rng, "random", (9, 7, 2), 300)
    ev = structured(rows)
    out = fastsnn.events_to_current(ev, (9, 7, 2), 4)
    assert out.shape == (4, 2, 7, 9)
    batched = fastsnn.events_to_current(torch.from_numpy(rows), (9, 7, 2), 4,
                                        offsets=[0, len(rows)], backend="reference")
    assert torch.equal(out, batched[:, 0])
    big_t = rows.copy()
    big_t[:, 2] += 2**40  # does not fit int32: the int64 path
    out64 = fastsnn.events_to_current(structured(big_t), (9, 7, 2), 4, split_by="time")
    assert torch.equal(out64, fastsnn.events_to_current(ev, (9, 7, 2), 4, split_by="time"))
    plain = fastsnn.events_to_current(rows.astype(np.int16), (9, 7, 2), 4)
    assert torch.equal(plain, out)


def test_empty_stream_gives_zeros():
    out = fastsnn.events_to_current(torch.zeros(0, 4, dtype=torch.long), (5, 4, 2), 3)
    assert out.shape == (3, 2, 4, 5) and out.abs().sum() == 0
    out = fastsnn.events_to_current(structured(np.zeros((0, 4), np.int64)), (5, 4, 2), 3,
                                    weighting="exp", tau_syn=1.0, normalize="max")
    assert out.shape == (3, 2, 4, 5) and out.abs().sum() == 0


def test_to_current_transform():
    rng = np.random.default_rng(1)
    ev = structured(make_stream(rng, "random", (6, 5, 2), 200))
    transform = ToCurrent((6, 5, 2), 3, split_by="time", spatial_factor=2)
    assert torch.equal(transform(ev), fastsnn.events_to_current(
        ev, (6, 5, 2), 3, split_by="time", spatial_factor=2))
    assert "T=3" in repr(transform) and "split_by='time'" in repr(transform)
    pipeline = [transform, lambda x: x.flatten(1)]  # what a Compose does, in order
    out = ev
    for step in pipeline:
        out = step(out)
    assert out.shape == (3, 2 * 3 * 3)
    with pytest.raises(TypeError, match="unknown option"):
        ToCurrent((6, 5, 2), 3, bins=3)


def test_torch_compile_fullgraph():
    ev, off = concat([make_stream(np.random.default_rng(2), "random", (8, 8, 2), 100)] * 2)

    def f(ev, off):
        return fastsnn.events_to_current(ev, (8, 8, 2), 4, offsets=off, normalize="max")

    compiled = torch.compile(f, fullgraph=True, backend="eager")
    assert torch.equal(compiled(ev, off), f(ev, off))


def test_opcheck():
    ev, off = concat([make_stream(np.random.default_rng(4), "random", (5, 5, 2), 50)] * 2)
    backend = fast_backends(KERNEL)[0] if fast_backends(KERNEL) else "reference"
    args = (ev, off, 3, 5, 5, 2, 1, 1, 2.0, exp_frac_bits(ev.shape[0]), 1, False)
    torch.library.opcheck(OP.kernel("events_to_current_forward", backend), args)


# -- tonic ------------------------------------------------------------------------------------

@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 8), per_bin=st.integers(1, 30))
def test_equals_tonic_event_bins_when_divisible(seed, T, per_bin):
    """n divisible by T: tonic's n_event_bins slices [j*n/T, (j+1)*n/T) are ours."""
    rng = np.random.default_rng(seed)
    rows = make_stream(rng, "random", (7, 5, 2), 2)
    rows = np.concatenate([rows] * (T * per_bin))[: T * per_bin]
    rows[:, 2] = np.sort(rng.integers(0, 10**6, len(rows)))
    frames = to_frame_numpy(structured(rows), (7, 5, 2), n_event_bins=T)
    ours = fastsnn.events_to_current(structured(rows), (7, 5, 2), T)
    assert torch.equal(ours, torch.from_numpy(frames.astype(np.float32)))


def test_tonic_event_bins_drop_the_remainder():
    """Documented difference: with n % T != 0 tonic's bins hold n // T events each and the
    last n % T events are dropped; ours conserves every event."""
    rows = np.array([[i % 3, 0, 10 * i, 0] for i in range(11)])
    frames = to_frame_numpy(structured(rows), (3, 1, 2), n_event_bins=4)
    ours = fastsnn.events_to_current(structured(rows), (3, 1, 2), 4)
    assert frames.sum() == 8 and ours.sum() == 11  # 11 // 4 * 4 vs all
    assert ours.sum(dim=(1, 2, 3)).tolist() == [2, 3, 3, 3]  # floor(j*11/4) boundaries
    assert frames.sum(axis=(1, 2, 3)).tolist() == [2, 2, 2, 2]


@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 6), window=st.integers(2, 50))
def test_equals_tonic_time_bins_except_the_last_event(seed, T, window):
    """tonic's n_time_bins uses windows of w = (t_last - t_first) // T starting at t_first,
    half-open, so the last event (t_last = t_first + T*w) falls outside every window. With
    events away from our boundaries (t_first + j*w + r, 1 <= r < w, plus the first and
    last), the two agree on every other event."""
    rng = np.random.default_rng(seed)
    t0 = int(rng.integers(0, 1000))
    inner = [t0 + j * window + int(r) for j in range(T)
             for r in rng.integers(1, window, int(rng.integers(0, 6)))]
    t = np.array(sorted([t0, *inner, t0 + T * window]))
    rows = np.stack([rng.integers(0, 4, len(t)), rng.integers(0, 3, len(t)), t,
                     rng.integers(0, 2, len(t))], axis=1)
    frames = torch.from_numpy(to_frame_numpy(structured(rows), (4, 3, 2),
                                             n_time_bins=T).astype(np.float32))
    ours = fastsnn.events_to_current(structured(rows), (4, 3, 2), T, split_by="time")
    last = torch.zeros_like(ours)
    last[T - 1, rows[-1, 3], rows[-1, 1], rows[-1, 0]] = 1
    assert torch.equal(ours - last, frames)


def test_tonic_time_bins_short_recordings_are_empty():
    """Documented difference: when t_last - t_first < T, tonic's window is 0 and every frame
    is empty; ours still splits [t_first, t_last] into T equal parts."""
    rows = np.array([[0, 0, 100, 0], [1, 0, 101, 1], [1, 0, 102, 1]])
    frames = to_frame_numpy(structured(rows), (2, 1, 2), n_time_bins=4)
    ours = fastsnn.events_to_current(structured(rows), (2, 1, 2), 4, split_by="time")
    assert frames.sum() == 0
    assert ours.sum(dim=(1, 2, 3)).tolist() == [1, 1, 1, 0]  # floor(d * 4 / 3), d = 0, 1, 2


# -- bad input --------------------------------------------------------------------------------

def _batch():
    rng = np.random.default_rng(5)
    return concat([make_stream(rng, "random", (6, 4, 2), 20, n=20) for _ in range(3)])


BAD_EVENTS = [
    (lambda ev: ev.__setitem__((7, 0), 6), r"x = 6 at index 7 .*width \[0, 6\)"),
    (lambda ev: ev.__setitem__((7, 0), -1), r"x = -1 at index 7"),
    (lambda ev: ev.__setitem__((9, 1), 4), r"y = 4 at index 9 .*height \[0, 4\)"),
    (lambda ev: ev.__setitem__((3, 3), 2), r"polarity p = 2 at index 3"),
    (lambda ev: ev.__setitem__((3, 3), -1), r"polarity p = -1 at index 3"),
    (lambda ev: ev.__setitem__((5, 2), -10**6), r"t = -1000000 at index 5 is smaller"),
]


@pytest.mark.parametrize("backend", ["reference", "cpu", "triton", "cuda"])
@pytest.mark.parametrize("case", range(len(BAD_EVENTS)))
def test_bad_events(backend, case):
    require_backend(backend, KERNEL)
    ev, off = _batch()
    corrupt, message = BAD_EVENTS[case]
    corrupt(ev)
    for split_by in ref.SPLITS:
        for weighting in ref.WEIGHTINGS:
            with pytest.raises(ValueError, match=message):
                fastsnn.events_to_current(ev, (6, 4, 2), 3, offsets=off, split_by=split_by,
                                          weighting=weighting, tau_syn=1.0, backend=backend)


@pytest.mark.parametrize("backend", ["reference", "cpu", "triton", "cuda"])
def test_bad_events_first_index_and_boundaries(backend):
    require_backend(backend, KERNEL)
    ev, off = _batch()
    ev[30, 0] = 99   # a later bad x ...
    ev[12, 3] = 5    # ... the first bad event is reported
    with pytest.raises(ValueError, match=r"polarity p = 5 at index 12 "):
        fastsnn.events_to_current(ev, (6, 4, 2), 3, offsets=off, backend=backend)
    ev, off = _batch()
    ev[int(off[1]), 2] = ev[int(off[1]) - 1, 2] - 100  # time may go back across streams
    fastsnn.events_to_current(ev, (6, 4, 2), 3, offsets=off, backend=backend)
    ev[:, 3] = ev[:, 3].clamp(max=0)
    ev[4, 3] = 1  # one polarity only
    with pytest.raises(ValueError, match=r"polarity p = 1 at index 4 .*P = 1"):
        fastsnn.events_to_current(ev, (6, 4, 1), 3, offsets=off, backend=backend)


@pytest.mark.parametrize("backend", ["reference", "cpu", "triton", "cuda"])
def test_bad_offsets(backend):
    require_backend(backend, KERNEL)
    ev, off = _batch()
    cases = [(torch.tensor([0, 30, 20, 60]), r"non-decreasing: offsets\[2\] = 20 < offsets\[1\]"),
             (torch.tensor([1, 20, 40, 60]), r"offsets\[0\] must be 0"),
             (torch.tensor([0, 20, 40, 59]), r"offsets\[-1\] = 59 must equal .* E = 60"),
             (torch.tensor([0, 20, 40, 61]), r"offsets\[-1\] = 61")]
    assert len(ev) == 60
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            fastsnn.events_to_current(ev, (6, 4, 2), 3, offsets=bad.to(ev.device),
                                      backend=backend)


def test_bad_arguments():
    ev, off = _batch()
    call = fastsnn.events_to_current
    checks = [
        (ValueError, "T must be an int >= 1", lambda: call(ev, (6, 4, 2), 0)),
        (ValueError, "T must be an int", lambda: call(ev, (6, 4, 2), 2.5)),
        (ValueError, "split_by must be one of", lambda: call(ev, (6, 4, 2), 2,
                                                             split_by="numbr")),
        (ValueError, "weighting must be one of", lambda: call(ev, (6, 4, 2), 2,
                                                              weighting="linear")),
        (ValueError, "normalize must be one of", lambda: call(ev, (6, 4, 2), 2,
                                                              normalize="l2")),
        (ValueError, "needs tau_syn > 0", lambda: call(ev, (6, 4, 2), 2, weighting="exp")),
        (ValueError, "needs tau_syn > 0", lambda: call(ev, (6, 4, 2), 2, weighting="exp",
                                                       tau_syn=0.0)),
        (ValueError, "spatial_factor must be", lambda: call(ev, (6, 4, 2), 2,
                                                            spatial_factor=0)),
        (ValueError, "sensor_size must be", lambda: call(ev, (6, 4), 2)),
        (ValueError, "sensor_size P", lambda: call(ev, (6, 4, 3), 2)),
        (ValueError, "sensor_size W", lambda: call(ev, (0, 4, 2), 2)),
        (TypeError, "integer tensor", lambda: call(ev.float(), (6, 4, 2), 2)),
        (ValueError, r"shape \[E, 4\]", lambda: call(ev[:, :3], (6, 4, 2), 2)),
        (TypeError, "structured array", lambda: call(ev.tolist(), (6, 4, 2), 2)),
        (ValueError, "offsets must be 1-d", lambda: call(ev, (6, 4, 2), 2,
                                                         offsets=off[None])),
        (TypeError, "offsets must be integers", lambda: call(ev, (6, 4, 2), 2,
                                                             offsets=off.float())),
        (TypeError, "merge_polarity must be a bool", lambda: call(ev, (6, 4, 2), 2,
                                                                  merge_polarity="yes")),
        (ValueError, "backend must be one of", lambda: call(ev, (6, 4, 2), 2, backend="gpu")),
    ]
    for error, message, fn in checks:
        with pytest.raises(error, match=message):
            fn()


def test_bad_structured_arrays():
    no_p = np.zeros(3, dtype=[("x", np.int16), ("y", np.int16), ("t", np.int64)])
    with pytest.raises(ValueError, match=r"lacks the field\(s\) \['p'\]"):
        fastsnn.events_to_current(no_p, (2, 2, 2), 1)
    float_t = np.zeros(3, dtype=[("x", np.int16), ("y", np.int16), ("t", np.float64),
                                 ("p", bool)])
    with pytest.raises(TypeError, match="field 't' must be integer"):
        fastsnn.events_to_current(float_t, (2, 2, 2), 1)


def test_kernel_checks_without_the_python_layer():
    """Defence in depth: the C++ op validates offsets and events itself."""
    require_backend("cpu", KERNEL, torch.device("cpu"))
    op = OP.kernel("events_to_current_forward", "cpu")
    ev, off = _batch()
    ev, off = ev.cpu(), off.cpu()
    ev[11, 1] = 1000
    with pytest.raises(ValueError, match="y = 1000 at index 11"):
        op(ev, off, 3, 6, 4, 2, 0, 0, 1.0, 40, 1, False)
    ev, _ = _batch()
    with pytest.raises(ValueError, match="offsets must be non-decreasing"):
        op(ev.cpu(), torch.tensor([0, 50, 10, 60]), 3, 6, 4, 2, 1, 0, 1.0, 40, 1, False)
    with pytest.raises(ValueError, match="T must be in"):
        op(ev.cpu(), off, 0, 6, 4, 2, 1, 0, 1.0, 40, 1, False)
    with pytest.raises(ValueError, match="sensor_size P must be 1 or 2"):
        op(ev.cpu(), off, 2, 6, 4, 3, 1, 0, 1.0, 40, 1, False)


@pytest.mark.slow
def test_counts_beyond_float32_integers():
    """More than 2^24 events in one pixel and segment: the CPU kernel switches from float
    accumulation to int32 counts, so the count is rounded once (2^24 + 3 -> 2^24 + 4 in
    float32) instead of sticking at 2^24 (268 MB of int32 events)."""
    require_backend("cpu", KERNEL, torch.device("cpu"))
    ev = torch.zeros(2**24 + 3, 4, dtype=torch.int32)
    out = fastsnn.events_to_current(ev, (1, 1, 1), 1, backend="cpu")
    assert out.item() == float(np.float32(2**24 + 3)) == 2**24 + 4
