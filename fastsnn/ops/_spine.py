"""The spine every op plugs into: one declaration per op, everything else derived from it.

An op (``mt_lif``, ``binary_conv2d``, ...) declares once, with ``Op(...)``:

* its kernels: name, schema and fake impl of each entry point (``Kernel``). Each becomes
  two torch ops with that one schema: ``fastsnn::<kernel>``, whose CPU and CUDA
  implementations the C++ extension registers (``TORCH_LIBRARY_IMPL(fastsnn, CPU/CUDA)`` in
  ``csrc/torch/<op>.cpp``), and ``fastsnn::<kernel>_triton``, the function ``<kernel>`` of
  ``fastsnn.kernels.<module>`` (CPU tensors under the Triton interpreter, CUDA tensors
  otherwise), so that forcing triton on CUDA tensors reaches Triton. A call from the public
  function to a kernel crosses the dispatcher once.
* the backends it has and the input dtypes each accepts (``dtypes``).
* its autograd (``Op.autograd``), attached to both variants of a kernel; the backward
  calls the backward kernel of the variant that ran the forward. What the fast kernels do
  not support is refused there, for every op at once, with an error naming the op and
  ``backend="reference"``: forward-mode AD (``torch.func.jvp``, ``torch.autograd.forward_ad``,
  which would otherwise give zero tangents), ``torch.func.grad`` / ``vjp`` / ``jacrev``, and
  a gradient of the gradient (the backward kernels are not differentiable).

``Op.choose`` picks the backend (``fastsnn._backends.choose``: forced or automatic, never a
silent fallback) and ``Op.kernel`` gives the torch op that runs a kernel on it. The
``reference`` backend is plain autograd over ``fastsnn.reference`` and has no kernel.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable
from typing import Optional, Union

import torch
from torch import Tensor
from torch.autograd import forward_ad

from .. import _backends

NAMESPACE = "fastsnn"
_LIB = torch.library.Library(NAMESPACE, "FRAGMENT")  # lives as long as the module
OPS: dict[str, Op] = {}  # public op name -> declaration, in declaration order
_SUFFIX = {"triton": "_triton", "reference": "_reference"}  # cpu and cuda: no suffix


@dataclasses.dataclass(frozen=True)
class Kernel:
    """One kernel entry point: ``name``, ``schema`` (``"(Tensor x, ...) -> Tensor"``) and
    the fake impl (output shapes and dtypes from the inputs, for torch.compile).

    ``reference``: optionally the reference backend as a function of the kernel's
    arguments; it then runs as the op ``fastsnn::<name>_reference``, opaque to
    torch.compile like the fast kernels (for a reference dynamo cannot trace in one graph).
    ``drop``: names of schema arguments the Triton function does not take (inputs that only
    carry autograd).
    """

    name: str
    schema: str
    fake: Callable
    reference: Optional[Callable] = None
    drop: tuple[str, ...] = ()


class Op:
    """The declaration of one public op (module docstring)."""

    def __init__(self, name: str, *, kernels: tuple[Kernel, ...],
                 dtypes: dict[str, tuple[torch.dtype, ...]], triton_module: str):
        if name in OPS:
            raise RuntimeError(f"op {name!r} declared twice")
        self.name = name
        self.kernels = {k.name: k for k in kernels}
        self.dtypes = dtypes
        self.backends = tuple(dtypes)
        # The cpu and cuda backends exist when the extension registered this kernel.
        self.probe = kernels[0].name
        self._triton_module = triton_module
        self._ops: dict[str, torch._ops.OpOverload] = {}
        for kernel in kernels:
            self._define(kernel)
        OPS[name] = self

    # -- registration ----------------------------------------------------------------------

    def _variants(self, kernel: Optional[Kernel] = None) -> tuple[str, ...]:
        """Name suffixes of a kernel's torch ops: native (cpu/cuda), triton, reference."""
        return ("",) + (("_triton",) if "triton" in self.dtypes else ()) + (
            ("_reference",) if kernel is not None and kernel.reference else ())

    def _define(self, kernel: Kernel) -> None:
        for suffix in self._variants(kernel):
            _LIB.define(kernel.name + suffix + kernel.schema)
            torch.library.register_fake(f"{NAMESPACE}::{kernel.name}{suffix}", kernel.fake,
                                        lib=_LIB)
            self._ops[kernel.name + suffix] = getattr(
                getattr(torch.ops, NAMESPACE), kernel.name + suffix).default
        if "triton" in self.dtypes:
            impl = _triton_impl(self._triton_module, kernel)
            for key in ("CPU", "CUDA"):
                _LIB.impl(kernel.name + "_triton", impl, key)
        if kernel.reference:
            _LIB.impl(kernel.name + "_reference", kernel.reference, "CompositeExplicitAutograd")

    def autograd(self, kernel: str, backward: Callable, setup_context: Callable) -> None:
        """Attach autograd to both variants of ``kernel``. ``setup_context`` and
        ``backward`` are those of ``torch.library.register_autograd``; ``ctx.backend``
        ("triton" or "native") is set first, for ``Op.kernel(name, ctx.backend)``.

        The op's other kernels (its backward kernels) get an autograd formula that refuses
        a second derivative with a clear error (instead of torch's "no autograd formula")."""
        for suffix in self._variants():
            backend = "triton" if suffix else "native"

            def setup(ctx, inputs, output, backend=backend):
                ctx.backend = backend
                setup_context(ctx, inputs, output)

            self._register_autograd(kernel + suffix, backend, backward, setup)
            for other in self.kernels:
                if other != kernel:
                    self._register_autograd(other + suffix, backend,
                                            functools.partial(_no_double_backward, self.name),
                                            _no_setup)

    def _register_autograd(self, name: str, backend: str, backward: Callable,
                           setup: Callable) -> None:
        """What ``torch.library.register_autograd`` registers (``_autograd_formula``),
        behind a guard that refuses the autograd modes the kernels cannot follow
        (``_refuse_transforms``)."""
        formula = _autograd_formula(self._ops[name], backward, setup)

        def guarded(keyset, *args):
            _refuse_transforms(self.name, backend, args)
            return formula(keyset, *args)

        _LIB.impl(name, guarded, "Autograd", with_keyset=True)

    # -- calls -----------------------------------------------------------------------------

    def choose(self, backend: Optional[str], x) -> str:
        """The backend for a call on ``x``'s device (CPU when x is not a tensor)."""
        device = x.device if isinstance(x, Tensor) else torch.device("cpu")
        return _backends.choose(backend, device, self.probe, self.backends)

    def kernel(self, name: str, backend: str):
        """The torch op (default overload) that runs kernel ``name`` on ``backend``."""
        return self._ops[name + _SUFFIX.get(backend, "")]

    def check_dtype(self, x: Tensor, name: str, backend: str) -> None:
        """``TypeError`` unless ``backend`` takes ``x``'s dtype."""
        if x.dtype not in self.dtypes[backend]:
            raise TypeError(f"{name} dtype {x.dtype} is not supported by the {backend} "
                            f"backend of {self.name} (supported: {self.dtypes[backend]})")


