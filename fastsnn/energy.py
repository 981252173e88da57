"""Operation counts and energy estimates of a spiking network (docs/energy.md).

``count_ops(model, example_input)`` runs the model once (eval mode, no grad) with forward
hooks and returns an ``EnergyReport``:

* every ``Conv2d`` / ``Linear`` call contributes its ANN FLOPs (multiply-accumulates per
  sample and step: ``H_out*W_out*C_out*C_in/groups*k*k`` for a conv, ``in*out`` for a
  linear layer), the number of steps it ran per sample (``T_l``: calls x batch folded
  into its input / the real batch), and the mean value of its input per neuron and step
  (``rate``; multi-level spikes count with their value, 2 for a 2-spike);
* the first layer that runs (or the layers named in ``analog``) sees analog input and
  costs ``E_MAC * FLOPs * T_l`` (``T_1 = 1`` when a static image is encoded once, ``T``
  for event input); every other layer costs ``E_AC * SOPs`` with
  ``SOPs = T_l * rate * FLOPs``;
* the equivalent ANN costs ``E_MAC * FLOPs`` per layer (one pass, no T);
* every ``MultiThresholdLIF`` output is recorded too: mean spike value per neuron and step.

Paper C's count-level ``STCB`` (``mode="count"``) runs one convolution on spike counts
instead of T on spikes; it is counted as it runs: ``T_l = 1`` and ``rate`` = the input's
spike count per neuron (over all T), which gives the same SOPs as ``T * rate_per_step``.
Its output spikes enter the neuron statistics per step (count / T).

Batch norm, pooling and the neuron updates are not counted (BN folds into the conv at
inference; the papers count synaptic operations only).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Optional

import torch
from torch import nn

from . import nn as fastsnn_nn
from .nn import BinarySNNBlock, MultiThresholdLIF
from .packed_spikes import PackedSpikes

E_MAC_PJ = 4.6  # 45 nm, 32-bit float multiply-accumulate (Horowitz, ISSCC 2014)
E_AC_PJ = 0.9   # 45 nm, 32-bit float add


@dataclass
class LayerOps:
    name: str
    kind: str             # "conv" | "linear"
    analog: bool          # input is analog (MACs) rather than spikes (ACs)
    flops: float          # ANN multiply-accumulates per sample and step
    steps: float          # T_l: times the layer ran per sample
    rate: float           # mean input value per input neuron and step
    ops: float            # MACs (analog) or SOPs per sample
    energy_pj: float      # SNN energy per sample
    ann_energy_pj: float  # equivalent ANN energy per sample


@dataclass
class NeuronStats:
    name: str
    neurons: int          # neurons per sample (one step)
    steps: int            # T
    rate: float           # mean spike value per neuron and step


@dataclass
class EnergyReport:
    layers: list[LayerOps]
    neurons: list[NeuronStats] = field(default_factory=list)
    e_mac_pj: float = E_MAC_PJ
    e_ac_pj: float = E_AC_PJ

    @property
    def energy_snn_pj(self) -> float:
        return sum(layer.energy_pj for layer in self.layers)

    @property
    def energy_ann_pj(self) -> float:
        return sum(layer.ann_energy_pj for layer in self.layers)

    @property
    def ratio(self) -> float:
        """``E_ANN / E_SNN``: how many times less energy the spiking network needs."""
        snn = self.energy_snn_pj
        return self.energy_ann_pj / snn if snn else float("inf")

    @property
    def flops(self) -> float:
        return sum(layer.flops for layer in self.layers)

    @property
    def macs(self) -> float:
        return sum(layer.ops for layer in self.layers if layer.analog)

    @property
    def sops(self) -> float:
        return sum(layer.ops for layer in self.layers if not layer.analog)

    @property
    def spike_rate(self) -> float:
        """Mean spike value per neuron and step over every spiking layer."""
        total = sum(n.neurons * n.steps for n in self.neurons)
        return sum(n.rate * n.neurons * n.steps for n in self.neurons) / total if total else 0.0

    def to_dict(self) -> dict:
        return {"layers": [asdict(x) for x in self.layers],
                "neurons": [asdict(x) for x in self.neurons],
                "e_mac_pj": self.e_mac_pj, "e_ac_pj": self.e_ac_pj, "flops": self.flops,
                "macs": self.macs, "sops": self.sops, "energy_snn_pj": self.energy_snn_pj,
                "energy_ann_pj": self.energy_ann_pj, "ratio": self.ratio,
                "spike_rate": self.spike_rate}

    def table(self) -> str:
        """Per-layer and total counts as a fixed-width text table (energies per sample)."""
        head = (f"{'layer':<28} {'type':<6} {'in':<6} {'FLOPs':>10} {'T_l':>5} {'rate':>7} "
                f"{'MAC/SOP':>10} {'E_SNN':>10} {'E_ANN':>10}")
        lines = [head, "-" * len(head)]
        for x in self.layers:
            lines.append(f"{x.name[:28]:<28} {x.kind:<6} {'analog' if x.analog else 'spikes':<6}"
                         f" {_eng(x.flops):>10} {x.steps:>5g} {x.rate:>7.4f} {_eng(x.ops):>10}"
                         f" {_pj(x.energy_pj):>10} {_pj(x.ann_energy_pj):>10}")
        lines.append("-" * len(head))
        lines.append(f"{'total':<28} {'':<6} {'':<6} {_eng(self.flops):>10} {'':>5} "
                     f"{self.spike_rate:>7.4f} {_eng(self.macs + self.sops):>10} "
                     f"{_pj(self.energy_snn_pj):>10} {_pj(self.energy_ann_pj):>10}")
        lines.append(f"E_ANN / E_SNN = {self.ratio:.2f}  (E_MAC {self.e_mac_pj} pJ, "
                     f"E_AC {self.e_ac_pj} pJ; total row rate = mean spike value per neuron "
                     f"and step)")
        return "\n".join(lines)


def _eng(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def _pj(value: float) -> str:
    for unit, scale in (("mJ", 1e9), ("uJ", 1e6), ("nJ", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} pJ"


def _is_conv(module: nn.Module) -> bool:
    """A 2-D convolution: ``nn.Conv2d`` or fastsnn's ``BinaryConv2d`` (either mode)."""
    return isinstance(module, (nn.Conv2d, fastsnn_nn.BinaryConv2d))


