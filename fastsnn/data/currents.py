"""``EventCurrents``: an event dataset seen as T steps of synaptic current per sample.

Wraps a dataset of ``(events, label)`` and converts each stream with
``fastsnn.events_to_current`` (docs/events_to_current.md) into a float32 ``[T, P, H, W]`` tensor;
the default collate then stacks ``[N, T, P, H, W]`` (the training loop makes it
time-major). ``cache=True`` keeps converted samples in memory, worthwhile for small data
sets such as ``DigitSaccades`` that are read every epoch.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch.utils.data import Dataset

from ..ops.events_to_current import events_to_current


class EventCurrents(Dataset):
    """``(current [T, P, H', W'] float32, label)`` from a dataset of ``(events, label)``.

    ``options`` go to ``events_to_current`` (``split_by``, ``weighting``, ``tau_syn``,
    ``spatial_factor``, ``merge_polarity``, ``normalize``, ``backend``).
    """

    def __init__(self, dataset: Dataset, sensor_size: tuple[int, int, int], T: int,
                 cache: bool = False, **options):
        if not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be an int >= 1, got {T!r}")
        self.dataset, self.sensor_size, self.T = dataset, tuple(sensor_size), T
        self.options = options
        self._convert = events_to_current
        self._cache: Optional[dict[int, tuple[torch.Tensor, int]]] = {} if cache else None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        events, label = self.dataset[index]
        current = self._convert(events, self.sensor_size, self.T, **self.options)
        item = (current, int(label))
        if self._cache is not None:
            self._cache[index] = item
        return item
