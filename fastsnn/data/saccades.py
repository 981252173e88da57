"""``DigitSaccades``: the digits as event streams, recorded the way N-MNIST was.

N-MNIST (Orchard et al. 2015) showed each MNIST digit on a monitor and moved an ATIS
event camera (34x34 pixels used) along three saccades tracing a triangle, about 100 ms
each; a pixel emits an event whenever its log intensity has changed by more than a
contrast threshold since its last event, ON (p = 1) for an increase, OFF (p = 0) for a
decrease. This module simulates that recording for scikit-learn's digits:

* the 8x8 image is upsampled bilinearly to ``image_size`` pixels (28 as for MNIST) and
  placed on a ``sensor_size`` canvas (34 as N-MNIST);
* the image moves along the triangle ``VERTICES`` (three straight saccades, each
  ``saccade_us`` long), sampled every ``step_us``;
* every sensor pixel keeps the log intensity of its last event; a change of ``n`` times
  its contrast threshold emits ``n`` events whose timestamps are interpolated linearly
  inside the step (the pixel is assumed to change linearly between samples);
* the default ``contrast`` 0.35 (log units, black level 0.1) gives about 5000 events per
  digit, the order of an N-MNIST sample;
* each pixel's threshold is ``contrast * (1 + mismatch * N(0, 1))`` (the per-pixel
  threshold mismatch of real sensors), drawn from ``seed`` and the sample index, so a
  stream is a deterministic function of (image, seed, index).

Events come as a NumPy structured array with fields ``x, y, t, p`` (tonic's format;
``t`` in microseconds, sorted; ties ordered by pixel then polarity).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import numpy as np
from torch.utils.data import Dataset

from .digits import TEST_FRACTION, digits_split

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])
# Offsets (x, y) in sensor pixels of the image's top-left corner at the triangle's corners;
# an isosceles triangle inside the 6 px of slack that a 28 px image has on a 34 px sensor.
VERTICES = ((0.5, 5.5), (3.0, 0.5), (5.5, 5.5))


def saccade_path(saccade_us: int, step_us: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample times (µs) and image offsets ``[S + 1, 2]`` along the three saccades."""
    if saccade_us <= 0 or step_us <= 0 or saccade_us % step_us:
        raise ValueError(f"saccade_us ({saccade_us}) must be a positive multiple of "
                         f"step_us ({step_us})")
    steps = saccade_us // step_us
    corners = np.array(VERTICES + VERTICES[:1], dtype=np.float64)
    frac = np.arange(steps) / steps
    legs = [a + frac[:, None] * (b - a) for a, b in zip(corners[:-1], corners[1:])]
    offsets = np.concatenate(legs + [corners[-1:]])
    times = np.arange(len(offsets), dtype=np.int64) * step_us
    return times, offsets


def render(image: np.ndarray, offsets: np.ndarray, sensor_size: int,
           image_size: int) -> np.ndarray:
    """Intensity seen by the sensor ``[S, sensor, sensor]`` for each image offset.

    Bilinear upsampling and the sub-pixel shift in one separable step: sensor pixel centre
    ``x + 0.5`` maps to image coordinate ``(x + 0.5 - offset) * n / image_size - 0.5``
    (pixel centres at integers); outside the image the monitor is black, and the border
    fades over one image pixel as if the image were padded with zeros.
    """
    n = image.shape[0]
    scale = n / image_size
    centres = np.arange(sensor_size) + 0.5
    wx = _bilinear_weights((centres[None, :] - offsets[:, :1]) * scale - 0.5, n)
    wy = _bilinear_weights((centres[None, :] - offsets[:, 1:]) * scale - 0.5, n)
    return (wy @ image.astype(np.float64)) @ wx.transpose(0, 2, 1)


def _bilinear_weights(coords: np.ndarray, n: int) -> np.ndarray:
    """``[..., n]`` linear-interpolation weights of image pixels 0..n-1 at ``coords``."""
    base = np.floor(coords)
    frac = coords - base
    pixels = np.arange(n)
    left = (pixels == base[..., None]) * (1 - frac)[..., None]
    right = (pixels == base[..., None] + 1) * frac[..., None]
    return left + right


