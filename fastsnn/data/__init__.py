"""Data: event-stream transforms (dataset loaders live beside them)."""

from .transforms import ToCurrent

__all__ = ["ToCurrent"]
