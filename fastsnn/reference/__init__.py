"""Pure-PyTorch references: the specification (SPEC.md) in code, one module per op."""

from .mt_lif import mt_lif

__all__ = ["mt_lif"]
