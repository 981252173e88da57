"""Run the MTSNN digits grid and print a markdown table (mean ± std over seeds).

    python tools/experiments_digits.py                     # full grid, 30 epochs, 3 seeds
    python tools/experiments_digits.py --T 2 --levels 3 --surrogates rect   # one row
    python tools/experiments_digits.py --table-only        # table from existing JSONs
    python tools/experiments_digits.py --model stcnet --dataset digit-saccades --T 2 4 8 \
        --levels 3 --surrogates rect --synapse both         # STCNet with / without synapse

Each run is one ``python -m fastsnn.train`` process (its exact command is printed in the
table), so a run here is exactly what a user reproduces by hand. Runs whose JSON already
exists and is complete are not repeated. ``--jobs`` runs several at once (each with
``--threads`` torch threads; on a small machine keep jobs x threads <= cores).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mtsnn")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--T", type=int, nargs="+", default=[1, 2])
    p.add_argument("--levels", type=int, nargs="+", default=[1, 3])
    p.add_argument("--surrogates", nargs="+", default=["rect", "triangle", "sigmoid"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--out", default="runs/digits-grid")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--synapse", default="on", choices=("on", "off", "both"),
                   help="stcnet: first block with / without the synaptic current")
    p.add_argument("--table-only", action="store_true")
    p.add_argument("extra", nargs="*", help="more fastsnn.train options (after --)")
    return p.parse_args()


def command(a: argparse.Namespace, T: int, levels: int, surrogate: str, syn: bool,
            seed: int) -> list[str]:
    return ["python", "-m", "fastsnn.train", "--model", a.model, "--dataset", a.dataset,
            "--T", str(T), "--levels", str(levels), "--surrogate", surrogate,
            *([] if syn else ["--no-synaptic"]), "--epochs", str(a.epochs), "--seed",
            str(seed), "--out", a.out, "--threads", str(a.threads), "--no-progress", *a.extra]


def json_path(a: argparse.Namespace, T: int, levels: int, surrogate: str, syn: bool,
              seed: int) -> Path:
    tag = "" if syn else "_nosyn"
    return Path(a.out) / f"{a.model}_{a.dataset}_T{T}_L{levels}_{surrogate}{tag}_s{seed}.json"


def done(path: Path, epochs: int) -> bool:
    if not path.exists():
        return False
    r = json.loads(path.read_text())
    return bool(r.get("complete")) and r["args"]["epochs"] == epochs


def launch(cmd: list[str], log: Path) -> int:
    with open(log, "w") as f:
        return subprocess.run([sys.executable, *cmd[1:]], cwd=ROOT, stdout=f,
                              stderr=subprocess.STDOUT).returncode


def run_grid(a: argparse.Namespace, grid: list[tuple]) -> None:
    Path(a.out).mkdir(parents=True, exist_ok=True)
    todo = [cfg for cfg in grid if not done(json_path(a, *cfg), a.epochs)]
    print(f"{len(grid) - len(todo)} of {len(grid)} runs already done; running {len(todo)}",
          flush=True)

    def one(cfg):
        log = json_path(a, *cfg).with_suffix(".log")
        rc = launch(command(a, *cfg), log)
        print(f"{'ok ' if rc == 0 else 'FAILED'} {log.stem}", flush=True)

    with ThreadPoolExecutor(a.jobs) as pool:
        list(pool.map(one, todo))


def table(a: argparse.Namespace, grid: list[tuple]) -> str:
    syn_col = a.synapse != "on"
    rows = ["| T | levels | surrogate | " + ("synapse | " if syn_col else "")
            + "test accuracy % (mean ± std) | seeds | s/epoch | spikes/neuron | E_ANN/E_SNN "
            "| command (seed 0) |",
            "|---" * (9 + syn_col) + "|"]
    for T, levels, surrogate, syn in sorted({cfg[:4] for cfg in grid}):
        results = [json.loads(p.read_text()) for seed in a.seeds
                   if (p := json_path(a, T, levels, surrogate, syn, seed)).exists()]
        results = [r for r in results if r.get("complete")]
        if not results:
            continue
        acc = [100 * r["test_accuracy"] for r in results]
        spread = statistics.stdev(acc) if len(acc) > 1 else 0.0
        cmd = command(a, T, levels, surrogate, syn, a.seeds[0])
        rows.append(
            f"| {T} | {levels} | {surrogate} | " + (f"{'on' if syn else 'off'} | " if syn_col
                                                   else "")
            + f"{statistics.mean(acc):.2f} ± {spread:.2f} | "
            f"{', '.join(f'{x:.2f}' for x in acc)} | "
            f"{statistics.mean(r['epoch_seconds'] for r in results):.2f} | "
            f"{statistics.mean(r['spikes_per_neuron'] for r in results):.3f} | "
            f"{statistics.mean(r['energy_ratio'] for r in results):.2f} | "
            f"`{shlex.join(cmd)}` |")
    return "\n".join(rows)


def main() -> None:
    a = parse_args()
    synapse = {"on": [True], "off": [False], "both": [True, False]}[a.synapse]
    grid = list(itertools.product(a.T, a.levels, a.surrogates, synapse, a.seeds))
    if not a.table_only:
        run_grid(a, grid)
    print(table(a, grid))


if __name__ == "__main__":
    main()
