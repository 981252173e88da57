"""``fastsnn.binary_snn_layer``: a binary SNN layer on packed spikes, fused (inference).

For packed input spikes ``x`` ``[T, N, Cin, H, W]`` (``fastsnn.PackedSpikes``) and a
``PackedBinaryWeight``, per output element ``(t, n, o, y, x)``:

    dot[t]     = sum over in-bounds taps of x * sign(W)            (exact integer, popcount)
    current[t] = float32(dot[t]) * scale[o] + bias[o]              (two roundings, no FMA)
    spikes     = mt_lif(current, decay, threshold, levels, reset, form) over t, u[0] = 0

returned as ``PackedSpikes`` ``[T, N, Cout, Hout, Wout]`` with ``levels``. ``scale`` and
``bias`` are the folded batch norm (``BinarySNNBlock.pack()``); ``scale`` defaults to the
weight's alpha. ``reference`` is that composition of the reference ops (it defines the
result); ``cpu`` (``csrc/cpu/binary_snn_layer.cpp``) runs the LIF in the convolution's
epilogue, the T values of each output element in one lane, and matches it bit for bit
(integer popcounts, then the float32 arithmetic of ``mt_lif``). ``cuda``
(``csrc/cuda/packed_spikes.cu``) is two passes, not one fused kernel: the popcount
convolution of all T steps on the packed words writes the float32 currents to a scratch
``[T*N, Cout, Hout, Wout]``, then the kernel of ``mt_lif(packed=True)`` runs the LIF and
packs; bit for bit the same. A non-finite charge (only
from a non-finite scale or bias) spikes 0: packed bits hold no NaN.

Kernel contract (``fastsnn::binary_snn_layer_forward``, ``csrc/torch/packed_spikes.cpp``):
``x`` int32 contiguous ``[T, N, H, W, bits, ceil(cin/32)]``; ``wpacked`` as for
``binary_conv2d_forward``; ``scale``, ``bias`` float32 ``[Cout]`` or None (1 / 0);
``decay`` float32 ``[1]`` or ``[Cout]``; ``threshold`` rounded to float32; ``levels``
1..255; ``reset``/``form`` enums of ``fastsnn._enums``; returns int32
``[T, N, Hout, Wout, bits_out, ceil(Cout/32)]`` (the packed layout).
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from .._enums import Form, Reset, parse
from ..packed_spikes import MAX_LEVELS, PackedSpikes, pack_channels
from ..reference import binary_conv as ref
from ..reference.mt_lif import mt_lif as reference_mt_lif
from . import _checks
from ._spine import Kernel, Op
from .binary_conv import PackedBinaryWeight, _check_vector, _output_size, _pair
from .binary_conv_packed import check_packed_input
from .lif_options import decay_from
from .mt_lif import _param, _rounded


def _fake(x, wpacked, scale, bias, decay, stride, padding, dilation, kh, kw, cin, threshold,
          levels, reset, form):
    hout = (x.shape[2] + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wout = (x.shape[3] + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return x.new_empty((x.shape[0], x.shape[1], hout, wout, int(levels).bit_length(),
                        -(-wpacked.shape[0] // 32)))


OP = Op("binary_snn_layer", triton_module="packed_spikes", kernels=(
    Kernel("binary_snn_layer_forward",
           "(Tensor x, Tensor wpacked, Tensor? scale, Tensor? bias, Tensor decay, "
           "int[] stride, int[] padding, int[] dilation, int kh, int kw, int cin, "
           "float threshold, int levels, int reset, int form) -> Tensor", _fake),),
    dtypes=dict.fromkeys(("reference", "cpu", "triton", "cuda"),
                         (torch.float32, torch.float16, torch.bfloat16, torch.float64)))


def binary_snn_layer(x: PackedSpikes, weight: PackedBinaryWeight, scale: Optional[Tensor] = None,
                     bias: Optional[Tensor] = None, *, stride=1, padding=0, dilation=1,
                     threshold: float = 1.0, levels: int = 1,
                     decay: Union[None, float, Tensor] = None,
                     tau: Union[None, float, Tensor] = None, reset: str = "hard",
                     form: str = "stbp", backend: Optional[str] = None) -> PackedSpikes:
    """Packed spikes out of conv + affine + MT-LIF on packed spikes in (module docstring)."""
    if not isinstance(x, PackedSpikes):
        raise TypeError(f"x must be PackedSpikes, got {type(x).__name__}")
    if not isinstance(weight, PackedBinaryWeight):
        raise TypeError(f"weight must be a PackedBinaryWeight, got {type(weight).__name__}")
    chosen = OP.choose(backend, x.words)
    check_packed_input(x)
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    dilation = _pair(dilation, "dilation", 1)
    cout, cin, (kh, kw) = weight.out_channels, weight.in_channels, weight.kernel_size
    if weight.words.device != x.device:
        raise ValueError(f"weight is on {weight.words.device} but x is on {x.device}")
    if cin != x.shape[2]:
        raise ValueError(f"weight has {cin} input channels but x has {x.shape[2]}")
    if scale is not None and weight.alpha is not None:
        raise ValueError("scale given twice: the PackedBinaryWeight carries an alpha")
    scale = _check_vector(weight.alpha if scale is None else scale, "scale", cout, x.device)
    bias = _check_vector(bias, "bias", cout, x.device)
    _output_size(torch.empty(x.shape, device="meta"), (kh, kw), stride, padding, dilation)
    _checks.integer(levels, "levels", 1, MAX_LEVELS)
    _checks.positive_float(threshold, "threshold")
    reset_e, form_e = parse(Reset, reset, "reset"), parse(Form, form, "form")
    decay_t = _param(decay_from(decay, tau), "decay",
                     torch.empty((1, 1, cout), device=x.device), torch.float32).detach()
    threshold = _rounded(float(threshold), torch.float32)
    scale = None if scale is None else scale.detach().float().contiguous()
    bias = None if bias is None else bias.detach().float().contiguous()
    if chosen == "reference":
        current = ref.binary_conv2d(x.unpack(torch.float32), weight.unpack(), scale, bias,
                                    stride, padding, dilation)
        s = reference_mt_lif(current, decay_t if decay_t.numel() > 1 else decay_t.reshape(()),
                             threshold=threshold, levels=levels, reset=reset, form=form)
        words = pack_channels(torch.nan_to_num(s, nan=0.0), levels)  # the kernel's NaN rule
    else:
        words = OP.kernel("binary_snn_layer_forward", chosen)(
            x.words, weight.words.contiguous(), scale, bias, decay_t, list(stride),
            list(padding), list(dilation), kh, kw, cin, threshold, levels, int(reset_e),
            int(form_e))
    t, n, _, hout, wout = x.shape[:2] + (cout,) + tuple(words.shape[2:4])
    return PackedSpikes(words, levels, (t, n, cout, hout, wout), x.dtype)
