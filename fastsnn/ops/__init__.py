"""Public functional API: one module per op (autograd, fake impl, backend dispatch)."""

from .events import events_to_current
from .mt_lif import mt_lif

__all__ = ["events_to_current", "mt_lif"]
