"""The training CLI's options: the parser, run names and the per-model constructor options.

Extending: ``ARGUMENT_HOOKS`` add command-line options, ``MODEL_OPTIONS[name]`` maps the
arguments to model ``name``'s constructor options, ``CALLBACKS[name]`` builds callbacks
for a run (``fastsnn.train`` re-exports all three; ``fastsnn.albsnn.training`` fills them).
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Callable, Sequence
from typing import Any, Optional

from torch import nn

from ._cli import Parser, UsageError, fail

PROG = "python -m fastsnn.train"
ArgumentHook = Callable[[argparse.ArgumentParser], None]
ARGUMENT_HOOKS: list[ArgumentHook] = []
MODEL_OPTIONS: dict[str, Callable[[argparse.Namespace], dict]] = {}
CALLBACKS: dict[str, Callable[[argparse.Namespace, nn.Module], list]] = {}



def build_parser() -> argparse.ArgumentParser:
    from . import models
    from ._backends import BACKENDS
    from .data import DATASETS

    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0],
               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="mtsnn", choices=models.names(),
                   help="registered network (fastsnn.models)")
    p.add_argument("--dataset", default="digits", choices=sorted(DATASETS),
                   help="dataset (fastsnn.data.DATASETS; digits and digit-saccades are "
                        "built in, the others read local files under --data-root)")
    p.add_argument("--data-root", default="data", help="directory holding file datasets")
    p.add_argument("--T", type=int, default=2, help="time steps")
    p.add_argument("--levels", type=int, default=3, help="thresholds per neuron (K)")
    p.add_argument("--surrogate", default="rect", choices=("rect", "triangle", "sigmoid"),
                   help="surrogate derivative of the spike")
    p.add_argument("--reset", default="hard", choices=("hard", "soft", "none"),
                   help="membrane reset after a spike")
    p.add_argument("--threshold", type=float, default=1.0, help="firing threshold")
    p.add_argument("--decay", type=float, default=0.5, help="membrane decay (mtsnn)")
    p.add_argument("--dropout", type=float, default=None, help="default: the config's")
    p.add_argument("--no-synaptic", action="store_true",
                   help="stcnet: first block without the synaptic current")
    p.add_argument("--temporal", default="filter", choices=("filter", "conv"),
                   help="stcnet: synaptic filter of the first block")
    p.add_argument("--split-by", default="number", choices=("number", "time"),
                   help="event data: how events_to_current splits a stream into T steps")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="extra constructor option for the model (Python literal value)")
    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help="force the ops' backend (default: the fastest available)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs")
    p.add_argument("--batch-size", type=int, default=64, help="global batch size")
    p.add_argument("--optimizer", default="adam", choices=("adam", "sgd"), help="optimiser")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    p.add_argument("--momentum", type=float, default=0.9, help="sgd")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay")
    p.add_argument("--scheduler", default="cosine", choices=("cosine", "none"),
                   help="learning-rate schedule over the epochs")
    p.add_argument("--loss", default="ce", choices=("ce", "mse"),
                   help="cross-entropy, or MSE to the one-hot label, on T-averaged logits")
    p.add_argument("--seed", type=int, default=0, help="random seed (init and data order)")
    p.add_argument("--out", default="runs", help="directory for the JSON and checkpoint")
    p.add_argument("--name", default=None, help="run name (default: from the options)")
    p.add_argument("--tag", default=None, help="appended to the default run name")
    p.add_argument("--resume", action="store_true", help="continue from <out>/<name>.pt")
    p.add_argument("--stop-after", type=int, default=None,
                   help="stop after this many epochs in this invocation (resume later)")
    p.add_argument("--max-steps", type=int, default=None, help="batches per epoch cap")
    p.add_argument("--train-samples", type=int, default=None, help="use the first N only")
    p.add_argument("--test-samples", type=int, default=None, help="use the first N only")
    p.add_argument("--energy-samples", type=int, default=256,
                   help="test samples used for the energy and spike-rate measurement")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto: cuda when available")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: min(cores, 4), printed)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.add_argument("--plot", action="store_true",
                   help="write <out>/<name>.png: loss and accuracy per epoch")
    for hook in ARGUMENT_HOOKS:
        hook(p)
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.T < 1 or args.epochs < 1 or args.batch_size < 1:
        fail(PROG, "--T, --epochs and --batch-size must be >= 1")
    return args


def run_name(args: argparse.Namespace) -> str:
    if args.name:
        return args.name
    parts = [args.model, args.dataset, f"T{args.T}", f"L{args.levels}", args.surrogate]
    if args.no_synaptic:
        parts.append("nosyn")
    if args.tag:
        parts.append(args.tag)
    return "_".join(parts + [f"s{args.seed}"])


def _literal_options(items: Sequence[str]) -> dict[str, Any]:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--model-option expects KEY=VALUE, got {item!r}")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return options


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor options of ``args.model`` from the arguments (``MODEL_OPTIONS``)."""
    per_model = MODEL_OPTIONS.get(args.model, lambda a: {"T": a.T, "levels": a.levels})
    return {**per_model(args), **_literal_options(args.model_option)}


def neuron_options(a: argparse.Namespace) -> dict[str, Any]:
    """Options every ``MultiThresholdLIF``-based network takes."""
    options = dict(levels=a.levels, surrogate=a.surrogate, reset=a.reset,
                   threshold=a.threshold, backend=a.backend)
    return options if a.dropout is None else {**options, "dropout": a.dropout}


MODEL_OPTIONS["mtsnn"] = lambda a: {**neuron_options(a), "T": a.T, "decay": a.decay}
MODEL_OPTIONS["stcnet"] = lambda a: {**neuron_options(a), "synaptic": not a.no_synaptic,
                                     "temporal": a.temporal}
MODEL_OPTIONS["stcsnn"] = lambda a: {"T": a.T, "levels": a.levels, "threshold": a.threshold,
                                     "backend": a.backend,
                                     **({} if a.dropout is None else {"dropout": a.dropout})}
