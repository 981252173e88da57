"""Transforms for one sample, usable in a tonic or torchvision ``Compose``."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..ops.events_to_current import events_to_current
from .slicing import SLICINGS, gather, slice_indices

_OP_OPTIONS = ("split_by", "weighting", "tau_syn", "spatial_factor", "merge_polarity",
               "normalize", "backend")


class ToCurrent:
    """Events of one sample -> float32 synaptic current ``[T, P', H', W']``.

    Two ways to cut the stream into frames:

    * ``T`` (ours): ``fastsnn.events_to_current`` splits the stream into T segments of equal
      event counts (``split_by="number"``) or equal durations (``"time"``) that together hold
      every event.
    * tonic's ``ToFrame`` slicing, with its names and exact edge rules: ``n_event_bins``,
      ``n_time_bins``, ``time_window`` or ``event_count``, with ``overlap``,
      ``include_incomplete``, ``start_time`` / ``end_time``. With ``weighting="count"`` the
      result equals ``ToFrame`` with the same arguments (as float32), including its quirks:
      ``n_event_bins`` drops the last ``n % bins`` events, ``n_time_bins`` the events after
      its last window (the last event at least), and overlapping frames count an event in
      each. Frames are then computed in one batched call of the op.

    ``events`` is tonic's structured array (fields ``x, t, p`` and optionally ``y``; without
    ``y``, audio-style, the result is ``[T, P', W']`` as tonic's) or an ``[E, 4]`` integer
    tensor (x, y, t, p). Float timestamps: the slicing reads them as they are; the op itself
    counts time in integer ticks, so for ``T`` with ``split_by="time"`` or for
    ``weighting="exp"`` they are first multiplied by ``time_scale`` and floored (choose
    ``time_scale`` so one tick is fine enough, e.g. 1e6 for seconds -> microseconds).
    Other ``options`` go to ``fastsnn.events_to_current`` (``split_by``, ``weighting``,
    ``tau_syn``, ``spatial_factor``, ``merge_polarity``, ``normalize``, ``backend``).
    """

    def __init__(self, sensor_size, T: Optional[int] = None, *,
                 n_event_bins: Optional[int] = None, n_time_bins: Optional[int] = None,
                 time_window: Optional[float] = None, event_count: Optional[int] = None,
                 overlap: float = 0.0, include_incomplete: bool = False,
                 start_time: Optional[float] = None, end_time: Optional[float] = None,
                 time_scale: float = 1.0, **options):
        unknown = set(options) - set(_OP_OPTIONS)
        if unknown:
            raise TypeError(f"ToCurrent got unknown option(s) {sorted(unknown)}")
        given = {k: v for k, v in zip(SLICINGS, (time_window, event_count, n_time_bins,
                                                 n_event_bins)) if v is not None}
        if (T is None) == (not given) or len(given) > 1:
            raise ValueError(f"give T or exactly one of {SLICINGS}; got T={T!r} and "
                             f"{given or 'none of them'}")
        self.slicing = next(iter(given.items()), None)
        if self.slicing is not None:
            _check_slicing(*self.slicing, overlap)
            if "split_by" in options:
                raise ValueError(f"split_by applies to T only; {self.slicing[0]} slices "
                                 f"the stream itself")
        elif overlap or include_incomplete or start_time is not None or end_time is not None:
            raise ValueError("overlap, include_incomplete, start_time and end_time apply to "
                             f"tonic's slicing options {SLICINGS}, not to T")
        if not (isinstance(time_scale, (int, float)) and 0 < time_scale < float("inf")):
            raise ValueError(f"time_scale must be a positive float, got {time_scale!r}")
        self.sensor_size = tuple(sensor_size)
        self.T = T
        self.slice_options = dict(overlap=overlap, include_incomplete=include_incomplete,
                                  start_time=start_time, end_time=end_time)
        self.time_scale = float(time_scale)
        self.options = options

    def __call__(self, events):
        rows, t, has_y = event_rows(events, self.time_scale)
        rows = single_polarity(rows, self.sensor_size)
        if self.slicing is None:
            out = events_to_current(rows, self.sensor_size, self.T, **self.options)
        else:
            starts, ends = slice_indices(t, *self.slicing, **self.slice_options)
            index, offsets = gather(starts, ends)
            frames = events_to_current(rows[torch.from_numpy(index).to(rows.device)],
                                       self.sensor_size, 1, offsets=offsets, **self.options)
            out = frames[0]  # [F, P', H', W']: frame f is the one step of stream f
        return out if has_y else out[:, :, 0]

    def __repr__(self) -> str:
        cut = f"T={self.T}" if self.slicing is None else f"{self.slicing[0]}={self.slicing[1]}"
        extra = {**{k: v for k, v in self.slice_options.items() if v},
                 **({"time_scale": self.time_scale} if self.time_scale != 1.0 else {}),
                 **self.options}
        opts = "".join(f", {k}={v!r}" for k, v in extra.items())
        return f"ToCurrent(sensor_size={self.sensor_size}, {cut}{opts})"


def event_rows(events, time_scale: float = 1.0) -> tuple[torch.Tensor, np.ndarray, bool]:
    """``events`` as the op's ``[E, 4]`` integer rows, the timestamps as given (for slicing)
    and whether the events have a ``y`` coordinate.

    A structured array may lack ``y`` (events of a 1-d sensor: y = 0) and may have float
    timestamps (multiplied by ``time_scale`` and floored into integer ticks)."""
    if not isinstance(events, np.ndarray) or events.dtype.names is None:
        rows = events if isinstance(events, torch.Tensor) else torch.as_tensor(events)
        if rows.dim() != 2 or rows.shape[1] != 4:
            raise ValueError(f"events must be a structured array (fields x, [y,] t, p) or "
                             f"[E, 4] rows (x, y, t, p); got shape {tuple(rows.shape)}")
        return rows, rows[:, 2].cpu().numpy(), True
    names = events.dtype.names
    missing = [f for f in "xtp" if f not in names]
    if missing:
        raise ValueError(f"events: structured array lacks the field(s) {missing}; needs "
                         f"x, t, p and optionally y (got {list(names)})")
    t = events["t"]
    ticks = t
    if t.dtype.kind == "f":
        if not np.isfinite(t).all():
            raise ValueError("events: field 't' holds NaN or infinite timestamps")
        ticks = np.floor(t * time_scale).astype(np.int64)
    has_y = "y" in names
    columns = [events["x"], events["y"] if has_y else np.zeros(len(events), np.int64),
               ticks, events["p"]]
    for name, col in zip("xytp", columns):
        if col.dtype.kind not in "iub":
            raise TypeError(f"events: field {name!r} must be integer or bool, got {col.dtype}")
    return torch.from_numpy(np.stack(columns, axis=1).astype(np.int64)), t, has_y


def single_polarity(rows: torch.Tensor, sensor_size) -> torch.Tensor:
    """For a one-polarity sensor, events of one polarity value as polarity 0 (as tonic does:
    its datasets often mark such events with p = 1); two values raise."""
    if len(sensor_size) != 3 or sensor_size[2] != 1 or rows.shape[0] == 0:
        return rows
    p = rows[:, 3]
    if bool((p != p[0]).any()):
        raise ValueError("events: sensor_size has one polarity but the events hold several "
                         "polarity values")
    if int(p[0]) == 0:
        return rows
    rows = rows.clone()
    rows[:, 3] = 0
    return rows


def _check_slicing(name: str, value, overlap) -> None:
    integral = name != "time_window"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer) if integral
                                                 else (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be {'an int' if integral else 'a number'}, got "
                        f"{value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float, np.number)):
        raise TypeError(f"overlap must be a number, got {overlap!r}")
