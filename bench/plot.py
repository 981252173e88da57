"""PNG of a suite: one panel per op (time against its scaling variable for ours and the
headline peers, with the byte floor as a dashed line) and one panel of headline speedups."""

from __future__ import annotations

import math
from typing import Optional


def panel_series(rows, panel) -> dict[str, list[tuple[float, float]]]:
    """{impl: [(scale, median_ms), ...]} of one panel's rows, plus "byte floor" (ours)."""
    series: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r.get("panel") != panel["name"]:
            continue
        if r["impl"] in (panel["ours"],) + tuple(panel["peers"]):
            series.setdefault(r["impl"], []).append((r["scale"], r["median_ms"]))
        if r["impl"] == panel["ours"] and r.get("floor_ms"):
            series.setdefault("byte floor", []).append((r["scale"], r["floor_ms"]))
    return {k: sorted(v) for k, v in series.items()}


def headline_speedups(rows, panel) -> list[tuple[str, float]]:
    """(label, peer time / our time) per peer and scale of one panel."""
    out = []
    series = panel_series(rows, panel)
    ours = dict(series.get(panel["ours"], []))
    for peer in panel["peers"]:
        for scale, ms in series.get(peer, []):
            if scale in ours:
                op = panel["name"].split()[0]
                out.append((f"{op} {panel['scale_name']}={scale:g} vs {peer}",
                            ms / ours[scale]))
    return out


def plot_results(result: dict, path: str) -> Optional[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels, rows = result.get("panels", []), result["rows"]
    if not panels:
        return None
    cols = 3
    nrows = math.ceil(len(panels) / cols) + 1
    fig = plt.figure(figsize=(5 * cols, 3.6 * nrows))
    grid = fig.add_gridspec(nrows, cols)
    bars = []
    for k, panel in enumerate(panels):
        ax = fig.add_subplot(grid[k // cols, k % cols])
        for impl, pts in panel_series(rows, panel).items():
            xs, ys = zip(*pts)
            style = dict(linestyle="--", color="gray") if impl == "byte floor" else dict(
                marker="o", linewidth=2.5 if impl == panel["ours"] else 1.2)
            label = f"fastsnn {impl}" if impl == panel["ours"] else impl
            ax.plot(xs, ys, label=label, **style)
        ax.set_xscale("log", base=2 if panel["scale_name"] in ("T", "batch") else 10)
        ax.set_yscale("log")
        ax.set_xlabel(panel["scale_name"])
        ax.set_ylabel("ms (median)")
        ax.set_title(panel["name"], fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        bars += headline_speedups(rows, panel)
    if bars:
        ax = fig.add_subplot(grid[nrows - 1, :])
        labels, values = zip(*bars)
        ax.bar(range(len(bars)), values,
               color=["tab:green" if v >= 1 else "tab:red" for v in values])
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(bars)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("speedup (peer / fastsnn)")
        ax.set_title("headline speedups", fontsize=9)
    fig.suptitle(f"fastsnn on {result['device']}, {result['threads']} threads, "
                 f"copy {result['copy_bandwidth_GBps']:.1f} GB/s, {result['date']}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
