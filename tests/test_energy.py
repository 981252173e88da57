"""``fastsnn.energy.count_ops`` against hand-computed counts (docs/energy.md)."""

import pytest
import torch
from torch import nn

from fastsnn.energy import E_AC_PJ, E_MAC_PJ, count_ops
from fastsnn.models import build
from fastsnn.models.layers import TimeDistributed
from fastsnn.nn import MultiThresholdLIF

T = 2


class TwoLayer(nn.Module):
    """conv(1->2, 3x3, no padding) on 4x4 -> 2x2x2 -> MT-LIF (K=3) -> linear(8 -> 3).

    The conv has zero weights and biases 1.5 / 3.7, so every neuron of channel 0 gets the
    current 1.5 and of channel 1 the current 3.7 at each step. With hard reset the neuron
    emits floor(current) spikes at every step: 1 and 3, a mean spike value of 2.0.
    ``static=True`` encodes the image once and repeats the current over T (T_1 = 1);
    otherwise the input is already [T, N, 1, 4, 4] and the conv runs every step (T_1 = T).
    """

    input_time_major = False

    def __init__(self, static: bool):
        super().__init__()
        self.static = static
        self.input_time_major = not static
        self.conv = nn.Conv2d(1, 2, 3)
        nn.init.zeros_(self.conv.weight)
        with torch.no_grad():
            self.conv.bias.copy_(torch.tensor([1.5, 3.7]))
        self.lif = MultiThresholdLIF(levels=3, decay=0.5, reset="hard")
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        if self.static:
            current = self.conv(x)
            current = current.unsqueeze(0).expand(T, *current.shape)
        else:
            current = TimeDistributed(self.conv)(x)
        return self.fc(self.lif(current).flatten(2)).mean(0)


CONV_FLOPS = 2 * 2 * 2 * 1 * 9   # H_out * W_out * C_out * C_in * k * k = 72
FC_FLOPS = 8 * 3                 # in * out = 24
SPIKE_RATE = (1 + 3) / 2         # mean spike value per neuron and step


def test_static_input_hand_computed():
    n = 5
    report = count_ops(TwoLayer(static=True), torch.rand(n, 1, 4, 4))
    conv, fc = report.layers
    assert (conv.name, conv.analog, conv.flops, conv.steps) == ("conv", True, CONV_FLOPS, 1)
    assert (fc.name, fc.analog, fc.flops, fc.steps) == ("fc", False, FC_FLOPS, T)
    assert fc.rate == pytest.approx(SPIKE_RATE)
    sops = T * SPIKE_RATE * FC_FLOPS                       # 2 * 2.0 * 24 = 96
    assert conv.ops == CONV_FLOPS and fc.ops == pytest.approx(sops)
    e_snn = E_MAC_PJ * CONV_FLOPS * 1 + E_AC_PJ * sops     # 331.2 + 86.4 = 417.6 pJ
    e_ann = E_MAC_PJ * (CONV_FLOPS + FC_FLOPS)             # 441.6 pJ
    assert report.energy_snn_pj == pytest.approx(417.6)
    assert report.energy_snn_pj == pytest.approx(e_snn)
    assert report.energy_ann_pj == pytest.approx(e_ann)
    assert report.ratio == pytest.approx(441.6 / 417.6)
    assert report.macs == CONV_FLOPS and report.sops == pytest.approx(96)
    (lif,) = report.neurons
    assert (lif.name, lif.neurons, lif.steps) == ("lif", 8, T)
    assert lif.rate == pytest.approx(SPIKE_RATE) and report.spike_rate == pytest.approx(2.0)


def test_event_input_first_layer_runs_every_step():
    n = 3
    report = count_ops(TwoLayer(static=False), torch.rand(T, n, 1, 4, 4))
    conv, fc = report.layers
    assert conv.steps == T and conv.ops == CONV_FLOPS * T
    assert report.energy_snn_pj == pytest.approx(E_MAC_PJ * CONV_FLOPS * T
                                                 + E_AC_PJ * T * SPIKE_RATE * FC_FLOPS)


def test_analog_override_and_custom_costs():
    report = count_ops(TwoLayer(static=True), torch.rand(2, 1, 4, 4), analog=["conv", "fc"],
                       e_mac_pj=1.0, e_ac_pj=0.5)
    assert all(layer.analog for layer in report.layers)
    assert report.energy_snn_pj == pytest.approx(CONV_FLOPS + FC_FLOPS * T)
    assert report.energy_ann_pj == pytest.approx(CONV_FLOPS + FC_FLOPS)


def test_restores_mode_and_removes_hooks():
    model = TwoLayer(static=True).train()
    count_ops(model, torch.rand(2, 1, 4, 4))
    assert model.training
    assert not model.conv._forward_hooks and not model.lif._forward_hooks


def test_table_and_dict():
    report = count_ops(TwoLayer(static=True), torch.rand(2, 1, 4, 4))
    text = report.table()
    assert "conv" in text and "fc" in text and "total" in text and "E_ANN / E_SNN" in text
    d = report.to_dict()
    assert d["ratio"] == pytest.approx(report.ratio)
    assert [x["name"] for x in d["layers"]] == ["conv", "fc"]


def test_mtsnn_counts():
    model = build("mtsnn", "digits", T=T)
    report = count_ops(model, torch.rand(4, 1, 8, 8))
    first, *rest = report.layers
    assert first.name == "encoder.0" and first.analog and first.steps == 1
    assert first.flops == 8 * 8 * 32 * 1 * 9
    assert all(not x.analog and x.steps == T for x in rest)
    assert rest[0].flops == 8 * 8 * 32 * 32 * 9
    assert all(0 <= x.rate <= model.levels for x in rest)
    assert len(report.neurons) == 4   # encoder neuron, two conv neurons, hidden neuron


def test_count_level_stcb_is_counted():
    torch.manual_seed(0)
    model = build("stcsnn", "digits", T=3).eval()  # count_ops runs in eval mode
    x = torch.rand(4, 1, 8, 8) * 4
    report = count_ops(model, x)
    first, second = report.layers[:2]
    assert first.name == "features.0.conv" and first.analog and first.steps == 1
    assert first.ops == first.flops  # one conv on T*x, not T
    with torch.no_grad():
        counts = model.features[1](model.features[0](model.encode(x)))  # block 0 + pool
    assert second.name == "features.2.conv" and second.steps == 1
    assert second.rate == pytest.approx(float(counts.mean()))  # spikes per neuron over T
    assert second.ops == pytest.approx(second.flops * float(counts.mean()))
    assert report.neurons[0].steps == 3


def test_fused_packed_albsnn_counts_like_its_unfused_copy():
    # The fused layer runs neither its conv nor its neuron module: the block's own hook
    # accounts both, from packed spikes, so the report equals the unfused model's.
    torch.manual_seed(0)
    model = build("albsnn", "digits", levels=3)
    for block in model.features[1:]:
        block.conv.set_binarized(True)
    with torch.no_grad():  # open the thresholds a little so spikes flow in every layer
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.bias.fill_(0.6)
    x = torch.rand(4, 1, 8, 8)
    fused, unfused = model.export_packed(fused=True), model.export_packed(fused=False)
    a, b = count_ops(fused, x), count_ops(unfused, x)
    assert b.spike_rate > 0.01
    assert [(n.name, n.neurons, n.steps, n.rate) for n in a.neurons] == \
        [(n.name, n.neurons, n.steps, n.rate) for n in b.neurons]
    assert a.energy_snn_pj == pytest.approx(b.energy_snn_pj, rel=1e-12)
