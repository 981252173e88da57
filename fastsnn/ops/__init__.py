"""Public functional API: one module per op (autograd, fake impl, backend dispatch)."""

from .mt_lif import mt_lif

__all__ = ["mt_lif"]
