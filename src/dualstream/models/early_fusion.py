"""Early fusion with self-attention (paper section IV-2, Fig. 3).

Design (paper model ``early_fusion``, 101 classes, 10 frames, 224 x 224)::

    rgb  (B, 30, 224, 224)                      flow (B, 20, 224, 224)
      |                                            |
    [conv3x3 128, ReLU, maxpool 2, BN]  112      [same]            <- stem
    [conv3x3  64, ReLU, maxpool 2, BN]   56      [same]            <- down
    [conv3x3  32, ReLU, maxpool 2, BN]   28      [same]            <- down
    [conv3x3  64, ReLU, maxpool 2, BN]   14      [same]            <- up
    [conv3x3 128, ReLU, maxpool 2, BN]    7      [same]            <- up
      |                                            |
      +------------- concat: 256 x 7 x 7 ----------+
                           |
        self-attention (eq. 2-4): j, k 32 ch, l 256 ch, gamma
                           |
        adaptive average pool 4 x 4 -> 4096
        FC 1024, ReLU, dropout 0.5
        FC  256, ReLU, dropout 0.5
        FC  101 (logits)

Parameters: 4,994,662, the paper reports 4,956,442 (+0.77 %).

Where the paper is silent (widths, pooling, FC sizes) the choices and their reasons are in
docs/models.md.

The ``widths``, ``pool_size`` and ``hidden`` keyword arguments make the same
class serve the small CPU variant (``early_fusion_small``) and the baselines in
:mod:`dualstream.models.baselines`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .attention import SelfAttention2d
from .layers import ClassifierHead, ConvStream, TwoInputNet
from .registry import register

__all__ = ["EarlyFusionNet", "PAPER_EARLY", "SMALL_EARLY"]

#: Stream and head design of the paper model (see the module docstring).
PAPER_EARLY: dict = {
    "widths": (128, 64, 32, 64, 128),
    "pool_size": 4,
    "hidden": (1024, 256),
    "dropout": 0.5,
    "input_size": 224,
}

#: Small CPU design: same shape (stem, down, up), fewer channels, three series
#: for 64 x 64 input (attention over 8 x 8 = 64 positions); ~0.13 M parameters,
#: ~0.1 GFLOP per clip.
SMALL_EARLY: dict = {
    "widths": (24, 12, 24),
    "pool_size": 4,
    "hidden": (128, 64),
    "dropout": 0.3,
    "input_size": 64,
}


class EarlyFusionNet(TwoInputNet):
    """Two convolutional streams, concatenated, self-attention, FC head.

    Args:
        num_classes: output classes.
        frames: sampled frames per clip (RGB has ``3 * frames`` input channels,
            flow ``2 * frames``).
        input_size: the spatial size the model is meant for (recorded in
            ``default_cfg``; the adaptive pooling accepts other sizes too).
        widths: output channels of each stream series (the last is the stream
            output; the fused map has twice as many channels).
        convs_per_series: 3x3 convolutions per series.
        pool_size: side of the adaptive pooling before the FC layers.
        hidden: widths of the two hidden FC layers.
        dropout: dropout before each hidden-to-next FC layer.
        attention: use the self-attention fusion layer; ``False`` gives the
            ``concat_fusion`` baseline (``self.attention`` is then ``None``).
        qk_channels: channels of ``j`` and ``k`` (``C / 8`` when ``None``).
        gamma_init: initial ``gamma`` (``None``: random, the paper's choice).
        fused: use ``scaled_dot_product_attention`` in the attention layer.
        aux_heads: add a linear classifier on each stream's pooled output, for the per-stream auxiliary
            losses of ``train.aux_loss`` (``forward(..., aux=True)``); unused at inference.
        rgb_centred: subtract each RGB pixel's mean over the clip's frames (``layers.centre_frames``).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        frames: int = 10,
        input_size: int = 224,
        widths: Sequence[int] = PAPER_EARLY["widths"],
        convs_per_series: int = 1,
        pool_size: int = PAPER_EARLY["pool_size"],
        hidden: Sequence[int] = PAPER_EARLY["hidden"],
        dropout: float = PAPER_EARLY["dropout"],
        attention: bool = True,
        qk_channels: int | None = None,
        gamma_init: float | None = None,
        fused: bool = True,
        aux_heads: bool = False,
        rgb_centred: bool = False,
    ) -> None:
        super().__init__(num_classes=num_classes, frames=frames, input_size=input_size, rgb_centred=rgb_centred)
        self.rgb_stream = ConvStream(3 * frames, widths=widths, convs_per_series=convs_per_series)
        self.flow_stream = ConvStream(2 * frames, widths=widths, convs_per_series=convs_per_series)
        streams = (self.rgb_stream, self.flow_stream)
        fused_channels = sum(s.out_channels for s in streams)
        self.attention = (SelfAttention2d(fused_channels, qk_channels=qk_channels, gamma_init=gamma_init, fused=fused)
                          if attention else None)
        self.head = ClassifierHead(
            fused_channels, num_classes=num_classes, pool_size=pool_size, hidden=hidden, dropout=dropout
        )
        self.aux = nn.ModuleList(nn.Linear(s.out_channels, num_classes) for s in streams) if aux_heads else None
        self.init_weights()

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor, aux: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (B, K); with ``aux`` also the RGB and flow streams' own logits (needs ``aux_heads``)."""
        rgb, flow = self.inputs(rgb, flow)
        streams = [self.rgb_stream(rgb), self.flow_stream(flow)]
        fused = torch.cat(streams, dim=1)
        if self.attention is not None:
            fused = self.attention(fused)
        logits = self.head(fused)
        return (logits, self.aux_logits([s.mean((2, 3)) for s in streams])) if aux else logits


register("early_fusion", EarlyFusionNet, PAPER_EARLY)  # the paper's (IV-2), 224 x 224 input
register("early_fusion_small", EarlyFusionNet, SMALL_EARLY)  # small CPU design (64 x 64) for the demo and ablation
