"""Self-attention fusion layer of the paper (III-C, eq. 2-4), SAGAN style."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention2d(nn.Module):
    """out = gamma * (l(y) e) + y with e = softmax(j(y)^T k(y)) over key positions (eq. 2-4).

    j, k: 1x1 convs to C/8 channels; l: 1x1 conv to C channels; gamma: a learned scalar.
    """

    def __init__(self, channels: int, *, qk_channels: int | None = None, gamma_init: float = 0.0, fused: bool = True):
        super().__init__()
        qk = qk_channels or max(1, channels // 8)
        self.j = nn.Conv2d(channels, qk, 1)
        self.k = nn.Conv2d(channels, qk, 1)
        self.l = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.tensor(float(gamma_init)))
        self.fused = fused
        self.record = False
        self.last_attention: torch.Tensor | None = None

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        b, c, h, w = y.shape
        q = self.j(y).flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, HW, C/8)
        k = self.k(y).flatten(2).transpose(1, 2)  # (B, HW, C/8)
        v = self.l(y).flatten(2).transpose(1, 2)  # (B, HW, C)
        if self.fused and not self.record:
            out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        else:
            e = torch.softmax(q @ k.transpose(1, 2), dim=-1)  # (B, HW queries, HW keys)
            if self.record:
                self.last_attention = e.detach()
            out = e @ v
        out = out.transpose(1, 2).reshape(b, c, h, w)
        return self.gamma * out + y
