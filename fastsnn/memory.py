"""What training keeps for the backward pass: a per-module report, and spikes kept as bits.

``saved_bytes(model, inputs)`` runs one forward (and by default one backward) with
``torch.autograd.graph.saved_tensors_hooks`` and module forward hooks, and reports the
bytes of the tensors autograd saves, per module (the innermost module running when the
tensor was saved) and in total, each storage counted once, plus the peak of those bytes
over the forward and backward. The model's own parameters and buffers are not counted
(they exist whether or not anything is saved).

Spike saving: inside ``spike_saving()``, a tensor marked with ``mark_spikes(t, levels)``
(the output of a spiking neuron) is kept by every node that saves it as bit-planes
(``fastsnn.spike_bits``), not in float: the neuron's own copy, a pooling layer's, a
convolution's. A later save of the same storage is packed at once; earlier ones are
converted when the mark arrives. Only contiguous floating tensors are converted, and a
mark is forgotten when the marked tensor object dies (its storage may be reused).

Recomputed outputs (``spike_saving(recompute=True)``): a layer whose output is cheap to
recompute from what it keeps anyway (``SpikeConv2d``: the convolution of the spike bits it
saves for its weight gradient) registers it with ``recompute_on_backward``; a later node
that saves that whole tensor (the batch norm after the convolution saves its input) keeps
the recipe instead of the float copy, and the backward recomputes it with the same kernel
on the same values, so the gradients are unchanged bit for bit.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import Tensor, nn

from ._saved_store import Recipe, Store, storage_key
from .spike_bits import SpikeBits

__all__ = ["SavedBytes", "mark_spikes", "recompute_on_backward", "saved_bytes",
           "spike_saving"]


class _Local(threading.local):
    def __init__(self):
        self.stack: list[Store] = []  # like torch's saved-tensor hooks: per thread


_LOCAL = _Local()


def _foreign_hooks() -> bool:
    """Whether saved-tensor hooks other than ours are active (checkpointing, offloading)."""
    try:
        top = torch._C._autograd._top_saved_tensors_default_hooks(False)
    except AttributeError:  # not in this torch: assume not
        return False
    stack = _LOCAL.stack
    return top is not None and not (stack and getattr(top[0], "__self__", None) is stack[-1])


@contextlib.contextmanager
def _hooks(store: Store):
    with torch.autograd.graph.saved_tensors_hooks(store.pack_hook, store.unpack_hook):
        _LOCAL.stack.append(store)
        try:
            yield store
        finally:
            _LOCAL.stack.pop()


@contextlib.contextmanager
def spike_saving(enabled: bool = True, *, recompute: bool = False):
    """Within it, tensors marked by ``mark_spikes`` are saved for backward as bits, and
    with ``recompute`` outputs registered by ``recompute_on_backward`` are recomputed in
    backward instead of kept (less memory for one more convolution per layer).

    Reuses the active store of an enclosing ``spike_saving``/``saved_bytes`` (recomputing
    inside this one if either asks for it); does nothing when disabled, when grad is off,
    or when other saved-tensor hooks are active (they keep precedence, e.g. activation
    checkpointing).
    """
    if not enabled or not torch.is_grad_enabled() or _foreign_hooks():
        yield
        return
    if _LOCAL.stack:
        store = _LOCAL.stack[-1]
        outer, store.recompute = store.recompute, store.recompute or recompute
        try:
            yield
        finally:
            store.recompute = outer
        return
    with _hooks(Store(recompute=recompute)):
        yield


def mark_spikes(t: Tensor, levels: int) -> None:
    """Declare that ``t`` holds spikes ``0..levels`` (not checked): inside
    ``spike_saving``, every saved contiguous view of its elements, earlier or later, is
    kept as bits. No effect outside ``spike_saving``."""
    if _LOCAL.stack and isinstance(t, Tensor) and not _foreign_hooks():
        _LOCAL.stack[-1].mark(t, levels)


def recompute_on_backward(t: Tensor, fn: Callable[[], Tensor], *, anchor: Tensor,
                          guards=(), name: str = "layer") -> None:
    """Declare that ``fn()`` recomputes ``t`` exactly from tensors kept anyway (``anchor``
    is the storage they live in, for the byte accounting; ``guards`` the tensors ``fn``
    reads that could change in place): inside ``spike_saving(recompute=True)``, a later
    save of the whole of ``t`` keeps the recipe instead. No effect elsewhere."""
    if _LOCAL.stack and _LOCAL.stack[-1].recompute and isinstance(t, Tensor) \
            and not _foreign_hooks():
        _LOCAL.stack[-1].recipes[storage_key(t)] = Recipe(t, fn, anchor, guards, name)


def active_bits(t: Tensor, levels: int) -> Optional[SpikeBits]:
    """The bits the active store already holds for ``t``'s values (shared, counted once)."""
    if not _LOCAL.stack or not t.is_contiguous():
        return None
    store = _LOCAL.stack[-1]
    mark = store._mark_of(t)
    if mark is None or mark.levels != levels:
        return None
    return store.bits(t, mark)


