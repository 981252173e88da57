"""The PEP 517 build backend: setuptools', asking for torch only when the target has none.

A static ``torch`` build requirement makes pip's isolated build install the newest torch
from the index even when the user already has one (often a CPU or an older build). Here
the requirement is dynamic: when the environment being installed into already has torch,
the build compiles against that one (``build_support.torch_env``) and downloads nothing.
"""

from setuptools.build_meta import *  # noqa: F403 (the backend's hooks, re-exported)

from build_support import torch_env


def _torch_requirement() -> list[str]:
    if torch_env.torch_importable() or torch_env.target_torch_version() is not None:
        return []
    return ["torch"]


def get_requires_for_build_wheel(config_settings=None):
    return _torch_requirement()  # setuptools and wheel: the static build requirements


def get_requires_for_build_editable(config_settings=None):
    return _torch_requirement()
