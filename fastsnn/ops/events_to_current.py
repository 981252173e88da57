"""``fastsnn.events_to_current``: event streams -> T steps of synaptic current
(docs/events_to_current.md).

The public function checks its arguments (the only validation pass of the options), turns
the input into the kernel contract below and runs one backend: ``reference`` is
``fastsnn.reference.events_to_current``; the fast backends run the kernel declared in ``OP``
(``fastsnn::events_to_current_forward``, or ``..._triton``; ``fastsnn/ops/_spine.py``) with
its fake impl, so it traces under ``torch.compile`` (no autograd: events are data).
``normalize`` is applied afterwards with torch ops, identically for every backend.

Kernel contract (``csrc/torch/events_to_current.cpp`` and ``kernels/events_to_current.py``;
integer helpers shared by C++ and CUDA in ``csrc/common/events.h``):

* ``events``: contiguous ``[E, 4]`` int32 or int64, rows ``(x, y, t, p)``, E < 2^31;
  ``offsets``: contiguous int64 ``[B+1]`` on the same device, ``0 = offsets[0] <= ... <=
  offsets[B] = E``; stream b is rows ``offsets[b]:offsets[b+1]``.
* scalars: ``T`` (1 <= T < 2^31); ``width, height, polarities`` = sensor_size ``(W, H, P)``
  with P in {1, 2}; ``split``, ``weighting``: ``fastsnn._enums.EventSplit`` /
  ``EventWeighting`` (number=0 time=1; count=0 exp=1); ``tau``
  (tau_syn, > 0 for exp); ``frac_bits`` = ``exp_frac_bits(E)``; ``factor`` (spatial
  sum-pooling f >= 1); ``merge`` (one output polarity channel).
* returns float32 ``[T, B, Pout, ceil(H/f), ceil(W/f)]``: the un-normalised sums.
* segments (integers only): by number, stream-local index ``floor(j*n/T)`` starts segment j;
  by time, the first event with ``t - t_first >= ceil(j*span/T)``, ``span = t_last -
  t_first + 1``. An event goes to pixel ``(p or 0, y // f, x // f)`` of slab ``(j, b)``.
* arithmetic: counts are int32 sums converted once to float32 (bit-identical on every
  backend, and equal to the reference's float64 sums). Exp weights:
  ``q = int64(exp(float64(t_end - t) * (-1/tau)) * 2^S + 0.5)``, summed exactly in int64
  (so the order of the additions, or of the atomics, cannot matter), result
  ``float32(float64(sum) * 2^-S)``; ``S = frac_bits = min(40, 62 - bit_length(E))`` keeps
  every sum below 2^62. Backends agree bit for bit whenever their ``exp`` libraries do;
  against the reference (plain float64 sums) the difference is at most E * 2^-S-1.
* validation, in the kernels themselves (they never write out of bounds, whatever the
  input): offsets as above, then every event: ``0 <= x < W``, ``0 <= y < H``,
  ``0 <= p < P`` and ``t`` not below the previous event of its stream. The lowest bad index
  raises ``ValueError`` with the message of ``fastsnn.reference.events_to_current``.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor

from .._enums import EventSplit, EventWeighting, parse
from ..reference import events_to_current as ref
from . import _checks
from ._spine import Kernel, Op

_INT32 = np.iinfo(np.int32)


def exp_frac_bits(num_events: int) -> int:
    """Fractional bits of the exp-weight fixed point for ``num_events`` events."""
    return min(40, 62 - int(num_events).bit_length())


def _forward_fake(events, offsets, T, width, height, polarities, split, weighting, tau,
                  frac_bits, factor, merge):
    shape = ref.output_shape(T, offsets.shape[0] - 1, (width, height, polarities), factor,
                             merge)
    return events.new_empty(shape, dtype=torch.float32)


def _reference(events, offsets, T, width, height, polarities, split, weighting, tau,
               frac_bits, factor, merge):
    """The reference with the kernel's arguments (it sums in float64: no frac_bits)."""
    return ref.events_to_current(events, offsets, (width, height, polarities), T,
                                 split_by=ref.SPLITS[split], weighting=ref.WEIGHTINGS[weighting],
                                 tau_syn=tau, spatial_factor=factor, merge_polarity=merge)


