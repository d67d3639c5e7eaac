"""Training curves (train vs test accuracy and loss per epoch, as the paper's Fig. 4 and 5) and the
confusion matrix, readable from a handful of classes up to UCF-101's 101."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=fig.dpi)
    os.replace(tmp, path)


def plot_curves(history: list[dict], path: str | Path, *, title: str = "") -> Path:
    """Two panels: accuracy (train, test) and loss (train, test) against the epoch (1-based)."""
    plt = _pyplot()
    path = Path(path)
    epochs = [h["epoch"] + 1 for h in history]
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    acc.plot(epochs, [h["train_acc"] for h in history], label="train", color="tab:blue")
    acc.plot(epochs, [h["test_acc"] for h in history], label="test (clip)", color="tab:orange")
    acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title="accuracy")
    loss.plot(epochs, [h["train_loss"] for h in history], label="train", color="tab:blue")
    if all("test_loss" in h for h in history):
        loss.plot(epochs, [h["test_loss"] for h in history], label="test (clip)", color="tab:orange")
    loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    for ax in (acc, loss):
        ax.grid(alpha=0.3)
        ax.legend()
        if len(epochs) == 1:
            ax.set_xlim(0.5, 1.5)
    shifts = [h["epoch"] + 1 for a, h in zip(history, history[1:]) if "offset" in h and h["offset"] != a["offset"]]
    for e in shifts:  # the frame-offset shift (f5.. -> f8..)
        for ax in (acc, loss):
            ax.axvline(e - 0.5, color="grey", linestyle=":", linewidth=1)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def plot_confusion(confusion: list[list[int]], classes: list[str], path: str | Path, *, title: str = "") -> Path:
    """Row-normalised confusion matrix (true class per row); sized so that 101 labels stay legible."""
    plt = _pyplot()
    path = Path(path)
    m = np.asarray(confusion, dtype=float)
    rows = m.sum(1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    k = len(classes)
    side = max(5.0, 0.16 * k + 2.5)
    font = 9 if k <= 20 else 6 if k <= 60 else 5
    fig, ax = plt.subplots(figsize=(side + 1.2, side), dpi=100 if k <= 20 else 150)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(k), classes, rotation=90, fontsize=font)
    ax.set_yticks(range(k), classes, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        for i, j in zip(*np.nonzero(m)):
            ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=font,
                    color="white" if norm[i, j] > 0.5 else "black")
    else:  # faint grid so that a cell can be followed to its labels
        ax.set_xticks(np.arange(-0.5, k, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, k, 1), minor=True)
        ax.grid(which="minor", color="0.9", linewidth=0.3)
        ax.tick_params(which="minor", length=0)
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, label="fraction of the true class")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path
