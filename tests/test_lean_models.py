"""The papers' networks with spike_convs (default) against the same networks without:
identical logits and gradients for the same parameters, less memory saved for backward."""

from __future__ import annotations

import pytest
import torch
from helpers import DEVICE

from fastsnn.memory import saved_bytes
from fastsnn.models import build
from fastsnn.nn import BinaryConv2d, SpikeConv2d, save_spikes_as_bits

CASES = [
    ("mtsnn", "digits", {}, (4, 1, 8, 8)),
    ("mtsnn", "digits", dict(levels=1, T=3, reset="soft"), (3, 1, 8, 8)),
    ("stcnet", "digit-saccades", dict(synaptic=False), (2, 3, 2, 34, 34)),
    ("stcnet", "digit-saccades", dict(synaptic=True, T=2), (2, 2, 2, 34, 34)),
    ("albsnn", "digits", dict(T=2, levels=3), (3, 1, 8, 8)),
    ("albsnn", "digits", dict(T=2, levels=1, binarize=True), (3, 1, 8, 8)),
    # the spike convs' outputs recomputed in backward instead of kept by the batch norms
    ("mtsnn", "digits", dict(recompute=True), (4, 1, 8, 8)),
    ("stcnet", "digit-saccades", dict(synaptic=True, T=2, recompute=True), (2, 2, 2, 34, 34)),
]


def pair(name, dataset, options):
    options = dict(options)
    binarize = options.pop("binarize", False)
    options.pop("T", None) if name == "stcnet" else None
    torch.manual_seed(0)
    lean = build(name, dataset, **options).to(DEVICE)
    plain = build(name, dataset, spike_convs=False,
                  **{k: v for k, v in options.items() if k != "recompute"}).to(DEVICE)
    plain.load_state_dict(lean.state_dict())
    if binarize:  # ALBSNN in training with its later layers binarised
        for net in (lean, plain):
            convs = [m for m in net.modules() if isinstance(m, BinaryConv2d)]
            for conv in convs[1:]:
                conv.set_binarized(True)
    return lean, plain


def step(net, x):
    net.zero_grad(set_to_none=True)
    out = net(x)
    out.backward(torch.linspace(-1, 1, out.numel(), device=DEVICE).view(out.shape))
    return out.detach(), [p.grad for p in net.parameters()]


@pytest.mark.parametrize("name,dataset,options,shape", CASES,
                         ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_lean_equals_plain(name, dataset, options, shape):
    lean, plain = pair(name, dataset, options)
    assert lean.state_dict().keys() == plain.state_dict().keys()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    (ya, ga), (yb, gb) = step(lean, x), step(plain, x)
    assert torch.equal(ya, yb)
    assert len(ga) == len(gb) and all(
        (a is None and b is None) or torch.equal(a, b) for a, b in zip(ga, gb))
    assert any(g is not None and g.abs().sum() > 0 for g in ga)
    lean_bytes, plain_bytes = saved_bytes(lean, x), saved_bytes(plain, x)
    assert lean_bytes.total < plain_bytes.total
    if options.get("recompute"):  # less again than bits alone
        bits_only = saved_bytes(save_spikes_as_bits(lean, recompute=False), x)
        assert lean_bytes.total < bits_only.total
    # nothing leaked out of the measurement: the next step is still identical
    (yc, gc), (yd, gd) = step(lean, x), step(plain, x)
    assert torch.equal(yc, yd) and all(
        (a is None and b is None) or torch.equal(a, b) for a, b in zip(gc, gd))


def test_spike_convs_where_inputs_are_spikes():
    lean, plain = pair("mtsnn", "digits", {})
    convs = [m for m in lean.modules() if isinstance(m, torch.nn.Conv2d)]
    # the encoder sees the analog image; every later conv sees spikes
    assert not isinstance(convs[0], SpikeConv2d)
    assert all(isinstance(c, SpikeConv2d) and c.levels == lean.levels for c in convs[1:])
    assert not any(isinstance(m, SpikeConv2d) for m in plain.modules())


def test_average_pooled_input_is_not_spikes():
    net = build("mtsnn", "digits", features=(8, "A", 8, "M", 8))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [isinstance(c, SpikeConv2d) for c in convs] == [False, False, True]


def test_eval_and_no_grad_unaffected():
    lean, plain = pair("mtsnn", "digits", {})
    lean.eval(), plain.eval()
    x = torch.rand(2, 1, 8, 8, device=DEVICE)
    with torch.no_grad():
        assert torch.equal(lean(x), plain(x))


def test_training_cli_reports_saved_bytes(tmp_path, capsys):
    import json

    from fastsnn import train

    result = train.main(["--model", "mtsnn", "--dataset", "digits", "--T", "2", "--epochs",
                         "1", "--max-steps", "1", "--batch-size", "8", "--no-progress",
                         "--train-samples", "32", "--test-samples", "16",
                         "--energy-samples", "4", "--out", str(tmp_path)])
    saved = json.loads(next(tmp_path.glob("*.json")).read_text())["saved_bytes"]
    assert saved == result["saved_bytes"] and saved["total"] > 0
    assert saved["total"] == sum(saved["modules"].values()) and saved["peak"] >= saved["total"]
    assert "saved for backward, one training step of 8" in capsys.readouterr().out
