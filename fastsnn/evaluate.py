"""``python -m fastsnn.evaluate CHECKPOINT``: test accuracy and energy of a trained network.

    python -m fastsnn.evaluate runs/mtsnn_digits_T2_L3_rect_s0.pt --json eval.json

Rebuilds the network from the checkpoint's options (``fastsnn.from_checkpoint``), runs it
in eval mode on the test split of its dataset, and reports the test accuracy and loss,
the spike rate and the energy estimate (``fastsnn.energy``). ``--json PATH`` writes the
result as JSON (``-``: to stdout, the text report then goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import torch
from torch.utils.data import DataLoader, Subset

from ._cli import Parser, UsageError, check_backend, check_device, fail, set_threads

PROG = "python -m fastsnn.evaluate"


def build_parser() -> argparse.ArgumentParser:
    from ._backends import BACKENDS

    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0],
               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", help="a .pt file written by python -m fastsnn.train")
    p.add_argument("--data-root", default=None,
                   help="directory holding file datasets (default: the training run's)")
    p.add_argument("--batch-size", type=int, default=256, help="test batch size")
    p.add_argument("--test-samples", type=int, default=None,
                   help="use the first N test samples only (default: all)")
    p.add_argument("--energy-samples", type=int, default=256,
                   help="test samples used for the energy and spike-rate measurement")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"),
                   help="auto: cuda when available")
    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help="force the ops' backend (default: the fastest available)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: min(cores, 4), printed)")
    p.add_argument("--json", default=None, metavar="PATH",
                   help="write the result as JSON to PATH ('-': stdout)")
    return p


def evaluate_checkpoint(path, *, device="cpu", backend: Optional[str] = None,
                        data_root: Optional[str] = None, batch_size: int = 256,
                        test_samples: Optional[int] = None,
                        energy_samples: int = 256) -> dict[str, Any]:
    """Test accuracy / loss, spike rate and energy of the checkpoint at ``path``."""
    from . import train
    from ._distributed import Distributed
    from .checkpoint import checkpoint_args, from_checkpoint

    dev = torch.device(device)
    model, state = from_checkpoint(path, device=dev, backend=backend)
    args = checkpoint_args(state)
    args.backend = backend if backend is not None else args.backend
    if data_root is not None:
        args.data_root = data_root
    args.test_samples, args.train_samples = test_samples, None
    _, test_set, _ = train.make_datasets(args)
    if test_samples:
        test_set = Subset(test_set, range(min(test_samples, len(test_set))))
    loader = DataLoader(test_set, batch_size=batch_size, shuffle=False)
    metrics = train.evaluate(model, loader, args, Distributed(0, 1, dev))
    report = train.measure_energy(model, test_set, energy_samples, dev)
    return {"checkpoint": str(path), "model": args.model, "dataset": args.dataset, "T": args.T,
            "levels": args.levels, "epochs_trained": state.get("epoch"),
            "test_samples": len(test_set), **metrics,
            "spike_rate": report.spike_rate,
            "spikes_per_neuron": report.spike_rate * args.T,
            "energy_ratio": report.ratio, "energy": report.to_dict(),
            "device": str(dev), "energy_table": report.table()}


def summary_line(r: dict) -> str:
    e = r["energy"]
    return (f"{r['model']}/{r['dataset']} T={r['T']}: test accuracy "
            f"{r['test_accuracy']:.4f} ({100 * r['test_accuracy']:.2f} %) on "
            f"{r['test_samples']} samples | loss {r['test_loss']:.4f} | spikes/neuron/step "
            f"{r['spike_rate']:.4f} | energy/sample SNN {e['energy_snn_pj'] / 1e6:.4g} uJ, "
            f"ANN {e['energy_ann_pj'] / 1e6:.4g} uJ")


def main(argv: Optional[Sequence[str]] = None) -> dict:
    from .data import DatasetFilesMissing

    args = build_parser().parse_args(argv)
    text = sys.stderr if args.json == "-" else sys.stdout
    try:
        check_device(args.device)
        check_backend(args.backend, args.device)
        print(set_threads(args.threads), file=text)
        device = "cuda" if args.device == "auto" and torch.cuda.is_available() else (
            "cpu" if args.device == "auto" else args.device)
        result = evaluate_checkpoint(args.checkpoint, device=device, backend=args.backend,
                                     data_root=args.data_root, batch_size=args.batch_size,
                                     test_samples=args.test_samples,
                                     energy_samples=args.energy_samples)
    except (FileNotFoundError, ValueError, UsageError, DatasetFilesMissing) as exc:
        fail(PROG, str(exc))
    print(result.pop("energy_table"), file=text)
    print(summary_line(result), file=text)
    if args.json == "-":
        print(json.dumps(result, indent=2, default=str))
    elif args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
