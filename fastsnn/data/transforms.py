"""Transforms for one sample, usable in a tonic or torchvision ``Compose``."""

from __future__ import annotations

from ..ops.events_to_current import events_to_current


class ToCurrent:
    """Events of one sample -> ``[T, P', H', W']`` float32 synaptic current.

    A drop-in replacement for ``tonic.transforms.ToFrame(sensor_size, n_event_bins=T)``
    (or ``n_time_bins=T`` with ``split_by="time"``) that takes tonic's structured event
    array (fields x, y, t, p) or an ``[E, 4]`` integer tensor. ``opts`` are the keyword
    options of ``fastsnn.events_to_current`` (``split_by``, ``weighting``, ``tau_syn``,
    ``spatial_factor``, ``merge_polarity``, ``normalize``, ``backend``); they are checked
    on the first call exactly as the op checks them.
    """

    def __init__(self, sensor_size, T: int, **opts):
        unknown = set(opts) - {"split_by", "weighting", "tau_syn", "spatial_factor",
                               "merge_polarity", "normalize", "backend"}
        if unknown:
            raise TypeError(f"ToCurrent got unknown option(s) {sorted(unknown)}")
        self.sensor_size = tuple(sensor_size)
        self.T = T
        self.opts = opts

    def __call__(self, events):
        return events_to_current(events, self.sensor_size, self.T, **self.opts)

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.opts.items())
        return f"ToCurrent(sensor_size={self.sensor_size}, T={self.T}{opts})"
