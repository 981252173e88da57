"""ALBSNN: estimator formulas, selection rules, storage arithmetic, BWO, packed export."""

import io

import pytest
import torch
import torch.nn.functional as F

from fastsnn.albsnn import (
    AccuracyLossEstimator,
    BinaryWeightOptimizer,
    LayerSelector,
    output_error,
    storage_report,
    weight_error,
)
from fastsnn.models.albsnn import ALBSNN
from fastsnn.nn.binary_conv import BinaryConv2d


def _model(**kw):
    return ALBSNN(num_classes=10, in_channels=1, widths=(8, 16, 16), pool_after=(0,), T=1,
                  **kw)


def test_weight_error_hand_computed():
    w = torch.tensor([1.0, -3.0]).view(1, 2, 1, 1)
    # alpha = mean|W| = 2, Wb = [2, -2]: ((1-2)^2 + (-3+2)^2) / (1 + 9) = 0.2
    assert weight_error(w, "channel") == pytest.approx(0.2)
    # no alpha: Wb = [1, -1]: (0 + 4) / 10
    assert weight_error(w, None) == pytest.approx(0.4)


def test_output_error_formula():
    layer = BinaryConv2d(3, 4, 3, padding=1)
    x = (torch.rand(2, 3, 5, 5) < 0.3).float()
    w = layer.weight.detach()
    alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
    full = F.conv2d(x, w, padding=1)
    want = ((full - F.conv2d(x, alpha * torch.where(w >= 0, 1.0, -1.0), padding=1)).norm()
            / full.norm())
    assert output_error(layer, x) == pytest.approx(float(want), rel=1e-5)


def test_estimator_ema_and_schedule():
    model = _model()
    est = AccuracyLossEstimator(model, every=3, ema=0.5)
    assert est.step() and not est.step() and not est.step() and est.step()
    name, layer = est.layers[1]
    first = est.estimates[name]
    with torch.no_grad():
        layer.weight.copy_(torch.where(layer.weight >= 0, 0.5, -0.5))  # E1 = 0 now
    est.update()
    assert est.estimates[name] == pytest.approx(0.5 * first)


def test_output_metric_uses_calibration_batch():
    model = _model()
    est = AccuracyLossEstimator(model, metric="output", every=1,
                                calibration_batch=torch.randn(4, 1, 8, 8))
    est.update()
    assert set(est.estimates) == {n for n, _ in est.layers}
    assert all(v >= 0 for v in est.estimates.values())


def test_selection_protects_first_and_last_and_is_monotone():
    model = _model()
    est = AccuracyLossEstimator(model, every=1)
    sel = LayerSelector(est, threshold=10.0)  # everything under the threshold
    sel.step(0)
    names = [n for n, _ in est.layers]
    binarized = {n for n, m in est.layers if m.binarized}
    assert names[0] not in binarized and names[-1] not in binarized
    assert binarized == set(names[1:-1])
    sel.threshold = 0.0  # nothing qualifies any more, but selection is monotone
    sel.step(1)
    assert {n for n, m in est.layers if m.binarized} == binarized


def test_selection_in_increasing_estimate_order_with_revert():
    model = _model()
    est = AccuracyLossEstimator(model, every=1)
    est.update()
    cands = [n for n, _ in est.layers][1:-1]
    est.estimates.update({cands[0]: 0.3, cands[1]: 0.1})
    sel = LayerSelector(est, threshold=0.2, allow_revert=True)
    assert sel.step(0) == [cands[1]]
    est.estimates[cands[1]] = 0.5
    assert sel.step(1) == [f"-{cands[1]}"]


def test_storage_target_stops_selection():
    model = _model()
    est = AccuracyLossEstimator(model, every=1)
    sel = LayerSelector(est, storage_target=0.05)
    sel.step(0)
    report = storage_report(model)
    assert report["storage_saving"] >= 0.05
    assert sum(layer["binarized"] for layer in report["layers"]) == 1


def test_storage_arithmetic():
    model = _model()
    layers = {n: m for n, m in model.named_modules() if isinstance(m, BinaryConv2d)}
    name = "features.1.conv"
    layers[name].set_binarized(True)
    report = storage_report(model)
    n_all = sum(m.weight.numel() for m in layers.values())
    n_bin = layers[name].weight.numel()
    want_bits = 32 * (n_all - n_bin) + n_bin + 32 * layers[name].out_channels
    assert report["bits"] == want_bits
    assert report["storage_saving"] == pytest.approx(1 - want_bits / (32 * n_all))


