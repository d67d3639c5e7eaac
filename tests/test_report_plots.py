"""curves.png and confusion.png: written, and sized so that 101 class names stay legible."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np

from dualstream.report.plots import plot_confusion, plot_curves


def test_curves_png(tmp_path):
    history = [{"epoch": e, "offset": 5 if e < 3 else 8, "train_acc": 0.1 * e, "test_acc": 0.08 * e,
                "train_loss": 2 - 0.2 * e, "test_loss": 2.1 - 0.15 * e} for e in range(6)]
    path = plot_curves(history, tmp_path / "curves.png", title="t")
    assert mpimg.imread(path).shape[:2] == (420, 1100)


def test_confusion_png_small(tmp_path):
    path = plot_confusion([[3, 1], [0, 4]], ["MoveUp", "MoveDown"], tmp_path / "confusion.png", title="t")
    h, w = mpimg.imread(path).shape[:2]
    assert 400 <= h <= 600 and 500 <= w <= 800


def test_confusion_png_at_101_classes(tmp_path):
    rng = np.random.default_rng(0)
    m = (np.eye(101, dtype=int) * 30 + rng.integers(0, 3, (101, 101))).tolist()
    path = plot_confusion(m, [f"Class{i:03d}Name" for i in range(101)], tmp_path / "confusion.png")
    h, w = mpimg.imread(path).shape[:2]
    assert h >= 101 * 20 and w >= 101 * 20  # >= 20 px per class row and column at 150 dpi
