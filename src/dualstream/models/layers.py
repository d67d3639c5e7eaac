"""Building blocks shared by the models."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .attention import SelfAttention2d

__all__ = ["ConvStream", "ClassifierHead", "TwoInputNet", "centre_frames", "fc_layers"]


class ConvStream(nn.Sequential):
    """One input stream of the early-fusion design (paper IV-2).

    A chain of *series*; series ``i`` is ``convs_per_series`` times
    ``conv3x3(width_i) -> ReLU``, then ``maxpool 2x2 -> BatchNorm``.  The first
    series is the paper's ``conv3x3 -> BN -> 128`` stem; the widths after it go
    down and back up (the paper's "feature maps slowly down-sampled then
    up-sampled"), so the stream ends with ``widths[-1]`` channels at
    ``1 / 2**len(widths)`` of the input resolution.

    Args:
        in_channels: 3 * frames for RGB, 2 * frames for flow.
        widths: output channels of each series.
        convs_per_series: 3x3 convolutions in each series.
    """

    def __init__(self, in_channels: int, *, widths: Sequence[int], convs_per_series: int = 1) -> None:
        layers: list[nn.Module] = []
        prev = in_channels
        for width in widths:
            for _ in range(convs_per_series):
                layers += [nn.Conv2d(prev, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                prev = width
            layers += [nn.MaxPool2d(2), nn.BatchNorm2d(width)]
        super().__init__(*layers)
        self.out_channels = prev


def fc_layers(in_features: int, hidden: Sequence[int], out_features: int, dropout: float) -> list[nn.Module]:
    """``FC(hidden[0]) -> ReLU -> Dropout -> ... -> FC(out_features)``, flat (their indices name the weights)."""
    layers: list[nn.Module] = []
    prev = in_features
    for width in hidden:
        layers += [nn.Linear(prev, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        prev = width
    return [*layers, nn.Linear(prev, out_features)]


class ClassifierHead(nn.Sequential):
    """Adaptive average pooling to ``pool_size`` x ``pool_size``, then ``fc_layers`` to class scores (logits)."""

    def __init__(
        self,
        in_channels: int,
        *,
        num_classes: int,
        pool_size: int,
        hidden: Sequence[int],
        dropout: float,
    ) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(pool_size), nn.Flatten(),
                         *fc_layers(in_channels * pool_size * pool_size, hidden, num_classes, dropout))


class TwoInputNet(nn.Module):
    """What every model shares: ``num_classes``, ``frames``, ``input_size`` (recorded in ``default_cfg``; the
    spatial size the model is meant for) and ``rgb_centred`` as built, its input check and initialisation."""

    def __init__(self, *, num_classes: int, frames: int, input_size: int, rgb_centred: bool) -> None:
        super().__init__()
        self.num_classes, self.frames, self.input_size, self.rgb_centred = num_classes, frames, input_size, rgb_centred

    def inputs(self, rgb: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``rgb`` and ``flow``, the RGB centred where ``rgb_centred`` (``centre_frames``); ``ValueError`` unless
        ``rgb`` has 3 * frames and ``flow`` 2 * frames channels."""
        t = self.frames
        if rgb.ndim != 4 or rgb.shape[1] != 3 * t:
            raise ValueError(f"rgb must be (B, {3 * t}, S, S), got {tuple(rgb.shape)}")
        if flow.ndim != 4 or flow.shape[1] != 2 * t:
            raise ValueError(f"flow must be (B, {2 * t}, S, S), got {tuple(flow.shape)}")
        return (centre_frames(rgb, t) if self.rgb_centred else rgb), flow

    def init_weights(self) -> None:
        """He initialisation for convolutions and linear layers, unit BatchNorm, zero biases; then PyTorch's default
        for the attention layers' ``j``, ``k``, ``l`` (``SelfAttention2d.reset_parameters``; ``gamma`` keeps its own)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, SelfAttention2d):
                module.reset_parameters()

    def aux_logits(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each stream's own logits from its (B, C) features by the subclass's ``aux`` heads (``None`` unless built
        with ``aux_heads``): the per-stream auxiliary losses' input."""
        if self.aux is None:
            raise ValueError("aux=True needs a model built with aux_heads=True")
        return [head(x) for head, x in zip(self.aux, features, strict=True)]


def centre_frames(rgb: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, 3F, S, S) stacked frames minus each pixel's mean over the F frames: what moves stays, a static
    background goes (an appearance-free RGB input, like TSN's RGB difference)."""
    stack = rgb.unflatten(1, (frames, 3))  # (B, F, 3, S, S)
    return (stack - stack.mean(1, keepdim=True)).flatten(1, 2)