def _refuse_transforms(op: str, backend: str, args) -> None:
    """``NotImplementedError`` naming ``op`` when forward-mode AD or a ``torch.func``
    gradient transform reaches a fast kernel: their autograd is a backward formula only
    (``torch.library.register_autograd``), so tangents would silently be dropped (zero) and
    ``torch.func.grad`` would fail deep inside torch. The reference backend is plain autograd
    and supports both."""
    which = "cpu/cuda" if backend == "native" else backend
    tensors = [a for a in args if isinstance(a, Tensor)]
    if forward_ad._current_level >= 0 and any(
            forward_ad.unpack_dual(t).tangent is not None for t in tensors):
        raise NotImplementedError(
            f"{op}: forward-mode AD (torch.func.jvp, jacfwd, torch.autograd.forward_ad) is "
            f"not supported by the {which} backend; use backend='reference'")
    top = torch._C._functorch.peek_interpreter_stack()
    if (top is not None and top.key() == torch._C._functorch.TransformType.Grad
            and torch.is_grad_enabled() and any(t.requires_grad for t in tensors)):
        raise NotImplementedError(
            f"{op}: torch.func gradient transforms (grad, vjp, jacrev) are not supported by "
            f"the {which} backend; use torch.autograd.grad / .backward(), or "
            f"backend='reference'")


