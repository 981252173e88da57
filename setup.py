"""Builds fastsnn with its extension fastsnn._C.

CPU kernels are always built. CUDA kernels are added when torch has CUDA and nvcc is found
(``FASTSNN_CUDA=0`` turns them off); ``TORCH_CUDA_ARCH_LIST`` is honoured, default
"8.0;9.0". The Triton kernels in ``kernels/`` ship as ``fastsnn.kernels`` (via the
``fastsnn/kernels`` link).
"""

import glob
import os

import torch
from setuptools import find_packages, setup
from torch.utils import cpp_extension

HERE = os.path.dirname(os.path.abspath(__file__))


def _sources(pattern):
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


def _with_cuda() -> tuple[bool, str]:
    if os.environ.get("FASTSNN_CUDA", "1") == "0":
        return False, "FASTSNN_CUDA=0"
    if torch.version.cuda is None:
        return False, "torch has no CUDA"
    if cpp_extension.CUDA_HOME is None:
        return False, "nvcc not found (CUDA_HOME unset)"
    return True, ""


def extension():
    with_cuda, why = _with_cuda()
    cxx = ["-O3", "-std=c++20", "-fopenmp", "-ffp-contract=off", "-fvisibility=hidden"]
    sources = _sources("csrc/torch/*.cpp") + _sources("csrc/cpu/*.cpp")
    macros = []
    kwargs = dict(extra_link_args=["-fopenmp"], include_dirs=[os.path.join(HERE, "csrc")],
                  py_limited_api=True)
    if not with_cuda:
        print(f"fastsnn: building CPU kernels only ({why})")
        return cpp_extension.CppExtension(
            "fastsnn._C", sources, extra_compile_args={"cxx": cxx}, define_macros=macros,
            **kwargs)
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    print(f"fastsnn: building CPU and CUDA kernels for {os.environ['TORCH_CUDA_ARCH_LIST']}")
    # --fmad=false: the reference rounds every multiply and add; fused kernels must too.
    nvcc = ["-O3", "-std=c++20", "--fmad=false", "--expt-relaxed-constexpr", "-lineinfo"]
    return cpp_extension.CUDAExtension(
        "fastsnn._C", sources + _sources("csrc/cuda/*.cu"),
        extra_compile_args={"cxx": cxx + ["-DFASTSNN_WITH_CUDA"], "nvcc": nvcc},
        define_macros=macros + [("FASTSNN_WITH_CUDA", None)], **kwargs)


setup(
    name="fastsnn",
    version="0.1.0",
    description="Fused, tested kernels for spiking neural networks as PyTorch ops",
    packages=find_packages(include=["fastsnn", "fastsnn.*"]),
    package_data={"fastsnn": ["kernels/*.py"]},
    python_requires=">=3.10",
    install_requires=["torch>=2.4", "numpy"],
    extras_require={"triton": ["triton"], "test": ["pytest", "hypothesis", "ruff"]},
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
