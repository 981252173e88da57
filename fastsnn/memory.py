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
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import Tensor, nn

from .spike_bits import SpikeBits, pack

__all__ = ["SavedBytes", "mark_spikes", "recompute_on_backward", "saved_bytes",
           "spike_saving"]


def _key(t: Tensor) -> tuple:
    try:
        return (t.device, t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError):  # no plain storage (e.g. sparse): itself
        return ("tensor", id(t))


def _span(t: Tensor) -> tuple[int, int]:
    """The element range ``[first, last + 1)`` a contiguous view covers in its storage."""
    return t.storage_offset(), t.storage_offset() + t.numel()


def _nbytes(t: Tensor) -> int:
    try:
        return t.untyped_storage().nbytes()
    except (RuntimeError, NotImplementedError):
        return t.numel() * t.element_size()


class _Held:
    """What the autograd graph keeps for one saved tensor: the tensor, or its bits."""

    __slots__ = ("tensor", "bits", "recipe", "shape", "module", "account", "__weakref__")

    def __init__(self, tensor: Tensor, module: str):
        self.tensor: Optional[Tensor] = tensor
        self.bits: Optional[SpikeBits] = None
        self.recipe: Optional[_Recipe] = None  # with ``shape``: recomputed in backward
        self.module = module
        self.account = [None, 0]  # the storage counted for it: [key, nbytes]

    def storage_tensor(self) -> Tensor:
        if self.recipe is not None:
            return self.recipe.anchor
        return self.tensor if self.bits is None else self.bits.data

    def value(self) -> Tensor:
        if self.recipe is not None:
            return self.recipe.run().view(self.shape)
        return self.tensor if self.bits is None else self.bits.unpack()


class _Mark:
    __slots__ = ("levels", "ref", "dtype", "span", "packs")

    def __init__(self, t: Tensor, levels: int):
        self.levels, self.ref, self.dtype = levels, weakref.ref(t), t.dtype
        self.span = _span(t)  # the elements of the storage that hold the spikes
        self.packs: dict[tuple, SpikeBits] = {}  # the bits of each view of the storage


class _Recipe:
    """How to recompute a registered output: ``fn()``, valid while the ``guards`` (tensors
    the recomputation reads, e.g. the weight) keep the version they had in forward."""

    __slots__ = ("fn", "anchor", "ref", "dtype", "span", "guards", "name")

    def __init__(self, t: Tensor, fn: Callable[[], Tensor], anchor: Tensor, guards, name):
        self.fn, self.anchor, self.name = fn, anchor, name
        self.ref, self.dtype, self.span = weakref.ref(t), t.dtype, _span(t)
        self.guards = [(g, g._version) for g in guards if g is not None]

    def run(self) -> Tensor:
        for g, version in self.guards:
            if g._version != version:
                raise RuntimeError(
                    f"{self.name}: a tensor its backward recomputes from (its weight or bias)"
                    " was modified in place between the forward and the backward")
        with torch.no_grad():
            return self.fn()


