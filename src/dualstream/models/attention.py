"""Self-attention over the spatial positions of a feature map (paper eq. 2-4).

The fusion layer of Jalal et al. (FUSION 2019) follows SAGAN (Zhang et al., 2019).
For a feature map ``y`` with ``C`` channels and ``N = H * W`` positions:

* eq. 2: three 1x1 convolutions ``j(y)``, ``k(y)`` (``C/8`` channels each) and
  ``l(y)`` (``C`` channels);
* eq. 3: ``e = softmax(j(y)^T k(y))``, an ``N x N`` matrix whose entry ``(a, b)``
  is how much output position ``b`` attends to input position ``a`` (the
  softmax runs over ``a``, so every column of ``e`` sums to one);
* eq. 4: ``out = gamma * (l(y) e) + y`` with ``gamma`` a learned scalar.

In query/key/value terms ``k`` projects the *queries* (output positions), ``j``
the *keys* and ``l`` the *values*; the scores are not divided by ``sqrt(d)``.
The module stores the attention matrix query-major, as ``e^T``: row ``b`` of
:attr:`SelfAttention2d.last_attention` holds the weights of output position
``b`` over the ``N`` input positions and sums to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SelfAttention2d"]


class SelfAttention2d(nn.Module):
    """SAGAN-style self-attention with a residual connection (eq. 2-4).

    Args:
        channels: ``C``, the channels of the input and of the output.
        qk_channels: channels of ``j`` and ``k``; ``C // 8`` when ``None``
            (the paper uses 32 for the 256-channel early-fusion map).
        gamma_init: initial value of ``gamma``.  ``None`` (the paper's choice)
            draws it at random from ``U(0, 0.1)``: the paper says only that
            gamma is randomly initialised; a small positive value lets the
            attention branch contribute, and get gradients, from the start.
            Pass ``0.0`` for the SAGAN initialisation (identity at start).
        fused: compute the attention with
            :func:`torch.nn.functional.scaled_dot_product_attention`
            (``scale=1.0``, as eq. 3 has no ``1/sqrt(d)``); ``False`` uses the
            plain matrix products, which is what ONNX export wants.  It is a
            plain attribute and can be switched on a built module.

    Attributes:
        record: when ``True`` the forward pass runs the plain path and keeps
            the softmax weights (detached) in :attr:`last_attention`, shape
            ``(B, N, N)``, query positions by key positions, for explaining
            predictions.
        last_attention: the weights from the latest recorded forward, or
            ``None``.
    """

    def __init__(
        self,
        channels: int,
        *,
        qk_channels: int | None = None,
        gamma_init: float | None = None,
        fused: bool = True,
    ) -> None:
        super().__init__()
        if qk_channels is None:
            qk_channels = max(1, channels // 8)
        self.channels = channels
        self.qk_channels = qk_channels
        self.j = nn.Conv2d(channels, qk_channels, kernel_size=1)  # keys (SAGAN f)
        self.k = nn.Conv2d(channels, qk_channels, kernel_size=1)  # queries (SAGAN g)
        self.l = nn.Conv2d(channels, channels, kernel_size=1)  # values (SAGAN h)
        if gamma_init is None:
            gamma = torch.empty(1).uniform_(0.0, 0.1)
        else:
            gamma = torch.full((1,), float(gamma_init))
        self.gamma = nn.Parameter(gamma)
        self.fused = fused
        self.record = False
        self.last_attention: torch.Tensor | None = None

    def reset_parameters(self) -> None:
        """PyTorch's default init for ``j``, ``k``, ``l`` (``gamma`` is left alone).

        Models call this after their He initialisation: He-scaled ``j`` and ``k``
        give unscaled scores of standard deviation ~ sqrt(C/8) and a saturated
        softmax at the start of training; the default init keeps them O(1).
        """
        for conv in (self.j, self.k, self.l):
            conv.reset_parameters()

    def extra_repr(self) -> str:
        return f"channels={self.channels}, qk_channels={self.qk_channels}, fused={self.fused}"

    def _project(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys (B, N, C/8) and values (B, N, C), position-major."""
        query = self.k(y).flatten(2).transpose(1, 2)
        key = self.j(y).flatten(2).transpose(1, 2)
        value = self.l(y).flatten(2).transpose(1, 2)
        return query, key, value

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        b, c, h, w = y.shape
        query, key, value = self._project(y)
        if self.fused and not self.record:
            mixed = F.scaled_dot_product_attention(
                query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1), scale=1.0
            ).squeeze(1)
        else:
            weights = torch.softmax(query @ key.transpose(1, 2), dim=-1)  # e^T, (B, N, N)
            if self.record:
                self.last_attention = weights.detach()
            mixed = weights @ value
        out = mixed.transpose(1, 2).reshape(b, c, h, w)
        return self.gamma * out + y
