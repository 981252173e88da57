"""The saved-tensor store behind ``fastsnn.memory``: what autograd keeps for each saved
tensor (the tensor, its spike bits, or a recipe that recomputes it) and the byte accounting
of ``saved_bytes``. Internal; the public functions and their contract are in
``fastsnn/memory.py``."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Optional

import torch
from torch import Tensor

from .spike_bits import SpikeBits, pack


def storage_key(t: Tensor) -> tuple:
    try:
        return (t.device, t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError):  # no plain storage (e.g. sparse): itself
        return ("tensor", id(t))


def element_span(t: Tensor) -> tuple[int, int]:
    """The element range ``[first, last + 1)`` a contiguous view covers in its storage."""
    return t.storage_offset(), t.storage_offset() + t.numel()


def storage_nbytes(t: Tensor) -> int:
    try:
        return t.untyped_storage().nbytes()
    except (RuntimeError, NotImplementedError):
        return t.numel() * t.element_size()


class Held:
    """What the autograd graph keeps for one saved tensor: the tensor, or its bits."""

    __slots__ = ("tensor", "bits", "recipe", "shape", "module", "account", "__weakref__")

    def __init__(self, tensor: Tensor, module: str):
        self.tensor: Optional[Tensor] = tensor
        self.bits: Optional[SpikeBits] = None
        self.recipe: Optional[Recipe] = None  # with ``shape``: recomputed in backward
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


class Mark:
    __slots__ = ("levels", "ref", "dtype", "span", "packs")

    def __init__(self, t: Tensor, levels: int):
        self.levels, self.ref, self.dtype = levels, weakref.ref(t), t.dtype
        self.span = element_span(t)  # the elements of the storage that hold the spikes
        self.packs: dict[tuple, SpikeBits] = {}  # the bits of each view of the storage


class Recipe:
    """How to recompute a registered output: ``fn()``, valid while the ``guards`` (tensors
    the recomputation reads, e.g. the weight) keep the version they had in forward."""

    __slots__ = ("fn", "anchor", "ref", "dtype", "span", "guards", "name")

    def __init__(self, t: Tensor, fn: Callable[[], Tensor], anchor: Tensor, guards, name):
        self.fn, self.anchor, self.name = fn, anchor, name
        self.ref, self.dtype, self.span = weakref.ref(t), t.dtype, element_span(t)
        self.guards = [(g, g._version) for g in guards if g is not None]

    def run(self) -> Tensor:
        for g, version in self.guards:
            if g._version != version:
                raise RuntimeError(
                    f"{self.name}: a tensor its backward recomputes from (its weight or bias)"
                    " was modified in place between the forward and the backward")
        with torch.no_grad():
            return self.fn()


class Store:
    """Saved-tensor hooks that hold every saved tensor in a ``Held``: convert marked
    spikes to bits, and keep the byte accounting ``saved_bytes`` reports (storages in
    ``exclude``, the model's parameters, are held but not counted)."""

    def __init__(self, exclude: frozenset = frozenset(), recompute: bool = False):
        self.exclude, self.recompute = exclude, recompute
        self.marks: dict[tuple, Mark] = {}
        self.recipes: dict[tuple, Recipe] = {}
        self.held: list[weakref.ref] = []  # in save order
        self.modules: list[str] = []  # the module stack (saved_bytes' forward hooks)
        self.refs: dict[tuple, int] = {}  # storage -> live holders
        self.live = self.peak = 0

    # ---- hooks
    def pack_hook(self, t: Tensor) -> Held:
        h = Held(t, self.modules[-1] if self.modules else "")
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
    def unpack_hook(h: Held) -> Tensor:
        return h.value()

    # ---- recomputed outputs
    def _use_recipe(self, h: Held, t: Tensor) -> None:
        recipe = self.recipes.get(storage_key(t))
        if recipe is None or recipe.ref() is None:
            return
        # only the whole registered tensor, as it was written (not a view into part of it)
        if t.is_contiguous() and t.dtype == recipe.dtype and element_span(t) == recipe.span:
            h.tensor, h.recipe, h.shape = None, recipe, t.shape

    # ---- spikes
    def _mark_of(self, t: Tensor) -> Optional[Mark]:
        mark = self.marks.get(storage_key(t))
        if mark is not None and mark.ref() is None:  # the storage may have been freed
            del self.marks[storage_key(t)]
            return None
        return mark

    def _convert(self, h: Held, mark: Mark) -> None:
        t = h.tensor
        if not t.is_floating_point() or not t.is_contiguous() or t.dtype != mark.dtype:
            return
        lo, hi = element_span(t)
        if lo < mark.span[0] or hi > mark.span[1]:  # not (only) the marked elements
            return
        h.tensor, h.bits = None, self.bits(t, mark)
        if h.account[0] is not None:  # converted after it was counted
            self._release(h.account)
            self._acquire(h, h.bits.data)

    def bits(self, t: Tensor, mark: Mark) -> SpikeBits:
        # a contiguous view packs to the same bits whatever its shape: share them
        view = (t.storage_offset(), t.numel(), t.dtype)
        if view not in mark.packs:
            mark.packs[view] = pack(t, mark.levels)
        return SpikeBits(mark.packs[view].data, t.shape, t.dtype, mark.levels)

    def mark(self, t: Tensor, levels: int) -> None:
        if not t.is_floating_point() or not t.is_contiguous():
            return
        key = storage_key(t)
        mark = self._mark_of(t)
        if mark is None:
            mark = self.marks[key] = Mark(t, levels)
        for ref in self.held:
            h = ref()
            if h is not None and h.bits is None and h.tensor is not None \
                    and storage_key(h.tensor) == key:
                self._convert(h, mark)

    # ---- accounting (storages shared by several holders count once)
    def _acquire(self, h: Held, t: Tensor) -> None:
        key = storage_key(t)
        h.account[:] = [key, storage_nbytes(t)]
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
            key = storage_key(t)
            if key in seen:
                continue
            seen.add(key)
            count += 1
            per[h.module] = per.get(h.module, 0) + storage_nbytes(t)
        return per, count
