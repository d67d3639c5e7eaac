"""Baselines for the ablation, built from the early-fusion stream design.

All take ``(rgb, flow)`` like the fusion models and ignore what they do not
use, so the trainer treats every model alike.  Each has a paper-sized version
(the ``early_fusion`` streams and head, 224 x 224) and a ``_small`` one (the
``early_fusion_small`` streams and head, 64 x 64), so an ablation on the
synthetic set compares like with like:

* ``rgb_only`` / ``flow_only``: one stream, adaptive pooling and the three-FC
  head; no attention.
* ``two_stream_average``: an RGB and a flow network, each with its own head,
  trained jointly; the output is ``log((1 - w) softmax(s_rgb) + w softmax(s_flow))``
  (late score averaging as in Simonyan & Zisserman, 2014), with the flow
  weight ``w = flow_weight`` (default 0.5, the plain average).  Being a log
  probability, it works with ``cross_entropy`` and ``softmax`` like logits.
* ``concat_fusion``: early fusion with the self-attention layer removed
  (``EarlyFusionNet(attention=False)``): what the attention adds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from .early_fusion import PAPER_EARLY, SMALL_EARLY, EarlyFusionNet
from .layers import ClassifierHead, ConvStream, TwoInputNet
from .registry import register

__all__ = ["SingleStreamNet", "TwoStreamAverageNet"]


class SingleStreamNet(TwoInputNet):
    """One early-fusion stream followed by the early-fusion head.

    Args:
        modality: ``"rgb"`` (uses the ``3 * frames`` RGB channels) or ``"flow"``
            (the ``2 * frames`` flow channels).
        num_classes, frames, input_size, widths, convs_per_series, pool_size,
        hidden, dropout, rgb_centred: as for :class:`~dualstream.models.early_fusion.EarlyFusionNet`.
    """

    def __init__(
        self,
        *,
        modality: Literal["rgb", "flow"],
        num_classes: int,
        frames: int = 10,
        input_size: int = 224,
        widths: Sequence[int] = PAPER_EARLY["widths"],
        convs_per_series: int = 1,
        pool_size: int = PAPER_EARLY["pool_size"],
        hidden: Sequence[int] = PAPER_EARLY["hidden"],
        dropout: float = PAPER_EARLY["dropout"],
        rgb_centred: bool = False,
    ) -> None:
        if modality not in ("rgb", "flow"):
            raise ValueError(f"modality must be 'rgb' or 'flow', got {modality!r}")
        super().__init__(num_classes=num_classes, frames=frames, input_size=input_size, rgb_centred=rgb_centred)
        self.modality = modality
        self.stream = ConvStream((3 if modality == "rgb" else 2) * frames, widths=widths,
                                 convs_per_series=convs_per_series)
        self.head = ClassifierHead(
            self.stream.out_channels, num_classes=num_classes, pool_size=pool_size, hidden=hidden, dropout=dropout
        )
        self.init_weights()

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        rgb, flow = self.inputs(rgb, flow)
        return self.head(self.stream(rgb if self.modality == "rgb" else flow))


class TwoStreamAverageNet(nn.Module):
    """Separate RGB and flow networks whose softmax scores are averaged.

    Returns ``log((1 - flow_weight) * softmax(rgb_scores) + flow_weight * softmax(flow_scores))``,
    computed with ``logsumexp`` for stability.  Both networks get gradients
    through the average, so they train jointly from one loss.

    Args:
        flow_weight: weight of the flow scores in ``[0, 1]`` (0.5: plain average).
        other arguments: as for :class:`SingleStreamNet` (but ``modality``).
    """

    def __init__(self, *, flow_weight: float = 0.5, **kwargs: Any) -> None:
        super().__init__()
        if not 0.0 <= flow_weight <= 1.0:
            raise ValueError(f"flow_weight must be in [0, 1], got {flow_weight}")
        self.flow_weight = flow_weight
        self.rgb_net = SingleStreamNet(modality="rgb", **kwargs)
        self.flow_net = SingleStreamNet(modality="flow", **kwargs)
        net = self.rgb_net  # the size attributes every model has
        self.num_classes, self.frames, self.input_size = net.num_classes, net.frames, net.input_size

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        log_rgb = torch.log_softmax(self.rgb_net(rgb, flow), dim=1)
        log_flow = torch.log_softmax(self.flow_net(rgb, flow), dim=1)
        # log(0) = -inf for a weight of 0 or 1: logsumexp then returns the other stream exactly
        log_w_rgb = math.log(1.0 - self.flow_weight) if self.flow_weight < 1.0 else -math.inf
        log_w_flow = math.log(self.flow_weight) if self.flow_weight > 0.0 else -math.inf
        return torch.logsumexp(torch.stack([log_rgb + log_w_rgb, log_flow + log_w_flow]), dim=0)


for _suffix, _design in (("", PAPER_EARLY), ("_small", SMALL_EARLY)):  # paper-sized (224) and small (64) designs
    register(f"rgb_only{_suffix}", SingleStreamNet, {**_design, "modality": "rgb"})
    register(f"flow_only{_suffix}", SingleStreamNet, {**_design, "modality": "flow"})
    register(f"two_stream_average{_suffix}", TwoStreamAverageNet, _design)
    register(f"concat_fusion{_suffix}", EarlyFusionNet, {**_design, "attention": False})
