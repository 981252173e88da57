"""The paper networks: shapes, gradients, configurations, registry, backends."""

import pytest
import torch
from helpers import DEVICE, fast_backends

from fastsnn import models
from fastsnn.data import dataset_info
from fastsnn.models import MTSNN, STCNet, build
from fastsnn.models.layers import TimeSharedDropout

BACKENDS = ["reference"] + fast_backends("mt_lif")


def _grads_everywhere(model):
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reached {missing}"


@pytest.mark.parametrize("T", [1, 2])
@pytest.mark.parametrize("levels", [1, 3])
@pytest.mark.parametrize("surrogate", ["rect", "triangle", "sigmoid"])
def test_mtsnn_digits_forward_backward(T, levels, surrogate):
    torch.manual_seed(0)
    model = build("mtsnn", "digits", T=T, levels=levels, surrogate=surrogate)
    x = torch.rand(6, 1, 8, 8)
    logits = model(x)
    assert logits.shape == (6, 10)
    torch.nn.functional.cross_entropy(logits, torch.arange(6)).backward()
    _grads_everywhere(model)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mtsnn_backends_agree(backend):
    torch.manual_seed(1)
    ref = build("mtsnn", "digits", backend="reference").to(DEVICE)
    other = build("mtsnn", "digits", backend=backend).to(DEVICE)
    other.load_state_dict(ref.state_dict())
    x = torch.rand(2, 1, 8, 8, device=DEVICE) * 3  # small: triton runs interpreted on CPU
    out_ref, out = ref(x), other(x)
    assert out.shape == (2, 10)
    torch.testing.assert_close(out, out_ref)
    out_ref.sum().backward()
    out.sum().backward()
    for (name, a), b in zip(ref.named_parameters(), other.parameters()):
        torch.testing.assert_close(b.grad, a.grad, msg=name)


def test_mtsnn_static_encoding_repeats_current():
    model = build("mtsnn", "digits", T=2).eval()
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        current = model.encoder(x)
    assert current.shape == (3, 32, 8, 8)


@pytest.mark.parametrize("dataset,shape,classes", [
    ("fashion-mnist", (2, 1, 28, 28), 10), ("mnist", (2, 1, 28, 28), 10)])
def test_mtsnn_file_dataset_configs(dataset, shape, classes):
    model = build("mtsnn", dataset).eval()
    with torch.no_grad():
        assert model(torch.rand(*shape)).shape == (2, classes)


@pytest.mark.parametrize("dataset,classes", [("cifar10", 10), ("cifar100", 100)])
def test_mtsnn_cifar_configs_build(dataset, classes):
    # Construction probes the feature stack (8x8x256 after two pools) to size the FC.
    model = build("mtsnn", dataset)
    assert model.hidden[1].in_features == 256 * 8 * 8
    assert model.readout.fc.out_features == classes


def test_stcnet_without_synapse_forward_backward():
    torch.manual_seed(0)
    model = build("stcnet", "digit-saccades", synaptic=False)
    x = torch.rand(2, 3, 2, 34, 34) * 2
    logits = model(x)
    assert logits.shape == (3, 10)
    logits.sum().backward()
    _grads_everywhere(model)
    decays = [n for n, _ in model.named_parameters() if n.endswith(".decay_logit")]
    assert decays, "STCNet neurons must have learnable time constants"


@pytest.mark.parametrize("T", [2, 4])
def test_stcnet_with_synapse_forward_backward(T):
    torch.manual_seed(0)
    model = build("stcnet", "digit-saccades")
    logits = model(torch.rand(T, 2, 2, 34, 34) * 2)
    assert logits.shape == (2, 10)
    logits.sum().backward()
    _grads_everywhere(model)


@pytest.mark.parametrize("dataset,flat,classes", [
    ("n-mnist", 128 * 8 * 8, 10), ("cifar10-dvs", 128 * 8 * 8, 10),
    ("dvs128-gesture", 128 * 4 * 4, 11)])