def layer_flops(module: nn.Module, output: torch.Tensor) -> float:
    """ANN multiply-accumulates of one sample-step of ``module`` producing ``output``."""
    if _is_conv(module):
        kh, kw = module.kernel_size
        out_positions = output.shape[-1] * output.shape[-2]
        groups = getattr(module, "groups", 1)
        return float(out_positions * module.out_channels * module.in_channels // groups
                     * kh * kw)
    return float(module.in_features * module.out_features)


def _per_step_numel(module: nn.Module, x: torch.Tensor) -> int:
    """Input elements one sample-step of ``module`` reads (the rest of ``x`` is batch/time)."""
    if _is_conv(module):  # [N, C, H, W], [T, N, C, H, W] or one unbatched [C, H, W]
        return math.prod(x.shape[-3:])
    return module.in_features


def _floats(t):
    """Packed spikes as the float spikes they stand for (the counts need values)."""
    return t.unpack() if isinstance(t, PackedSpikes) else t


def _infer_batch(model: nn.Module, example: torch.Tensor) -> int:
    return int(example.shape[1] if getattr(model, "input_time_major", False)
               else example.shape[0])


@torch.no_grad()
def count_ops(model: nn.Module, example_input: torch.Tensor, *,
              analog: Optional[Iterable[str]] = None, batch_size: Optional[int] = None,
              e_mac_pj: float = E_MAC_PJ, e_ac_pj: float = E_AC_PJ) -> EnergyReport:
    """Run ``model`` on ``example_input`` and account its operations (module docstring).

    ``analog``: names (as in ``model.named_modules()``) of the layers whose input is
    analog; default the first Conv2d/Linear that runs. ``batch_size``: samples in
    ``example_input`` (default dim 1 when ``model.input_time_major``, else dim 0).
    """
    n = batch_size or _infer_batch(model, example_input)
    stats: dict[str, dict] = {}
    spikes: dict[str, list] = {}

    def record_layer(name, module, x, flops):
        entry = stats.setdefault(name, dict(module=module, flops=0.0, runs=0.0, total=0.0,
                                            count=0))
        entry["flops"] = flops
        entry["runs"] += x.numel() / _per_step_numel(module, x)
        entry["total"] += float(x.double().sum())
        entry["count"] += x.numel()

    def record_spikes(name, output, steps, counts=False):
        """``output``: spikes ``[T, N, ...]``, or spike counts over T ``[N, ...]``."""
        s = spikes.setdefault(name, [0.0, 0, steps, 0])
        per_sample = output.numel() // n if counts else output[0].numel() // n
        s[0] += float(output.double().sum())
        s[1] += output.numel() * (steps if counts else 1)  # neuron-steps
        s[3] = int(per_sample)

    def layer_hook(name):
        def hook(module, inputs, output):
            output = _floats(output)
            record_layer(name, module, _floats(inputs[0]), layer_flops(module, output))
        return hook

    def neuron_hook(name):
        def hook(module, inputs, output):
            output = _floats(output)
            record_spikes(name, output, output.shape[0])
        return hook

    def block_hook(name):
        """A ``BinarySNNBlock`` in eval with a binarised conv runs ``binary_conv2d`` with the
        folded batch norm itself, and once packed one fused op: its conv module (and then
        its neuron module) never run, so the block accounts them from its input and
        output."""
        def hook(module, inputs, output):
            if module.training or not module.conv.binarized:
                return  # its modules ran and were counted
            output = _floats(output)
            record_layer(f"{name}.conv", module.conv, _floats(inputs[0]),
                         layer_flops(module.conv, output))
            if module.fused:
                record_spikes(f"{name}.lif", output, output.shape[0])
        return hook

    def stcb_hook(name):
        def hook(module, inputs, output):
            x = inputs[0]
            if module.mode == "count":  # one F.conv2d on the counts, bypassing module.conv
                counts = x.sum(0) if x.dim() == 5 else x
                record_layer(f"{name}.conv", module.conv, counts,
                             layer_flops(module.conv, output))
            record_spikes(name, output, module.T, counts=output.dim() == 4)
        return hook

    stcb_type = getattr(fastsnn_nn, "STCB", None)  # paper C's block, where it is built
    hooks = []
    for name, module in model.named_modules():
        if stcb_type is not None and isinstance(module, stcb_type):
            hooks.append(module.register_forward_hook(stcb_hook(name)))
        elif isinstance(module, BinarySNNBlock):
            hooks.append(module.register_forward_hook(block_hook(name)))
        elif _is_conv(module) or isinstance(module, nn.Linear):
            # (an STCB in count mode never calls its conv module: its own hook counts it)
            hooks.append(module.register_forward_hook(layer_hook(name)))
        elif isinstance(module, MultiThresholdLIF):
            hooks.append(module.register_forward_hook(neuron_hook(name)))
    was_training = model.training
    model.eval()
    try:
        model(example_input)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    order = list(stats)  # dicts keep insertion order: the order the layers first ran
    analog_names = set(analog) if analog is not None else set(order[:1])
    layers = [_layer_ops(name, stats[name], n, name in analog_names, e_mac_pj, e_ac_pj)
              for name in order]
    neurons = [NeuronStats(name, neurons, steps, total / count if count else 0.0)
               for name, (total, count, steps, neurons) in spikes.items()]
    return EnergyReport(layers, neurons, e_mac_pj, e_ac_pj)


def _layer_ops(name: str, entry: dict, n: int, analog: bool, e_mac: float,
               e_ac: float) -> LayerOps:
    module = entry["module"]
    steps = entry["runs"] / n
    rate = entry["total"] / entry["count"] if entry["count"] else 0.0
    flops = entry["flops"]
    ops = flops * steps if analog else flops * steps * rate
    energy = ops * (e_mac if analog else e_ac)
    kind = "conv" if _is_conv(module) else "linear"
    return LayerOps(name, kind, analog, flops, steps, rate, ops, energy, e_mac * flops)
