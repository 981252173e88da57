"""Checkpoints of ``python -m fastsnn.train``: writing them safely and loading a model back.

A checkpoint is the dict ``torch.save`` wrote after an epoch: ``epoch``, ``args`` (every
command-line option of the run), ``model`` (the state dict), ``optimizer``, ``scheduler``,
``rng``, ``history`` (per-epoch metrics) and ``callbacks`` (the state of the model's
training callbacks, e.g. which ALBSNN layers are binarised).

``from_checkpoint(path)`` rebuilds the network from the saved options and loads its
weights, in eval mode::

    model, ckpt = fastsnn.from_checkpoint("runs/mtsnn_digits_T2_L3_rect_s0.pt")
    logits = model(images)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

PathLike = Union[str, os.PathLike]


def save_checkpoint(path: Path, state: dict) -> None:
    """``torch.save(state, path)`` through a temporary file: a crash mid-write never
    leaves a truncated checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: PathLike, device: Union[str, torch.device] = "cpu") -> dict:
    """The checkpoint dict at ``path``; ``FileNotFoundError``/``ValueError`` say what is
    wrong with a path that is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # pickle, zip and torch errors alike: not a checkpoint
        raise ValueError(f"{path} is not a readable torch checkpoint ({exc})") from None
    if not isinstance(state, dict) or not {"args", "model"} <= set(state):
        raise ValueError(f"{path} is not a fastsnn.train checkpoint (no 'args'/'model')")
    return state


def checkpoint_args(state: dict) -> argparse.Namespace:
    """The run's options: the training CLI's defaults overridden by the saved ones (so a
    checkpoint written before an option existed still loads)."""
    from . import train

    args = train.build_parser().parse_args([])
    for key, value in state["args"].items():
        setattr(args, key, value)
    return args


def from_checkpoint(path: PathLike, device: Union[str, torch.device] = "cpu",
                    backend: Union[str, None] = None) -> tuple[nn.Module, dict[str, Any]]:
    """``(model, checkpoint)``: the network a training run saved at ``path``, weights
    loaded, in eval mode on ``device``. ``backend`` overrides the run's ops backend (e.g.
    "reference" for export). The checkpoint dict carries the options (``["args"]``) and
    the per-epoch ``["history"]``."""
    from . import models, train

    state = load_checkpoint(path, device)
    args = checkpoint_args(state)
    if backend is not None:
        args.backend = backend
    model = models.build(args.model, args.dataset, **train.model_options(args))
    # callbacks restore structure the weights refer to (binarised layers, BWO gains)
    callbacks = train.CALLBACKS[args.model](args, model) if args.model in train.CALLBACKS \
        else []
    for cb, cb_state in zip(callbacks, state.get("callbacks") or []):
        if cb_state is not None and hasattr(cb, "load_state_dict"):
            cb.load_state_dict(cb_state)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state
