"""The error a converter raises for a peer option that has no fastsnn equivalent."""


class NotConvertible(ValueError):
    """A peer module whose options have no fastsnn equivalent (names module and option)."""
