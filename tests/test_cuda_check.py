"""tools/cuda_check.py (``make cuda-build``) finds what it is there to find.

* The dispatcher check passes on a CUDA build and names the missing CUDA kernels on a
  CPU-only build.
* A recorded Triton launch compiles for sm_90; the same launch with a block size the
  compiler rejects comes back with the compiler's message (in a subprocess: the compiler
  needs the interpreter off).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import GPU_PREVIEW

from fastsnn import _backends

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))
import cuda_check  # noqa: E402

pytestmark = pytest.mark.skipif(GPU_PREVIEW, reason="checks of the CPU machine's tools")


def test_dispatcher_check_matches_the_build():
    ok, reason = _backends._extension()
    if not ok:
        pytest.skip(reason)
    cuda_build = _backends.why_not("cuda", "cuda", "mt_lif_forward") in (
        "", _backends.NO_CUDA_DEVICE)
    errors = cuda_check.check_dispatcher()
    if cuda_build:
        assert errors == []
    else:
        assert errors and all("CUDA" in e for e in errors), errors


SPIKE_COUNT = {"module": "fastsnn.kernels.stcb", "name": "_spike_count_kernel",
               "args": {"s_ptr": "*fp32", "out_ptr": "*fp32", "E": 1000, "T": 3, "BLOCK": 256},
               "options": {"num_warps": 4, "enable_fp_fusion": False}}


def test_compile_reports_the_compiler_message():
    pytest.importorskip("triton.backends.nvidia")
    bad = json.loads(json.dumps(SPIKE_COUNT))
    bad["args"]["BLOCK"] = 100  # arange needs a power of two
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import cuda_check; "
            "print(json.dumps([cuda_check.compile_one(json.loads(a), 90) for a in sys.argv[2:]]))")
    env = dict(os.environ, TRITON_INTERPRET="0")
    done = subprocess.run([sys.executable, "-c", code, str(TOOLS), json.dumps(SPIKE_COUNT),
                           json.dumps(bad)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    good_err, bad_err = json.loads(done.stdout.strip().splitlines()[-1])
    assert good_err == ""
    assert "power of 2" in bad_err or "arange" in bad_err, bad_err
