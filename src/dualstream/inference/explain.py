"""Explain a prediction: the first clip's frames, its flow in colour and, laid over the centre crop the
network saw, the attention each position of the fused feature map receives (models with a fusion layer)."""

from __future__ import annotations

import io
import math
import os

import cv2
import numpy as np

from ..flow.colour import flow_to_rgb
from .predict import Clips, Prediction

MIN_FLOW_SCALE = 1.0  # px: a still clip is drawn white instead of amplifying noise to full colour


def attention_map(attention: np.ndarray) -> np.ndarray:
    """Attention weights (N, N), query rows -> (h, w) attention received per position (sums to 1)."""
    n = attention.shape[-1]
    side = math.isqrt(n)
    if side * side != n or attention.shape != (n, n):
        raise ValueError(f"expected square attention over a square feature map, got {attention.shape}")
    return attention.mean(axis=0).reshape(side, side)


def render_explanation(clips: Clips, pred: Prediction, *, topk: int = 5) -> bytes:
    """The explanation figure as PNG bytes (no pyplot: safe in a server thread)."""
    from matplotlib.figure import Figure

    crop = clips.crop
    ys, xs = slice(crop.top, crop.top + crop.size), slice(crop.left, crop.left + crop.size)
    frames = clips.frames[:, ys, xs]  # (T, s, s, 3)
    flows = clips.flow_px[..., ys, xs]  # (T, 2, s, s)
    scale = max(float(np.hypot(flows[:, 0], flows[:, 1]).max()), MIN_FLOW_SCALE)
    heat = None if pred.attention is None else cv2.resize(attention_map(pred.attention).astype(np.float32),
                                                          frames.shape[1:3][::-1])  # bilinear
    t = frames.shape[0]
    rows = 3 if heat is not None else 2
    fig = Figure(figsize=(1.6 * t, 1.7 * rows + 0.6), dpi=100)
    top = ", ".join(f"{c} {p:.2f}" for c, p in pred.top(topk))
    fig.suptitle(f"{os.path.basename(pred.video)}: {top}", fontsize=9)
    for i in range(t):
        flow_title = f"flow (max {scale:.1f} px)" if i == 0 else "flow"
        panels = [(frames[i], None, f"frame {clips.indices[0][i]}"),
                  (flow_to_rgb(flows[i], max_magnitude=scale), None, flow_title),
                  (frames[i], heat, "fusion attention" if i == 0 else "")][:rows]
        for r, (image, overlay, title) in enumerate(panels):
            ax = fig.add_subplot(rows, t, r * t + i + 1)
            ax.imshow(image)
            if overlay is not None:
                ax.imshow(overlay, cmap="jet", alpha=0.5, vmin=0.0, vmax=float(overlay.max()) or 1.0)
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
