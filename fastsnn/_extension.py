"""Loading the compiled extension ``fastsnn._C``, after checking it fits the running torch.

The extension links against torch's C++ library, whose ABI changes between minor versions:
one compiled against torch 2.14 may load under 2.13 and then crash or compute garbage, or
fail with an undefined symbol. The build records the torch it compiled against in
``fastsnn/_build_info.py``; :func:`load` refuses another minor version with an error that
names both versions and the fix.
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType
from typing import Any, Optional

import torch

REINSTALL = ("reinstall fastsnn against the torch you run: from a checkout, "
             "`pip install --no-build-isolation --no-deps --force-reinstall .`")


def build_info() -> dict[str, Any]:
    """What the extension was compiled against (``fastsnn/_build_info.py``); ``{}`` when
    the package was not built (a source tree without a build)."""
    try:
        module = importlib.import_module("fastsnn._build_info")
    except ImportError:
        return {}
    return {k: v for k, v in vars(module).items() if k.isupper()}


def minor_version(version: str) -> Optional[tuple[int, int]]:
    """``(major, minor)`` of a torch version string ("2.13.0+cpu" -> (2, 13))."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_torch(built: str, running: str) -> None:
    """Raise ``ImportError`` when ``built`` and ``running`` torch differ in minor version."""
    if minor_version(built) != minor_version(running):
        raise ImportError(f"fastsnn._C was compiled against torch {built} but torch {running} "
                          f"is running; the extension only works with the torch minor version "
                          f"it was compiled against: {REINSTALL}")


def load() -> ModuleType:
    """Import ``fastsnn._C``; ``ImportError`` when it is absent or built for another torch."""
    built = build_info().get("TORCH_VERSION")
    if built is not None:
        check_torch(built, torch.__version__)
    return importlib.import_module("fastsnn._C")
