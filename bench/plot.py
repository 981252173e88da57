"""PNG of a suite's speedups: each fast backend against each peer, one bar per row."""

from __future__ import annotations

from typing import Optional


def plot_suite(suite, path: str) -> Optional[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    bars = []
    for row in suite.rows:
        if row.impl not in ("cpu", "triton", "cuda"):
            continue
        for peer, ratio in suite.ratios(row).items():
            if peer not in ("cpu", "triton", "cuda"):
                bars.append((f"{row.op} {row.case} {row.dtype} {row.direction} vs {peer}"
                             f" [{row.impl}]", ratio))
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(10, 0.22 * len(bars) + 1.5))
    labels, values = zip(*bars)
    ax.barh(range(len(bars)), values, color=["tab:green" if v >= 1 else "tab:red"
                                             for v in values])
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(bars)), labels, fontsize=6)
    ax.set_xscale("log")
    ax.set_xlabel("speedup (peer time / fastsnn time), log scale")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
