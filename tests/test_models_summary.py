"""Model table: parameter counts and FLOPs (FlopCounterMode, 1 multiply-add = 2 FLOPs) per model."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dualstream.models import create_model, format_model_table, list_models, summary_rows


@pytest.fixture(scope="module")
def rows() -> list[tuple[str, int, float]]:
    return summary_rows()


def test_one_row_per_registered_model_with_exact_counts(rows) -> None:
    """Every model is listed once; parameter counts are those of the built model (101 classes)."""
    assert [r[0] for r in rows] == list_models()
    by_name = {name: params for name, params, _ in rows}
    assert by_name["late_fusion"] == 280_314_599
    assert by_name["early_fusion"] == 4_994_662
    small = create_model("early_fusion_small", num_classes=101)
    assert by_name["early_fusion_small"] == sum(p.numel() for p in small.parameters())


def test_flops_of_small_model_match_hand_count(rows) -> None:
    """early_fusion_small at 64 x 64, 10 frames: convs, attention (eq. 2-4) and FC, 2 FLOPs per multiply-add."""
    convs = 0
    for cin in (30, 20):  # rgb and flow streams: 24 ch at 64^2, 12 at 32^2, 24 at 16^2
        convs += 9 * (cin * 24 * 64 * 64 + 24 * 12 * 32 * 32 + 12 * 24 * 16 * 16)
    n, c, d = 8 * 8, 48, 6  # positions, fused channels, j/k channels
    attention = n * c * (2 * d + c) + n * n * d + n * n * c  # 1x1 convs, j^T k, l e
    head = 48 * 16 * 128 + 128 * 64 + 64 * 101
    expected = 2 * (convs + attention + head)
    gflops = {name: g for name, _, g in rows}["early_fusion_small"]
    assert gflops * 1e9 == pytest.approx(expected, rel=1e-12)


def test_meta_device_count_equals_real_run() -> None:
    """FLOPs counted on meta tensors (used for the 280 M model) equal those of a real CPU forward."""
    torch.manual_seed(0)
    model = create_model("late_fusion_small", num_classes=101).eval()
    gen = torch.Generator().manual_seed(1)
    rgb, flow = torch.randn(1, 30, 64, 64, generator=gen), torch.randn(1, 20, 64, 64, generator=gen)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(rgb, flow)
    (row,) = summary_rows(["late_fusion_small"])
    assert row[2] * 1e9 == counter.get_total_flops()


def test_table_is_aligned_and_says_how_flops_are_counted(rows) -> None:
    """Header names the counting convention; every row has the same width, numbers right-aligned."""
    table = format_model_table(rows)
    lines = table.splitlines()
    assert "1 multiply-add = 2 FLOPs" in lines[0]
    assert lines[1].split() == ["model", "params", "GFLOPs"]
    body = lines[3:]
    assert len(body) == len(rows)
    assert len({len(line) for line in lines[1:]}) == 1
    assert any(line.startswith("late_fusion ") and " 280,314,599 " in line for line in body)
