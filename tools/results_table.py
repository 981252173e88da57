"""Markdown summary of a benchmark JSON (bench/results/*.json) for the README.

    python tools/results_table.py bench/results/<host>-<device>.json

One line per fast-backend row: the case, its median time and its speedup against every
peer timed beside it in the same run.
"""

from __future__ import annotations

import json
import sys

BACKENDS = ("cpu", "triton", "cuda")


def main(path: str) -> None:
    data = json.load(open(path))
    print(f"{data['device']}, torch {data['torch']}, {data['threads']} threads, "
          f"{data['date']}; copy bandwidth {data['copy_bandwidth_GBps']:.1f} GB/s\n")
    print("| op | case | dtype | dir | backend | ms | % copy BW | speedup vs peers |")
    print("|---|---|---|---|---|---|---|---|")
    for r in data["rows"]:
        if r["impl"] not in BACKENDS:
            continue
        peers = ", ".join(f"{k} {v:.1f}x" for k, v in r["speedup_vs"].items()
                          if k not in BACKENDS)
        frac = "" if r["frac_copy_bw"] is None else f"{100 * r['frac_copy_bw']:.0f}"
        print(f"| {r['op']} | {r['case']} | {r['dtype']} | {r['direction']} | {r['impl']} "
              f"| {r['median_ms']:.2f} | {frac} | {peers} |")
    for note in data.get("notes", []):
        print(f"\n- {note}")


if __name__ == "__main__":
    main(sys.argv[1])
