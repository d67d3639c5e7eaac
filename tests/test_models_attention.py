"""SelfAttention2d: the SAGAN-style fusion layer of the paper (eq. 2-4)."""

from __future__ import annotations

import pytest
import torch

from dualstream.models import SelfAttention2d


def _input(b: int = 2, c: int = 16, h: int = 5, w: int = 6, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, h, w, generator=gen)


def test_gamma_zero_is_identity_exactly() -> None:
    """Eq. 4, out = gamma * (l(y) e) + y: with gamma = 0 the layer returns y bit for bit."""
    torch.manual_seed(1)
    layer = SelfAttention2d(16, gamma_init=0.0)
    y = _input()
    for fused in (True, False):
        layer.fused = fused
        assert torch.equal(layer(y), y)


def test_default_gamma_is_random_and_nonzero() -> None:
    """The paper initialises gamma randomly (unlike SAGAN's 0), so two layers differ and gamma != 0."""
    a, b = SelfAttention2d(16), SelfAttention2d(16)
    assert a.gamma.item() != 0.0
    assert a.gamma.item() != b.gamma.item()


def test_channel_counts_follow_paper() -> None:
    """Eq. 2: j and k have C/8 channels (32 for the 256-channel early-fusion map), l has C."""
    layer = SelfAttention2d(256)
    assert (layer.j.out_channels, layer.k.out_channels, layer.l.out_channels) == (32, 32, 256)
    assert sum(p.numel() for p in layer.parameters()) == 2 * (256 * 32 + 32) + 256 * 256 + 256 + 1


def test_fused_and_plain_paths_agree() -> None:
    """The SDPA path (scale=1.0, no 1/sqrt(d)) computes the same eq. 3-4 as the plain matrix path."""
    torch.manual_seed(2)
    layer = SelfAttention2d(16, gamma_init=0.7)
    y = _input(seed=3)
    layer.fused = True
    fused = layer(y)
    layer.fused = False
    plain = layer(y)
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-5)
    # and the attention part is not negligible, so the comparison means something
    assert (plain - y).abs().max() > 1e-2


def test_plain_path_matches_equations() -> None:
    """Eq. 3-4 written out with the paper's shapes: e = softmax over input positions of j(y)^T k(y)."""
    torch.manual_seed(4)
    layer = SelfAttention2d(8, qk_channels=2, gamma_init=0.5, fused=False)
    y = _input(b=1, c=8, h=3, w=4, seed=5)
    flat = y.flatten(2)[0]  # (C, N)
    jy = layer.j.weight[:, :, 0, 0] @ flat + layer.j.bias[:, None]
    ky = layer.k.weight[:, :, 0, 0] @ flat + layer.k.bias[:, None]
    ly = layer.l.weight[:, :, 0, 0] @ flat + layer.l.bias[:, None]
    e = torch.softmax(jy.T @ ky, dim=0)  # (N, N), columns sum to 1
    expected = (0.5 * (ly @ e) + flat).reshape(1, 8, 3, 4)
    torch.testing.assert_close(layer(y), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_permutation_equivariance(fused: bool) -> None:
    """No positional terms in eq. 2-4: permuting the spatial positions permutes the output alike."""
    torch.manual_seed(6)
    layer = SelfAttention2d(16, gamma_init=0.9, fused=fused)
    y = _input(seed=7)
    b, c, h, w = y.shape
    perm = torch.randperm(h * w, generator=torch.Generator().manual_seed(8))
    y_perm = y.flatten(2)[:, :, perm].reshape(b, c, h, w)
    expected = layer(y).flatten(2)[:, :, perm].reshape(b, c, h, w)
    torch.testing.assert_close(layer(y_perm), expected, rtol=0, atol=1e-5)


def test_record_stores_row_stochastic_weights() -> None:
    """record=True keeps the (B, N, N) softmax weights, query rows over key columns, each row summing to 1."""
    torch.manual_seed(9)
    layer = SelfAttention2d(16, gamma_init=0.3)
    y = _input(seed=10)
    assert layer.last_attention is None
    layer(y)
    assert layer.last_attention is None  # not recorded unless asked
    layer.record = True
    out = layer(y)
    weights = layer.last_attention
    assert weights is not None and weights.shape == (2, 30, 30)
    assert not weights.requires_grad
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 30), rtol=0, atol=1e-6)
    assert weights.min() >= 0
    # the recorded weights are the ones used: out = gamma * (values mixed by weights) + y
    values = layer.l(y).flatten(2).transpose(1, 2)
    mixed = (weights @ values).transpose(1, 2).reshape_as(y)
    torch.testing.assert_close(out, layer.gamma * mixed + y, rtol=0, atol=1e-5)


