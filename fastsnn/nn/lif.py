"""``MultiThresholdLIF``: the ``mt_lif`` op as a module with optional learnable decay."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from ..ops.lif_options import decay_from, surrogate_parameter
from ..ops.mt_lif import FORMS, RESETS, mt_lif
from ..ops.mt_lif_state import MtLifState
from ..reference.surrogate import SURROGATES


class MultiThresholdLIF(nn.Module):
    """Multi-threshold LIF neurons over ``[T, N, C, ...]`` input (docs/mt_lif.md).

    ``decay`` (default 0.5) or ``tau`` (``decay = 1 - 1/tau``); ``alpha`` / ``slope`` are the
    parameters of the ``atan`` / ``fast_sigmoid`` surrogates (see ``fastsnn.mt_lif``).

    ``learnable_decay=True`` holds ``decay_logit`` with ``decay = sigmoid(decay_logit)``,
    initialised at ``decay`` (default 0.5, i.e. ``tau = 1 / (1 - decay) = 2``, the PLIF
    initialisation), one per layer or one per channel with ``per_channel=C``. ``syn_decay``
    turns on the fused synaptic current; ``learnable_syn=True`` makes it
    ``sigmoid(syn_logit)`` (init 0.5, or ``syn_decay``), shaped like the decay. State dicts
    saved with the former names ``w`` / ``v`` still load. ``packed=True`` (inference only)
    returns ``fastsnn.PackedSpikes`` written by the kernel (``mt_lif(..., packed=True)``).
    ``v_reset`` (default 0) is the
    hard-reset value and the rest potential the membrane leaks toward (and starts at).

    Layout: the input is always multi-step, ``[T, *step]`` with time first and channels at
    dim 2 (``[T, N, C, ...]``). ``step_rank`` states the rank of one step (e.g. 4 for
    ``[N, C, H, W]`` after a Conv2d, 2 for ``[N, features]``): an input of another rank,
    such as a ``[N, C, H, W]`` tensor that lacks T, then raises ``ValueError`` instead of
    being read with T = N. Without it any rank >= 2 is taken as ``[T, ...]``.

    Streaming: with ``stateful=True`` the module keeps the neuron state (``self.state``, an
    ``MtLifState``) after each call and the next call starts from it, so a sequence fed in
    chunks gives the spikes and gradients of the whole sequence. The state stays attached
    to the graph of the call that made it (gradients flow into the previous chunk);
    ``detach_state()`` cuts it (truncated BPTT: call it after each ``backward``),
    ``reset_state()`` forgets it (a new sequence; also needed when the batch shape changes).
    """

    _FORMER_NAMES = {"w": "decay_logit", "v": "syn_logit"}

    def __init__(self, levels: int = 1, threshold: float = 1.0, decay: Optional[float] = None,
                 learnable_decay: bool = False, per_channel: Optional[int] = None,
                 form: str = "stbp", reset: str = "hard", surrogate: str = "rect",
                 width: Optional[float] = None, detach_reset: bool = False,
                 syn_decay: Optional[float] = None, learnable_syn: bool = False,
                 backend: Optional[str] = None, *, tau: Optional[float] = None,
                 alpha: Optional[float] = None, slope: Optional[float] = None,
                 v_reset: float = 0.0, stateful: bool = False,
                 step_rank: Optional[int] = None, packed: bool = False):
        super().__init__()
        decay = decay_from(decay, tau)
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not (
                0 <= decay <= 1):
            raise ValueError(f"decay must be a float in [0, 1], got {decay!r}")
        if learnable_decay and not 0 < decay < 1:
            raise ValueError(f"a learnable decay = sigmoid(decay_logit) starts in (0, 1), got "
                             f"{decay!r}")
        _check_options(levels, threshold, reset, surrogate, form)
        surrogate_parameter(surrogate, threshold, width, alpha, slope)  # checks them
        self.alpha, self.slope = alpha, slope
        if isinstance(v_reset, bool) or not isinstance(v_reset, (int, float)) or not (
                math.isfinite(v_reset)):
            raise ValueError(f"v_reset must be a finite float, got {v_reset!r}")
        if step_rank is not None and (isinstance(step_rank, bool) or not isinstance(
                step_rank, int) or step_rank < 1):
            raise ValueError(f"step_rank must be an int >= 1 (the rank of one time step), "
                             f"got {step_rank!r}")
        self.v_reset, self.stateful, self.step_rank = float(v_reset), bool(stateful), step_rank
        self.state: Optional[MtLifState] = None
        if per_channel is not None and per_channel < 1:
            raise ValueError(f"per_channel must be a channel count >= 1, got {per_channel!r}")
        self.levels, self.threshold, self.form = levels, threshold, form
        self.reset, self.surrogate, self.width = reset, surrogate, width
        self.detach_reset, self.backend = detach_reset, backend
        if not isinstance(packed, bool):
            raise TypeError(f"packed must be a bool, got {type(packed).__name__}")
        self.packed = packed
        shape = (per_channel,) if per_channel else ()
        if learnable_decay:
            # tau = 1/(1-decay) = 2 at init means decay = 0.5, a logit of 0.
            self.decay_logit = nn.Parameter(torch.full(shape, _logit(decay)))
        else:
            self.register_buffer("decay_value", torch.full(shape, float(decay)))
        self.learnable_syn = learnable_syn
        if learnable_syn:
            self.syn_logit = nn.Parameter(torch.full(shape, _logit(0.5 if syn_decay is None
                                                                   else syn_decay)))
        else:
            self.syn_decay = syn_decay

    @property
    def decay(self) -> torch.Tensor:
        if hasattr(self, "decay_logit"):
            return torch.sigmoid(self.decay_logit)
        return self.decay_value

    def _syn(self):
        return torch.sigmoid(self.syn_logit) if self.learnable_syn else self.syn_decay

    def forward(self, x: torch.Tensor, v0: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Spikes of ``x`` (``[T, *step]``); ``v0`` is the initial membrane (default
        ``v_reset``; a stateful module takes it only when it holds no state)."""
        self._check_rank(x)
        state = self.state if self.stateful else None
        if state is not None and v0 is not None:
            raise ValueError("v0 given to a stateful module that holds a state; call "
                             "reset_state() first to start from v0")
        out = mt_lif(x, self.decay, threshold=self.threshold, levels=self.levels,
                     reset=self.reset, surrogate=self.surrogate, width=self.width,
                     detach_reset=self.detach_reset, form=self.form,
                     syn_decay=self._syn(), v0=None if state is not None else v0,
                     alpha=self.alpha, slope=self.slope, v_reset=self.v_reset, state=state,
                     return_state=self.stateful, backend=self.backend,
                     packed=self.packed)
        if not self.stateful:
            return out
        spikes, self.state = out
        return spikes

    def reset_state(self) -> None:
        """Forget the kept state: the next call starts at rest (or from its ``v0``)."""
        self.state = None

    def detach_state(self) -> None:
        """Keep the state's values but cut its graph (truncated BPTT between windows)."""
        if self.state is not None:
            self.state = self.state.detach()

    def _check_rank(self, x) -> None:
        if self.step_rank is None or not isinstance(x, torch.Tensor):
            return  # the op checks x itself
        if x.dim() != self.step_rank + 1:
            hint = (" (it lacks the time dimension: give [T, ...], e.g. x.unsqueeze(0) for "
                    "one step)" if x.dim() == self.step_rank else "")
            raise ValueError(f"{type(self).__name__} expects [T, *step] with a step of rank "
                             f"{self.step_rank} (rank {self.step_rank + 1} in all), got "
                             f"shape {tuple(x.shape)}{hint}")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for old, new in self._FORMER_NAMES.items():
            if prefix + old in state_dict and prefix + new not in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in (
            ("v_reset", self.v_reset), ("stateful", self.stateful),
            ("step_rank", self.step_rank)) if v not in (0.0, False, None))
        return (f"levels={self.levels}, threshold={self.threshold}, form={self.form}, "
                f"reset={self.reset}, surrogate={self.surrogate}{extra}")


def _check_options(levels, threshold, reset, surrogate, form) -> None:
    """The options' checks at construction, so a bad module fails where it is built."""
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels must be an int >= 1, got {levels!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not (
            0 < threshold < math.inf):
        raise ValueError(f"threshold must be a finite float > 0, got {threshold!r}")
    for name, value, allowed in (("reset", reset, RESETS), ("surrogate", surrogate, SURROGATES),
                                 ("form", form, FORMS)):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))
