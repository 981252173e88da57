"""Which torch the build compiles against.

The extension is tied to the torch it is compiled with (C++ ABI, one minor version). pip's
default build isolation builds in a throwaway environment that would install the newest
torch from the index (a multi-GB CUDA build) and compile against it, whatever torch the
user has. During an isolated pip build the interpreter's ``sys.prefix`` is still the
environment being installed into, so its torch can be found there; the build then
compiles against that torch (appended to ``sys.path``, after the isolated build tools) and
installs nothing. Only when the target environment has no torch does the build ask for
one (``build_support.backend``), and the wheel then requires that torch's minor version.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import sysconfig
from typing import Optional


def target_site_dirs() -> list[str]:
    """The site-packages of the environment this interpreter installs into."""
    paths = sysconfig.get_paths(vars={"base": sys.prefix, "platbase": sys.prefix})
    return list(dict.fromkeys(paths[k] for k in ("purelib", "platlib")))


def torch_importable() -> bool:
    return importlib.util.find_spec("torch") is not None


def target_torch_version() -> Optional[str]:
    """The version of torch installed in the target environment, ``None`` when absent."""
    for dist in importlib.metadata.distributions(name="torch", path=target_site_dirs()):
        return dist.version
    return None


def use_target_torch() -> Optional[str]:
    """Make the target environment's torch importable when the build environment has none.

    Returns the site directory added, ``None`` when nothing was needed or found.
    """
    if torch_importable():
        return None
    for site in target_site_dirs():
        if next(iter(importlib.metadata.distributions(name="torch", path=[site])), None):
            sys.path.append(site)
            return site
    return None
