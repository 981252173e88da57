"""Run the benchmark suite: ``python bench/run.py [--quick] [--only mt_lif,...] [--device cuda]``.

Discovers every ``bench/bench_<op>.py``, runs its ``run(suite)`` (each configuration is
verified against the reference before it is timed), prints one table and writes
``bench/results/<host>-<device>.json`` plus a PNG: one panel per op (time against T, batch
or events, ours and the headline peers, the byte floor) and the headline speedups.

Exit status 1 when a benchmark raised, which includes any result of ours that differs from
the reference; a peer's disagreements are counted in its rows instead. ``--quick`` (small
shapes, few repetitions, about a minute or two on two cores; ``make bench-quick``) writes to
``build/bench-quick`` unless ``--out`` is given, so it never replaces the recorded results.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
import traceback

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from harness import Suite, write_results  # noqa: E402
from plot import plot_results  # noqa: E402


def discover() -> list[str]:
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([HERE])
                  if m.name.startswith("bench_"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small shapes, few repetitions")
    parser.add_argument("--only", default="", help="comma-separated op names")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=None,
                        help="results folder (default bench/results; build/bench-quick with "
                             "--quick)")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = os.path.join(HERE, "..", "build", "bench-quick") if args.quick else \
            os.path.join(HERE, "results")
    device = torch.device(args.device)
    suite = Suite(device, quick=args.quick)
    names = [n for n in discover() if not args.only or n in args.only.split(",")]
    failed = []
    for name in names:
        print(f"== bench_{name} on {device}", flush=True)
        try:
            importlib.import_module(f"bench_{name}").run(suite)
        except Exception:  # one broken bench must not hide the others' results
            traceback.print_exc()
            failed.append(name)
    print(suite.table())
    path = write_results(suite, args.out, partial=bool(args.only))
    print(f"results: {path}")
    with open(path) as f:
        png = plot_results(json.load(f), path[:-len(".json")] + ".png")
    if png:
        print(f"plot: {png}")
    if failed:
        print(f"FAILED benchmarks: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