class _Store:
    """Saved-tensor hooks that hold every saved tensor in a ``_Held``: convert marked
    spikes to bits, and keep the byte accounting ``saved_bytes`` reports (storages in
    ``exclude``, the model's parameters, are held but not counted)."""

    def __init__(self, exclude: frozenset = frozenset(), recompute: bool = False):
        self.exclude, self.recompute = exclude, recompute
        self.marks: dict[tuple, _Mark] = {}
        self.recipes: dict[tuple, _Recipe] = {}
        self.held: list[weakref.ref] = []  # in save order
        self.modules: list[str] = []  # the module stack (saved_bytes' forward hooks)
        self.refs: dict[tuple, int] = {}  # storage -> live holders
        self.live = self.peak = 0

    # ---- hooks
    def pack_hook(self, t: Tensor) -> _Held:
        h = _Held(t, self.modules[-1] if self.modules else "")
        mark = self._mark_of(t)
        if mark is not None:
            self._convert(h, mark)
        else:
            self._use_recipe(h, t)
        self.held.append(weakref.ref(h))
        self._acquire(h, h.storage_tensor())
        weakref.finalize(h, self._release, h.account)
        return h

    @staticmethod
    def unpack_hook(h: _Held) -> Tensor:
        return h.value()

    # ---- recomputed outputs
    def _use_recipe(self, h: _Held, t: Tensor) -> None:
        recipe = self.recipes.get(_key(t))
        if recipe is None or recipe.ref() is None:
            return
        # only the whole registered tensor, as it was written (not a view into part of it)
        if t.is_contiguous() and t.dtype == recipe.dtype and _span(t) == recipe.span:
            h.tensor, h.recipe, h.shape = None, recipe, t.shape

    # ---- spikes
    def _mark_of(self, t: Tensor) -> Optional[_Mark]:
        mark = self.marks.get(_key(t))
        if mark is not None and mark.ref() is None:  # the storage may have been freed
            del self.marks[_key(t)]
            return None
        return mark

    def _convert(self, h: _Held, mark: _Mark) -> None:
        t = h.tensor
        if not t.is_floating_point() or not t.is_contiguous() or t.dtype != mark.dtype:
            return
        lo, hi = _span(t)
        if lo < mark.span[0] or hi > mark.span[1]:  # not (only) the marked elements
            return
        h.tensor, h.bits = None, self.bits(t, mark)
        if h.account[0] is not None:  # converted after it was counted
            self._release(h.account)
            self._acquire(h, h.bits.data)

    def bits(self, t: Tensor, mark: _Mark) -> SpikeBits:
        # a contiguous view packs to the same bits whatever its shape: share them
        view = (t.storage_offset(), t.numel(), t.dtype)
        if view not in mark.packs:
            mark.packs[view] = pack(t, mark.levels)
        return SpikeBits(mark.packs[view].data, t.shape, t.dtype, mark.levels)

    def mark(self, t: Tensor, levels: int) -> None:
        if not t.is_floating_point() or not t.is_contiguous():
            return
        key = _key(t)
        mark = self._mark_of(t)
        if mark is None:
            mark = self.marks[key] = _Mark(t, levels)
        for ref in self.held:
            h = ref()
            if h is not None and h.bits is None and h.tensor is not None \
                    and _key(h.tensor) == key:
                self._convert(h, mark)

    # ---- accounting (storages shared by several holders count once)
    def _acquire(self, h: _Held, t: Tensor) -> None:
        key = _key(t)
        h.account[:] = [key, _nbytes(t)]
        self.refs[key] = self.refs.get(key, 0) + 1
        if self.refs[key] == 1 and key not in self.exclude:
            self.live += h.account[1]
            self.peak = max(self.peak, self.live)

    def _release(self, account: list) -> None:
        key, nbytes = account
        n = self.refs.get(key, 0) - 1
        if n > 0:
            self.refs[key] = n
            return
        self.refs.pop(key, None)
        if key not in self.exclude:
            self.live -= nbytes

    def snapshot(self) -> tuple[dict[str, int], int]:
        """Bytes per module of what is held now (first holder's module), and tensor count."""
        per: dict[str, int] = {}
        seen: set = set(self.exclude)
        count = 0
        for ref in self.held:
            h = ref()
            if h is None:
                continue
            t = h.storage_tensor()
            key = _key(t)
            if key in seen:
                continue
            seen.add(key)
            count += 1
            per[h.module] = per.get(h.module, 0) + _nbytes(t)
        return per, count


class _Local(threading.local):
    def __init__(self):
        self.stack: list[_Store] = []  # like torch's saved-tensor hooks: per thread


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
def _hooks(store: _Store):
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
    with _hooks(_Store(recompute=recompute)):
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
        _LOCAL.stack[-1].recipes[_key(t)] = _Recipe(t, fn, anchor, guards, name)


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
    exclude = frozenset(_key(p) for p in params) | frozenset(
        _key(b) for b in model.buffers())
    store = _Store(exclude=exclude)

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