# The reference runs as an op too: its checks read the events, which torch.compile could
# not keep in one graph.
OP = Op("events_to_current", triton_module="events_to_current", kernels=(
    Kernel("events_to_current_forward",
           "(Tensor events, Tensor offsets, int T, int width, int height, int polarities, "
           "int split, int weighting, float tau, int frac_bits, int factor, bool merge) "
           "-> Tensor", _forward_fake, reference=_reference),),
    dtypes=dict.fromkeys(("reference", "cpu", "triton", "cuda"), (torch.int32, torch.int64)))


# -- input conversion ------------------------------------------------------------------------

def _structured_to_tensor(events: np.ndarray) -> Tensor:
    """A structured array with fields x, y, t, p as ``[E, 4]``: int32 when every value fits
    (half the bytes for the kernel to read), else int64."""
    names = events.dtype.names or ()
    missing = [f for f in "xytp" if f not in names]
    if missing:
        raise ValueError(f"events: structured array lacks the field(s) {missing}; needs "
                         f"x, y, t, p (got {list(names)})")
    fields = [events[f] for f in "xytp"]
    for f, col in zip("xytp", fields):
        if col.dtype.kind not in "iub":
            raise TypeError(f"events: field {f!r} must be integer or bool, got {col.dtype}")
    for f, col in zip("xytp", fields):
        _below_2_63(col, f"events: field {f!r}")
    fits = all(_fits_int32(col) for col in fields)
    out = np.empty((len(events), 4), dtype=np.int32 if fits else np.int64)
    for k, col in enumerate(fields):
        out[:, k] = col
    return torch.from_numpy(out)


def _below_2_63(values: np.ndarray, name: str) -> None:
    """``ValueError`` quoting the first unsigned value that int64 cannot hold (it would wrap
    negative and be reported as something never given)."""
    if values.dtype.kind == "u" and values.dtype.itemsize == 8 and values.size:
        big = np.flatnonzero(values.reshape(-1) > np.iinfo(np.int64).max)
        if big.size:
            raise ValueError(f"{name} holds {int(values.reshape(-1)[big[0]])} (flat index "
                             f"{int(big[0])}), beyond int64: values must be below 2^63")


def _fits_int32(col: np.ndarray) -> bool:
    if col.dtype.kind == "b" or np.can_cast(col.dtype, np.int32):
        return True
    return col.size == 0 or (int(col.min()) >= _INT32.min and int(col.max()) <= _INT32.max)


def as_event_tensor(events) -> Tensor:
    """``events`` (structured array, ``[E, 4]`` array or tensor) as an ``[E, 4]`` int32/int64
    contiguous tensor."""
    if isinstance(events, np.ndarray):
        if events.dtype.names is not None:
            return _structured_to_tensor(events)
        _below_2_63(events, "events")
        events = torch.from_numpy(np.ascontiguousarray(events))
    if not isinstance(events, Tensor):
        raise TypeError(f"events must be a NumPy structured array (fields x, y, t, p) or an "
                        f"integer tensor [E, 4]; got {type(events).__name__}")
    if events.dim() != 2 or events.shape[1] != 4:
        raise ValueError(f"events must have shape [E, 4] (columns x, y, t, p), got "
                         f"{tuple(events.shape)}")
    if events.dtype.is_floating_point or events.dtype.is_complex:
        raise TypeError(f"events must be an integer tensor, got {events.dtype}")
    if events.dtype == torch.uint64 and events.numel():
        big = torch.nonzero(events.view(torch.int64).reshape(-1) < 0)
        if big.numel():  # >= 2^63 as int64: negative
            i = int(big[0, 0])
            value = int(events.view(torch.int64).reshape(-1)[i]) + 2**64
            raise ValueError(f"events holds {value} (flat index {i}), beyond int64: values "
                             f"must be below 2^63")
    if events.dtype not in (torch.int32, torch.int64):
        events = events.to(torch.int64)
    return events.contiguous()


# -- argument checks -------------------------------------------------------------------------

def _sensor(sensor_size) -> tuple[int, int, int]:
    try:
        W, H, P = sensor_size
    except (TypeError, ValueError):
        raise ValueError(f"sensor_size must be (W, H, P), got {sensor_size!r}") from None
    W, H = _checks.integer(W, "sensor_size W", 1), _checks.integer(H, "sensor_size H", 1)
    if P not in (1, 2) or isinstance(P, bool):
        raise ValueError(f"sensor_size P (polarities) must be 1 or 2, got {P!r}")
    return W, H, int(P)


