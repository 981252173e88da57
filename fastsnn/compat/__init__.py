"""Conversion of peer libraries' neurons into fastsnn modules (see docs/peers.md)."""

from .spikingjelly import NotConvertible, from_spikingjelly

__all__ = ["NotConvertible", "from_spikingjelly"]
