"""tonic drop-in: ``ToCurrent`` with tonic's slicing options equals the real
``tonic.transforms.ToFrame``; float timestamps and 1-d (audio-style) events; ``Compose`` with
tonic transforms; ``collate_events`` in a DataLoader with workers."""

import functools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import fastsnn
from fastsnn.data import collate_events

tonic = pytest.importorskip("tonic", reason="tonic (with its dependencies) is not installed")
SENSOR = (5, 4, 2)


def stream(rng, n, sensor=SENSOR, float_t=False, with_y=True, max_step=30):
    """A structured event array (tonic's layout), timestamps sorted with repeats."""
    fields = [("x", np.int64)] + ([("y", np.int64)] if with_y else []) + [
        ("t", np.float64 if float_t else np.int64), ("p", np.int64)]
    ev = np.zeros(n, dtype=fields)
    ev["x"] = rng.integers(0, sensor[0], n)
    if with_y:
        ev["y"] = rng.integers(0, sensor[1], n)
    steps = rng.random(n) * max_step if float_t else rng.integers(0, max_step, n)
    ev["t"] = rng.integers(0, 1000) + np.cumsum(steps)
    ev["p"] = rng.integers(0, sensor[2], n)
    return ev


def tonic_frames(events, sensor, **slicing):
    frames = tonic.transforms.ToFrame(sensor_size=sensor, **slicing)(events.copy())
    return torch.from_numpy(frames.astype(np.float32))


SLICINGS = st.one_of(
    st.fixed_dictionaries({"n_event_bins": st.integers(1, 7),
                           "overlap": st.sampled_from([0.0, 0.25, 0.5])}),
    st.fixed_dictionaries({"n_time_bins": st.integers(1, 7),
                           "overlap": st.sampled_from([0.0, 0.25, 0.5])}),
    st.fixed_dictionaries({"event_count": st.integers(1, 40), "overlap": st.integers(0, 5),
                           "include_incomplete": st.booleans()}),
    st.fixed_dictionaries({"time_window": st.integers(5, 300), "overlap": st.integers(0, 4),
                           "include_incomplete": st.booleans()}),
)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 200), slicing=SLICINGS)
def test_equals_tonic_to_frame(seed, n, slicing):
    if "event_count" in slicing and slicing["overlap"] >= slicing["event_count"]:
        slicing["overlap"] = 0
    ev = stream(np.random.default_rng(seed), n)
    ours = fastsnn.ToCurrent(SENSOR, **slicing)(ev)
    assert torch.equal(ours, tonic_frames(ev, SENSOR, **slicing))


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 120),
       window=st.floats(0.5, 40.0), overlap=st.sampled_from([0.0, 0.2]),
       start=st.sampled_from([None, 990.5]))
def test_float_timestamps_slice_as_tonic(seed, n, window, overlap, start):
    ev = stream(np.random.default_rng(seed), n, float_t=True, max_step=3)
    slicing = dict(time_window=window, overlap=overlap * window, start_time=start)
    ours = fastsnn.ToCurrent(SENSOR, **slicing)(ev)
    assert torch.equal(ours, tonic_frames(ev, SENSOR, **slicing))


def test_float_timestamps_with_our_time_split_use_time_scale():
    ev = stream(np.random.default_rng(3), 50, float_t=True, max_step=3)
    ev["t"] = ev["t"] / 1000.0  # seconds, say
    as_ticks = ev.copy().astype([("x", np.int64), ("y", np.int64), ("t", np.int64),
                                 ("p", np.int64)])
    as_ticks["t"] = np.floor(ev["t"] * 1e6).astype(np.int64)
    ours = fastsnn.ToCurrent(SENSOR, 4, split_by="time", time_scale=1e6)(ev)
    assert torch.equal(ours, fastsnn.events_to_current(as_ticks, SENSOR, 4, split_by="time"))


@pytest.mark.parametrize("slicing", [dict(n_event_bins=3), dict(time_window=40),
                                     dict(event_count=7, overlap=2)])
def test_audio_events_without_y(slicing):
    sensor = (6, 1, 2)
    ev = stream(np.random.default_rng(4), 60, sensor, with_y=False)
    ours = fastsnn.ToCurrent(sensor, **slicing)(ev)
    want = tonic_frames(ev, sensor, **slicing)
    assert ours.shape == want.shape and want.dim() == 3  # [T, P, W], as tonic
    assert torch.equal(ours, want)


