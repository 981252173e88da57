"""Training curves as a PNG: loss and accuracy per epoch from a run's history."""

from __future__ import annotations

import os
from collections.abc import Sequence


def require_matplotlib() -> None:
    """Raise ``ImportError`` with the fix when matplotlib is missing (checked before a run
    starts, so a long training run never fails at its end)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install matplotlib") from None


def plot_history(history: Sequence[dict], path: os.PathLike, title: str = "") -> None:
    """Write ``path`` (PNG): train/test loss on the left, train/test accuracy on the right.

    ``history`` is the per-epoch list a run keeps (``epoch``, ``train_loss``,
    ``test_loss``, ``train_accuracy``, ``test_accuracy``).
    """
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    if not history:
        raise ValueError("plot_history needs at least one epoch of history")
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((left, "loss", "loss"), (right, "accuracy", "accuracy")):
        for split in ("train", "test"):
            values = [h[f"{split}_{key}"] for h in history]
            ax.plot(epochs, values, marker="o", markersize=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
