"""Every registered model honours the forward interface the trainer relies on.

``model(rgb (B, 3F, S, S), flow (B, 2F, S, S)) -> (B, num_classes)`` class
scores, finite, trainable end to end (a gradient on every parameter), in train
and eval mode.  Paper-sized models run at a reduced input size here (their
pooling / flatten sizes follow ``input_size``); full-size passes are ``slow``.
"""

from __future__ import annotations

import pytest
import torch

from dualstream.models import create_model, list_models

#: input size per model for the fast tests (paper models shrunk, small ones at their default)
FAST_SIZE = {
    **{name: 64 for name in ("early_fusion", "rgb_only", "flow_only", "two_stream_average", "concat_fusion")},
    "late_fusion": 52,  # 2 x 2 maps at the attention layers, the cheapest size with more than one position
}
FRAMES = 4
NUM_CLASSES = 5


def _clips(batch: int, size: int, frames: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    rgb = torch.randn(batch, 3 * frames, size, size, generator=gen)
    flow = torch.randn(batch, 2 * frames, size, size, generator=gen)
    return rgb, flow


def _fast_model(name: str) -> tuple[torch.nn.Module, int]:
    with torch.device("meta"):  # read the default size without allocating a paper-sized model
        default_size = create_model(name, num_classes=NUM_CLASSES).default_cfg["input_size"]
    size = FAST_SIZE.get(name, default_size)
    torch.manual_seed(0)
    return create_model(name, num_classes=NUM_CLASSES, frames=FRAMES, input_size=size), size


def _model_and_clips(name: str, *, batch: int, seed: int, train: bool):
    """A fast-size model in train or eval mode, and fresh random clips for it."""
    model, size = _fast_model(name)
    model.train(train)
    rgb, flow = _clips(batch, size, FRAMES, seed=seed)
    return model, size, rgb, flow


@pytest.mark.parametrize("name", list_models())
def test_train_mode_shape_finite_and_gradients(name: str) -> None:
    """Train mode: exact output shape, no NaN/inf, and backward reaches every parameter."""
    model, _, rgb, flow = _model_and_clips(name, batch=3, seed=1, train=True)
    out = model(rgb, flow)
    assert out.shape == (3, NUM_CLASSES)
    assert torch.isfinite(out).all()
    target = torch.tensor([0, 3, 4])
    torch.nn.functional.cross_entropy(out, target).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", list_models())
def test_eval_mode_shape_finite_and_deterministic(name: str) -> None:
    """Eval mode: dropout off, so the same clip gives the same scores; shape exact, finite."""
    model, size, rgb, flow = _model_and_clips(name, batch=2, seed=2, train=False)
    with torch.no_grad():
        first = model(rgb, flow)
        second = model(rgb, flow)
    assert first.shape == (2, NUM_CLASSES)
    assert torch.isfinite(first).all()
    assert torch.equal(first, second)
    # the scores depend on the input (a constant model would pass the checks above)
    other_rgb, other_flow = _clips(2, size, FRAMES, seed=3)
    with torch.no_grad():
        assert not torch.allclose(model(other_rgb, other_flow), first)


@pytest.mark.parametrize("name", list_models())
def test_wrong_channel_count_is_rejected(name: str) -> None:
    """Swapped rgb/flow tensors (30 vs 20 channels at 10 frames) fail with ValueError, not silently."""
    model, _, rgb, flow = _model_and_clips(name, batch=1, seed=4, train=False)
    with pytest.raises(ValueError):
        model(flow, rgb)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["early_fusion", "late_fusion"])
def test_paper_models_full_size_forward(name: str) -> None:
    """The paper models at 224 x 224 and 10 frames give (B, 101) finite scores."""
    if name not in list_models():
        pytest.skip(f"{name} not registered")
    torch.manual_seed(0)
    model = create_model(name, num_classes=101).eval()
    rgb, flow = _clips(1, 224, 10, seed=5)
    with torch.no_grad():
        out = model(rgb, flow)
    assert out.shape == (1, 101)
    assert torch.isfinite(out).all()


