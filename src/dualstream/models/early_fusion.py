"""Early-fusion dual-stream network (paper IV-2), small CPU variant.

    rgb (3T) -> conv-BN-ReLU x2, pool ... -> C ┐
                                               ├ concat (2C) -> SelfAttention2d -> pool -> FC x3 -> classes
    flow (2T) -> conv-BN-ReLU x2, pool ... -> C ┘
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import SelfAttention2d
from .registry import register_model


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class EarlyFusion(nn.Module):
    def __init__(self, *, num_classes: int, frames: int = 10, input_size: int = 64, width: int = 32,
                 pooled: int = 4, hidden: int = 128, dropout: float = 0.3):
        super().__init__()

        def stream(cin: int) -> nn.Sequential:
            return nn.Sequential(
                _conv_bn(cin, width), nn.MaxPool2d(2),
                _conv_bn(width, width), nn.MaxPool2d(2),
                _conv_bn(width, width), nn.MaxPool2d(2),
            )

        self.rgb = stream(3 * frames)
        self.flow = stream(2 * frames)
        self.attention = SelfAttention2d(2 * width)
        self.pool = nn.AdaptiveAvgPool2d(pooled)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * pooled * pooled, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.rgb(rgb), self.flow(flow)], dim=1)  # (B, 2C, h, w)
        return self.head(self.pool(self.attention(y)))


@register_model
def early_fusion_small(**kwargs) -> nn.Module:
    return EarlyFusion(**kwargs)
