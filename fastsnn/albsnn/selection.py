"""Adaptive layer selection: which layers to binarise, decided at epoch ends.

Reconstruction of paper D's "dynamic choice of layers to binarise" (docs/albsnn.md):
candidates are sorted by their estimated accuracy loss and binarised in increasing order
while the estimate stays under ``threshold`` and/or until ``storage_target`` (a fraction of
the all-float weight storage) is saved. Selection is monotone unless ``allow_revert``.
"""

from __future__ import annotations

from typing import Optional

from .estimator import AccuracyLossEstimator
from .layers import conv_layers, is_binarized
from .storage import storage_report

PROTECTABLE = ("first", "last")


class LayerSelector:
    def __init__(self, estimator: AccuracyLossEstimator, threshold: Optional[float] = None,
                 storage_target: Optional[float] = None, protect=("first", "last"),
                 allow_revert: bool = False):
        if threshold is None and storage_target is None:
            raise ValueError("give a threshold, a storage_target, or both")
        if storage_target is not None and not 0 < storage_target < 1:
            raise ValueError(f"storage_target must lie in (0, 1), got {storage_target!r}")
        self.estimator, self.threshold = estimator, threshold
        self.storage_target, self.allow_revert = storage_target, allow_revert
        self.protected = self._protected_names(tuple(protect))
        self.history: list[dict] = []

    def _protected_names(self, protect: tuple) -> set[str]:
        convs = [n for n, _ in conv_layers(self.estimator.model)]
        names = {p for p in protect if p not in PROTECTABLE}
        unknown = sorted(names - set(convs))
        if unknown:
            raise ValueError(f"protect takes 'first', 'last' or conv layer names; "
                             f"{unknown} are not conv layers of the model")
        if convs and "first" in protect:
            names.add(convs[0])
        if convs and "last" in protect:
            names.add(convs[-1])
        return names

    def candidates(self) -> list[tuple[str, object]]:
        return [(n, m) for n, m in self.estimator.layers if n not in self.protected]

    def step(self, epoch: int) -> list[str]:
        """Decide at the end of ``epoch``; returns the names binarised (or reverted) now."""
        estimates = self.estimator.estimates or self.estimator.update()
        changed = []
        if self.allow_revert and self.threshold is not None:
            for name, module in self.candidates():
                if is_binarized(module) and estimates[name] >= self.threshold:
                    module.set_binarized(False)
                    changed.append(f"-{name}")
        order = sorted((estimates[n], n, m) for n, m in self.candidates()
                       if not is_binarized(m))
        for estimate, name, module in order:
            if self.threshold is not None and estimate >= self.threshold:
                break
            if self.storage_target is not None and self._saving() >= self.storage_target:
                break
            module.set_binarized(True)
            changed.append(name)
        self.history.append({"epoch": epoch, "estimates": dict(estimates),
                             "changed": changed, "storage_saving": self._saving(),
                             "binarized": [n for n, m in self.estimator.layers
                                           if is_binarized(m)]})
        return changed

    def _saving(self) -> float:
        return storage_report(self.estimator.model)["storage_saving"]

