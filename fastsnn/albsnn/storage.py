"""Weight storage of a partly binarised network (docs/albsnn.md).

A binarised layer costs 1 bit per weight plus 32 bits per alpha (one per output channel when
alpha is per channel); every other weight costs 32 bits. Biases and batch-norm parameters
are not weights and are not counted.
"""

from __future__ import annotations

from torch import nn

from .layers import binary_layers, is_binarized


def layer_bits(module: nn.Module) -> tuple[int, int]:
    """(bits as stored now, bits in full precision) of one conv layer's weight."""
    n = module.weight.numel()
    full = 32 * n
    if not is_binarized(module):
        return full, full
    alpha_bits = 32 * module.out_channels if module.alpha_mode is not None else 0
    return n + alpha_bits, full


def storage_report(model: nn.Module, estimates: dict | None = None) -> dict:
    """Per layer: bits, binarised?, estimate; totals and the fraction saved.

    Counts every ``nn.Conv2d``/``nn.Linear``/binary conv weight of ``model``.
    """
    layers, total, total_full = [], 0, 0
    binary = {id(m) for _, m in binary_layers(model)}
    for name, module in model.named_modules():
        if not (id(module) in binary or isinstance(module, (nn.Conv2d, nn.Linear))):
            continue
        bits, full = layer_bits(module) if id(module) in binary else (
            32 * module.weight.numel(),) * 2
        layers.append({"name": name, "weights": module.weight.numel(), "bits": bits,
                       "full_precision_bits": full, "binarized": is_binarized(module),
                       "estimate": None if estimates is None else estimates.get(name)})
        total += bits
        total_full += full
    return {"layers": layers, "bits": total, "full_precision_bits": total_full,
            "storage_saving": 0.0 if total_full == 0 else 1 - total / total_full}
