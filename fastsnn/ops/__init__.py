"""The ops, one module per op: validation, backend choice and the kernels' declaration
(``_spine.py``). The functions are ``fastsnn.<op>``; this package holds only the modules,
so ``fastsnn.ops.mt_lif`` is the module (no function shadows it).
"""

from . import binary_conv, bitpack, events_to_current, mt_lif, spike_count, stcb

__all__ = ["binary_conv", "bitpack", "events_to_current", "mt_lif", "spike_count", "stcb"]