def log_events(log_frames: np.ndarray, times: np.ndarray,
               threshold: np.ndarray) -> np.ndarray:
    """Events of an ideal DVS pixel array watching ``log_frames`` ``[S, H, W]``.

    ``threshold`` ``[H, W]`` is each pixel's contrast threshold. The reference level of a
    pixel moves by one threshold per event, so a change of ``n`` thresholds gives ``n``
    events, timed where the linearly interpolated signal crosses each level.
    """
    ref = log_frames[0].copy()
    chunks = []
    for k in range(1, len(log_frames)):
        delta = log_frames[k] - ref
        count = np.floor(np.abs(delta) / threshold).astype(np.int64)
        ys, xs = np.nonzero(count)
        if len(ys) == 0:
            continue
        n = count[ys, xs]
        sign = np.sign(delta[ys, xs])
        # Time of the i-th crossing (i = 1..n): the signal moved from ref_prev(t_{k-1}) to
        # frame k linearly, so level i*threshold is reached at that fraction of the step.
        step_change = log_frames[k, ys, xs] - log_frames[k - 1, ys, xs]
        already = ref[ys, xs] - log_frames[k - 1, ys, xs]   # offset of ref from the signal
        rep = np.repeat(np.arange(len(ys)), n)
        starts = np.repeat(np.cumsum(n) - n, n)
        level = (np.arange(len(rep)) - starts + 1).astype(np.float64)   # 1..n per pixel
        target = already[rep] + sign[rep] * level * threshold[ys, xs][rep]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.clip(np.where(step_change[rep] != 0, target / step_change[rep], 1.0),
                           0.0, 1.0)
        t = times[k - 1] + np.floor(frac * (times[k] - times[k - 1])).astype(np.int64)
        chunk = np.empty(len(rep), dtype=EVENT_DTYPE)
        chunk["x"], chunk["y"], chunk["t"] = xs[rep], ys[rep], t
        chunk["p"] = (sign[rep] > 0).astype(np.int8)
        chunks.append(chunk)
        ref[ys, xs] += sign * n * threshold[ys, xs]
    if not chunks:
        return np.empty(0, dtype=EVENT_DTYPE)
    events = np.concatenate(chunks)
    order = np.lexsort((events["p"], events["x"], events["y"], events["t"]))
    return events[order]


def saccade_events(image: np.ndarray, *, sensor_size: int = 34, image_size: int = 28,
                   contrast: float = 0.35, mismatch: float = 0.03, floor: float = 0.1,
                   saccade_us: int = 100_000, step_us: int = 1_000,
                   rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """The event stream of one grayscale image ``[n, n]`` in [0, 1] (see module docstring).

    ``floor`` is the monitor's black level added before the log (a real screen is never
    fully dark); ``mismatch`` the relative spread of per-pixel thresholds (needs ``rng``).
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or image.shape[0] != image.shape[1]:
        raise ValueError(f"image must be a square 2-d array, got shape {image.shape}")
    if not image_size <= sensor_size:
        raise ValueError(f"image_size ({image_size}) must not exceed sensor_size "
                         f"({sensor_size})")
    if not contrast > 0 or not floor > 0 or mismatch < 0:
        raise ValueError(f"need contrast > 0, floor > 0, mismatch >= 0; got {contrast!r}, "
                         f"{floor!r}, {mismatch!r}")
    times, offsets = saccade_path(saccade_us, step_us)
    slack = sensor_size - image_size
    offsets = offsets * slack / 6.0  # VERTICES are laid out for 6 px of slack
    frames = np.log(floor + render(image, offsets, sensor_size, image_size))
    threshold = np.full((sensor_size, sensor_size), contrast)
    if mismatch and rng is not None:
        spread = rng.standard_normal((sensor_size, sensor_size))
        threshold = contrast * np.clip(1 + mismatch * spread, 0.5, 1.5)
    return log_events(frames, times, threshold)


class DigitSaccades(Dataset):
    """scikit-learn's digits as N-MNIST-style event streams: ``(events, label)`` pairs.

    Same fixed train/test split as ``Digits``. Streams are generated on first access and
    cached (``cache=True``); each is a deterministic function of the image, ``seed`` and
    the index. ``sensor_size`` (W, H, P) = ``(34, 34, 2)`` by default, as tonic reports it.
    ``transform`` (e.g. ``fastsnn.data.ToCurrent``) is applied to the event array.
    """

    num_classes = 10

    def __init__(self, train: bool = True, seed: int = 0, split_seed: int = 0,
                 test_fraction: float = TEST_FRACTION, sensor: int = 34,
                 image_size: int = 28, contrast: float = 0.35, mismatch: float = 0.03,
                 transform: Optional[Callable] = None, cache: bool = True):
        x_train, y_train, x_test, y_test = digits_split(split_seed, test_fraction)
        self.images, self.labels = (x_train, y_train) if train else (x_test, y_test)
        self.train, self.seed = train, seed
        self.options = dict(sensor_size=sensor, image_size=image_size, contrast=contrast,
                            mismatch=mismatch)
        self.sensor_size = (sensor, sensor, 2)
        self.transform = transform
        self._cache: Optional[dict[int, np.ndarray]] = {} if cache else None

    def __len__(self) -> int:
        return len(self.labels)

    def events(self, index: int) -> np.ndarray:
        """The (cached) event stream of sample ``index``."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        rng = np.random.default_rng([self.seed, int(self.train), index])
        events = saccade_events(self.images[index], rng=rng, **self.options)
        if self._cache is not None:
            self._cache[index] = events
        return events

    def __getitem__(self, index: int):
        events = self.events(index)
        if self.transform is not None:
            events = self.transform(events)
        return events, int(self.labels[index])
