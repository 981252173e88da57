"""``collate_events``: a batch of variable-length event streams -> ``[T, B, ...]`` current in
one call of ``fastsnn.events_to_current`` (the streams laid end to end with offsets)."""

from __future__ import annotations

import numpy as np
import torch

from ..ops.events_to_current import events_to_current
from .transforms import event_rows, single_polarity


def collate_events(batch, sensor_size, T: int, *, time_scale: float = 1.0, **options):
    """Collate ``[(events, label), ...]`` (or bare event streams) for a ``DataLoader``.

    Returns ``(current, labels)``: float32 ``[T, B, P', H', W']`` (time-major, what the
    multi-step layers take; ``[T, B, P', W']`` for streams without ``y``) and int64 labels
    ``[B]``; bare streams give the current alone. Each stream is split into T steps on its
    own, exactly as ``ToCurrent(sensor_size, T, ...)`` would split it. ``options`` are those
    of ``fastsnn.events_to_current``. Use
    ``functools.partial(collate_events, sensor_size=..., T=...)`` as ``collate_fn`` (it
    pickles, so DataLoader workers can run it).
    """
    if not isinstance(batch, (list, tuple)) or not batch:
        raise ValueError(f"batch must be a non-empty list of samples, got {batch!r}")
    labelled = isinstance(batch[0], (tuple, list))
    streams = [sample[0] if labelled else sample for sample in batch]
    parts = [event_rows(events, time_scale) for events in streams]
    has_y = {part[2] for part in parts}
    if len(has_y) > 1:
        raise ValueError("batch: streams with and without a y field cannot be mixed")
    rows = [single_polarity(part[0].to(torch.int64), sensor_size) for part in parts]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([r.shape[0] for r in rows], out=offsets[1:])
    current = events_to_current(torch.cat(rows), sensor_size, T, offsets=offsets, **options)
    if not has_y.pop():
        current = current[:, :, :, 0]
    if not labelled:
        return current
    return current, torch.as_tensor([int(sample[1]) for sample in batch], dtype=torch.int64)