def test_stcnet_event_configs(dataset, flat, classes):
    # Construction runs the conv stack once on a [1, 1, 2, H, W] probe to size the FC.
    model = build("stcnet", dataset, synaptic=False)
    assert model.hidden[1].in_features == flat
    assert model.readout.fc.out_features == classes


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown model"):
        build("nope", "digits")
    with pytest.raises(ValueError, match="no configuration"):
        build("mtsnn", "n-mnist")
    with pytest.raises(ValueError, match="unknown dataset"):
        dataset_info("nope")
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        build("mtsnn", "digits")(torch.rand(2, 2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\[T, N, P, H, W\]"):
        build("stcnet", "digit-saccades", synaptic=False)(torch.rand(2, 2, 34, 34))
    with pytest.raises(ValueError, match="T must be"):
        build("mtsnn", "digits", T=0)
    with pytest.raises(ValueError, match="feature spec"):
        STCNet(2, 10, (34, 34), features=(8, "X"), synaptic=False)


def test_registry():
    assert {"mtsnn", "stcnet"} <= set(models.names())
    models.register("mtsnn", MTSNN.from_dataset)  # same builder again: allowed
    with pytest.raises(ValueError, match="already registered"):
        models.register("mtsnn", STCNet.from_dataset)


def test_time_shared_dropout_mask_is_shared_over_time():
    drop = TimeSharedDropout(0.5).train()
    y = drop(torch.ones(4, 3, 50))
    assert torch.equal(y[0], y[1]) and torch.equal(y[0], y[3])
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(drop.eval()(torch.ones(2, 2)), torch.ones(2, 2))


@pytest.mark.parametrize("dataset,shape", [("fashion-mnist", (2, 1, 28, 28)),
                                           ("digit-saccades", (3, 2, 2, 34, 34))])
def test_stcsnn_from_registry(dataset, shape):
    model = build("stcsnn", dataset, T=3)
    assert model.input_time_major == (len(shape) == 5)
    logits = model(torch.rand(*shape))
    assert logits.shape == (2, 10)
    logits.sum().backward()


def test_averaging_batch_norm_has_no_initial_bias():
    """The running statistics are the plain average of the first 1/momentum batches (the
    initial running_var of 1 is gone after the first), then the usual moving average."""
    from fastsnn.models.layers import AveragingBatchNorm2d

    torch.manual_seed(0)
    bn, plain = AveragingBatchNorm2d(4), torch.nn.BatchNorm2d(4)
    batches = [0.2 * torch.randn(16, 4, 5, 5) + 0.3 for _ in range(14)]
    for b in batches[:10]:
        bn(b)
        plain(b)
    means = torch.stack([b.mean((0, 2, 3)) for b in batches[:10]]).mean(0)
    variances = torch.stack([b.var((0, 2, 3)) for b in batches[:10]]).mean(0)
    torch.testing.assert_close(bn.running_mean, means)
    torch.testing.assert_close(bn.running_var, variances)
    assert (plain.running_var > 5 * variances).all()  # 0.9**10 of the initial 1 is left
    before = bn.running_mean.clone()
    bn(batches[10])  # from here on: the moving average with momentum 0.1
    torch.testing.assert_close(bn.running_mean,
                               0.9 * before + 0.1 * batches[10].mean((0, 2, 3)))
    assert bn.momentum == 0.1


def test_every_network_uses_averaging_batch_norm():
    from fastsnn.models.layers import AveragingBatchNorm1d, AveragingBatchNorm2d

    for name, dataset in (("mtsnn", "digits"), ("stcnet", "digit-saccades"),
                          ("stcsnn", "digits"), ("albsnn", "digits")):
        norms = [m for m in build(name, dataset).modules()
                 if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        assert norms and all(isinstance(m, (AveragingBatchNorm1d, AveragingBatchNorm2d))
                             for m in norms), name


def test_one_epoch_on_digits_holds_up_in_eval_mode(tmp_path):
    """One epoch (22 batches) used to give 11 % in eval mode (chance: 10 %) while train-mode
    statistics gave 91 %: the eval-mode batch-norm statistics were still mostly their
    initial values. Eval mode must now be well above chance."""
    from fastsnn import train

    before = torch.get_num_threads()
    try:
        result = train.main(["--model", "mtsnn", "--dataset", "digits", "--epochs", "1",
                             "--no-progress", "--out", str(tmp_path), "--energy-samples", "32"])
    finally:
        torch.set_num_threads(before)
    assert result["history"][0]["train_accuracy"] > 0.5
    assert result["test_accuracy"] >= 0.6, result["test_accuracy"]
