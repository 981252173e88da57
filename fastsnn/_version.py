"""The package version: one home, read by ``fastsnn.__version__`` and by ``setup.py``."""

__version__ = "0.1.0"
