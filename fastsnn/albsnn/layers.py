"""Which layers of a model ALBSNN can binarise, and their state."""

from __future__ import annotations

from torch import nn


def binary_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every ``BinaryConv2d`` of ``model`` in module order, with its qualified name."""
    from ..nn.binary_conv import BinaryConv2d

    return [(n, m) for n, m in model.named_modules() if isinstance(m, BinaryConv2d)]


def is_binarized(module: nn.Module) -> bool:
    return bool(getattr(module, "binarized", False))


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every convolution (binary or float) in module order: decides 'first' and 'last'."""
    from ..nn.binary_conv import BinaryConv2d

    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (BinaryConv2d, nn.Conv2d))]
