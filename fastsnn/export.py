"""Exporting networks that use fastsnn's ops: ONNX, ``torch.export``, TorchScript.

The fast backends are ``torch.library`` custom ops (``torch.ops.fastsnn.*``). Exporters
that know the torch.library (``torch.export``, ``torch.compile``) keep them as they are.
ONNX has no such operators, so ``to_onnx`` exports through the ``reference`` backend,
which is plain torch: the ONNX graph then holds standard operators (comparisons, casts,
multiply-adds, unrolled over the T steps of the example) that any ONNX runtime runs. The
spikes are the same as the fast kernels' (every backend matches the reference exactly).

``reference_backend(model)`` is the context manager behind it, for other exporters.
``torch.jit.trace`` of the papers' networks records the reference too (their ``forward``
is wrapped by ``reference_when_traced``): the TorchScript module computes the same spikes
with plain torch operators, at the reference's speed. TorchScript is deprecated upstream;
prefer ``torch.export.export``, which keeps the fast ops.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Union

import torch
from torch import nn

_ENV = "FASTSNN_BACKEND"


@contextlib.contextmanager
def reference_backend(model: nn.Module) -> Iterator[nn.Module]:
    """Run every fastsnn op inside ``model`` on the ``reference`` backend for the duration.

    Modules that were given a ``backend`` are switched too, and restored afterwards, as is
    the ``FASTSNN_BACKEND`` environment variable.
    """
    saved_env = os.environ.get(_ENV)
    saved = [(m, m.backend) for m in model.modules()
             if isinstance(getattr(m, "backend", None), str)]
    os.environ[_ENV] = "reference"
    for m, _ in saved:
        m.backend = "reference"
    try:
        yield model
    finally:
        for m, backend in saved:
            m.backend = backend
        if saved_env is None:
            os.environ.pop(_ENV, None)
        else:
            os.environ[_ENV] = saved_env


def to_onnx(model: nn.Module, example: torch.Tensor, path: Union[str, os.PathLike], *,
            opset: int = 18, dynamic_batch: bool = True) -> Path:
    """Export ``model`` (in eval mode) to the ONNX file ``path``; returns the path.

    ``example`` is one input batch (``[N, C, H, W]`` images, or ``[T, N, P, H, W]``
    currents for event networks); T is fixed by it, the batch size stays dynamic when
    ``dynamic_batch`` (dim 0, or dim 1 for networks with ``input_time_major``). A network
    with ``export_packed()`` (ALBSNN) is exported as its packed inference copy. Uses
    torch's dynamo-based exporter (needs the ``onnx`` and ``onnxscript`` packages).
    """
    try:
        import onnxscript  # noqa: F401  (the exporter needs it; say so before it fails)
    except ImportError:
        raise ImportError("to_onnx needs the onnx and onnxscript packages: "
                          "pip install onnx onnxscript") from None
    path = Path(path)
    if callable(getattr(model, "export_packed", None)):  # ALBSNN: its inference copy
        model = model.export_packed(fused=False)  # ONNX has no packed-spike values
    was_training = model.training
    model.eval()
    batch_dim = 1 if getattr(model, "input_time_major", False) else 0
    shapes = None
    if dynamic_batch:
        shapes = ({batch_dim: torch.export.Dim("batch", min=1)},)
    try:
        with reference_backend(model), torch.no_grad():
            program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset,
                                        verbose=False, custom_translation_table=_translations(),
                                        dynamic_shapes=shapes, input_names=["input"],
                                        output_names=["logits"])
        program.save(str(path))
    finally:
        model.train(was_training)
    return path


def _translations() -> dict:
    """ONNX translations of the aten ops the references use that the exporter lacks: the
    shifts of signed integers (packing and unpacking bits), which ONNX's BitShift only
    defines for unsigned types. ``x >> k = (x - (x mod 2^k)) / 2^k`` in int64 (exact for
    every int32 value; ``mod`` takes the divisor's sign, so this is the floor);
    ``x << k = x * 2^k`` in x's type (wrapping as the shift does)."""
    import onnxscript
    from onnxscript import opset18 as op

    def rshift(x, k):
        x64 = op.Cast(x, to=onnxscript.INT64.dtype)
        p = op.Pow(op.Constant(value_int=2), op.Cast(k, to=onnxscript.INT64.dtype))
        return op.CastLike(op.Div(op.Sub(x64, op.Mod(x64, p)), p), x)

    def lshift(x, k):
        p = op.Pow(op.Constant(value_int=2), op.Cast(k, to=onnxscript.INT64.dtype))
        return op.Mul(x, op.CastLike(p, x))

    return {torch.ops.aten.__rshift__.Tensor: rshift, torch.ops.aten.__lshift__.Tensor: lshift}


def reference_when_traced(forward):
    """Decorator for a network's ``forward``: under ``torch.jit.trace`` run it inside
    ``reference_backend``, so the trace records plain torch operators.

    Traced through the custom ops, a model fails TorchScript's sanity check (the graphs of
    two invocations differ); the reference computes the same spikes with standard ops.
    In eval mode one untraced call first fills the caches modules keep between calls
    (``BinaryConv2d``'s packed weight and its one-time input check), so that the trace
    and torch's re-trace for its sanity check record the same graph.
    """
    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        if not torch.jit.is_tracing():
            return forward(self, *args, **kwargs)
        with reference_backend(self):
            if not self.training:
                _untraced(forward, self, *args, **kwargs)
            return forward(self, *args, **kwargs)
    return wrapper


def _untraced(fn, *args, **kwargs):
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        with torch.no_grad():
            fn(*args, **kwargs)
    finally:
        torch._C._set_tracing_state(state)
