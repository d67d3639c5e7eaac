"""Late fusion with self-attention in each stream (paper section IV-1, Fig. 2).

Design (paper model ``late_fusion``, 101 classes, 10 frames, 224 x 224); every
conv has a bias, no padding (stride 1) and is followed by ReLU; no BatchNorm::

    rgb (B, 30, 224, 224)                         flow (B, 20, 224, 224)
    block A  conv3x3  96        222                 (same design,
             conv3x3  96        220                  own weights)
             maxpool 2          110
    block B  conv3x3 256        108
             conv3x3 256        106
             conv4x4 512        103
             maxpool 2           51
    block D  conv3x3 512         49
             conv3x3 256         47
             conv3x3 128         45
             self-attention over 128 channels, N = 45 * 45 (eq. 2-4)
    block C  flatten 259,200
             FC 512, ReLU, dropout 0.5
             FC 512, ReLU, dropout 0.5
             FC 512, ReLU
         \\__________________ concat (eq. 5): 1024 __________________/
                      dropout 0.85, FC 101 (logits)

Parameters: 280,314,599, exactly the paper's count.

Where the paper is silent the choices and their reasons are in docs/models.md.

``model.attention`` is an ``nn.ModuleList``: ``attention[0]`` acts on the RGB
stream, ``attention[1]`` on the flow stream.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .attention import SelfAttention2d
from .layers import TwoInputNet, fc_layers
from .registry import register

__all__ = ["LateFusionNet", "PAPER_LATE", "SMALL_LATE", "late_stream_output_size"]

#: Design of the paper model (see the module docstring).
PAPER_LATE: dict = {
    "block_a": (96, 96),
    "block_b": (256, 256, 512),
    "block_d": (512, 256, 128),
    "fc": (512, 512, 512),
    "input_size": 224,
}

#: Small CPU design: same layers, narrower, 64 x 64 input (5 x 5 maps at the attention), with BatchNorm
#: and milder dropout (docs/models.md says why).
SMALL_LATE: dict = {
    "block_a": (16, 16),
    "block_b": (32, 32, 64),
    "block_d": (64, 32, 32),
    "fc": (128, 128, 128),
    "batch_norm": True,
    "dropout": 0.3,
    "fusion_dropout": 0.5,
    "input_size": 64,
}

#: Kernel sizes of the convs of blocks A, B and D, and whether the block ends with a 2x2 max-pool.
_BLOCKS = (((3, 3), True), ((3, 3, 4), True), ((3, 3, 3), False))


def late_stream_output_size(input_size: int) -> int:
    """Side of the block-D feature map for an ``input_size`` input (unpadded convs, two max-pools)."""
    size = input_size
    for kernels, pool in _BLOCKS:
        size = (size - sum(k - 1 for k in kernels)) // (2 if pool else 1)
    return size


def _conv_blocks(in_channels: int, block_widths: Sequence[Sequence[int]], batch_norm: bool) -> nn.Sequential:
    """Unpadded conv (+ BN) + ReLU layers of blocks A, B and D (``_BLOCKS``) with these widths."""
    layers: list[nn.Module] = []
    prev = in_channels
    for widths, (kernels, pool) in zip(block_widths, _BLOCKS, strict=True):
        for width, kernel in zip(widths, kernels, strict=True):
            layers.append(nn.Conv2d(prev, width, kernel_size=kernel))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            prev = width
        if pool:
            layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class LateFusionNet(TwoInputNet):
    """Two VGG-like streams with self-attention each, fused after their FC blocks (eq. 5).

    Args:
        num_classes: output classes.
        frames: sampled frames per clip (3 * frames RGB and 2 * frames flow channels).
        input_size: spatial input size; fixes the flatten size of block C, so
            inputs must have exactly this size (at least 46).
        block_a: widths of the two 3x3 convs of block A.
        block_b: widths of the 3x3, 3x3, 4x4 convs of block B.
        block_d: widths of the three 3x3 convs of block D (the last is the
            attention's channel count).
        fc: widths of the three FC layers of block C.
        dropout: dropout inside block C (paper: 0.5).
        fusion_dropout: dropout on the concatenated features (paper: 0.85).
        batch_norm: BatchNorm after every conv (paper: none; the small variant uses it).
        qk_channels, gamma_init, fused: passed to :class:`SelfAttention2d`.
        aux_heads: a linear classifier on each stream's block-C output, for ``train.aux_loss``.
        rgb_centred: subtract each RGB pixel's mean over the clip's frames (``layers.centre_frames``).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        frames: int = 10,
        input_size: int = 224,
        block_a: Sequence[int] = PAPER_LATE["block_a"],
        block_b: Sequence[int] = PAPER_LATE["block_b"],
        block_d: Sequence[int] = PAPER_LATE["block_d"],
        fc: Sequence[int] = PAPER_LATE["fc"],
        dropout: float = 0.5,
        fusion_dropout: float = 0.85,
        batch_norm: bool = False,
        qk_channels: int | None = None,
        gamma_init: float | None = None,
        fused: bool = True,
        aux_heads: bool = False,
        rgb_centred: bool = False,
    ) -> None:
        side = late_stream_output_size(input_size)
        if side < 1:
            raise ValueError(f"input_size {input_size} is too small for late fusion (minimum 46)")
        super().__init__(num_classes=num_classes, frames=frames, input_size=input_size, rgb_centred=rgb_centred)
        self.rgb_convs = _conv_blocks(3 * frames, (block_a, block_b, block_d), batch_norm)
        self.flow_convs = _conv_blocks(2 * frames, (block_a, block_b, block_d), batch_norm)
        channels = block_d[-1]
        self.attention = nn.ModuleList(SelfAttention2d(channels, qk_channels=qk_channels, gamma_init=gamma_init,
                                                       fused=fused) for _ in range(2))
        flat = channels * side * side  # block C: FC + ReLU layers, dropout between them (none after the last)
        self.rgb_fc, self.flow_fc = (nn.Sequential(nn.Flatten(), *fc_layers(flat, fc[:-1], fc[-1], dropout),
                                                   nn.ReLU(inplace=True)) for _ in range(2))
        self.classifier = nn.Sequential(nn.Dropout(fusion_dropout), nn.Linear(2 * fc[-1], num_classes))
        self.aux = nn.ModuleList(nn.Linear(fc[-1], num_classes) for _ in range(2)) if aux_heads else None
        self.init_weights()

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor, aux: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (B, K); with ``aux`` also the RGB and flow streams' own logits (needs ``aux_heads``)."""
        rgb, flow = self.inputs(rgb, flow)
        features = [self.rgb_fc(self.attention[0](self.rgb_convs(rgb))),
                    self.flow_fc(self.attention[1](self.flow_convs(flow)))]
        logits = self.classifier(torch.cat(features, dim=1))
        return (logits, self.aux_logits(features)) if aux else logits


register("late_fusion", LateFusionNet, PAPER_LATE)  # the paper's (IV-1), 224 x 224 input, 280 M parameters
register("late_fusion_small", LateFusionNet, SMALL_LATE)  # small CPU design (64 x 64)
