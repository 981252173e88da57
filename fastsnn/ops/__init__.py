"""The ops, one module per op: validation, backend choice and the kernels' declaration
(``_spine.py``). The functions are ``fastsnn.<op>``; this package holds only the modules,
so ``fastsnn.ops.mt_lif`` is the module (no function shadows it).
"""

from . import (
    binary_conv,
    binary_conv_packed,
    binary_snn_layer,
    bitpack,
    events_to_current,
    mt_lif,
    mt_lif_packed,
    spike_count,
    stcb,
)

__all__ = ["binary_conv", "binary_conv_packed", "binary_snn_layer", "bitpack",
           "events_to_current", "mt_lif", "mt_lif_packed", "spike_count", "stcb"]
