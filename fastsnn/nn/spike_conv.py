"""``SpikeConv2d`` / ``SpikeLinear`` / ``SpikeMaxPool2d``: torch layers that keep spike inputs
as bits for backward.

Same constructor arguments, parameter names and ``state_dict`` as the torch layers, and the
same forward. The weight gradient needs the layer's input; for spikes (integers
``0..levels``) these layers save it for backward as bit-planes (``fastsnn.spike_bits``:
1 bit per value for ``levels=1``, 2 for ``levels=3``, ``ceil(log2(levels+1))`` in general)
instead of 32-bit floats, and unpack it in the backward, one layer at a time. The backward
calls the same ATen ops as torch's own autograd formulas (``convolution_backward``;
``mm`` / ``sum`` for linear), so the gradients are the plain layers' bit for bit.

Input: ``[T, N, ...]`` spikes (time-major, folded to ``[T*N, ...]`` and back) or the fold
itself, as the torch layer takes it. ``check_spikes=True`` (default) checks, in training
mode, that the input holds integers in ``0..levels`` (``ValueError`` naming ``input``).
``fastsnn.PackedSpikes`` (``mt_lif(..., packed=True)``, inference) are accepted too and
unpacked exactly.

Inside ``fastsnn.memory.spike_saving`` the input is also marked as spikes, so other
layers' saved copies of it (the neuron that produced it, a pooling layer) become bits too,
and the layer reuses those bits instead of packing a second copy.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .. import memory
from ..packed_spikes import PackedSpikes
from ..spike_bits import SpikeBits, bits_for, check_spikes, pack
from .lif import MultiThresholdLIF


def _bits(x: Tensor, levels: int):
    memory.mark_spikes(x, levels)
    return memory.active_bits(x, levels) or pack(x, levels)


class _SpikeConv2dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups, levels):
        ctx.conv = (stride, padding, dilation, groups)
        ctx.bias_sizes = None if bias is None else list(bias.shape)
        ctx.x_meta = (x.shape, x.dtype)
        bits = _bits(x, levels) if ctx.needs_input_grad[1] else None
        ctx.bits = None if bits is None else (bits.shape, bits.dtype, bits.levels)
        ctx.save_for_backward(weight, None if bits is None else bits.data)
        out = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
        if bits is not None:  # a batch norm after it keeps this recipe, not the output
            memory.recompute_on_backward(
                out, lambda: F.conv2d(bits.unpack(), weight, bias, stride, padding, dilation,
                                      groups), anchor=bits.data, guards=(weight, bias),
                name="SpikeConv2d")
        return out

    @staticmethod
    @once_differentiable  # the saved spikes are constants: no double backward
    def backward(ctx, grad):
        weight, data = ctx.saved_tensors
        x = _restore(ctx, data, weight.device)
        stride, padding, dilation, groups = ctx.conv
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1],
                ctx.bias_sizes is not None and ctx.needs_input_grad[2]]
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad, x, weight, ctx.bias_sizes, stride, padding, dilation, False, [0, 0],
            groups, mask)
        return gx, gw, gb, None, None, None, None, None


class _SpikeLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, levels):
        ctx.x_meta = (x.shape, x.dtype)
        bits = _bits(x, levels) if ctx.needs_input_grad[1] else None
        ctx.bits = None if bits is None else (bits.shape, bits.dtype, bits.levels)
        ctx.save_for_backward(weight, None if bits is None else bits.data)
        return F.linear(x, weight, bias)

    @staticmethod
    @once_differentiable  # the saved spikes are constants: no double backward
    def backward(ctx, grad):
        weight, data = ctx.saved_tensors
        g2 = grad.reshape(-1, grad.shape[-1])
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = g2.mm(weight).view(ctx.x_meta[0])
        if ctx.needs_input_grad[1]:
            x = _restore(ctx, data, weight.device)
            gw = g2.t().mm(x.reshape(-1, x.shape[-1]))
        if ctx.needs_input_grad[2]:
            gb = g2.sum(0)
        return gx, gw, gb, None


class _SpikeMaxPool2dFn(torch.autograd.Function):
    """Max pooling that keeps its input as bits and no indices: the backward recomputes
    the indices from the unpacked input (the same deterministic kernel, so the same
    indices) and calls the same ATen backward as torch's own formula."""

    @staticmethod
    def forward(ctx, x, options, levels):
        ctx.options = options
        bits = _bits(x, levels)
        ctx.bits = (bits.shape, bits.dtype, bits.levels)
        ctx.save_for_backward(bits.data)
        return torch.ops.aten.max_pool2d_with_indices(x, *options)[0]

    @staticmethod
    @once_differentiable  # the saved spikes are constants: no double backward
    def backward(ctx, grad):
        (data,) = ctx.saved_tensors
        x = _restore(ctx, data, data.device)
        indices = torch.ops.aten.max_pool2d_with_indices(x, *ctx.options)[1]
        gx = torch.ops.aten.max_pool2d_with_indices_backward(grad, x, *ctx.options, indices)
        return gx, None, None