def _autograd_formula(op, backward: Callable, setup: Callable) -> Callable:
    """The Autograd kernel of ``op``: the autograd.Function that
    ``torch.library.register_autograd`` generates, written out for our schemas (no default
    values, keyword-only arguments or tensor lists, checked here). torch's version re-reads
    the schema to fill in default values on every call, about 0.08 ms per forward (20
    arguments); there are none to fill in here. ``backward(ctx, *grads)`` and
    ``setup(ctx, inputs, output)`` are those of ``register_autograd``."""
    schema = op._schema
    for arg in (*schema.arguments, *schema.returns):
        if arg.kwarg_only or arg.has_default_value() or "Tensor" in str(arg.type) and (
                "List" in str(arg.type) or "[]" in str(arg.type)):
            raise RuntimeError(f"{op}: the spine's autograd takes no default values, "
                               f"keyword-only arguments or tensor lists ({arg.name})")
    below = torch._C._after_autograd_keyset

    def run(keyset, args):
        with torch._C._AutoDispatchBelowAutograd():
            return op.redispatch(keyset & below, *args)

    class Formula(torch.autograd.Function):
        # apply(*op_args, keyset): the keyset last, so needs_input_grad[:-1] are the op's
        @staticmethod
        def forward(ctx, *args):
            out = run(args[-1], args[:-1])
            setup(ctx, args[:-1], out)
            return out

        @staticmethod
        def backward(ctx, *grads):
            needs = ctx.needs_input_grad
            ctx.needs_input_grad = needs[:-1]
            try:
                result = backward(ctx, *grads)
            finally:
                ctx.needs_input_grad = needs
            return (*result, None) if isinstance(result, tuple) else (result, None)

    Formula.__name__ = Formula.__qualname__ = f"{op._opname}_backward"

    def formula(keyset, *args):
        if torch.is_grad_enabled() and torch._C._any_requires_grad(*args):
            return Formula.apply(*args, keyset)
        return run(keyset, args)

    return formula


def _no_setup(ctx, inputs, output) -> None:
    pass


def _no_double_backward(op: str, ctx, *grads):
    raise RuntimeError(f"{op} does not support double backward (a gradient of its gradient) "
                       f"on the fast backends; use backend='reference'")


def _triton_impl(module: str, kernel: Kernel) -> Callable:
    """The Triton kernel function, imported on first call (triton is optional)."""
    names = [a.name for a in torch._C.parse_schema(f"{NAMESPACE}::x{kernel.schema}").arguments]
    keep = [i for i, n in enumerate(names) if n not in kernel.drop]

    def run(*args):
        return _triton_function(module, kernel.name)(*(args[i] for i in keep))

    run.__name__ = f"{kernel.name}_triton"
    return run



@functools.cache
def _triton_function(module: str, function: str) -> Callable:
    return getattr(importlib.import_module(f"fastsnn.kernels.{module}"), function)


def available(op: str, device: Union[str, torch.device] = "cpu") -> tuple[str, ...]:
    """The backends that can run ``op`` on ``device`` ('cpu' or 'cuda', a string or a
    ``torch.device``) here, in the order the automatic choice prefers them (the first is
    what ``backend=None`` picks)."""
    if op not in OPS:
        raise ValueError(f"op must be one of {sorted(OPS)}, got {op!r}")
    try:
        device = torch.device(device).type
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda' or a torch.device, got {device!r}") \
            from None
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    declared = OPS[op]
    return tuple(b for b in _backends.preference(device)
                 if b in declared.backends and not _backends.why_not(b, device, declared.probe))
