"""Baselines of the ablation: each uses exactly the inputs and layers it claims to."""

from __future__ import annotations

import pytest
import torch

from dualstream.models import create_model


def _clips(seed: int, batch: int = 3, frames: int = 4, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, 3 * frames, size, size, generator=gen),
        torch.randn(batch, 2 * frames, size, size, generator=gen),
    )


@pytest.mark.parametrize(("name", "used"), [("rgb_only_small", "rgb"), ("flow_only_small", "flow")])
def test_single_stream_ignores_the_other_input(name: str, used: str) -> None:
    """rgb_only depends on rgb only and flow_only on flow only (same call signature as fusion models)."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=4, frames=4).eval()
    rgb, flow = _clips(1)
    other_rgb, other_flow = _clips(2)
    with torch.no_grad():
        base = model(rgb, flow)
        if used == "rgb":
            same, changed = model(rgb, other_flow), model(other_rgb, flow)
        else:
            same, changed = model(other_rgb, flow), model(rgb, other_flow)
    assert torch.equal(base, same)
    assert not torch.allclose(base, changed)


@pytest.mark.parametrize("flow_weight", [0.0, 0.3, 1.0])
def test_two_stream_average_is_log_of_weighted_softmax_mean(flow_weight: float) -> None:
    """Output = log((1 - w) softmax(s_rgb) + w softmax(s_flow)) (Simonyan & Zisserman score averaging)."""
    torch.manual_seed(3)
    model = create_model("two_stream_average_small", num_classes=5, frames=4, flow_weight=flow_weight).eval()
    rgb, flow = _clips(4)
    with torch.no_grad():
        out = model(rgb, flow)
        p_rgb = torch.softmax(model.rgb_net(rgb, flow), dim=1)
        p_flow = torch.softmax(model.flow_net(rgb, flow), dim=1)
    expected = torch.log((1 - flow_weight) * p_rgb + flow_weight * p_flow)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    # a log-probability: softmax of it is the averaged distribution itself
    torch.testing.assert_close(torch.softmax(out, dim=1), out.exp(), rtol=0, atol=1e-6)
    assert not torch.allclose(p_rgb, p_flow)  # otherwise the weighting would be untested


def test_two_stream_average_rejects_weight_outside_unit_interval() -> None:
    """A flow weight of 1.5 is not an average."""
    with pytest.raises(ValueError):
        create_model("two_stream_average_small", num_classes=5, flow_weight=1.5)


def test_concat_fusion_is_early_fusion_without_attention() -> None:
    """Same streams and head as early fusion; only the attention layer (eq. 2-4) is missing."""
    fused = create_model("early_fusion_small", num_classes=6)
    concat = create_model("concat_fusion_small", num_classes=6)
    assert concat.attention is None
    attention_params = sum(p.numel() for p in fused.attention.parameters())
    total = sum(p.numel() for p in fused.parameters())
    assert sum(p.numel() for p in concat.parameters()) == total - attention_params
    assert {k for k in fused.state_dict() if not k.startswith("attention.")} == set(concat.state_dict())
