"""``python -m fastsnn.train``: train a paper network on a dataset, end to end.

    python -m fastsnn.train --model mtsnn --dataset digits --T 2 --epochs 30 --seed 0 \\
        --out runs/

Per epoch a tqdm bar and a summary line; at the end the energy table (``fastsnn.energy``)
and one line with test accuracy, time per epoch, spikes per neuron and the energy
estimate. ``--out`` receives ``<name>.json`` (the run: every argument, per-epoch history,
``test_accuracy`` as a fraction, ``epoch_seconds``, ``spike_rate``, ``energy_ratio``, the
energy report) and ``<name>.pt`` (a checkpoint after every epoch; ``--resume`` continues
from it bit for bit: model, optimizer, schedule, RNG state and history are restored, and
the data order of epoch e depends only on ``--seed`` and e).

Under ``torchrun --nproc_per_node=K`` it trains with DistributedDataParallel (gloo on CPU,
nccl on GPU): ``--batch-size`` stays the global batch (each process takes 1/K of it),
each process draws its share with a DistributedSampler, the test set is split across
processes and the counts are summed; only rank 0 prints and writes files.

Extending (ALBSNN and others): ``ARGUMENT_HOOKS`` add command-line options,
``MODEL_OPTIONS[name]`` maps the arguments to the model's constructor options, and
``CALLBACKS[name]`` builds callbacks for a run. A callback may define any of
``on_train_begin(model, optimizer)``, ``on_after_backward(step, model)`` (between
``backward`` and the optimiser step), ``on_batch_end(step, model, loss)``,
``on_epoch_end(epoch, model, metrics)``,
``on_train_end(model, result)`` (add keys to the run's JSON) and
``state_dict()`` / ``load_state_dict(state)`` (saved in checkpoints).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

ArgumentHook = Callable[[argparse.ArgumentParser], None]
ARGUMENT_HOOKS: list[ArgumentHook] = []
MODEL_OPTIONS: dict[str, Callable[[argparse.Namespace], dict]] = {}
CALLBACKS: dict[str, Callable[[argparse.Namespace, nn.Module], list]] = {}


# ------------------------------------------------------------------------------ arguments

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fastsnn.train", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="mtsnn", help="registered network (fastsnn.models)")
    p.add_argument("--dataset", default="digits", help="dataset name (fastsnn.data.DATASETS)")
    p.add_argument("--data-root", default="data", help="directory holding file datasets")
    p.add_argument("--T", type=int, default=2, help="time steps")
    p.add_argument("--levels", type=int, default=3, help="thresholds per neuron (K)")
    p.add_argument("--surrogate", default="rect", choices=("rect", "triangle", "sigmoid"))
    p.add_argument("--reset", default="hard", choices=("hard", "soft", "none"))
    p.add_argument("--threshold", type=float, default=1.0)
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
    p.add_argument("--backend", default=None, help="force the ops' backend")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64, help="global batch size")
    p.add_argument("--optimizer", default="adam", choices=("adam", "sgd"))
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--momentum", type=float, default=0.9, help="sgd")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--scheduler", default="cosine", choices=("cosine", "none"))
    p.add_argument("--loss", default="ce", choices=("ce", "mse"),
                   help="cross-entropy, or MSE to the one-hot label, on T-averaged logits")
    p.add_argument("--seed", type=int, default=0)
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
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    for hook in ARGUMENT_HOOKS:
        hook(p)
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.T < 1 or args.epochs < 1 or args.batch_size < 1:
        raise SystemExit("--T, --epochs and --batch-size must be >= 1")
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
            raise SystemExit(f"--model-option expects KEY=VALUE, got {item!r}")
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


# -------------------------------------------------------------------------- distribution

@dataclass
class Distributed:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Distributed:
    """Join the torchrun process group when launched by torchrun, else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if use_cuda else "gloo")
    return Distributed(rank, world, dev)


