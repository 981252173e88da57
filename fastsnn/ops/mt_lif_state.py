"""The state of ``mt_lif`` between calls (streaming): what it holds and how it is checked.

``mt_lif(x, ..., return_state=True)`` returns ``(spikes, MtLifState)``; passing that state
back as ``state=`` starts the next chunk exactly where the last one stopped, so a sequence
cut into chunks gives the spikes and gradients of the whole sequence (docs/mt_lif.md,
"Streaming"). Gradients flow through the state from one chunk to the previous unless the
caller detaches it (``MtLifState.detach``).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from . import _checks


class MtLifState(NamedTuple):
    """``u``: the membrane after the last step; ``j``: the synaptic current after it (None
    without ``syn_decay``). Both shaped like one step of ``x`` (``x.shape[1:]``), in the
    compute dtype (float32; float64 for float64 input). With ``reset="subtract_next"``
    ``u`` is the unreset membrane, from which the next step reads the last spikes."""

    u: Tensor
    j: Optional[Tensor] = None

    def detach(self) -> MtLifState:
        """The same state cut from the graph (truncated BPTT between windows)."""
        return MtLifState(self.u.detach(), None if self.j is None else self.j.detach())


def _state_tensor(t, name: str, x: Tensor, acc: torch.dtype) -> Tensor:
    _checks.tensor(t, name)
    _checks.same_device(t, name, x)
    if t.dtype != acc:
        raise TypeError(f"{name} must have the compute dtype {acc} (that of a state "
                        f"returned for this x), got {t.dtype}")
    if tuple(t.shape) != tuple(x.shape[1:]):
        raise ValueError(f"{name} must have the shape of one step of x, "
                         f"{tuple(x.shape[1:])}; got {tuple(t.shape)}")
    return t


def unpack(state, v0, syn_decay, x: Tensor, acc: torch.dtype):
    """``(v0, j0)`` from ``state`` (or ``(v0, None)`` without one), checked."""
    if state is None:
        return v0, None
    if v0 is not None:
        raise ValueError("give v0 or state, not both (state carries the initial membrane)")
    if not isinstance(state, tuple) or len(state) != 2:
        raise TypeError(f"state must be an MtLifState (u, j), got {type(state).__name__}")
    u, j = state
    u = _state_tensor(u, "state.u", x, acc)
    if j is not None:
        if syn_decay is None:
            raise ValueError("state.j (a synaptic current) given without syn_decay")
        j = _state_tensor(j, "state.j", x, acc)
    return u, j
