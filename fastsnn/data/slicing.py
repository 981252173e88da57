"""Frame slicing with tonic's edge rules: which events fall into which frame.

``fastsnn.events_to_current`` splits one stream into T disjoint segments that together hold
every event (its own rule, see docs/events_to_current.md). tonic's ``ToFrame`` slices
differently, and a user who swaps it for ``ToCurrent`` expects the same frames, so these
functions reproduce its rules exactly: the same start/end indices from the same arithmetic
on the raw timestamps, so float timestamps slice exactly as in tonic. Each function returns
``(starts, ends)``, int64 arrays, frame ``i`` holding events ``starts[i]:ends[i]`` (frames
may overlap, and trailing events may belong to no frame, as in tonic).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

SLICINGS = ("time_window", "event_count", "n_time_bins", "n_event_bins")


def by_time_window(t: np.ndarray, time_window: float, overlap: float = 0.0,
                   include_incomplete: bool = False, start_time: Optional[float] = None,
                   end_time: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``time_window`` every ``time_window - overlap`` from the first event (or
    ``start_time``); the last window must fit before the last event (or ``end_time``) unless
    ``include_incomplete``; at least one window."""
    stride = time_window - overlap
    if not stride > 0:
        raise ValueError(f"overlap must be below time_window, got overlap={overlap!r}, "
                         f"time_window={time_window!r}")
    first = t[0] if start_time is None else start_time
    last = t[-1] if end_time is None else end_time
    rounding = np.ceil if include_incomplete else np.floor
    n = max(int(rounding((last - first - time_window) / stride) + 1), 1)
    begin = np.arange(n) * stride + first
    return _search(t, begin, begin + time_window)


def by_event_count(num_events: int, event_count: int, overlap: int = 0,
                   include_incomplete: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Frames of ``event_count`` events every ``event_count - overlap`` events; a stream
    shorter than one frame gives one frame of all its events."""
    stride = event_count - overlap
    if stride <= 0:
        raise ValueError(f"overlap must be below event_count, got overlap={overlap!r}, "
                         f"event_count={event_count!r}")
    count = min(event_count, num_events)
    rounding = np.ceil if include_incomplete else np.floor
    n = int(rounding((num_events - count) / stride) + 1)
    starts = (np.arange(n) * stride).astype(np.int64)
    return starts, starts + count


def by_time_bins(t: np.ndarray, bins: int, overlap: float = 0.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``bins`` windows of ``(t_last - t_first) // bins * (1 + overlap)``. The floor
    division means the last events of a stream can fall after the last window."""
    _check_overlap(overlap)
    window = (t[-1] - t[0]) // bins * (1 + overlap)
    begin = np.arange(bins) * (window * (1 - overlap)) + t[0]
    return _search(t, begin, begin + window)


def by_event_bins(num_events: int, bins: int, overlap: float = 0.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``bins`` frames of ``num_events // bins * (1 + overlap)`` events each: the last
    ``num_events % bins`` events belong to no frame when ``overlap`` is 0."""
    _check_overlap(overlap)
    count = int(num_events // bins * (1 + overlap))
    starts = np.arange(bins, dtype=np.int64) * int(count * (1 - overlap))
    return starts, starts + count


def slice_indices(t: np.ndarray, slicing: str, value, overlap=0.0,
                  include_incomplete: bool = False, start_time=None, end_time=None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` for one stream with timestamps ``t`` (sorted) by ``slicing``, one of
    ``SLICINGS``, with its ``value`` (window length, events per frame or number of frames).
    Indices are clipped to the stream (an empty stream gives empty frames)."""
    n = len(t)
    if slicing == "event_count":
        starts, ends = by_event_count(n, value, overlap, include_incomplete)
    elif slicing == "n_event_bins":
        starts, ends = by_event_bins(n, value, overlap)
    elif n == 0:  # time rules read the first and last timestamps
        count = value if slicing == "n_time_bins" else 1
        return np.zeros(count, np.int64), np.zeros(count, np.int64)
    elif slicing == "n_time_bins":
        starts, ends = by_time_bins(t, value, overlap)
    else:
        starts, ends = by_time_window(t, value, overlap, include_incomplete, start_time,
                                      end_time)
    return np.clip(starts, 0, n).astype(np.int64), np.clip(ends, 0, n).astype(np.int64)


def gather(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the frames laid end to end (overlapping frames repeat rows) and the
    ``[F+1]`` offsets of each frame in them: the batched input of ``events_to_current``."""
    lengths = np.maximum(ends - starts, 0)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    rows = np.arange(offsets[-1], dtype=np.int64) + np.repeat(starts - offsets[:-1], lengths)
    return rows, offsets


def _search(t: np.ndarray, begin: np.ndarray, end: np.ndarray):
    return np.searchsorted(t, begin), np.searchsorted(t, end)


def _check_overlap(overlap) -> None:
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be a fraction of a bin in [0, 1), got {overlap!r}")