def _restore(ctx, data: Optional[Tensor], device: torch.device) -> Tensor:
    """The saved input, unpacked; only its shape matters when no bits were kept."""
    if data is None:
        shape, dtype = ctx.x_meta
        return torch.empty(shape, dtype=dtype, device=device)
    return SpikeBits(data, *ctx.bits).unpack()


def _lean(module, x: Tensor, params) -> bool:
    """Whether this call saves anything for backward (else the plain torch layer runs).
    Under ``torch.jit.trace`` the plain layer runs too: the tracer cannot record a Python
    autograd Function, and a traced graph keeps no autograd state anyway."""
    if module.check_spikes and module.training:
        check_spikes(x, module.levels, "input")
    return torch.is_grad_enabled() and not torch.jit.is_tracing() and any(
        t is not None and t.requires_grad for t in (x, *params))


class _SpikeInput:
    """What the spike layers add to their torch layer: ``levels``, ``check_spikes``."""

    def __init__(self, *args, levels: int = 1, check_spikes: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        bits_for(levels)  # ValueError for a bad value
        self.levels, self.check_spikes = levels, bool(check_spikes)

    def _tensor(self, x) -> Tensor:
        """``x`` as a float tensor: ``PackedSpikes`` (from ``mt_lif(..., packed=True)``) are
        unpacked exactly; their levels must not exceed the layer's."""
        if isinstance(x, PackedSpikes):
            if x.levels > self.levels:
                raise ValueError(f"input holds PackedSpikes of levels={x.levels}, more than "
                                 f"this layer's levels={self.levels}")
            return x.unpack()
        if not isinstance(x, Tensor):
            raise TypeError(f"input must be a tensor or PackedSpikes, got {type(x).__name__}")
        return x

    def extra_repr(self) -> str:
        return super().extra_repr() + f", levels={self.levels}"


class SpikeConv2d(_SpikeInput, nn.Conv2d):
    """``nn.Conv2d`` on spikes ``0..levels`` that saves its input as bits (module docstring)."""

    def forward(self, x: Tensor) -> Tensor:
        x = self._tensor(x)
        if x.dim() == 5:  # [T, N, C, H, W]: fold time into the batch
            return self.forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        if x.dim() == 3:  # unbatched [C, H, W], as nn.Conv2d
            return self.forward(x.unsqueeze(0)).squeeze(0)
        if x.dim() != 4:
            raise ValueError(f"input must be [T, N, C, H, W], [N, C, H, W] or [C, H, W], got "
                             f"shape {tuple(x.shape)}")
        if not _lean(self, x, (self.weight, self.bias)):
            return super().forward(x)
        padding = self.padding
        if self.padding_mode != "zeros":  # nn.Conv2d pads first, then convolves unpadded
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = (0, 0)
        elif isinstance(padding, str):
            x, padding = _string_padding(x, padding, self.kernel_size, self.dilation)
        return _SpikeConv2dFn.apply(x.contiguous(), self.weight, self.bias, list(self.stride),
                                    list(padding), list(self.dilation), self.groups,
                                    self.levels)


class SpikeLinear(_SpikeInput, nn.Linear):
    """``nn.Linear`` on spikes ``0..levels`` that saves its input as bits (module docstring)."""

    def forward(self, x: Tensor) -> Tensor:
        x = self._tensor(x)
        if not _lean(self, x, (self.weight, self.bias)):
            return super().forward(x)
        return _SpikeLinearFn.apply(x.contiguous(), self.weight, self.bias, self.levels)


class SpikeMaxPool2d(_SpikeInput, nn.MaxPool2d):
    """``nn.MaxPool2d`` on spikes ``0..levels`` that keeps its input as bits for backward
    and no indices (torch keeps the input and int64 indices: 8 bytes per output); the
    backward recomputes the indices, so the gradient is torch's bit for bit. Input
    ``[T, N, C, H, W]``, ``[N, C, H, W]`` or ``[C, H, W]``; ``return_indices`` is not
    supported."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.return_indices:
            raise ValueError("SpikeMaxPool2d keeps no indices: return_indices must be False")

    def forward(self, x: Tensor) -> Tensor:
        x = self._tensor(x)
        if x.dim() == 5:
            return self.forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        if not _lean(self, x, ()):
            return super().forward(x)
        stride = self.stride if self.stride is not None else self.kernel_size
        options = (list(_pair(self.kernel_size)), list(_pair(stride)), list(_pair(self.padding)),
                   list(_pair(self.dilation)), self.ceil_mode)
        return _SpikeMaxPool2dFn.apply(x.contiguous(), options, self.levels)


def _pair(v) -> tuple:
    return (v, v) if isinstance(v, int) else tuple(v)


def _string_padding(x: Tensor, padding: str, kernel, dilation):
    """``"valid"`` / ``"same"`` as integer padding. An odd total padding ``d*(k-1)`` is
    split as ATen does: the extra zero row/column (a spike value) is padded onto the input
    on the right, the rest is the convolution's symmetric padding."""
    if padding == "valid":
        return x, (0, 0)
    total = [d * (k - 1) for d, k in zip(dilation, kernel)]
    extra = []
    for t in reversed(total):  # F.pad lists the last dim first
        extra += [0, t % 2]
    if any(extra):
        x = F.pad(x, extra)
    return x, tuple(t // 2 for t in total)


def save_spikes_as_bits(model: nn.Module, *, recompute: bool = False) -> nn.Module:
    """Train ``model`` keeping its neurons' spikes as bits for backward; returns ``model``.

    Every ``MultiThresholdLIF`` output in ``model`` is marked as spikes
    (``fastsnn.memory.mark_spikes``), and each training-mode forward of ``model`` runs inside
    ``fastsnn.memory.spike_saving``: the neuron's own saved copy of its spikes, a pooling
    layer's or any later layer's become bits. With ``recompute`` a ``SpikeConv2d``'s output
    is not kept either (the batch norm after it saves it): the backward recomputes it from
    the bits, one more convolution per layer. Values and gradients are unchanged. Calling it
    again only changes ``recompute``.
    """
    if "_spike_recompute" not in model.__dict__:
        for module in model.modules():
            if isinstance(module, MultiThresholdLIF):
                module.register_forward_hook(_mark_output)
        model.register_forward_pre_hook(_enter_spike_saving)
        model.register_forward_hook(_leave_spike_saving, always_call=True)
    model.__dict__["_spike_recompute"] = bool(recompute)
    return model


def _mark_output(module, args, out) -> None:
    memory.mark_spikes(out, module.levels)


def _enter_spike_saving(module, args) -> None:
    ctx = memory.spike_saving(module.training,
                              recompute=module.__dict__.get("_spike_recompute", False))
    ctx.__enter__()
    module.__dict__.setdefault("_spike_saving", []).append(ctx)


def _leave_spike_saving(module, args, out) -> None:
    stack = module.__dict__.get("_spike_saving")
    if stack:
        stack.pop().__exit__(None, None, None)


__all__ = ["SpikeConv2d", "SpikeLinear", "SpikeMaxPool2d", "save_spikes_as_bits"]
