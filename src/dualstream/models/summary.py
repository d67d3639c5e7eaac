"""Parameter and FLOP table of the registered models.

Models are built and run on the ``meta`` device (shapes only, no memory, no
arithmetic), so the 280 M-parameter late-fusion model costs nothing to count.
FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode`, which
counts convolutions, matrix products and attention, one multiply-add as two
FLOPs; element-wise ops (ReLU, BatchNorm, pooling, softmax) are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from .registry import create_model, list_models

__all__ = ["summary_rows", "format_model_table"]


def summary_rows(names: Sequence[str] | None = None, *, num_classes: int = 101) -> list[tuple[str, int, float]]:
    """``(name, parameters, GFLOPs)`` per model, at its default input size and frames, batch 1.

    Args:
        names: models to list; all registered models when ``None``.
        num_classes: classifier size (101: UCF101, the paper's setting).
    """
    rows = []
    for name in list_models() if names is None else names:
        with torch.device("meta"):
            model = create_model(name, num_classes=num_classes).eval()
            frames, size = model.default_cfg["frames"], model.default_cfg["input_size"]
            rgb = torch.empty(1, 3 * frames, size, size)
            flow = torch.empty(1, 2 * frames, size, size)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(rgb, flow)
        params = sum(p.numel() for p in model.parameters())
        rows.append((name, params, counter.get_total_flops() / 1e9))
    return rows


def format_model_table(rows: Sequence[tuple[str, int, float]] | None = None) -> str:
    """An aligned text table of :func:`summary_rows` (computed when ``rows`` is ``None``)."""
    if rows is None:
        rows = summary_rows()
    header = ("model", "params", "GFLOPs")
    body = [(name, f"{params:,}", f"{gflops:.3f}") for name, params, gflops in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(3)]

    def line(cells: Sequence[str]) -> str:  # the name left-aligned, the numbers right-aligned
        return "  ".join([cells[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(cells[1:], widths[1:]))])

    rule = "  ".join("-" * w for w in widths)
    note = (
        "# batch 1 at each model's default input size and 10 frames; GFLOPs from "
        "torch FlopCounterMode (1 multiply-add = 2 FLOPs; conv, matmul, attention only)"
    )
    return "\n".join([note, line(header), rule, *(line(r) for r in body)])