def test_single_polarity_sensor_maps_polarity_to_zero_like_tonic():
    sensor = (5, 4, 1)
    ev = stream(np.random.default_rng(5), 40, sensor)
    ev["p"] = 1
    assert torch.equal(fastsnn.ToCurrent(sensor, n_event_bins=4)(ev),
                       tonic_frames(ev, sensor, n_event_bins=4))
    ev["p"][3] = 0
    with pytest.raises(ValueError, match="one polarity"):
        fastsnn.ToCurrent(sensor, n_event_bins=4)(ev)


def test_compose_with_tonic_transforms():
    ev = stream(np.random.default_rng(6), 300)
    ours = tonic.transforms.Compose([tonic.transforms.Denoise(filter_time=20),
                                     fastsnn.ToCurrent(SENSOR, time_window=100)])
    theirs = tonic.transforms.Compose([tonic.transforms.Denoise(filter_time=20),
                                       tonic.transforms.ToFrame(SENSOR, time_window=100)])
    assert torch.equal(ours(ev.copy()), torch.from_numpy(theirs(ev.copy()).astype(np.float32)))


class _Streams(torch.utils.data.Dataset):
    def __init__(self, n):
        rng = np.random.default_rng(7)
        self.items = [(stream(rng, int(rng.integers(0, 80))), i % 3) for i in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@pytest.mark.parametrize("workers", [0, 2])
def test_collate_events_in_a_dataloader(workers):
    data = _Streams(10)
    collate = functools.partial(collate_events, sensor_size=SENSOR, T=3, split_by="time")
    loader = torch.utils.data.DataLoader(data, batch_size=4, collate_fn=collate,
                                         num_workers=workers)
    seen = 0
    for current, labels in loader:
        batch = data.items[seen:seen + len(labels)]
        want = torch.stack([fastsnn.ToCurrent(SENSOR, 3, split_by="time")(ev)
                            for ev, _ in batch], dim=1)
        assert current.shape == (3, len(batch), 2, 4, 5)
        assert torch.equal(current, want)
        assert labels.tolist() == [label for _, label in batch]
        seen += len(labels)
    assert seen == len(data)


def test_collate_bare_streams_and_bad_batches():
    rng = np.random.default_rng(8)
    streams = [stream(rng, 12), stream(rng, 0), stream(rng, 5)]
    out = collate_events(streams, SENSOR, 2)
    assert out.shape == (2, 3, 2, 4, 5) and out[:, 1].sum() == 0 and out.sum() == 17
    with pytest.raises(ValueError, match="non-empty list"):
        collate_events([], SENSOR, 2)
    audio = stream(rng, 4, (5, 1, 2), with_y=False)
    with pytest.raises(ValueError, match="mixed"):
        collate_events([streams[0], audio], (5, 1, 2), 2)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(T=3, n_time_bins=3), ValueError, "exactly one"),
    (dict(), ValueError, "exactly one"),
    (dict(n_time_bins=3, time_window=10), ValueError, "exactly one"),
    (dict(T=3, overlap=0.5), ValueError, "apply to tonic"),
    (dict(event_count=0), ValueError, "event_count must be > 0"),
    (dict(n_event_bins=2.5), TypeError, "n_event_bins must be an int"),
    (dict(time_window=True), TypeError, "time_window must be a number"),
    (dict(n_time_bins=2, split_by="time"), ValueError, "split_by applies to T"),
    (dict(T=2, time_scale=0), ValueError, "time_scale"),
    (dict(T=2, bins=3), TypeError, "unknown option"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fastsnn.ToCurrent(SENSOR, **kwargs)


def test_bad_overlap_is_named():
    ev = stream(np.random.default_rng(9), 30)
    with pytest.raises(ValueError, match="overlap must be below event_count"):
        fastsnn.ToCurrent(SENSOR, event_count=4, overlap=4)(ev)
    with pytest.raises(ValueError, match="overlap must be a fraction"):
        fastsnn.ToCurrent(SENSOR, n_time_bins=4, overlap=1.0)(ev)