def test_gradients_reach_all_parameters() -> None:
    """j, k, l and gamma all learn (a non-zero gamma lets the attention branch get gradients)."""
    torch.manual_seed(11)
    layer = SelfAttention2d(16)
    layer(_input(seed=12)).square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_qk_channels_default_to_an_eighth_and_at_least_one() -> None:
    assert [SelfAttention2d(c).qk_channels for c in (4, 8, 9, 16, 64)] == [1, 1, 1, 2, 8]
    layer = SelfAttention2d(16, qk_channels=3)
    assert (layer.j.out_channels, layer.k.out_channels) == (3, 3)
    assert layer.j.kernel_size == layer.k.kernel_size == layer.l.kernel_size == (1, 1)
    assert repr(layer).splitlines()[1].strip() == "channels=16, qk_channels=3, fused=True"


def test_random_gamma_is_drawn_from_zero_to_a_tenth() -> None:
    torch.manual_seed(13)
    gammas = torch.cat([SelfAttention2d(8).gamma.detach() for _ in range(200)])
    assert gammas.min() >= 0 and gammas.max() < 0.1
    assert gammas.min() < 0.01 and gammas.max() > 0.09  # the whole range is used
    assert SelfAttention2d(8, gamma_init=0.25).gamma.item() == 0.25


def test_reset_parameters_restores_the_default_init_of_j_k_l_only() -> None:
    """Default init: weights and biases uniform in +-1/sqrt(C) (C inputs of a 1x1 conv); gamma is kept."""
    layer = SelfAttention2d(64, gamma_init=0.5)
    for conv in (layer.j, layer.k, layer.l):
        torch.nn.init.constant_(conv.weight, 3.0)
        torch.nn.init.constant_(conv.bias, 3.0)
    torch.manual_seed(14)
    layer.reset_parameters()
    for conv in (layer.j, layer.k, layer.l):
        for p in (conv.weight, conv.bias):
            assert p.abs().max() <= 1 / 8 and p.abs().max() > 1 / 16  # 1/sqrt(64)
    assert layer.gamma.item() == 0.5


@pytest.mark.parametrize("name", ["early_fusion_small", "late_fusion_small", "early_fusion"])
def test_models_give_their_attention_the_default_init_not_he(name: str) -> None:
    """He-scaled j and k would saturate the softmax at the start of training (SelfAttention2d.reset_parameters):
    the models reset the attention convolutions after their He init (which zeroes biases)."""
    from dualstream.models import create_model

    torch.manual_seed(15)
    model = create_model(name, num_classes=3, frames=2, input_size=64)
    layers = [m for m in model.modules() if isinstance(m, SelfAttention2d)]
    assert layers
    for layer in layers:
        bound = 1 / layer.channels ** 0.5
        for conv in (layer.j, layer.k, layer.l):
            assert conv.weight.abs().max() <= bound
            assert conv.bias.abs().max() > 0  # He init leaves biases at zero


def test_only_the_fused_path_calls_sdpa(monkeypatch) -> None:
    """fused=False (ONNX export) and record=True (the weights are needed) use the plain matrix products."""
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(kwargs["scale"])
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    layer = SelfAttention2d(16, fused=False)
    y = _input(seed=16)
    layer(y)
    assert calls == []
    layer.fused = True
    layer(y)
    assert calls == [1.0]
    layer.record = True
    layer(y)
    assert calls == [1.0]
