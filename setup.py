"""Builds fastsnn with its extension fastsnn._C.

CPU kernels are always built. CUDA kernels are added when ``build_support.cuda_detect``
finds a CUDA toolkit that matches torch's CUDA version (``FASTSNN_CUDA=0`` turns them off,
``FASTSNN_CUDA=1`` makes their absence an error); ``TORCH_CUDA_ARCH_LIST`` is honoured,
default "8.0;9.0". The build compiles against the torch of the environment being installed
into (``build_support.torch_env``), records it in ``fastsnn/_build_info.py`` and pins the
wheel to that torch's minor version. The Triton kernels in ``kernels/`` ship as
``fastsnn.kernels`` (via the ``fastsnn/kernels`` link).
"""

import glob
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # build_support/ is not installed: the build imports it from here

from build_support import build_info, cuda_detect, torch_env  # noqa: E402

torch_env.use_target_torch()

try:
    import torch  # noqa: E402
except ImportError:
    sys.exit("fastsnn: building needs torch; install it first (pip install torch), then "
             "pip install --no-build-isolation .")
from setuptools import find_packages, setup  # noqa: E402

try:
    CUDA = cuda_detect.detect(os.environ, torch.version.cuda)
except (cuda_detect.CudaBuildError, ValueError) as exc:
    sys.exit(f"fastsnn: {exc}")
if CUDA.enabled:
    # torch.utils.cpp_extension reads CUDA_HOME once, when it is first imported; set it
    # before that import and on the module too, should something have imported it already.
    os.environ["CUDA_HOME"] = CUDA.home
from torch.utils import cpp_extension  # noqa: E402

if CUDA.enabled:
    cpp_extension.CUDA_HOME = CUDA.home
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")


def _sources(pattern):
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


def _read(*parts):
    with open(os.path.join(HERE, *parts), encoding="utf-8") as f:
        return f.read()


def _requirements(name):
    """The requirement lines of requirements-<name>.txt, following ``-r`` includes."""
    reqs = []
    for line in _read(f"requirements-{name}.txt").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            reqs += _requirements(line[3:].strip()[len("requirements-"):-len(".txt")])
        elif line:
            reqs.append(line)
    return list(dict.fromkeys(reqs))


def _torch_requirement():
    major, minor = (int(p) for p in re.match(r"(\d+)\.(\d+)", torch.__version__).groups())
    return f"torch>={major}.{minor},<{major}.{minor + 1}"


def _build_info():
    return {
        "TORCH_VERSION": torch.__version__,
        "TORCH_CUDA": torch.version.cuda,
        "CUDA_KERNELS": CUDA.enabled,
        "CUDA_ARCHS": os.environ["TORCH_CUDA_ARCH_LIST"] if CUDA.enabled else "",
        "CUDA_VERSION": CUDA.nvcc_version or "",
        "CUDA_REASON": CUDA.reason,
    }


class BuildExtension(cpp_extension.BuildExtension):
    """Writes ``_build_info.py`` beside the extension, and rebuilds the extension when the
    torch or CUDA set-up differs from the one the existing build recorded."""

    def run(self):
        directory = os.path.dirname(self.get_ext_fullpath("fastsnn._C"))
        info = _build_info()
        if build_info.read(os.path.join(directory, build_info.FILENAME)) != info:
            self.force = True
        super().run()
        os.makedirs(directory, exist_ok=True)
        build_info.write(directory, info)


def extension():
    cxx = ["-O3", "-std=c++20", "-fopenmp", "-ffp-contract=off", "-fvisibility=hidden"]
    sources = _sources("csrc/torch/*.cpp") + _sources("csrc/cpu/*.cpp")
    kwargs = dict(extra_link_args=["-fopenmp"], include_dirs=[os.path.join(HERE, "csrc")],
                  py_limited_api=True)
    if not CUDA.enabled:
        print(f"fastsnn: building CPU kernels only ({CUDA.reason})")
        return cpp_extension.CppExtension(
            "fastsnn._C", sources, extra_compile_args={"cxx": cxx}, **kwargs)
    print(f"fastsnn: building CPU and CUDA kernels for {os.environ['TORCH_CUDA_ARCH_LIST']} "
          f"({CUDA.reason})")
    # --fmad=false: the reference rounds every multiply and add; fused kernels must too.
    nvcc = ["-O3", "-std=c++20", "--fmad=false", "--expt-relaxed-constexpr", "-lineinfo"]
    return cpp_extension.CUDAExtension(
        "fastsnn._C", sources + _sources("csrc/cuda/*.cu"),
        extra_compile_args={"cxx": cxx + ["-DFASTSNN_WITH_CUDA"], "nvcc": nvcc},
        define_macros=[("FASTSNN_WITH_CUDA", None)], **kwargs)


_extras = {name: _requirements(name) for name in ("train", "events", "test", "bench", "dev")}
_extras["triton"] = ["triton"]

setup(
    name="fastsnn",
    version=re.search(r'__version__ = "([^"]+)"', _read("fastsnn", "_version.py")).group(1),
    description="Fused, tested kernels for spiking neural networks as PyTorch ops",
    long_description=_read("README.md"),
    long_description_content_type="text/markdown",
    license="MIT",
    license_files=["LICENSE"],
    keywords=["spiking neural networks", "snn", "pytorch", "cuda", "triton", "kernels"],
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Science/Research",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: C++",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Environment :: GPU :: NVIDIA CUDA",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    # No public home yet: placeholders, to be replaced when the repository is published.
    project_urls={
        "Homepage": "https://example.invalid/fastsnn",
        "Source": "https://example.invalid/fastsnn/source",
        "Issues": "https://example.invalid/fastsnn/issues",
    },
    packages=find_packages(include=["fastsnn", "fastsnn.*"]),
    package_data={"fastsnn": ["kernels/*.py"]},
    python_requires=">=3.10",
    install_requires=[_torch_requirement(), "numpy"],
    extras_require=_extras,
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
