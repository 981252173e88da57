"""The CPU kernels run with torch's intra-op thread count.

``torch.set_num_threads`` is global, but OpenMP's team size is a per-thread setting (and a
separate OpenMP runtime when the extension's libgomp is not torch's copy): a kernel called
from another thread than the one that set it, or through another runtime, would use every
core. The bindings pass torch's count to the kernels' parallel regions
(csrc/torch/threads.h). OpenMP keeps a team's threads alive after its region, so
``/proc/self/task`` shows every team ever started: the kernels run in a fresh Python thread
of a fresh process with ``OMP_NUM_THREADS=2``; with one intra-op thread they must start no
thread at all, with two they must start some (the control that shows the probe sees them).
"""

import os
import subprocess
import sys

import pytest

from fastsnn import _backends

pytestmark = [
    pytest.mark.skipif(not _backends._extension()[0], reason="fastsnn._C not built"),
    pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc"),
]

SCRIPT = r"""
import os, sys
import torch
import fastsnn

import threading

torch.set_num_threads(1)  # inputs and warm-up start no team

def threads():
    return len(os.listdir("/proc/self/task"))

g = torch.Generator().manual_seed(0)
x = (torch.randn(4, 8, 64, 32, 32, generator=g) * 1.5).requires_grad_(True)
xc = (torch.rand(8, 64, 32, 32, generator=g) < 0.2).float()
w = torch.randn(64, 64, 3, 3, generator=g)
a = torch.rand(64, 64, 64, generator=g) * 4
s = (torch.rand(8, 256, 1024, generator=g) < 0.3).float()
ev = torch.zeros(400_000, 4, dtype=torch.int64)
ev[:, 0] = torch.randint(0, 32, (len(ev),), generator=g)
ev[:, 1] = torch.randint(0, 32, (len(ev),), generator=g)
ev[:, 2] = torch.arange(len(ev)) % 100_000
ev[:, 3] = torch.randint(0, 2, (len(ev),), generator=g)
offsets = torch.arange(5) * 100_000
(x * 2).sum().backward()  # autograd's own start-up, before the baseline
x.grad = None
ac = a.clone().requires_grad_(True)
torch.set_num_threads(int(sys.argv[1]))
started = {}

def run(name, fn):
    before = threads()
    fn()
    started[name] = threads() - before

def kernels():
    run("mt_lif", lambda: fastsnn.mt_lif(x, 0.5, backend="cpu").sum().backward())
    run("binary_conv2d", lambda: fastsnn.binary_conv2d(xc, w, padding=1, backend="cpu"))
    run("stcb", lambda: fastsnn.stcb(ac, 8, backend="cpu").sum().backward())
    run("spike_count", lambda: fastsnn.spike_count(s, backend="cpu"))
    run("events_to_current", lambda: fastsnn.events_to_current(
        ev, (32, 32, 2), 8, offsets=offsets, backend="cpu"))

worker = threading.Thread(target=kernels)
worker.start()
worker.join()
print(repr(started))
"""


def _started(threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(threads)], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stderr
    return eval(out.stdout.strip().splitlines()[-1])


def test_one_intra_op_thread_starts_no_openmp_thread():
    started = _started(1)
    assert started == {k: 0 for k in started}, started


def test_two_intra_op_threads_do_start_openmp_threads():
    started = _started(2)
    assert sum(started.values()) > 0, started
