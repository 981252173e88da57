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
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from ._cli import UsageError, check_backend, check_device, fail, set_threads
from ._distributed import Distributed, all_sum, setup_distributed, sync_buffers
from .checkpoint import save_checkpoint
from .train_options import (  # noqa: F401  (re-exported: the extension points live here)
    ARGUMENT_HOOKS,
    CALLBACKS,
    MODEL_OPTIONS,
    PROG,
    build_parser,
    model_options,
    neuron_options,
    parse_args,
    run_name,
)

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
        raise UsageError(f"--batch-size {args.batch_size} is smaller than the process count")
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
    loss_sum, correct, seen = all_sum([loss_sum, correct, seen], dist)
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
    loss_sum, correct, seen = all_sum([loss_sum, correct, seen], dist)
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
            raise UsageError(f"--resume: checkpoint {path} has {key}="
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
    check_device(args.device)
    check_backend(args.backend, args.device)
    if args.plot:
        from .plots import require_matplotlib

        require_matplotlib()
    threads = set_threads(args.threads, int(os.environ.get("WORLD_SIZE", "1")))
    dist = setup_distributed(args.device)
    if dist.main:
        tqdm.write(threads)
    seed_everything(args.seed)
    train_set, test_set, info = make_datasets(args)
    core = build_model(args).to(dist.device)
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


def build_model(args: argparse.Namespace) -> nn.Module:
    """The network the arguments describe; bad ``--model-option`` values are a UsageError."""
    from . import models

    try:
        return models.build(args.model, args.dataset, **model_options(args))
    except (TypeError, ValueError) as exc:  # an option the constructor rejects
        raise UsageError(f"cannot build {args.model} for {args.dataset}: {exc}") from None


def measure_energy(core: nn.Module, test_set: Dataset, samples: int, device: torch.device):
    """``fastsnn.energy.count_ops`` on the first ``samples`` test samples."""
    from .energy import count_ops

    n = min(samples, len(test_set))
    batch = torch.stack([test_set[i][0] for i in range(n)])
    return count_ops(core, _to_input(batch, core, device))


def _epoch_line(m: dict, epochs: int) -> str:
    return (f"epoch {m['epoch']}/{epochs}  loss {m['train_loss']:.4f}  "
            f"train {m['train_accuracy']:.4f}  test {m['test_accuracy']:.4f}  "
            f"({m['seconds']:.2f} s)")


def _finish(args, core, test_set, history, dist, info, name, callbacks, complete) -> dict:
    from . import __version__

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
        report = measure_energy(core, test_set, args.energy_samples, dist.device)
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
        if args.plot and history:
            from .plots import plot_history

            plot_history(history, Path(args.out, f"{name}.png"), title=name)
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
    except (DatasetFilesMissing, UsageError, ImportError) as exc:  # one line, no traceback
        fail(PROG, str(exc))
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()
    return result


from .albsnn import training as _albsnn_training  # noqa: E402  (registers its CLI options)

_albsnn_training.install(sys.modules[__name__])

if __name__ == "__main__":
    main()
