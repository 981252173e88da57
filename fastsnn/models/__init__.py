"""The networks of the papers, built from the fastsnn modules."""

from .stcsnn import STCSNN

__all__ = ["STCSNN"]