@dataclass
class SavedBytes:
    """``saved_bytes``' report: bytes per module (``""`` is the model itself), total, peak."""

    modules: dict[str, int]
    total: int
    peak: int
    tensors: int
    device_peak: Optional[int] = None  # CUDA: peak allocated during forward + backward
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"modules": dict(self.modules), "total": self.total, "peak": self.peak,
                "tensors": self.tensors, "device_peak": self.device_peak}

    def __str__(self) -> str:
        width = max([len("module")] + [len(n or "(model)") for n in self.modules])
        lines = [f"{'module':<{width}}  {'saved bytes':>14}  {'MiB':>9}  {'share':>6}"]
        for name, n in self.modules.items():
            share = 100.0 * n / self.total if self.total else 0.0
            lines.append(f"{name or '(model)':<{width}}  {n:>14,}  {n / 2**20:>9.3f}  "
                         f"{share:>5.1f}%")
        lines.append(f"{'total':<{width}}  {self.total:>14,}  {self.total / 2**20:>9.3f}  "
                     f"({self.tensors} storages)")
        lines.append(f"{'peak':<{width}}  {self.peak:>14,}  {self.peak / 2**20:>9.3f}")
        if self.device_peak is not None:
            lines.append(f"{'device peak':<{width}}  {self.device_peak:>14,}  "
                         f"{self.device_peak / 2**20:>9.3f}")
        return "\n".join(lines)


def saved_bytes(model: nn.Module, inputs, *, backward: bool = True,
                loss_fn: Optional[Callable[[Any], Tensor]] = None) -> SavedBytes:
    """Bytes ``model(*inputs)`` saves for backward, per module and in total, and the peak.

    ``inputs``: a tensor or a tuple of positional arguments. The model runs in its current
    mode (``train()`` to see training memory). With ``backward`` the loss (``loss_fn(out)``,
    default ``out.sum()``) is backpropagated inside the hooks so the peak covers the
    backward too; parameter gradients, buffers (batch-norm statistics) and the RNG state
    are restored afterwards, so the call has no lasting effect.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    params = list(model.parameters())
    exclude = frozenset(storage_key(p) for p in params) | frozenset(
        storage_key(b) for b in model.buffers())
    store = Store(exclude=exclude)

    def enter(name: str) -> Callable:
        def hook(module, args) -> None:
            store.modules.append(name)
        return hook

    def leave(module, args, out) -> None:  # returns None: the output stays as it is
        store.modules.pop()

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(enter(name)))
        handles.append(module.register_forward_hook(leave, always_call=True))
    grads = [p.grad for p in params]  # the backward accumulates into fresh ones
    for p in params:
        p.grad = None
    buffers = [b.detach().clone() for b in model.buffers()]
    cuda = any(t.is_cuda for t in args if isinstance(t, Tensor))
    devices = [torch.cuda.current_device()] if cuda else []
    try:
        with torch.random.fork_rng(devices=devices):
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                start = torch.cuda.memory_allocated()
            with torch.enable_grad(), _hooks(store):
                out = model(*args)
                per, count = store.snapshot()
                total = sum(per.values())
                if backward:
                    loss = loss_fn(out) if loss_fn is not None else _default_loss(out)
                    loss.backward()
                del out
            device_peak = None
            if cuda:
                torch.cuda.synchronize()
                device_peak = torch.cuda.max_memory_allocated() - start
    finally:
        for h in handles:
            h.remove()
        for p, g in zip(params, grads):
            p.grad = g
        with torch.no_grad():
            for b, saved in zip(model.buffers(), buffers):
                b.copy_(saved)
    return SavedBytes(per, total, max(store.peak, total), count, device_peak)


def _default_loss(out) -> Tensor:
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, Tensor) or not out.requires_grad:
        raise ValueError("saved_bytes(backward=True) needs an output that requires grad; "
                         "pass loss_fn or backward=False")
    return out.float().sum()