def _attention_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """model.attention as a list: one layer (early fusion) or one per stream (late fusion: [rgb, flow])."""
    att = model.attention
    return list(att) if isinstance(att, torch.nn.ModuleList) else [att]


@pytest.mark.parametrize(("name", "positions", "layers"), [("early_fusion_small", 64, 1), ("late_fusion_small", 25, 2)])
def test_fusion_models_expose_recordable_attention(name: str, positions: int, layers: int) -> None:
    """Prediction explanation: model.attention records (B, N, N) row-stochastic weights in a forward pass."""
    model, size, rgb, flow = _model_and_clips(name, batch=2, seed=6, train=False)
    found = _attention_layers(model)
    assert len(found) == layers
    for layer in found:
        layer.record = True
    with torch.no_grad():
        model(rgb, flow)
    for layer in found:
        weights = layer.last_attention
        assert weights.shape == (2, positions, positions)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, positions), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["early_fusion_small", "late_fusion_small"])
def test_plain_attention_path_gives_same_scores(name: str) -> None:
    """Switching every attention layer to the plain (export) path leaves the model's scores unchanged."""
    model, _, rgb, flow = _model_and_clips(name, batch=2, seed=7, train=False)
    with torch.no_grad():
        fused = model(rgb, flow)
        for layer in _attention_layers(model):
            layer.fused = False
        plain = model(rgb, flow)
    torch.testing.assert_close(plain, fused, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["early_fusion_small", "late_fusion_small"])
def test_aux_heads_give_each_stream_its_own_logits(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=NUM_CLASSES, frames=FRAMES, aux_heads=True).eval()  # no dropout
    size = model.default_cfg["input_size"]
    rgb, flow = _clips(3, size, FRAMES, seed=1)
    logits, (rgb_logits, flow_logits) = model(rgb, flow, aux=True)
    assert logits.shape == rgb_logits.shape == flow_logits.shape == (3, NUM_CLASSES)
    torch.testing.assert_close(logits, model(rgb, flow))  # the heads leave the fused output alone
    (rgb_logits.sum() + 2 * flow_logits.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.aux.parameters())
    rgb_stream = model.rgb_stream if name.startswith("early") else model.rgb_convs
    assert all(p.grad is not None for p in rgb_stream.parameters())  # the RGB head's loss reaches its stream
    with pytest.raises(ValueError, match="aux_heads"):
        create_model(name, num_classes=NUM_CLASSES, frames=FRAMES)(rgb, flow, aux=True)


@pytest.mark.parametrize("name", ["early_fusion_small", "late_fusion_small", "rgb_only_small",
                                  "two_stream_average_small", "concat_fusion_small"])
def test_rgb_centred_models_ignore_a_static_background(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=NUM_CLASSES, frames=FRAMES, rgb_centred=True).eval()
    size = model.default_cfg["input_size"]
    rgb, flow = _clips(2, size, FRAMES, seed=2)
    background = torch.randn(2, 3, size, size).repeat(1, FRAMES, 1, 1)  # the same image in every frame
    torch.testing.assert_close(model(rgb + background, flow), model(rgb, flow), atol=1e-4, rtol=1e-4)
    plain = create_model(name, num_classes=NUM_CLASSES, frames=FRAMES).eval()
    assert not torch.allclose(plain(rgb + background, flow), plain(rgb, flow), atol=1e-3)


def test_centre_frames_subtracts_each_pixels_mean_over_the_frames():
    from dualstream.models.layers import centre_frames

    rgb = torch.randn(2, 3 * FRAMES, 5, 5)
    out = centre_frames(rgb, FRAMES)
    frames = rgb.view(2, FRAMES, 3, 5, 5)
    torch.testing.assert_close(out.view(2, FRAMES, 3, 5, 5), frames - frames.mean(1, keepdim=True))
    assert out[:, 3:6].sub(rgb[:, 3:6] - frames.mean(1)).abs().max() < 1e-6  # frame 1 keeps its own channels