def sync_buffers(core: nn.Module, dist: Distributed) -> None:
    """Average floating buffers (batch-norm running statistics) over the processes.

    DDP copies rank 0's buffers at the start of every forward, so after the last step each
    process holds its own update; averaging makes evaluation and checkpoints agree.
    """
    if dist.world == 1:
        return
    for buf in core.buffers():
        if buf.is_floating_point():
            torch_dist.all_reduce(buf)
            buf /= dist.world
        else:
            torch_dist.broadcast(buf, 0)


def _all_sum(values: list[float], dist: Distributed) -> list[float]:
    if dist.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=dist.device)
    torch_dist.all_reduce(t)
    return t.tolist()


# ---------------------------------------------------------------------------------- data

def make_datasets(args: argparse.Namespace) -> tuple[Dataset, Dataset, Any]:
    from .data import EventCurrents, dataset_info, load

    info = dataset_info(args.dataset)
    train = load(args.dataset, True, args.data_root, seed=args.seed)
    test = load(args.dataset, False, args.data_root, seed=args.seed)
    if args.train_samples:
        train = Subset(train, range(min(args.train_samples, len(train))))
    if args.test_samples:
        test = Subset(test, range(min(args.test_samples, len(test))))
    if info.events:
        cache = args.dataset == "digit-saccades"  # small and built in: convert once
        train, test = (EventCurrents(d, info.sensor_size, args.T, cache=cache,
                                     split_by=args.split_by) for d in (train, test))
    return train, test, info


def make_loaders(args, dist: Distributed, train: Dataset, test: Dataset):
    per_rank = args.batch_size // dist.world
    if per_rank < 1:
        raise SystemExit(f"--batch-size {args.batch_size} is smaller than the process count")
    # The sampler fixes epoch e's order from (seed, e) alone, so resuming repeats it.
    sampler = DistributedSampler(train, num_replicas=dist.world, rank=dist.rank,
                                 shuffle=True, seed=args.seed)
    train_loader = DataLoader(train, batch_size=per_rank, sampler=sampler,
                              num_workers=args.workers)
    shard = Subset(test, range(dist.rank, len(test), dist.world))  # no padding duplicates
    test_loader = DataLoader(shard, batch_size=max(per_rank, 64), shuffle=False,
                             num_workers=args.workers)
    return train_loader, sampler, test_loader


