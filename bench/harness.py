"""Shared benchmark harness: verify, time (median), compare side by side, record.

Every ``bench_<op>.py`` exposes ``run(suite)``. For each configuration it first checks each
contender's output against the reference (``suite.verify``), and only then times it and its
peers in the same process (``suite.time``), so machine noise hits all contenders alike.

Ours and peers are checked differently. A wrong result of ours (a fastsnn backend, or a
fastsnn transform) raises ``VerificationError`` and fails the run. A peer computes the same
function in its own arithmetic: a different order of float operations can put a membrane
exactly on a threshold one side or the other, and one such tie flips a spike (and, with a
reset, the rest of that neuron's train). A peer's disagreements are therefore counted and
reported in its row (``mismatches`` of ``compared`` elements), never fatal.

Every row also carries its byte floor: ``bytes_moved`` is the least traffic the op needs
(each bench states it), ``floor_ms`` that traffic at the measured ``clone()`` bandwidth, and
``frac_floor`` = floor_ms / median_ms, the fraction of the floor reached. The clone rate is
the fastest of a few runs (what the machine can do), the contenders' times are medians; the
benches measure it at their own sizes where they can (a clone of the op's input), since a
cache-resident case moves bytes faster than a large-buffer clone.
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

BACKENDS = ("reference", "cpu", "triton", "cuda")


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


def best_seconds(fn: Callable[[], object], device: torch.device, reps: int = 7) -> float:
    """Fastest of ``reps`` runs after one warm-up: a floor is what the machine can do, so
    other jobs' noise should not lower it."""
    fn()
    sync(device)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def copy_bandwidth(device: torch.device, nbytes: int = 1 << 28) -> float:
    """Measured device copy bandwidth in bytes/s (read + write of a ``clone``, fastest run)."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    return 2 * src.numel() * 4 / best_seconds(src.clone, device)


def matmul_rate(device: torch.device, quick: bool = False) -> float:
    """Measured dense matmul rate in FLOP/s: bfloat16 on CUDA, float32 on CPU."""
    n = (1024 if quick else 8192) if device.type == "cuda" else (256 if quick else 1024)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sec = median_seconds(lambda: a @ b, device, reps=5)
    return 2 * n**3 / sec


def is_ours(impl: str) -> bool:
    """fastsnn's own contenders: a backend, a backend variant ("cpu+pack"), a transform."""
    return impl.split("+")[0] in BACKENDS or impl.startswith("ToCurrent")


@dataclasses.dataclass
class Row:
    op: str
    case: str            # shape / configuration, human readable
    dtype: str
    impl: str            # backend ("cpu", "triton", ...) or peer name
    direction: str       # "fwd", "fwd+bwd", ...
    median_ms: float
    bytes_moved: Optional[int] = None  # the op's byte floor (least traffic), per call
    work: Optional[float] = None       # elements, events, MACs ... per call
    work_unit: str = "elem"
    extra: dict = dataclasses.field(default_factory=dict)
    # a peer's elements that disagree with the reference (None: ours, or not compared)
    mismatches: Optional[int] = None
    compared: Optional[int] = None
    # the plot panel this row belongs to and its value of the panel's scaling variable
    panel: Optional[str] = None
    scale: Optional[float] = None
    # copy bandwidth (B/s) of the byte floor when measured at this row's size (a clone of
    # the op's input); None: the suite's large-buffer figure
    copy_bps: Optional[float] = None

    @property
    def gbps(self) -> Optional[float]:
        if not self.bytes_moved:
            return None
        return self.bytes_moved / (self.median_ms * 1e-3) / 1e9

    @property
    def throughput(self) -> Optional[float]:
        return None if self.work is None else self.work / (self.median_ms * 1e-3)


@dataclasses.dataclass
class Panel:
    """One plot panel and README headline: time of ``ours`` and the headline ``peers``
    against a scaling variable, for one slice of an op's cases. ``targets``: the speedup
    each peer should see (README met / not met)."""

    name: str
    scale_name: str
    ours: str
    peers: tuple
    targets: dict = dataclasses.field(default_factory=dict)
    floor_targets: Optional[float] = None  # ours within this factor of the byte floor


class VerificationError(AssertionError):
    pass


def _mismatch_count(got, expected, exact: bool, atol: float, rtol: float) -> tuple[int, int]:
    """(elements that differ, elements compared) over matching pairs of tensors."""
    got_t = got if isinstance(got, (tuple, list)) else (got,)
    exp_t = expected if isinstance(expected, (tuple, list)) else (expected,)
    bad = total = 0
    for g, e in zip(got_t, exp_t):
        if g is None and e is None:
            continue
        g, e = g.detach().float().cpu(), e.detach().float().cpu()
        total += e.numel()
        if g.shape != e.shape:
            bad += e.numel()
            continue
        close = (g == e) if exact else torch.isclose(g, e, atol=atol, rtol=rtol)
        close |= torch.isnan(g) & torch.isnan(e)
        bad += int((~close).sum())
    return bad, total


