"""``fastsnn.binary_conv2d``: convolution with binarised weights by popcount (docs/binary_conv.md).

The public function validates its arguments (the only validation pass), binarises and packs
a float weight (or takes a ``PackedBinaryWeight``), folds ``[T, N, C, H, W]`` over T and
runs one backend. ``reference`` is autograd over ``fastsnn.reference.binary_conv``; the fast
backends run the kernel declared in ``OP`` (``fastsnn::binary_conv2d_forward``, or
``..._triton``; ``fastsnn/ops/_spine.py``) with the fake impl and autograd attached there,
so it passes ``torch.library.opcheck`` and traces under ``torch.compile``.

Gradients are those of the float convolution on the binarised weights
``Wb = alpha * sign(W)``: ``dL/dx`` by ``conv2d_input`` on ``Wb``; ``dL/dWb`` by
``conv2d_weight``, passed to the latent weight by the clipped straight-through estimator
``dL/dW = dL/dWb * alpha * 1[|W| <= 1]``; ``dL/dalpha = sum dL/dWb * sign(W)`` per output
channel, and ``alpha="channel"`` (``mean|W|``) keeps alpha in the graph, so that part
reaches ``W`` too (XNOR-Net's choice; pass ``alpha=<detached tensor>`` to drop it).

Kernel contract (``csrc/torch/binary_conv.cpp`` for cpu / cuda, the torch-free parameters
in ``csrc/common/binary_conv.h``; ``kernels/binary_conv.py`` for triton), all tensors on one
device:

* ``x``: float32 contiguous ``[N, Cin, H, W]`` holding values valid for the activation
  (not checked by the kernels: garbage in, garbage out, never out-of-bounds access);
  sign activation: bit 1 iff ``x >= 0`` (``sign(0) = +1``, the weights' rule; the
  reference applies the same, ``reference.binary_conv.sign_input``).
* ``wpacked``: int32 contiguous ``[Cout, KH*KW, ceil(Cin/32)]``, taps row-major; bit ``i``
  of word ``w`` at ``(o, tap)`` is 1 iff ``W[o, 32*w + i, tap] >= 0``; unused bits are 0.
* ``wsign``: the weights as +1/-1 floats, or None; not read by the kernels, it is there so
  that autograd reaches the latent weights.
* ``alpha``, ``bias``: float32 contiguous ``[Cout]`` or None (1 / 0).
* ``stride``, ``padding``, ``dilation``: ``[h, w]``; ``kh``, ``kw`` the kernel size;
  ``activation`` (``fastsnn._enums.BinaryActivation``) 0 = spike (values 0..levels,
  ``bits = ceil(log2(levels+1))`` bit-planes, 1..8), 1 = sign (values -1 / +1, ``bits = 1``).
* returns float32 ``[N, Cout, Hout, Wout]`` (``F.conv2d``'s output size) with
  ``out = float32(dot) * alpha + bias`` (two roundings, no FMA) and ``dot`` the exact
  integer ``sum x * sign(W)`` over the in-bounds taps (zero padding = no input):
  spike ``sum_b 2^b (2 popc(x_b & w) - popc(x_b))``; sign ``2 popc(XNOR(x, w) & valid) - n``.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Union

import torch
from torch import Tensor

from .. import _backends
from .._enums import BinaryActivation, options, parse
from ..packed_spikes import PackedSpikes
from ..reference import binary_conv as ref
from . import _checks, _spine
from ._spine import Kernel, Op

ACTIVATIONS = options(BinaryActivation)
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
MAX_LEVELS = 255  # 8 bit-planes: the kernels' limit


@dataclasses.dataclass
class PackedBinaryWeight:
    """Binarised weights as the kernels read them: sign bits plus the per-channel scale.

    ``words`` int32 ``[Cout, KH*KW, ceil(Cin/32)]`` (layout in the module docstring),
    ``alpha`` float32 ``[Cout]`` or None. 32x smaller than the float32 weight (plus alpha).
    """

    words: Tensor
    alpha: Optional[Tensor]
    in_channels: int
    kernel_size: tuple[int, int]

    @classmethod
    def from_float(cls, weight: Tensor, alpha: ref.AlphaSpec = "channel") -> PackedBinaryWeight:
        """Binarise and pack a float ``[Cout, Cin, KH, KW]`` weight."""
        _check_weight(weight)
        with torch.no_grad():
            a = _alpha_arg(alpha, weight, weight.shape[0])
            words = pack_weight(weight)
        return cls(words, None if a is None else a.float().contiguous(), int(weight.shape[1]),
                   (int(weight.shape[2]), int(weight.shape[3])))

    @property
    def out_channels(self) -> int:
        return int(self.words.shape[0])

    @property
    def nbytes(self) -> int:
        return self.words.nbytes + (0 if self.alpha is None else self.alpha.nbytes)

    def unpack(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """The ``+1 / -1`` weights ``[Cout, Cin, KH, KW]`` (without alpha)."""
        return ref.unpack_weight(self.words, self.in_channels, self.kernel_size, dtype)

    def to(self, device) -> PackedBinaryWeight:
        return dataclasses.replace(self, words=self.words.to(device),
                                   alpha=None if self.alpha is None else self.alpha.to(device))


# ------------------------------------------------------------------------- the op

def _forward_fake(x, wpacked, wsign, alpha, bias, stride, padding, dilation, kh, kw,
                  activation, bits):
    hout = (x.shape[2] + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wout = (x.shape[3] + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return x.new_empty((x.shape[0], wpacked.shape[0], hout, wout))


OP = Op("binary_conv2d", triton_module="binary_conv", kernels=(
    Kernel("binary_conv2d_forward",
           "(Tensor x, Tensor wpacked, Tensor? wsign, Tensor? alpha, Tensor? bias, "
           "int[] stride, int[] padding, int[] dilation, int kh, int kw, int activation, "
           "int bits) -> Tensor", _forward_fake, drop=("wsign",)),),
    dtypes=dict.fromkeys(("reference", "cpu", "triton", "cuda"), DTYPES))


def _setup_context(ctx, inputs, output):
    x, wpacked, wsign, alpha, bias, stride, padding, dilation, kh, kw = inputs[:10]
    need_wb = ctx.needs_input_grad[2] or ctx.needs_input_grad[3]
    ctx.save_for_backward(x if need_wb else None, wpacked, wsign, alpha)
    ctx.conv = (stride, padding, dilation)
    ctx.x_shape = x.shape
    ctx.cin, ctx.kernel_size = x.shape[1], (kh, kw)


def _autograd_backward(ctx, grad):
    x, wpacked, wsign, alpha = ctx.saved_tensors
    stride, padding, dilation = ctx.conv
    gx_needed, _, gs_needed, ga_needed, gb_needed = ctx.needs_input_grad[:5]
    w = wsign if wsign is not None else ref.unpack_weight(wpacked, ctx.cin, ctx.kernel_size,
                                                          grad.dtype)
    a4 = None if alpha is None else alpha.reshape(-1, 1, 1, 1)
    gx = gs = ga = gb = None
    if gx_needed:
        gx = torch.nn.grad.conv2d_input(ctx.x_shape, w if a4 is None else w * a4, grad,
                                        stride, padding, dilation)
    if gs_needed or ga_needed:
        gwb = torch.nn.grad.conv2d_weight(x, w.shape, grad, stride, padding, dilation)
        gs = gwb if a4 is None else gwb * a4
        ga = (gwb * w).sum((1, 2, 3)) if ga_needed else None
    if gb_needed:
        gb = grad.sum((0, 2, 3))
    return (gx, None, gs if gs_needed else None, ga, gb) + (None,) * 7


OP.autograd("binary_conv2d_forward", _autograd_backward, _setup_context)


# The weight's sign bits in the layout of ``wpacked`` (``ref.pack_weight``, bit for bit), as
# one C++ op (csrc/torch/binary_conv.cpp; composite: a vectorised kernel for CPU tensors,
# torch ops on other devices). A float weight is packed in every call (a cache keyed on the
# weight's version would be unsafe), so this is on the hot path: a dozen torch ops took
# longer than the convolution itself.
_PACK_WEIGHT = "binary_conv2d_pack_weight"
_spine._LIB.define(_PACK_WEIGHT + "(Tensor weight) -> Tensor")


@torch.library.register_fake(f"{_spine.NAMESPACE}::{_PACK_WEIGHT}", lib=_spine._LIB)
def _pack_weight_fake(weight):
    cout, cin, kh, kw = weight.shape
    return weight.new_empty((cout, kh * kw, (cin + 31) // 32), dtype=torch.int32)


def pack_weight(weight: Tensor) -> Tensor:
    """``ref.pack_weight(weight)`` (no gradient), by the C++ op for a CPU weight when the
    extension has it (other devices keep the torch ops: the op's own fallback for them has
    not run on a GPU yet)."""
    weight = weight.detach()
    if weight.device.type == "cpu" and _has_pack_kernel():
        return getattr(torch.ops, _spine.NAMESPACE).binary_conv2d_pack_weight(weight)
    return ref.pack_weight(weight)


# A constant of the graph under torch.compile: the probe imports the extension.
@torch.compiler.assume_constant_result
def _has_pack_kernel() -> bool:
    return _backends.has_kernel(_PACK_WEIGHT, "CompositeExplicitAutograd")


# ------------------------------------------------------------------------- validation

_MAX_DIM = 2**31  # the kernels index one image side in int32


def _pair(v, name: str, minimum: int) -> tuple[int, int]:
    vals = (v, v) if isinstance(v, int) and not isinstance(v, bool) else v
    try:
        vals = tuple(vals)
    except TypeError:
        raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}") from None
    if len(vals) != 2 or any(isinstance(i, bool) or not isinstance(i, int) for i in vals):
        raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")
    if min(vals) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v!r}")
    return vals


def _check_weight(weight) -> None:
    if not isinstance(weight, Tensor):
        raise TypeError(f"weight must be a tensor or a PackedBinaryWeight, got "
                        f"{type(weight).__name__}")
    _checks.floating(weight, "weight")
    if weight.dim() != 4 or min(weight.shape) < 1:
        raise ValueError(f"weight must be [Cout, Cin, KH, KW] with no empty dim, got shape "
                         f"{tuple(weight.shape)}")


def _check_vector(t, name: str, cout: int, device: torch.device) -> Optional[Tensor]:
    if t is None:
        return None
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a tensor or None, got {type(t).__name__}")
    _checks.floating(t, name)
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but x is on {device}")
    if t.numel() != cout or (t.dim() > 1 and t.shape[0] != cout):
        raise ValueError(f"{name} must have one value per output channel ({cout}), got "
                         f"shape {tuple(t.shape)}")
    return t.reshape(cout)


def _alpha_arg(alpha, weight: Optional[Tensor], cout: int) -> Optional[Tensor]:
    if isinstance(alpha, str) and alpha == "channel" and weight is None:
        raise ValueError("alpha='channel' needs a float weight; a PackedBinaryWeight carries "
                         "its own alpha")
    if isinstance(alpha, bool) or not (alpha is None or isinstance(alpha, (str, int, float,
                                                                          Tensor))):
        raise TypeError(f"alpha must be None, 'channel', a float or a [Cout] tensor; got "
                        f"{type(alpha).__name__}")
    if isinstance(alpha, (int, float)):
        device = weight.device if weight is not None else None
        return torch.full((cout,), float(alpha), device=device)
    if isinstance(alpha, Tensor):
        return alpha
    return ref.alpha_tensor(alpha, weight)


def weight_args(weight, alpha, device: torch.device):
    """``(cout, cin, kh, kw, alpha)`` of a float or packed weight checked against x's
    ``device`` (alpha not yet checked as a vector)."""
    if not isinstance(weight, PackedBinaryWeight):
        _check_weight(weight)
        if weight.device != device:
            raise ValueError(f"weight is on {weight.device} but x is on {device}")
        cout, cin, kh, kw = (int(s) for s in weight.shape)
        return cout, cin, kh, kw, _alpha_arg(alpha, weight, cout)
    (kh, kw), cout = weight.kernel_size, weight.out_channels
    if weight.words.device != device:
        raise ValueError(f"weight is on {weight.words.device} but x is on {device}")
    if alpha is not None and weight.alpha is not None:
        raise ValueError("alpha given twice: the PackedBinaryWeight carries an alpha")
    a = weight.alpha if alpha is None else _alpha_arg(alpha, None, cout)
    return cout, weight.in_channels, kh, kw, a


def _check_x(x, backend: str) -> None:
    _checks.tensor(x, "x")
    OP.check_dtype(x, "x", backend)
    if x.dim() not in (4, 5):
        raise ValueError(f"x must be [N, C, H, W] or [T, N, C, H, W], got shape "
                         f"{tuple(x.shape)}")
    if min(x.shape[-3:]) < 1:
        raise ValueError(f"x must have at least one channel, row and column, got shape "
                         f"{tuple(x.shape)}")


def _check_levels(levels, activation: str) -> int:
    parse(BinaryActivation, activation, "activation")
    _checks.integer(levels, "levels", 1, MAX_LEVELS)
    if activation == "sign" and levels != 1:
        raise ValueError(f"levels must be 1 with activation='sign', got {levels!r}")
    return ref.bits_for_levels(levels) if activation == "spike" else 1


def check_values(x: Tensor, activation: str = "spike", levels: int = 1) -> None:
    """Raise ``ValueError`` unless ``x`` holds values valid for ``activation``."""
    if x.numel() == 0:
        return
    x = x.detach()
    if activation == "spike":
        ok, expected = (x >= 0) & (x <= levels) & (x == torch.round(x)), f"integers 0..{levels}"
    else:
        ok, expected = (x == 1) | (x == -1), "-1 or +1"
    if not _checks.values_hold(ok, lambda: f"x holds values not valid for activation="
                               f"{activation!r} with levels={levels} (values must be "
                               f"{expected})"):
        bad = x[~ok].reshape(-1)[0].item()
        raise ValueError(f"x holds {bad!r}, which is not valid for activation={activation!r} "
                         f"with levels={levels} (values must be {expected})")


def _output_size(x: Tensor, kernel_size, stride, padding, dilation) -> None:
    for i, name in ((0, "height"), (1, "width")):
        span = dilation[i] * (kernel_size[i] - 1) + 1
        if x.shape[-2 + i] + 2 * padding[i] >= _MAX_DIM or span >= _MAX_DIM:
            raise ValueError(f"x {name} {x.shape[-2 + i]} with padding {padding[i]} and "
                             f"dilation {dilation[i]}: the padded image and the dilated "
                             f"kernel must stay below 2^31 (the kernels index a side in int32)")
        if x.shape[-2 + i] + 2 * padding[i] < span:
            raise ValueError(f"x {name} {x.shape[-2 + i]} with padding {padding[i]} is smaller "
                             f"than the dilated kernel ({span}): empty output")


# ------------------------------------------------------------------------- public op

def binary_conv2d(x: Tensor, weight: Union[Tensor, PackedBinaryWeight],
                  alpha: ref.AlphaSpec = None, bias: Optional[Tensor] = None, *, stride=1,
                  padding=0, dilation=1, activation: str = "spike", levels: int = 1,
                  backend: Optional[str] = None, validate: bool = False) -> Tensor:
    """``F.conv2d(x, alpha * sign(weight), bias, stride, padding, dilation)`` by popcount.

    ``x`` is ``[N, C, H, W]`` or ``[T, N, C, H, W]`` holding spikes in ``0..levels``
    (``activation="spike"``, AND-popcount over bit-planes) or ``-1 / +1``
    (``activation="sign"``, XNOR-popcount). ``weight`` is a float ``[Cout, C, KH, KW]``
    tensor (binarised with ``sign(0) = +1`` and packed here; differentiable through the
    clipped straight-through estimator) or a ``PackedBinaryWeight`` (``BinaryConv2d.pack()``).
    ``alpha``: None (no scaling), ``"channel"`` (``mean|W|`` per output channel), a float or
    a ``[Cout]`` tensor; a packed weight brings its own. The integer part is exact; the
    result is ``float32(dot) * alpha + bias`` in x's dtype. ``validate=True`` checks that
    x's values are valid for the activation (invalid values otherwise give garbage).
    ``x`` may be ``fastsnn.PackedSpikes`` (spike activation, its own levels): the kernel
    reads the packed words as they are (docs/packed_spikes.md).
    """
    if isinstance(x, PackedSpikes):  # no repacking: fastsnn/ops/binary_conv_packed.py
        from .binary_conv_packed import binary_conv2d_packed
        return binary_conv2d_packed(x, weight, alpha, bias, stride=stride, padding=padding,
                                    dilation=dilation, activation=activation,
                                    levels=None if levels == 1 else levels, backend=backend)
    chosen = OP.choose(backend, x)
    _check_x(x, chosen)
    bits = _check_levels(levels, activation)
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    dilation = _pair(dilation, "dilation", 1)
    packed = weight if isinstance(weight, PackedBinaryWeight) else None
    cout, cin, kh, kw, a = weight_args(weight, alpha, x.device)
    if cin != x.shape[-3]:
        raise ValueError(f"weight has {cin} input channels but x has {x.shape[-3]} "
                         f"(x.shape[-3])")
    a = _check_vector(a if a is None else a.to(x.device), "alpha", cout, x.device)
    bias = _check_vector(bias, "bias", cout, x.device)
    _output_size(x, (kh, kw), stride, padding, dilation)
    if _checks.boolean(validate, "validate"):
        check_values(x, activation, levels)
    lead, x4 = x.shape[:-3], x.reshape(-1, *x.shape[-3:])
    if chosen == "reference":
        if activation == "sign":  # x >= 0 -> +1: what the kernels' packing does
            x4 = ref.sign_input(x4)
        ws = packed.unpack() if packed is not None else ref.sign_ste(weight)
        out = ref.binary_conv2d(x4, ws, a, bias, stride, padding, dilation)
        return out.reshape(*lead, *out.shape[1:])
    wpacked = packed.words if packed is not None else pack_weight(weight)
    wants_grad = packed is None and weight.requires_grad and torch.is_grad_enabled()
    wsign = ref.sign_ste(weight).float() if wants_grad else None
    out = OP.kernel("binary_conv2d_forward", chosen)(
        x4.float().contiguous(), wpacked.contiguous(), wsign,
        None if a is None else a.float().contiguous(),
        None if bias is None else bias.float().contiguous(), list(stride), list(padding),
        list(dilation), kh, kw, int(parse(BinaryActivation, activation, "activation")), bits)
    return out.to(x.dtype).reshape(*lead, *out.shape[1:])
