"""Conversion of peer libraries' neurons into fastsnn modules (see docs/peers.md)."""

from .errors import NotConvertible
from .snntorch import from_snntorch
from .spikingjelly import from_spikingjelly

__all__ = ["NotConvertible", "from_snntorch", "from_spikingjelly"]