def test_flip_rule_sign_conditions():
    model = _model()
    layer = model.features[1].conv
    layer.set_binarized(True)
    bwo = BinaryWeightOptimizer(model, mode="flip", patience=0, flip_threshold=1e-3,
                                flip_ema=1.0)
    assert bwo.epoch_end(0, 1.0)  # patience 0: active at once
    with torch.no_grad():
        layer.weight.fill_(0.5)
        layer.weight[0, 0, 0, 0] = -0.5
    grad = torch.zeros_like(layer.weight)
    grad[0, 0, 0, 1] = 1.0   # same sign as Wb=+1: descent pushes it below zero -> flip
    grad[0, 0, 0, 2] = -1.0  # opposite sign: descent pushes it further up -> no flip
    grad[0, 0, 0, 0] = -1.0  # Wb=-1, grad negative: same sign -> flip
    grad[0, 0, 1, 0] = 1e-6  # under the threshold -> no flip
    layer.weight.grad = grad
    assert bwo.after_backward() == 2
    w = layer.weight[0, 0]
    assert w[0, 1] < 0 and w[0, 2] > 0 and w[0, 0] > 0 and w[1, 0] > 0
    assert layer.weight.grad is None


def test_alpha_mode_freezes_signs_and_adds_gains():
    model = _model()
    layer = model.features[1].conv
    layer.set_binarized(True)
    bwo = BinaryWeightOptimizer(model, mode="alpha", patience=2)
    assert not bwo.epoch_end(0, 1.0) and not bwo.epoch_end(1, 1.5)
    assert bwo.epoch_end(2, 1.2)
    assert not layer.weight.requires_grad and len(bwo.parameters()) == 1
    x = torch.randn(2, 1, 8, 8)
    before = model(x)
    with torch.no_grad():
        bwo.parameters()[0].fill_(1.0)
    torch.testing.assert_close(model(x), before)
    model(x).sum().backward()
    assert bwo.parameters()[0].grad is not None


def test_export_packed_equivalence_and_size():
    torch.manual_seed(0)
    # 32-channel multiples: packed words then hold exactly one bit per weight
    model = ALBSNN(num_classes=10, in_channels=1, widths=(32, 32, 64), pool_after=(0,), T=2,
                   levels=3)
    est = AccuracyLossEstimator(model, every=1)
    LayerSelector(est, threshold=10.0).step(0)
    model.train()
    x = torch.randn(4, 1, 8, 8)
    for _ in range(2):  # settle batch-norm statistics
        model(x)
    model.eval()
    want = model(x)
    packed = model.export_packed()
    torch.testing.assert_close(packed(x), want, atol=1e-4, rtol=1e-4)
    sizes = []
    for m in (model, packed):
        buf = io.BytesIO()
        torch.save(m.state_dict(), buf)
        sizes.append(buf.tell())
    report = storage_report(model)
    predicted = (report["full_precision_bits"] - report["bits"]) / 8
    # the state dict also holds BN, biases and the file's own overhead: compare the savings
    assert sizes[0] - sizes[1] == pytest.approx(predicted, rel=0.05)


def test_export_folds_bwo_gain():
    torch.manual_seed(1)
    model = ALBSNN(num_classes=4, in_channels=1, widths=(32, 32), pool_after=(), T=1)
    model.features[1].conv.set_binarized(True)
    bwo = BinaryWeightOptimizer(model, mode="alpha", patience=0)
    bwo.epoch_end(0, 1.0)
    with torch.no_grad():
        bwo.parameters()[0].uniform_(0.5, 1.5)
    model.eval()
    x = torch.randn(3, 1, 6, 6)
    packed = model.export_packed()
    assert not hasattr(packed.features[1].conv, "bwo_gain")
    torch.testing.assert_close(packed(x), model(x), atol=1e-4, rtol=1e-4)


def test_training_run_binarises_and_reports(tmp_path):
    """A short real run on the digits: selection binarises a layer, the JSON reports it."""
    from fastsnn import train

    args = train.parse_args([
        "--model", "albsnn", "--dataset", "digits", "--T", "1", "--levels", "1",
        "--epochs", "2", "--max-steps", "4", "--train-samples", "256",
        "--test-samples", "128", "--energy-samples", "16", "--est-every", "2",
        "--bwo", "flip", "--bwo-patience", "0", "--out", str(tmp_path), "--no-progress"])
    result, model = train.run(args)
    assert result["storage_saving"] >= 0.25
    layers = result["storage_report"]["layers"]
    assert any(layer["binarized"] for layer in layers)
    assert not layers[0]["binarized"] and not layers[-1]["binarized"]  # protected
    assert result["bwo_active"]
    assert 0.0 <= result["test_accuracy"] <= 1.0


def test_full_precision_baseline_binarises_nothing(tmp_path):
    from fastsnn import train

    args = train.parse_args([
        "--model", "albsnn", "--dataset", "digits", "--T", "1", "--epochs", "1",
        "--max-steps", "2", "--train-samples", "64", "--test-samples", "32",
        "--energy-samples", "8", "--full-precision", "--out", str(tmp_path), "--no-progress"])
    result, _ = train.run(args)
    assert result["storage_saving"] == 0.0