class Suite:
    """Collects rows for one run of the benchmark suite on one device."""

    def __init__(self, device: torch.device, quick: bool = False):
        self.device = device
        self.quick = quick
        self.rows: list[Row] = []
        self.panels: dict[str, Panel] = {}
        self.copy_bps = copy_bandwidth(device, 1 << 24 if quick else 1 << 28)
        self.matmul_flops = matmul_rate(device, quick)
        self.notes: list[str] = []
        self._peer_mismatch: dict[str, tuple[int, int]] = {}

    # -- checking ------------------------------------------------------------------------
    def verify(self, name: str, got, expected, *, exact: bool = False, atol: float = 1e-5,
               rtol: float = 1e-5, peer: Optional[str] = None) -> int:
        """Compare ``got`` with the reference ``expected`` before timing.

        Ours (``peer`` None): raise on any difference. A peer (``peer`` = its impl name):
        count the differing elements; the next row timed for that impl reports them.
        Returns the number of differing elements."""
        bad, total = _mismatch_count(got, expected, exact, atol, rtol)
        if peer is None:
            if bad:
                raise VerificationError(f"{name}: {bad} of {total} elements differ from the "
                                        f"reference")
            return 0
        old = self._peer_mismatch.get(peer, (0, 0))
        self._peer_mismatch[peer] = (old[0] + bad, old[1] + total)
        return bad

    # -- timing --------------------------------------------------------------------------
    def time(self, fn: Callable[[], object], **row_fields) -> Row:
        reps = 3 if self.quick else 7
        sec = median_seconds(fn, self.device, warmup=1 if self.quick else 2, reps=reps)
        return self.add(Row(median_ms=sec * 1e3, **row_fields))

    def add(self, row: Row) -> Row:
        """Record a row timed elsewhere; attaches the peer's pending mismatch count."""
        if row.impl in self._peer_mismatch and row.mismatches is None:
            row.mismatches, row.compared = self._peer_mismatch[row.impl]
        self.rows.append(row)
        return row

    def end_case(self) -> None:
        """Forget the peers' mismatch counts: the next case verifies afresh."""
        self._peer_mismatch.clear()

    def panel(self, name: str, scale_name: str, ours: str, peers, **kw) -> None:
        self.panels.setdefault(name, Panel(name, scale_name, ours, tuple(peers), **kw))

    def note(self, text: str) -> None:
        self.notes.append(text)

    # -- reporting -----------------------------------------------------------------------
    def floor_ms(self, row: Row) -> Optional[float]:
        bps = row.copy_bps or self.copy_bps
        return None if not row.bytes_moved else row.bytes_moved / bps * 1e3

    def clone_bps(self, t: torch.Tensor) -> float:
        """Copy bandwidth of ``t.clone()`` (read + write, fastest run), measured now: the
        byte floor's rate at an op's own size (cache and page-fault effects included)."""
        sec = best_seconds(t.clone, self.device, reps=3 if self.quick else 7)
        return 2 * t.numel() * t.element_size() / sec

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
            floor = self.floor_ms(r)
            d.update(gbps=r.gbps, throughput=r.throughput, floor_ms=floor,
                     frac_floor=None if floor is None else floor / r.median_ms,
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
            "panels": [dataclasses.asdict(p) for p in self.panels.values()],
        }

    def table(self) -> str:
        head = (f"{'op':<16}{'case':<30}{'dtype':<9}{'impl':<20}{'dir':<8}{'ms':>10}"
                f"{'floor MB':>9}{'floor ms':>9}{'%floor':>7}{'mismatch':>16}"
                "  speedup vs peers")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            floor = self.floor_ms(r)
            mb = "" if not r.bytes_moved else f"{r.bytes_moved / 1e6:9.1f}"
            fms = "" if floor is None else f"{floor:9.3f}"
            frac = "" if floor is None else f"{100 * floor / r.median_ms:6.0f}%"
            mism = "" if r.mismatches is None else f"{r.mismatches}/{r.compared}"
            ratios = ", ".join(f"{k} {v:.2f}x" for k, v in self.ratios(r).items()
                               if not is_ours(r.impl) or not is_ours(k) or k == "reference")
            lines.append(f"{r.op:<16}{r.case:<30}{r.dtype:<9}{r.impl:<20}{r.direction:<8}"
                         f"{r.median_ms:10.3f}{mb:>9}{fms:>9}{frac:>7}{mism:>16}  {ratios}")
        lines.append(f"copy bandwidth {self.copy_bps / 1e9:.1f} GB/s, matmul "
                     f"{self.matmul_flops / 1e9:.0f} GFLOP/s on {self.device_name()}; "
                     "mismatch: a peer's elements that differ from the reference / compared")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def write_results(suite: Suite, out_dir: str, partial: bool = False) -> str:
    """Write the suite's JSON; a ``partial`` run (``--only``) replaces only its own ops'
    rows, panels and notes in an existing file, keeping the other ops' results."""
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
        names = {p["name"] for p in result["panels"]}
        result["panels"] = [p for p in old.get("panels", [])
                            if p["name"] not in names] + result["panels"]
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    return path
