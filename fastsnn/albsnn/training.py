"""ALBSNN in the training CLI: ``python -m fastsnn.train --model albsnn ...``.

Options: ``--full-precision`` (the baseline: nothing is binarised), ``--est-metric``
(weight | output), ``--est-every``, ``--est-threshold``, ``--storage-target``,
``--bwo`` (none | alpha | flip), ``--bwo-patience``, ``--flip-threshold``. The run's JSON
gets ``storage_saving``, the per-layer ``storage_report`` and the selection history.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from .bwo import BinaryWeightOptimizer
from .estimator import AccuracyLossEstimator
from .layers import binary_layers
from .selection import LayerSelector
from .storage import storage_report


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("albsnn (--model albsnn)")
    g.add_argument("--full-precision", action="store_true",
                   help="train the ALBSNN network without binarising any layer")
    g.add_argument("--est-metric", default="weight", choices=("weight", "output"),
                   help="accuracy loss estimator: E1 (weight error) or E2 (output error)")
    g.add_argument("--est-every", type=int, default=50, help="iterations between estimates")
    g.add_argument("--est-threshold", type=float, default=None,
                   help="binarise layers whose estimated loss is under this")
    g.add_argument("--storage-target", type=float, default=0.25,
                   help="binarise until this fraction of weight storage is saved")
    g.add_argument("--select-from", type=int, default=1,
                   help="first epoch end at which layers may be binarised")
    g.add_argument("--bwo", default="alpha", choices=("none", "alpha", "flip"),
                   help="binary weight optimisation after a plateau")
    g.add_argument("--bwo-patience", type=int, default=10, help="plateau length (epochs)")
    g.add_argument("--flip-threshold", type=float, default=1e-5, help="--bwo flip: EMA bar")


class ALBSNNCallback:
    """Estimators every iteration, selection at epoch ends, BWO after a plateau."""

    def __init__(self, args: argparse.Namespace, model: nn.Module):
        self.args, self.model = args, model
        self.optimizer = None
        self.enabled = not args.full_precision
        calibration = None
        if self.enabled and args.est_metric == "output":
            calibration = self._calibration_batch(args, model)
        self.estimator = AccuracyLossEstimator(model, metric=args.est_metric,
                                               every=args.est_every,
                                               calibration_batch=calibration)
        self.selector = LayerSelector(self.estimator, threshold=args.est_threshold,
                                      storage_target=args.storage_target)
        self.bwo = None if args.bwo == "none" else BinaryWeightOptimizer(
            model, mode=args.bwo, patience=args.bwo_patience,
            flip_threshold=args.flip_threshold)

    @staticmethod
    def _calibration_batch(args, model) -> torch.Tensor:
        from ..data import load

        train = load(args.dataset, train=True, root=args.data_root, augment=False)
        x = torch.stack([train[i][0] for i in range(min(64, len(train)))])
        return x.to(next(model.parameters()).device)

    def on_train_begin(self, model, optimizer) -> None:
        self.optimizer = optimizer

    def on_after_backward(self, step, model) -> None:
        if self.enabled and self.bwo is not None:
            self.bwo.after_backward()

    def on_batch_end(self, step, model, loss) -> None:
        if self.enabled:
            self.estimator.step()

    def on_epoch_end(self, epoch, model, metrics) -> None:
        if not self.enabled:
            return
        if epoch + 1 >= self.args.select_from:
            self.selector.step(epoch)
        metrics["storage_saving"] = storage_report(model)["storage_saving"]
        metrics["binarized"] = [n for n, m in binary_layers(model) if m.binarized]
        # the plateau is read on the training loss: the test set never steers training
        if self.bwo is not None and self.bwo.epoch_end(epoch, metrics["train_loss"]):
            self._add_bwo_parameters()
            metrics["bwo_activated"] = True

    def _add_bwo_parameters(self) -> None:
        params = self.bwo.parameters()
        if params and self.optimizer is not None:
            self.optimizer.add_param_group({"params": params})

    def on_train_end(self, model, result) -> None:
        report = storage_report(model, self.estimator.estimates)
        result.update(storage_saving=report["storage_saving"], storage_report=report,
                      full_precision=self.args.full_precision,
                      selection_history=self.selector.history,
                      bwo_active=bool(self.bwo and self.bwo.active),
                      bwo_flips=self.bwo.flips if self.bwo else 0)

    def state_dict(self) -> dict:
        return {"binarized": [n for n, m in binary_layers(self.model) if m.binarized],
                "estimates": dict(self.estimator.estimates), "calls": self.estimator.calls,
                "history": self.selector.history,
                "bwo": None if self.bwo is None else {
                    "active": self.bwo.active, "best": self.bwo.best,
                    "bad_epochs": self.bwo.bad_epochs, "flips": self.bwo.flips}}

    def load_state_dict(self, state: dict) -> None:
        chosen = set(state["binarized"])
        for name, module in binary_layers(self.model):  # every ALBSNN conv starts float
            module.set_binarized(name in chosen)
        self.estimator.estimates.update(state["estimates"])
        self.estimator.calls = state["calls"]
        self.selector.history = list(state["history"])
        if self.bwo is not None and state["bwo"] is not None:
            b = state["bwo"]
            self.bwo.best, self.bwo.bad_epochs = b["best"], b["bad_epochs"]
            self.bwo.flips = b["flips"]
            if b["active"]:
                self.bwo.activate()
                self._add_bwo_parameters()


def install(train) -> None:
    """Register the model options, CLI arguments and callbacks with the training module
    ``train`` (passed in: under ``python -m`` it is ``__main__``, not ``fastsnn.train``)."""
    if add_arguments not in train.ARGUMENT_HOOKS:
        train.ARGUMENT_HOOKS.append(add_arguments)
    train.MODEL_OPTIONS["albsnn"] = lambda a: {"T": a.T, "levels": a.levels,
                                               "surrogate": a.surrogate,
                                               "threshold": a.threshold}
    train.CALLBACKS["albsnn"] = lambda a, model: [ALBSNNCallback(a, model)]
