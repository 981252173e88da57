"""ALBSNN against the same network in full precision on the digits, T=1, over seeds.

    python tools/experiments_albsnn.py [--seeds 0 1 2] [--epochs 30] [--out runs/albsnn]

Each run is one ``python -m fastsnn.train`` process (the commands are printed); the table
gives test accuracy (mean ± std over seeds), the storage saving and the binarised layers.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path


def run(cmd: list[str]) -> dict:
    print("$", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    out = Path(cmd[cmd.index("--out") + 1])
    name = cmd[cmd.index("--name") + 1]
    return json.loads((out / f"{name}.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--out", default="runs/albsnn")
    p.add_argument("--extra", default="", help="more train options, one string")
    a = p.parse_args()
    rows = {}
    for variant, flags in (("ALBSNN", []), ("full precision", ["--full-precision"])):
        results = []
        for seed in a.seeds:
            name = f"albsnn-digits-{'fp' if flags else 'bin'}-s{seed}"
            cmd = [sys.executable, "-m", "fastsnn.train", "--model", "albsnn", "--dataset",
                   "digits", "--T", "1", "--levels", "1", "--epochs", str(a.epochs),
                   "--seed", str(seed), "--out", a.out, "--name", name, "--no-progress",
                   *flags, *shlex.split(a.extra)]
            results.append(run(cmd))
        rows[variant] = results
    print(f"\n| network | test accuracy (mean ± std, {len(a.seeds)} seeds) | storage saving "
          f"| binarised |")
    print("|---|---|---|---|")
    for variant, results in rows.items():
        acc = [100 * r["test_accuracy"] for r in results]
        spread = statistics.stdev(acc) if len(acc) > 1 else 0.0
        saving = statistics.mean(r["storage_saving"] for r in results)
        binarised = sorted({layer["name"] for r in results
                            for layer in r["storage_report"]["layers"] if layer["binarized"]})
        print(f"| {variant} | {statistics.mean(acc):.2f} ± {spread:.2f} "
              f"({', '.join(f'{x:.2f}' for x in acc)}) | {100 * saving:.1f} % | "
              f"{', '.join(binarised) or '-'} |")


if __name__ == "__main__":
    main()
