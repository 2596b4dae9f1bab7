"""The confusion matrix as a PNG, with matplotlib (Agg: no display needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from npdeeplab.errors import InputError
from npdeeplab.files import atomic_file


def plot_confusion(
    panels: Sequence[tuple[str, np.ndarray]], names: Sequence[str], path: str | os.PathLike
) -> Path:
    """One heat map per (title, confusion matrix), each row divided by its ground-truth pixels, over the
    classes that appear in the ground truth or in a prediction; written atomically to path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install matplotlib") from None
    shown = np.flatnonzero(sum(c.sum(axis=0) + c.sum(axis=1) for _, c in panels) > 0)
    if shown.size == 0:
        shown = np.arange(len(names))
    labels = [names[i] if i < len(names) else f"class {i}" for i in shown]
    size = 2.5 + 0.45 * len(shown)
    figure, axes = pyplot.subplots(1, len(panels), figsize=(size * len(panels) + 1.5, size), squeeze=False)
    for axis, (title, confusion) in zip(axes[0], panels, strict=True):
        rows = confusion[np.ix_(shown, shown)].astype(np.float64)
        totals = rows.sum(axis=1, keepdims=True)
        normalised = np.divide(rows, totals, out=np.zeros_like(rows), where=totals > 0)
        picture = axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
        for (r, c), value in np.ndenumerate(normalised):
            if value >= 0.005:
                axis.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7,
                          color="white" if value > 0.5 else "black")
        axis.set_xticks(range(len(shown)), labels, rotation=60, ha="right", fontsize=8)
        axis.set_yticks(range(len(shown)), labels, fontsize=8)
        axis.set_xlabel("predicted")
        axis.set_ylabel("ground truth")
        axis.set_title(title, fontsize=9)
        figure.colorbar(picture, ax=axis, fraction=0.046, pad=0.04, label="share of the ground-truth row")
    figure.tight_layout()
    with atomic_file(path) as f:
        figure.savefig(f, format="png", dpi=100)
    pyplot.close(figure)
    return Path(path)
