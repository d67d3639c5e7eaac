"""Building blocks shared by the early-fusion model and its baselines."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ConvStream", "ClassifierHead", "init_weights", "check_inputs", "stream_logits", "centre_frames"]


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


class ClassifierHead(nn.Sequential):
    """Adaptive average pooling to ``pool_size`` x ``pool_size``, then three FC layers.

    ``FC(hidden[0]) -> ReLU -> Dropout -> FC(hidden[1]) -> ReLU -> Dropout -> FC(num_classes)``;
    the output is class scores (logits).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        num_classes: int,
        pool_size: int,
        hidden: Sequence[int],
        dropout: float,
    ) -> None:
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(pool_size), nn.Flatten()]
        prev = in_channels * pool_size * pool_size
        for width in hidden:
            layers += [nn.Linear(prev, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            prev = width
        layers.append(nn.Linear(prev, num_classes))
        super().__init__(*layers)


def init_weights(module: nn.Module) -> None:
    """He initialisation for convolutions and linear layers, unit BatchNorm, zero biases.

    Applied with ``model.apply(init_weights)``; the attention layer's ``gamma``
    is a bare parameter and keeps its own initialisation.
    """
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def check_inputs(rgb: torch.Tensor, flow: torch.Tensor, frames: int) -> None:
    """Raise ``ValueError`` unless ``rgb`` has 3 * frames and ``flow`` 2 * frames channels."""
    if rgb.ndim != 4 or rgb.shape[1] != 3 * frames:
        raise ValueError(f"rgb must be (B, {3 * frames}, S, S), got {tuple(rgb.shape)}")
    if flow.ndim != 4 or flow.shape[1] != 2 * frames:
        raise ValueError(f"flow must be (B, {2 * frames}, S, S), got {tuple(flow.shape)}")


def stream_logits(heads: nn.ModuleList | None, features: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each stream's own logits from its (B, C) features: the per-stream auxiliary losses' input."""
    if heads is None:
        raise ValueError("aux=True needs a model built with aux_heads=True")
    return [head(x) for head, x in zip(heads, features, strict=True)]


def centre_frames(rgb: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, 3F, S, S) stacked frames minus each pixel's mean over the F frames: what moves stays, a static
    background goes (an appearance-free RGB input, like TSN's RGB difference)."""
    stack = rgb.unflatten(1, (frames, 3))  # (B, F, 3, S, S)
    return (stack - stack.mean(1, keepdim=True)).flatten(1, 2)
