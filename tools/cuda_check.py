"""The GPU build checked on a machine without a GPU (``make cuda-build`` runs it).

1. Dispatcher: every fastsnn op (namespaces ``fastsnn`` and ``fastsnn_C``, discovered from
   the dispatcher, not listed here) that has a device kernel has one for both the CPU and
   the CUDA dispatch keys, unless its declaration in the spine lists no cuda backend; ops
   without device kernels must be composite (device-free). The extension must provide at
   least one CUDA op per ``csrc/cuda/*.cu``.
2. Triton: the ops' ``triton`` backend is run under the interpreter on tiny CPU inputs
   over their option space (tools/triton_sweep.py); every kernel launch is recorded (its
   argument types and constexpr values), then each distinct specialization is compiled for
   ``sm_<arch>`` with the installed Triton, no GPU needed. A kernel in ``kernels/*.py``
   that the sweep never launches (and no launched kernel calls) is an error.

Exit status 1 with the compiler's message when anything fails to build.
Usage: ``python tools/cuda_check.py [--arch 90] [--only dispatcher|triton]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from triton_sweep import canonical  # noqa: E402

NAMESPACES = ("fastsnn_C::", "fastsnn::")
DEVICE_KEYS = ("CPU", "CUDA")
COMPOSITE_KEYS = ("CompositeImplicitAutograd", "CompositeExplicitAutograd",
                  "CompositeExplicitAutogradNonFunctional")


def check_dispatcher() -> list[str]:
    import fastsnn._C  # noqa: F401  (registers the C++ ops)
    import torch

    import fastsnn  # noqa: F401  (registers the Python custom ops)
    from fastsnn.ops._spine import OPS

    # An op whose declaration lists no cuda backend (fastsnn/ops/_spine.py) may have CPU
    # kernels only: the backend choice never sends its CUDA tensors there. Any other op
    # with a CPU kernel must have a CUDA one too.
    cpu_only = {f"fastsnn::{kernel}" for op in OPS.values() if "cuda" not in op.backends
                for kernel in op.kernels}
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    ops = sorted(n for n in torch._C._dispatch_get_all_op_names() if n.startswith(NAMESPACES))
    errors, device_ops = [], []
    for name in ops:
        keys = [k for k in DEVICE_KEYS + COMPOSITE_KEYS if has(name, k)]
        device = [k for k in DEVICE_KEYS if k in keys]
        print(f"  {name:48s} {' '.join(keys) or '(no kernel)'}")
        if device:
            device_ops.append(name)
            missing = [k for k in DEVICE_KEYS if k not in device]
            if missing == ["CUDA"] and name in cpu_only:
                print(f"  {'':48s} (its op declares no cuda backend: CPU only, as declared)")
            elif missing:
                errors.append(f"{name}: no kernel for {', '.join(missing)}")
        elif not any(k in keys for k in COMPOSITE_KEYS):
            errors.append(f"{name}: neither CPU/CUDA kernels nor a composite one")
    sources = sorted((ROOT / "csrc" / "cuda").glob("*.cu"))
    cuda_ops = [n for n in device_ops if has(n, "CUDA")]
    if len(cuda_ops) < len(sources):
        errors.append(f"{len(cuda_ops)} ops with CUDA kernels for {len(sources)} csrc/cuda/*.cu "
                      "files: was the extension built with CUDA?")
    print(f"dispatcher: {len(ops)} ops, {len(device_ops)} with device kernels, "
          f"{len(cuda_ops)} with CUDA kernels")
    return errors


# ---- Triton ------------------------------------------------------------------------------

def record(out: str) -> None:
    """Runs the sweep under the interpreter, writing every distinct launch to ``out``."""
    import triton_sweep

    launches = triton_sweep.recorded_sweep()
    Path(out).write_text(json.dumps(launches))


def _jit(module: str, name: str):
    import importlib

    fn = getattr(importlib.import_module(module), name)
    while not hasattr(fn, "params") and hasattr(fn, "fn"):  # autotuner / heuristics wrappers
        fn = fn.fn
    return fn


def compile_one(launch: dict, arch: int) -> str:
    """Compiles one recorded launch for sm_<arch>; '' or the compiler's message."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = _jit(launch["module"], launch["name"])
    spec = canonical([(p.name, p.is_constexpr) for p in fn.params], launch["args"])
    constexprs = {p.name: spec[p.name] for p in fn.params if p.is_constexpr}
    signature = {n: "constexpr" if n in constexprs else t for n, t in spec.items()}
    options = {k: v for k, v in launch["options"].items()
               if k in ("num_warps", "num_stages", "enable_fp_fusion", "num_ctas")}
    try:
        triton.compile(ASTSource(fn, signature, constexprs), target=GPUTarget("cuda", arch, 32),
                       options=options)
    except Exception as exc:  # the compiler's message is the point of this tool
        return f"{type(exc).__name__}: {exc}"
    return ""


