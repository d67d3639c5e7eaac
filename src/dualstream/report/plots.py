"""Training curves (as the paper's Fig. 4 and 5) and the confusion matrix, legible up to UCF-101's 101 classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import atomic_write


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Write ``fig`` atomically (the format from the suffix, png without one) and close it."""
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=fig.dpi, format=path.suffix[1:] or "png"))
    pyplot().close(fig)
    return path


def plot_curves(history: list[dict], path: str | Path, *, title: str = "") -> Path:
    """Two panels: accuracy (train, test) and loss (train, test) against the epoch (1-based)."""
    plt = pyplot()
    epochs = [h["epoch"] + 1 for h in history]
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title="accuracy")
    loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    from matplotlib.ticker import MaxNLocator

    for ax, metric in ((acc, "acc"), (loss, "loss")):
        ax.plot(epochs, [h[f"train_{metric}"] for h in history], label="train", color="tab:blue")
        ax.plot(epochs, [h[f"test_{metric}"] for h in history], label="test (clip)", color="tab:orange")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
        if len(epochs) == 1:
            ax.set_xlim(0.5, 1.5)
    shifts = [h["epoch"] + 1 for a, h in zip(history, history[1:]) if h["offset"] != a["offset"]]
    for e in shifts:  # the frame-offset shift (f5.. -> f8..)
        for ax in (acc, loss):
            ax.axvline(e - 0.5, color="grey", linestyle=":", linewidth=1)
        acc.annotate(f"offset f{history[e - 1]['offset']}..", (e - 0.5, 0.02), fontsize=8, color="grey",
                     rotation=90, ha="right", va="bottom")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_confusion(confusion: list[list[int]], classes: list[str], path: str | Path, *, title: str = "") -> Path:
    """Row-normalised confusion matrix (true class per row); sized so that 101 labels stay legible."""
    plt = pyplot()
    m = np.asarray(confusion, dtype=float)
    rows = m.sum(1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    from matplotlib.colors import PowerNorm

    k = len(classes)
    font = 9 if k <= 20 else 6 if k <= 60 else 5
    label = 0.6 * font / 72 * max(len(c) for c in classes) + 0.5  # inches for the tick labels and axis title
    cells = max(3.5, 0.16 * k)
    fig = plt.figure(figsize=(cells + label + 1.6, cells + label + 0.5), dpi=100 if k <= 20 else 150)
    w, h = fig.get_size_inches()
    ax = fig.add_axes((label / w, label / h, cells / w, cells / h))
    cax = fig.add_axes(((label + cells + 0.2) / w, label / h, 0.25 / w, cells / h))
    # a square-root scale, so that a single confused video out of 30 is still visible
    im = ax.imshow(norm, cmap="Blues", norm=PowerNorm(0.5, vmin=0, vmax=1), interpolation="nearest")
    ax.set_xticks(range(k), classes, rotation=90, fontsize=font)
    ax.set_yticks(range(k), classes, fontsize=font)
    ax.set(xlabel="predicted", ylabel="true")
    if k <= 20:
        for i, j in zip(*np.nonzero(m)):
            ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=font,
                    color="white" if norm[i, j] > 0.5 else "black")
    else:  # faint grid so that a cell can be followed to its labels
        ax.set_xticks(np.arange(-0.5, k, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, k, 1), minor=True)
        ax.grid(which="minor", color="0.9", linewidth=0.3)
        ax.tick_params(which="minor", length=0)
    fig.colorbar(im, cax=cax, label="fraction of the true class")
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)