def _offsets(offsets, events: Tensor) -> Tensor:
    if offsets is None:
        return torch.tensor([0, events.shape[0]], dtype=torch.int64, device=events.device)
    if isinstance(offsets, (list, tuple, np.ndarray)):
        offsets = torch.as_tensor(np.asarray(offsets))
    if not isinstance(offsets, Tensor):
        raise TypeError(f"offsets must be a tensor, array or list [B+1], got "
                        f"{type(offsets).__name__}")
    if offsets.dim() != 1 or offsets.numel() < 1:
        raise ValueError(f"offsets must be 1-d [B+1] with B >= 0, got shape "
                         f"{tuple(offsets.shape)}")
    if offsets.dtype.is_floating_point or offsets.dtype == torch.bool:
        raise TypeError(f"offsets must be integers, got {offsets.dtype}")
    return offsets.to(device=events.device, dtype=torch.int64).contiguous()


def _tau(tau_syn, weighting: str) -> float:
    if weighting == "count":
        return 1.0  # unused
    if tau_syn is None or isinstance(tau_syn, bool) or not isinstance(
            tau_syn, (int, float, np.floating, np.integer)) or not 0 < tau_syn < float("inf"):
        raise ValueError(f"weighting='exp' needs tau_syn > 0 (same unit as t), got "
                         f"{tau_syn!r}")
    return float(tau_syn)


def events_to_current(events: Union[np.ndarray, Tensor], sensor_size, T: int, *,
                      offsets=None, split_by: str = "number", weighting: str = "count",
                      tau_syn: Optional[float] = None, spatial_factor: int = 1,
                      merge_polarity: bool = False, normalize: str = "none",
                      backend: Optional[str] = None) -> Tensor:
    """Compress event streams into T steps of (synaptic) current, float32.

    ``events`` is a NumPy structured array with fields ``x, y, t, p`` (tonic's format) or an
    integer ``[E, 4]`` tensor (columns x, y, t, p) on CPU or CUDA; ``sensor_size`` is
    ``(W, H, P)``. With ``offsets`` (``[B+1]``, non-decreasing, from 0 to E) the rows are B
    concatenated streams and the result is ``[T, B, P', H', W']``; without it, one stream
    and ``[T, P', H', W']``. ``P' = 1`` with ``merge_polarity``, ``H' = ceil(H / f)``,
    ``W' = ceil(W / f)`` for ``spatial_factor=f`` (sum-pooling).

    ``split_by``: "number" (equal event counts) or "time" (equal durations over
    ``[t_first, t_last]``); ``weighting``: "count" or "exp" (each event adds
    ``exp(-(t_end - t) / tau_syn)``, t_end = last timestamp of its segment);
    ``normalize``: "none", "max" (per sample) or "log1p". Exact rules:
    docs/events_to_current.md and ``fastsnn.reference.events_to_current`` (a reconstruction
    of paper B's compression). Invalid events raise ``ValueError`` naming the first bad index.
    """
    ev = as_event_tensor(events)
    W, H, P = _sensor(sensor_size)
    T = _checks.integer(T, "T", 1)
    if T > _INT32.max:
        raise ValueError(f"T must be below 2^31, got {T}")
    split = parse(EventSplit, split_by, "split_by")
    weight = parse(EventWeighting, weighting, "weighting")
    if normalize not in ref.NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {ref.NORMALIZATIONS}, got {normalize!r}")
    factor = _checks.integer(spatial_factor, "spatial_factor", 1)
    if not isinstance(merge_polarity, (bool, np.bool_)):
        raise TypeError(f"merge_polarity must be a bool, got {merge_polarity!r}")
    tau = _tau(tau_syn, weighting)
    if ev.shape[0] > _INT32.max:
        raise ValueError(f"at most 2^31 - 1 events per call are supported, got {ev.shape[0]}")
    off = _offsets(offsets, ev)
    chosen = OP.choose(backend, ev)
    out = OP.kernel("events_to_current_forward", chosen)(
        ev, off, T, W, H, P, int(split), int(weight), tau, exp_frac_bits(ev.shape[0]), factor,
        bool(merge_polarity))
    out = ref.normalized(out, normalize)
    return out if offsets is not None else out[:, 0]