def _to_input(x: torch.Tensor, model: nn.Module, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if getattr(model, "input_time_major", False):
        x = x.transpose(0, 1)  # [N, T, ...] from the collate -> [T, N, ...]
    return x


# ----------------------------------------------------------------------------- training

def _loss(logits: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "mse":
        return F.mse_loss(logits, F.one_hot(y, logits.shape[-1]).to(logits.dtype))
    return F.cross_entropy(logits, y)


def train_epoch(model, core, loader, optimizer, args, dist, callbacks, epoch) -> dict:
    model.train()
    loss_sum = correct = seen = 0.0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", leave=False,
               disable=args.no_progress or not dist.main, dynamic_ncols=True)
    for step, (x, y) in enumerate(bar):
        if args.max_steps is not None and step >= args.max_steps:
            break
        x, y = _to_input(x, core, dist.device), y.to(dist.device)
        logits = model(x)
        loss = _loss(logits, y, args.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for cb in callbacks:
            if hasattr(cb, "on_after_backward"):
                cb.on_after_backward(step, core)
        optimizer.step()
        loss_sum += float(loss.detach()) * len(y)
        correct += float((logits.argmax(-1) == y).sum())
        seen += len(y)
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
        for cb in callbacks:
            if hasattr(cb, "on_batch_end"):
                cb.on_batch_end(step, core, float(loss.detach()))
    bar.close()
    loss_sum, correct, seen = _all_sum([loss_sum, correct, seen], dist)
    return {"train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1)}


@torch.no_grad()
def evaluate(core: nn.Module, loader, args, dist: Distributed) -> dict:
    core.eval()
    loss_sum = correct = seen = 0.0
    for x, y in loader:
        x, y = _to_input(x, core, dist.device), y.to(dist.device)
        logits = core(x)
        loss_sum += float(_loss(logits, y, args.loss)) * len(y)
        correct += float((logits.argmax(-1) == y).sum())
        seen += len(y)
    loss_sum, correct, seen = _all_sum([loss_sum, correct, seen], dist)
    return {"test_loss": loss_sum / max(seen, 1), "test_accuracy": correct / max(seen, 1)}


def make_optimizer(args, model: nn.Module):
    params = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=args.lr, momentum=args.momentum,
                              weight_decay=args.weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
             if args.scheduler == "cosine" else None)
    return opt, sched


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- checkpoints

def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a truncated checkpoint


def _checkpoint_state(args, core, opt, sched, epoch, history, callbacks) -> dict:
    return {"epoch": epoch, "args": vars(args), "model": core.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched is not None else None,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "history": history,
            "callbacks": [cb.state_dict() if hasattr(cb, "state_dict") else None
                          for cb in callbacks]}


def _restore(path: Path, args, core, opt, sched, callbacks, device) -> tuple[int, list]:
    state = torch.load(path, map_location=device, weights_only=False)
    for key in ("model", "dataset", "T", "levels"):
        if state["args"].get(key) != getattr(args, key):
            raise SystemExit(f"--resume: checkpoint {path} has {key}="
                             f"{state['args'].get(key)!r}, this run {getattr(args, key)!r}")
    # callbacks first: they restore structure (binarised layers, BWO's extra parameters
    # and optimiser groups) that the model and optimiser states refer to
    for cb, cb_state in zip(callbacks, state["callbacks"]):
        if cb_state is not None and hasattr(cb, "load_state_dict"):
            cb.load_state_dict(cb_state)
    core.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    if sched is not None and state["scheduler"] is not None:
        sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"].cpu())
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
    return state["epoch"], state["history"]


# ---------------------------------------------------------------------------------- run

def run(args: argparse.Namespace, callbacks: Sequence = ()) -> tuple[dict, nn.Module]:
    """Train and evaluate as the command line does; ``(result, trained model)``.

    Every process returns the result; only rank 0 prints and writes files.
    """
    from . import models

    if args.threads:
        torch.set_num_threads(args.threads)
    dist = setup_distributed(args.device)
    seed_everything(args.seed)
    train_set, test_set, info = make_datasets(args)
    core = models.build(args.model, args.dataset, **model_options(args)).to(dist.device)
    callbacks = list(callbacks) + (CALLBACKS[args.model](args, core)
                                   if args.model in CALLBACKS else [])
    model = core
    if dist.world > 1:
        model = nn.parallel.DistributedDataParallel(
            core, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    opt, sched = make_optimizer(args, core)
    for cb in callbacks:
        if hasattr(cb, "on_train_begin"):
            cb.on_train_begin(core, opt)
    train_loader, sampler, test_loader = make_loaders(args, dist, train_set, test_set)
    out = Path(args.out)
    name = run_name(args)
    ckpt = out / f"{name}.pt"
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
    start, history = 0, []
    if args.resume and ckpt.exists():
        start, history = _restore(ckpt, args, core, opt, sched, callbacks, dist.device)
        if dist.main:
            tqdm.write(f"resumed {ckpt} after epoch {start}")
    stop = args.epochs if args.stop_after is None else min(args.epochs,
                                                            start + args.stop_after)
    for epoch in range(start, stop):
        sampler.set_epoch(epoch)
        began = time.perf_counter()
        metrics = train_epoch(model, core, train_loader, opt, args, dist, callbacks, epoch)
        seconds = time.perf_counter() - began
        sync_buffers(core, dist)
        if sched is not None:
            sched.step()
        metrics.update(evaluate(core, test_loader, args, dist))
        metrics.update(epoch=epoch + 1, seconds=seconds, lr=opt.param_groups[0]["lr"])
        history.append(metrics)
        for cb in callbacks:
            if hasattr(cb, "on_epoch_end"):
                cb.on_epoch_end(epoch, core, metrics)
        if dist.main:
            tqdm.write(_epoch_line(metrics, args.epochs))
            save_checkpoint(ckpt, _checkpoint_state(args, core, opt, sched, epoch + 1,
                                                    history, callbacks))
    result = _finish(args, core, test_set, history, dist, info, name, callbacks,
                     complete=stop == args.epochs)
    if dist.world > 1:
        torch_dist.barrier()
    return result, core


def _epoch_line(m: dict, epochs: int) -> str:
    return (f"epoch {m['epoch']}/{epochs}  loss {m['train_loss']:.4f}  "
            f"train {m['train_accuracy']:.4f}  test {m['test_accuracy']:.4f}  "
            f"({m['seconds']:.2f} s)")


def _finish(args, core, test_set, history, dist, info, name, callbacks, complete) -> dict:
    from . import __version__
    from .energy import count_ops

    last = history[-1] if history else {}
    result: dict[str, Any] = {
        "model": args.model, "dataset": args.dataset, "T": args.T, "seed": args.seed,
        "levels": args.levels, "surrogate": args.surrogate,
        "test_accuracy": last.get("test_accuracy"), "epochs_done": len(history),
        "complete": complete,
        "epoch_seconds": (float(np.mean([h["seconds"] for h in history]))
                          if history else None),
        "history": history, "world_size": dist.world, "device": str(dist.device),
        "parameters": sum(p.numel() for p in core.parameters()),
        "fastsnn": __version__, "torch": torch.__version__, "python": platform.python_version(),
        "args": vars(args),
    }
    if dist.main:
        n = min(args.energy_samples, len(test_set))
        batch = torch.stack([test_set[i][0] for i in range(n)])
        report = count_ops(core, _to_input(batch, core, dist.device))
        result.update(spike_rate=report.spike_rate,
                      spikes_per_neuron=report.spike_rate * args.T,
                      energy_ratio=report.ratio, energy=report.to_dict())
        saved = _saved_bytes(core, test_set, args.batch_size // dist.world, dist.device)
        result["saved_bytes"] = saved.as_dict()
    for cb in callbacks:
        if hasattr(cb, "on_train_end"):
            cb.on_train_end(core, result)
    if dist.main:
        Path(args.out, f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
        print(report.table())
        print(f"saved for backward, one training step of {args.batch_size // dist.world}:")
        print(saved)
        print(final_line(result))
    return result


def _saved_bytes(core: nn.Module, data: Dataset, batch: int, device: torch.device):
    """``fastsnn.memory.saved_bytes`` of one training step on ``batch`` samples (no lasting
    effect on the model)."""
    from .memory import saved_bytes

    x = torch.stack([data[i][0] for i in range(min(batch, len(data)))])
    was_training = core.training
    core.train()
    try:
        return saved_bytes(core, _to_input(x, core, device))
    finally:
        core.train(was_training)


def final_line(r: dict) -> str:
    acc = r["test_accuracy"]
    acc_text = "n/a" if acc is None else f"{acc:.4f} ({100 * acc:.2f} %)"
    epoch_text = "n/a" if r["epoch_seconds"] is None else f"{r['epoch_seconds']:.2f} s/epoch"
    e = r["energy"]
    return (f"{r['model']}/{r['dataset']} T={r['T']} seed={r['seed']}: test accuracy "
            f"{acc_text} | {epoch_text} | spikes/neuron {r['spikes_per_neuron']:.4f} over "
            f"T={r['T']} ({r['spike_rate']:.4f} per step) | energy/sample SNN "
            f"{e['energy_snn_pj'] / 1e6:.4g} uJ, ANN {e['energy_ann_pj'] / 1e6:.4g} uJ, "
            f"ANN/SNN {_ratio(r['energy_ratio'])}")


def _ratio(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.2f}x"


def main(argv: Optional[Sequence[str]] = None) -> dict:
    from .data import DatasetFilesMissing

    args = parse_args(argv)
    try:
        result, _ = run(args)
    except DatasetFilesMissing as missing:  # a clear message, not a traceback
        raise SystemExit(f"error: {missing}") from None
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()
    return result


from .albsnn import training as _albsnn_training  # noqa: E402  (registers its CLI options)

_albsnn_training.install(sys.modules[__name__])

if __name__ == "__main__":
    main()
