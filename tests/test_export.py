"""Export of the paper networks: ONNX (checked with onnxruntime against PyTorch on the
digits test set), torch.jit.trace, torch.export."""

import warnings

import numpy as np
import pytest
import torch

import fastsnn
from fastsnn.data import EventCurrents, load

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def _digits_test_images():
    test = load("digits", train=False)
    return torch.stack([test[i][0] for i in range(len(test))])


def _trained_mtsnn():
    torch.manual_seed(0)
    return _trained(fastsnn.models.build("mtsnn", "digits", T=2, levels=3))


def _trained_albsnn():
    """ALBSNN with every layer after the first binarised (the first sees images)."""
    torch.manual_seed(0)
    model = fastsnn.models.build("albsnn", "digits", levels=3)
    for block in model.features[1:]:
        block.conv.set_binarized(True)
    return _trained(model)


def _trained(model):
    torch.manual_seed(0)
    train = load("digits", train=True)
    x = torch.stack([train[i][0] for i in range(256)])
    y = torch.tensor([train[i][1] for i in range(256)])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for i in range(0, 256, 64):  # a few steps: spikes flow in every layer
        loss = torch.nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _onnx_logits(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def test_mtsnn_onnx_matches_pytorch_on_the_digits_test_set(tmp_path):
    model = _trained_mtsnn()
    images = _digits_test_images()
    with torch.no_grad():
        expected = model(images)  # the fast (cpu) backend
    spikes = fastsnn.energy.count_ops(model, images[:64]).spike_rate
    assert spikes > 0.01  # a silent network would compare trivially
    path = fastsnn.export.to_onnx(model, images[:8], tmp_path / "mtsnn.onnx")
    got = _onnx_logits(path, images)  # the whole test set: the batch size is dynamic
    assert got.shape == (len(images), 10)
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-4)
    assert (got.argmax(-1) == expected.argmax(-1).numpy()).all()
    assert model.training is False


def test_albsnn_onnx_runs_its_binary_layers_exactly_in_onnxruntime(tmp_path):
    # The reference computes the binary dot product in float32 while exporting (exact for
    # these sizes; onnxruntime has no float64 Conv): the packed model's logits come back.
    model = _trained_albsnn()
    images = _digits_test_images()
    packed = model.export_packed()
    with torch.no_grad():
        expected = packed(images)  # the packed fast kernels
    assert fastsnn.energy.count_ops(packed, images[:64]).spike_rate > 0.01
    path = fastsnn.export.to_onnx(model, images[:8], tmp_path / "albsnn.onnx")
    got = _onnx_logits(path, images)
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-4)
    assert (got.argmax(-1) == expected.argmax(-1).numpy()).all()


def test_stcnet_onnx_matches_pytorch_on_event_currents(tmp_path):
    torch.manual_seed(0)
    model = fastsnn.models.build("stcnet", "digit-saccades", levels=3).eval()
    events = load("digit-saccades", train=False)
    currents = EventCurrents(events, (34, 34, 2), T=4)
    x = torch.stack([currents[i][0] for i in range(12)]).transpose(0, 1)  # [T, N, P, H, W]
    with torch.no_grad():
        expected = model(x)
    path = fastsnn.export.to_onnx(model, x[:, :4], tmp_path / "stcnet.onnx")
    np.testing.assert_allclose(_onnx_logits(path, x), expected.numpy(), rtol=0, atol=1e-4)


@pytest.mark.parametrize("name, dataset", [("mtsnn", "digits"), ("stcnet", "digit-saccades"),
                                           ("stcsnn", "digits"), ("albsnn", "digits")])
def test_jit_trace_of_the_paper_networks_works(name, dataset):
    torch.manual_seed(0)
    model = fastsnn.models.build(name, dataset).eval()
    if name == "albsnn":  # one binarised layer: the packed-kernel path
        model.features[1].conv.set_binarized(True)
    time_major = getattr(model, "input_time_major", False)
    x = (torch.rand(2, 3, 2, 34, 34) * 3).floor() if time_major else \
        torch.rand(3, 1, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, x)
    y = torch.cat([x, x], dim=1 if time_major else 0)  # another batch size
    torch.testing.assert_close(traced(y), model(y), rtol=0, atol=1e-5)


def test_torch_export_keeps_the_fast_ops():
    model = fastsnn.models.build("mtsnn", "digits").eval()
    x = torch.rand(4, 1, 8, 8)
    program = torch.export.export(model, (x,))
    assert "fastsnn.mt_lif_forward" in str(program.graph)
    torch.testing.assert_close(program.module()(x), model(x), rtol=0, atol=0)


def test_reference_backend_restores_module_backends(monkeypatch):
    monkeypatch.delenv("FASTSNN_BACKEND", raising=False)
    model = fastsnn.models.build("mtsnn", "digits", backend="cpu")
    with fastsnn.export.reference_backend(model):
        assert {m.backend for m in model.modules() if hasattr(m, "backend")} == {"reference"}
    assert {m.backend for m in model.modules() if hasattr(m, "backend")} == {"cpu"}
    import os
    assert "FASTSNN_BACKEND" not in os.environ
