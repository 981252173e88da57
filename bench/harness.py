"""Shared benchmark harness: verify, time (median), compare side by side, record.

Every ``bench_<op>.py`` exposes ``run(suite)``. For each configuration it first checks the
candidate's output against the reference (``suite.verify``), and only then times the
candidate and its peers in the same process (``suite.time``), so a fast wrong kernel never
posts a number and machine noise hits all contenders alike.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import socket
import statistics
import time
from collections.abc import Callable
from typing import Optional

import torch


def fast_backends(op: str, device: torch.device) -> list[str]:
    """The compiled backends that run ``fastsnn.<op>`` on ``device`` here, preferred first.
    Triton on CPU tensors (its interpreter) is left out: it measures Python, not a kernel."""
    import fastsnn

    return [b for b in fastsnn.available_backends(op, device.type)
            if b != "reference" and not (b == "triton" and device.type == "cpu")]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], device: torch.device, *, warmup: int = 2,
                   reps: int = 7, min_time: float = 0.0) -> float:
    """Median wall time of ``fn()`` over ``reps`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    start_all = time.perf_counter()
    while len(times) < reps or time.perf_counter() - start_all < min_time:
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
        if len(times) >= 10 * reps:
            break
    return statistics.median(times)


def copy_bandwidth(device: torch.device, nbytes: int = 1 << 28) -> float:
    """Measured device copy bandwidth in bytes/s (read + write of a ``clone``)."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    sec = median_seconds(lambda: src.clone(), device, reps=5)
    return 2 * src.numel() * 4 / sec


def matmul_rate(device: torch.device, quick: bool = False) -> float:
    """Measured dense matmul rate in FLOP/s: bfloat16 on CUDA, float32 on CPU."""
    n = (1024 if quick else 8192) if device.type == "cuda" else (256 if quick else 1024)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sec = median_seconds(lambda: a @ b, device, reps=5)
    return 2 * n**3 / sec


@dataclasses.dataclass
class Row:
    op: str
    case: str            # shape / configuration, human readable
    dtype: str
    impl: str            # backend ("cpu", "triton", ...) or peer name
    direction: str       # "fwd", "fwd+bwd", ...
    median_ms: float
    bytes_moved: Optional[int] = None
    work: Optional[float] = None       # elements, events, MACs ... per call
    work_unit: str = "elem"
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def gbps(self) -> Optional[float]:
        if not self.bytes_moved:
            return None
        return self.bytes_moved / (self.median_ms * 1e-3) / 1e9

    @property
    def throughput(self) -> Optional[float]:
        return None if self.work is None else self.work / (self.median_ms * 1e-3)


class VerificationError(AssertionError):
    pass


class Suite:
    """Collects rows for one run of the benchmark suite on one device."""

    def __init__(self, device: torch.device, quick: bool = False):
        self.device = device
        self.quick = quick
        self.rows: list[Row] = []
        self.copy_bps = copy_bandwidth(device, 1 << 24 if quick else 1 << 28)
        self.matmul_flops = matmul_rate(device, quick)
        self.notes: list[str] = []

    # -- checking ------------------------------------------------------------------------
    @staticmethod
    def verify(name: str, got, expected, *, exact: bool = False, atol: float = 1e-5,
               rtol: float = 1e-5) -> None:
        """Raise before timing when ``got`` differs from the reference ``expected``."""
        got_t = got if isinstance(got, (tuple, list)) else (got,)
        exp_t = expected if isinstance(expected, (tuple, list)) else (expected,)
        for g, e in zip(got_t, exp_t):
            if g is None and e is None:
                continue
            g, e = g.detach().float().cpu(), e.detach().float().cpu()
            ok = torch.equal(g, e) if exact else torch.allclose(g, e, atol=atol, rtol=rtol)
            if not ok:
                diff = (g - e).abs().max().item() if g.shape == e.shape else "shape"
                raise VerificationError(f"{name}: output differs from the reference ({diff})")

    # -- timing --------------------------------------------------------------------------
    def time(self, fn: Callable[[], object], **row_fields) -> Row:
        reps = 3 if self.quick else 7
        sec = median_seconds(fn, self.device, warmup=1 if self.quick else 2, reps=reps)
        row = Row(median_ms=sec * 1e3, **row_fields)
        self.rows.append(row)
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)

    # -- reporting -----------------------------------------------------------------------
    def ratios(self, row: Row) -> dict[str, float]:
        """Speed of ``row`` relative to every other impl of the same op/case/dtype/direction."""
        out = {}
        for other in self.rows:
            if other is row or (other.op, other.case, other.dtype, other.direction) != (
                    row.op, row.case, row.dtype, row.direction):
                continue
            out[other.impl] = other.median_ms / row.median_ms
        return out

    def device_name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device).replace(" ", "_")
        return f"cpu{os.cpu_count()}"

    def to_json(self) -> dict:
        rows = []
        for r in self.rows:
            d = dataclasses.asdict(r)
            d.update(gbps=r.gbps, throughput=r.throughput,
                     frac_copy_bw=None if r.gbps is None else r.gbps * 1e9 / self.copy_bps,
                     speedup_vs=self.ratios(r))
            rows.append(d)
        return {
            "host": socket.gethostname(), "device": self.device_name(),
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": self.quick,
            "copy_bandwidth_GBps": self.copy_bps / 1e9,
            "matmul_TFLOPs": self.matmul_flops / 1e12, "rows": rows, "notes": self.notes,
        }

    def table(self) -> str:
        head = (f"{'op':<16}{'case':<30}{'dtype':<9}{'impl':<18}{'dir':<8}{'ms':>10}"
                f"{'GB/s':>8}{'%copy':>7}  speedup vs peers")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            gbps = "" if r.gbps is None else f"{r.gbps:8.1f}"
            frac = "" if r.gbps is None else f"{100 * r.gbps * 1e9 / self.copy_bps:6.0f}%"
            ratios = ", ".join(f"{k} {v:.2f}x" for k, v in self.ratios(r).items()
                               if not _is_backend(r.impl) or not _is_backend(k)
                               or k == "reference")
            lines.append(f"{r.op:<16}{r.case:<30}{r.dtype:<9}{r.impl:<18}{r.direction:<8}"
                         f"{r.median_ms:10.3f}{gbps:>8}{frac:>7}  {ratios}")
        lines.append(f"copy bandwidth {self.copy_bps / 1e9:.1f} GB/s, matmul "
                     f"{self.matmul_flops / 1e9:.0f} GFLOP/s on {self.device_name()}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _is_backend(name: str) -> bool:
    return name in ("reference", "cpu", "triton", "cuda")


def write_results(suite: Suite, out_dir: str, partial: bool = False) -> str:
    """Write the suite's JSON; a ``partial`` run (``--only``) replaces only its own ops'
    rows and notes in an existing file, keeping the other ops' results."""
    os.makedirs(out_dir, exist_ok=True)
    prefix = "gpu" if suite.device.type == "cuda" else socket.gethostname()
    path = os.path.join(out_dir, f"{prefix}-{suite.device_name()}.json")
    result = suite.to_json()
    if partial and os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        ops = {r["op"] for r in result["rows"]}
        result["rows"] = [r for r in old.get("rows", []) if r["op"] not in ops] + result["rows"]
        result["notes"] = [n for n in old.get("notes", [])
                           if not any(n.startswith(op) for op in ops)] + result["notes"]
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    return path
