"""``python -m fastsnn``: what this installation has (build, torch, CUDA, Triton, CPU ISA)
and which backends are available here, and why not."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Optional

import torch

import fastsnn
from fastsnn import _backends, _extension

# Namespaces the extension's ops have been registered under, newest first.
_OP_NAMESPACES = ("fastsnn", "fastsnn_C")


def _extension_op(name: str):
    for namespace in _OP_NAMESPACES:
        try:
            return getattr(getattr(torch.ops, namespace), name)
        except (AttributeError, RuntimeError):
            continue
    return None


def _cpu_isa() -> str:
    ok, reason = _backends._extension()
    if not ok:
        return f"none ({reason})"
    op, all_op = _extension_op("binary_conv2d_cpu_isa"), _extension_op("binary_conv2d_cpu_isas")
    if op is None:
        return "unknown (this build does not report it)"
    supported = f" (supported here: {', '.join(all_op())})" if all_op is not None else ""
    return f"{op()}{supported}"


def _version(package: str) -> Optional[str]:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cuda_kernels(info: dict) -> str:
    if not info:
        return "unknown (no build information: the package was not built)"
    if info["CUDA_KERNELS"]:
        return (f"compiled for {info['CUDA_ARCHS']} with nvcc {info['CUDA_VERSION']} "
                f"(torch CUDA {info['TORCH_CUDA']})")
    return f"not compiled ({info['CUDA_REASON']})"


def report() -> list[str]:
    info = _extension.build_info()
    built = info.get("TORCH_VERSION", "unknown (not built)")
    cuda = (f"{torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} visible)"
            if torch.cuda.is_available() else "none visible")
    triton = _version("triton")
    lines = [
        f"fastsnn {fastsnn.__version__}  python {platform.python_version()}  "
        f"{platform.machine()}",
        f"torch         running {torch.__version__} (CUDA {torch.version.cuda}), "
        f"built against {built}",
        f"CUDA kernels  {_cuda_kernels(info)}",
        f"CUDA device   {cuda}",
        f"Triton        {triton if triton else 'not installed'}",
        f"CPU ISA       {_cpu_isa()}",
        "backends:",
    ]
    for name, per_device in fastsnn.backends().items():
        for device, reason in per_device.items():
            state = "available" if not reason else f"unavailable: {reason}"
            lines.append(f"  {name:<10} {device:<5} {state}")
    return lines


def main() -> None:
    print("\n".join(report()))


if __name__ == "__main__":
    main()