def kernels_in_tree() -> dict[str, object]:
    """Every @triton.jit function in kernels/*.py, by 'module.name'."""
    import importlib

    found = {}
    for path in sorted((ROOT / "kernels").glob("*.py")):
        if path.stem == "__init__":
            continue
        module = importlib.import_module(f"fastsnn.kernels.{path.stem}")
        for name, obj in vars(module).items():
            if hasattr(obj, "params") and hasattr(obj, "src") and \
                    getattr(obj, "__module__", module.__name__) == module.__name__:
                found[f"{module.__name__}.{name}"] = obj
    return found


def check_triton(arch: int, jobs: int) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "launches.json")
        env = dict(os.environ, TRITON_INTERPRET="1")
        done = subprocess.run([sys.executable, __file__, "--record", out], env=env,
                              cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            return [f"the interpreted sweep failed:\n{done.stdout[-2000:]}{done.stderr[-6000:]}"]
        launches = json.loads(Path(out).read_text())
    os.environ["TRITON_INTERPRET"] = "0"
    errors = []
    kernels = kernels_in_tree()
    launched = {f"{launch['module']}.{launch['name']}" for launch in launches}
    for qualname in kernels:
        short = qualname.rsplit(".", 1)[1]
        called = any(f"{short}(" in other.src for q, other in kernels.items()
                     if q in launched and q != qualname)
        if qualname not in launched and not called:
            errors.append(f"{qualname}: never launched by tools/triton_sweep.py (add its op "
                          "options there)")
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(compile_one, launches, [arch] * len(launches)))
    per_kernel: dict[str, int] = {}
    for launch, err in zip(launches, results, strict=True):
        key = f"{launch['module'].rsplit('.', 1)[1]}.{launch['name']}"
        per_kernel[key] = per_kernel.get(key, 0) + 1
        if err:
            consts = {k: v for k, v in launch["args"].items() if not isinstance(v, str)}
            errors.append(f"{key} {consts} options={launch['options']}: {err}")
    for key, n in sorted(per_kernel.items()):
        print(f"  {key:40s} {n} specializations compiled for sm_{arch}")
    print(f"triton: {len(launches)} specializations of {len(per_kernel)} kernels, "
          f"{sum(1 for e in results if e)} failed")
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90)
    parser.add_argument("--only", choices=("dispatcher", "triton"))
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("JOBS", "2")))
    parser.add_argument("--record", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.record:
        record(args.record)
        return 0
    errors = []
    if args.only in (None, "dispatcher"):
        print("dispatcher (fastsnn ops and their kernels):")
        errors += check_dispatcher()
    if args.only in (None, "triton"):
        print(f"triton kernels for sm_{args.arch}:")
        errors += check_triton(args.arch, args.jobs)
    for e in errors:
        print(f"ERROR {e}\n", file=sys.stderr)
    print("cuda-check: " + ("FAILED" if errors else "ok"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
