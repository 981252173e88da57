"""Events -> T steps of synaptic current: the executable form of docs/events_to_current.md.

The compression rule is a reconstruction of paper B's spatio-temporal compression (the
paper's exact method section was not available); every option below is a tested option.

``events`` is an integer tensor ``[E, 4]`` with rows ``(x, y, t, p)``: B streams
concatenated, stream ``b`` being rows ``offsets[b]:offsets[b+1]``. The result is float32
``[T, B, P', H', W']`` with ``P' = 1`` when polarities are merged and
``H' = ceil(H / f)``, ``W' = ceil(W / f)`` for the spatial sum-pooling factor ``f``
(pixel ``(y // f, x // f)``: no event is dropped at the border).

* ``split_by="number"``: a stream of n events puts index i (stream-local) in segment j when
  ``floor(j*n/T) <= i < floor((j+1)*n/T)``, i.e. ``j = ((i+1)*T - 1) // n``.
  ``split_by="time"``: ``j = floor((t - t_first) * T / (t_last - t_first + 1))``,
  equivalently ``t - t_first >= ceil(j * span / T)`` (span = ``t_last - t_first + 1``),
  which is how it is evaluated here (exact integers, no overflow).
* ``weighting="count"``: every event adds 1. ``weighting="exp"``: an event adds
  ``exp(-(t_end - t) / tau_syn)`` with ``t_end`` the timestamp of the last event of its
  segment. Sums are formed in float64 and rounded once to float32, so counts are exact.
* ``normalize``: ``"none"``, ``"max"`` (each sample divided by its maximum; an all-zero
  sample stays zero) or ``"log1p"``.

Invalid input is reported by ``check_offsets`` / ``first_invalid`` with the first bad
index; the C++ binding (csrc/torch/events_to_current.cpp) and the Triton wrapper raise the very same
messages.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .._enums import EventFault, EventSplit, EventWeighting, options

SPLITS = options(EventSplit)  # ("number", "time")
WEIGHTINGS = options(EventWeighting)  # ("count", "exp")
NORMALIZATIONS = ("none", "max", "log1p")
FAULTS = options(EventFault)  # ("x", "y", "p", "order"), the order the checks run in


def output_shape(T: int, B: int, sensor_size, spatial_factor: int = 1,
                 merge_polarity: bool = False) -> tuple[int, int, int, int, int]:
    W, H, P = sensor_size
    f = spatial_factor
    return (T, B, 1 if merge_polarity else P, -(-H // f), -(-W // f))


# -- validation ------------------------------------------------------------------------------

def offsets_error(offsets: Tensor, E: int) -> Optional[str]:
    """Why ``offsets`` cannot split E events into streams (None when it can)."""
    off = offsets.tolist()
    if off[0] != 0:
        return f"offsets[0] must be 0, got {off[0]}"
    diff = offsets[1:] - offsets[:-1]
    if diff.numel() and bool((diff < 0).any()):
        k = int(torch.nonzero(diff < 0)[0, 0]) + 1
        return (f"offsets must be non-decreasing: offsets[{k}] = {off[k]} < "
                f"offsets[{k - 1}] = {off[k - 1]}")
    if off[-1] != E:
        return f"offsets[-1] = {off[-1]} must equal the number of events E = {E}"
    return None


def check_offsets(offsets: Tensor, E: int) -> None:
    error = offsets_error(offsets, E)
    if error:
        raise ValueError(error)


def fault_message(kind: str, index: int, events: Tensor, sensor_size) -> str:
    """The error for event ``index`` failing check ``kind`` (one of ``FAULTS``)."""
    W, H, P = sensor_size
    row = events[index].tolist()
    if kind == "x":
        return f"events: x = {row[0]} at index {index} is outside the sensor width [0, {W})"
    if kind == "y":
        return f"events: y = {row[1]} at index {index} is outside the sensor height [0, {H})"
    if kind == "p":
        return (f"events: polarity p = {row[3]} at index {index} is outside [0, {P}) "
                f"(sensor_size has P = {P})")
    prev = int(events[index - 1, 2])
    return (f"events: t = {row[2]} at index {index} is smaller than t = {prev} at index "
            f"{index - 1}: timestamps must be sorted within each stream")


def fault_masks(events: Tensor, offsets: Tensor, sensor_size) -> list[Tensor]:
    """One boolean mask over events per fault kind (``FAULTS`` order)."""
    W, H, P = sensor_size
    x, y, t, p = events.long().unbind(1)
    unsorted = torch.zeros_like(x, dtype=torch.bool)
    if len(t) > 1:
        unsorted[1:] = t[1:] < t[:-1]
        unsorted[offsets[:-1][offsets[:-1] < len(t)]] = False  # a stream's first event
    return [(x < 0) | (x >= W), (y < 0) | (y >= H), (p < 0) | (p >= P), unsorted]


def first_invalid(events: Tensor, offsets: Tensor, sensor_size) -> Optional[str]:
    """The error for the lowest invalid event (None when all are valid).

    Checks per event, in order: ``0 <= x < W``, ``0 <= y < H``, ``0 <= p < P``, and
    ``t`` not below the previous event's of the same stream.
    """
    masks = fault_masks(events, offsets, sensor_size)
    bad = masks[0] | masks[1] | masks[2] | masks[3]
    if not bool(bad.any()):
        return None
    index = int(torch.nonzero(bad)[0, 0])
    kind = next(k for k, m in zip(FAULTS, masks) if bool(m[index]))
    return fault_message(kind, index, events, sensor_size)


# -- the compression -------------------------------------------------------------------------

def stream_ids(offsets: Tensor, E: int) -> Tensor:
    """Stream index of every event, ``[E]`` int64."""
    lengths = offsets[1:] - offsets[:-1]
    return torch.repeat_interleave(torch.arange(len(lengths), device=offsets.device), lengths,
                                   output_size=E)


def segment_ids(events: Tensor, offsets: Tensor, T: int, split_by: str) -> Tensor:
    """Segment (0..T-1) of every event, ``[E]`` int64."""
    E = events.shape[0]
    stream = stream_ids(offsets, E)
    if split_by == "number":
        local = torch.arange(E, device=events.device) - offsets[stream]
        n = (offsets[1:] - offsets[:-1])[stream]
        return ((local + 1) * T - 1) // n
    t = events[:, 2].long()
    seg = torch.zeros(E, dtype=torch.long, device=events.device)
    off = offsets.tolist()
    for b in range(len(off) - 1):  # streams have their own thresholds
        lo, hi = off[b], off[b + 1]
        if hi == lo or T == 1:
            continue
        t0 = int(t[lo])
        span = int(t[hi - 1]) - t0 + 1
        thresholds = torch.tensor([t0 + (j * span + T - 1) // T for j in range(1, T)],
                                  dtype=torch.long, device=t.device)
        seg[lo:hi] = torch.bucketize(t[lo:hi].contiguous(), thresholds, right=True)
    return seg


def event_weights(events: Tensor, item: Tensor, n_items: int, weighting: str,
                  tau_syn: Optional[float]) -> Tensor:
    """Weight of every event in float64; ``item`` = stream * T + segment."""
    if weighting == "count":
        return torch.ones(events.shape[0], dtype=torch.float64, device=events.device)
    t = events[:, 2].long()
    t_end = torch.full((n_items,), torch.iinfo(torch.long).min, dtype=torch.long,
                       device=t.device).scatter_reduce(0, item, t, "amax")
    # t_end - t in [0, 2^64) read as uint64 (the int64 difference may wrap; the kernels
    # take it in uint64 too), then one rounding to float64
    dt = t_end[item] - t
    return torch.exp(-dt.view(torch.uint64).double() / float(tau_syn))


def accumulate(events: Tensor, offsets: Tensor, sensor_size, T: int, *,
               split_by: str = "number", weighting: str = "count",
               tau_syn: Optional[float] = None, spatial_factor: int = 1,
               merge_polarity: bool = False) -> Tensor:
    """The un-normalised result ``[T, B, P', H', W']`` float32 (events assumed valid)."""
    B = offsets.numel() - 1
    shape = output_shape(T, B, sensor_size, spatial_factor, merge_polarity)
    _, _, Po, Ho, Wo = shape
    f = spatial_factor
    ev = events.long()
    stream = stream_ids(offsets, ev.shape[0])
    seg = segment_ids(ev, offsets, T, split_by)
    w = event_weights(ev, stream * T + seg, B * T, weighting, tau_syn)
    channel = torch.zeros_like(ev[:, 3]) if merge_polarity else ev[:, 3]
    flat = (((seg * B + stream) * Po + channel) * Ho + ev[:, 1] // f) * Wo + ev[:, 0] // f
    out = torch.zeros(T * B * Po * Ho * Wo, dtype=torch.float64, device=ev.device)
    return out.index_add_(0, flat, w).to(torch.float32).reshape(shape)


def normalized(out: Tensor, normalize: str) -> Tensor:
    """Apply ``normalize`` to a ``[T, B, ...]`` result (per sample b for "max")."""
    if normalize == "none":
        return out
    if normalize == "log1p":
        return torch.log1p(out)
    peak = out.amax(dim=(0, 2, 3, 4), keepdim=True) if out.numel() else out
    return out / torch.where(peak > 0, peak, torch.ones_like(peak))


def events_to_current(events: Tensor, offsets: Tensor, sensor_size, T: int, *,
                      split_by: str = "number", weighting: str = "count",
                      tau_syn: Optional[float] = None, spatial_factor: int = 1,
                      merge_polarity: bool = False, normalize: str = "none") -> Tensor:
    """docs/events_to_current.md on a batch: ``[T, B, P', H', W']`` float32.

    Raises ``ValueError`` naming the first bad offset or event.
    """
    check_offsets(offsets, events.shape[0])
    error = first_invalid(events, offsets, sensor_size)
    if error:
        raise ValueError(error)
    out = accumulate(events, offsets, sensor_size, T, split_by=split_by, weighting=weighting,
                     tau_syn=tau_syn, spatial_factor=spatial_factor,
                     merge_polarity=merge_polarity)
    return normalized(out, normalize)
