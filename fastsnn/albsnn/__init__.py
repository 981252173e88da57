"""ALBSNN: accuracy loss estimators, adaptive layer binarisation, binary weight optimisation.

A reconstruction of paper D's method from its abstract-level description (docs/albsnn.md);
every rule is an option. Typical loop::

    est = AccuracyLossEstimator(model, metric="weight", every=50)
    sel = LayerSelector(est, threshold=0.4, storage_target=0.25)
    bwo = BinaryWeightOptimizer(model, mode="alpha", patience=10)
    for epoch in ...:
        for batch in ...:
            loss.backward(); bwo.after_backward(); opt.step(); est.step()
        sel.step(epoch)
        if bwo.epoch_end(epoch, val_loss):
            opt.add_param_group({"params": bwo.parameters()})
"""

from .bwo import BinaryWeightOptimizer
from .estimator import AccuracyLossEstimator, output_error, weight_error
from .selection import LayerSelector
from .storage import storage_report

__all__ = ["AccuracyLossEstimator", "BinaryWeightOptimizer", "LayerSelector", "output_error",
           "storage_report", "weight_error"]
