"""What the command-line tools share: one-line errors, the thread default, device checks."""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn, Optional

import torch

MAX_DEFAULT_THREADS = 4  # beyond this the small kernels of a training step stop scaling


class UsageError(Exception):
    """A mistake on the command line or in the environment: reported in one line, no
    traceback, exit status 2."""


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are one line (usage stays in ``--help``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def fail(prog: str, message: str) -> NoReturn:
    """Print ``prog: error: message`` to stderr and exit with status 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads(processes: int = 1) -> int:
    """``min(cores / processes, 4)``, at least 1: enough for the kernels, and no
    oversubscription when several processes (torchrun) or jobs share the machine."""
    return max(1, min(cores() // max(processes, 1), MAX_DEFAULT_THREADS))


def set_threads(requested: Optional[int], processes: int = 1) -> str:
    """Set torch's CPU threads (``requested`` or the default); the line saying so."""
    if requested is not None and requested < 1:
        raise UsageError(f"--threads must be >= 1, got {requested}")
    n = requested if requested is not None else default_threads(processes)
    torch.set_num_threads(n)
    how = "--threads" if requested is not None else "default min(cores, 4); --threads N to change"
    return f"threads: {n} of {cores()} cores ({how})"


def check_device(device: str) -> None:
    """``UsageError`` for a device this torch cannot use."""
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        why = ("this torch was built without CUDA" if torch.version.cuda is None
               else "no CUDA device is visible")
        raise UsageError(f"--device cuda: {why} (torch {torch.__version__}); use --device cpu")


def check_backend(backend: Optional[str], device: str) -> None:
    """``UsageError`` when a forced ops backend cannot run on ``device``."""
    if backend is None:
        return
    from ._backends import why_not

    dev = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) \
        else "cpu"
    reason = why_not(backend, dev)
    if reason:
        raise UsageError(f"--backend {backend}: {reason}")
