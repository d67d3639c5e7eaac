"""Augmentations against appearance shortcuts, each a draw and an apply (docs/design.md): colour jitter, temporal
jitter, modality dropout. RGB ``(B, 3T, H, W)`` (frame-major) or ``(B, T, 3, H, W)``; flow ``(B, 2T, H, W)``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .transforms import IMAGENET_MEAN, IMAGENET_STD

_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class ColourJitter:
    """Per-clip factors around 1: brightness, contrast, saturation (B,); gains (B, 3), a tint."""

    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    gains: torch.Tensor

    @staticmethod
    def identity(batch: int = 1) -> "ColourJitter":
        return ColourJitter(torch.ones(batch), torch.ones(batch), torch.ones(batch), torch.ones(batch, 3))


def draw_colour_jitter(rng: np.random.Generator, strength: float, batch: int = 1) -> ColourJitter:
    """Factors uniform in ``1 +- strength`` (the gains ``1 +- strength / 2``); strength 0 is the identity."""
    if strength <= 0:
        return ColourJitter.identity(batch)

    def u(half: float, *shape: int) -> torch.Tensor:
        return torch.from_numpy(rng.uniform(1 - half, 1 + half, size=shape).astype(np.float32))

    return ColourJitter(u(strength, batch), u(strength, batch), u(strength, batch), u(strength / 2, batch, 3))


def _frames_last3(rgb: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """(B, 3T, H, W) or (B, T, 3, H, W) -> a (B, T, 3, H, W) view and the original shape."""
    if rgb.ndim == 5:
        return rgb, tuple(rgb.shape)
    b, c, h, w = rgb.shape
    if c % 3:
        raise ValueError(f"rgb must have 3 * T channels, got {c}")
    return rgb.reshape(b, c // 3, 3, h, w), tuple(rgb.shape)


def _jitter(x: torch.Tensor, params: ColourJitter, scale: torch.Tensor | None = None,
            shift: torch.Tensor | None = None) -> torch.Tensor:
    """The jitter of ``x * scale + shift``, x (B, T, 3, H, W), in few passes: with ``y = x * gains * brightness``,
    contrast c around the clip's mean grey m then saturation s towards each pixel's grey give
    ``s c y + (1 - s) c grey(y) + m (1 - c)``."""
    dev, dtype = x.device, x.dtype
    g = (params.gains.to(dev, dtype) * params.brightness.to(dev, dtype)[:, None]).view(-1, 1, 3, 1, 1)
    y = x * g if scale is None else torch.addcmul(g * shift, x, g * scale)  # (x * scale + shift) * g
    luma = torch.tensor(_LUMA, device=dev, dtype=dtype).view(1, 1, 3, 1, 1)
    grey = (y * luma).sum(2, keepdim=True)  # (B, T, 1, H, W)
    m = grey.mean(dim=(1, 2, 3, 4), keepdim=True)
    c = params.contrast.to(dev, dtype).view(-1, 1, 1, 1, 1)
    sat = params.saturation.to(dev, dtype).view(-1, 1, 1, 1, 1)
    return (y * (sat * c)).add_(grey * ((1 - sat) * c)).add_(m * (1 - c)).clamp_(0, 1)


def colour_jitter(rgb: torch.Tensor, params: ColourJitter) -> torch.Tensor:
    """Apply ``params`` (``_jitter``) to RGB in ``[0, 1]``, the same on every frame of a clip, clamped to ``[0, 1]``."""
    x, shape = _frames_last3(rgb)
    return _jitter(x, params).reshape(shape)


def colour_jitter_normalised(rgb: torch.Tensor, params: ColourJitter) -> torch.Tensor:
    """:func:`colour_jitter` for ImageNet-normalised RGB ``(B, 3T, H, W)``: un-normalise, jitter, normalise."""
    x, shape = _frames_last3(rgb)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 1, 3, 1, 1)
    return _jitter(x, params, std, mean).sub_(mean).div_(std).reshape(shape)


def random_offset(rng: np.random.Generator, num_frames: int, *, frames: int, interval: int) -> int:
    """A clip start uniform over the offsets whose whole clip has forward flow (temporal jitter); 1 for a
    video too short for one full clip (``clip_indices`` then shrinks the interval)."""
    last_start = num_frames - 1 - (frames - 1) * interval
    return int(rng.integers(1, last_start + 1)) if last_start > 1 else 1


def draw_modality_dropout(batch: int, p: float, *, rgb_share: float = 0.5, generator: torch.Generator | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Which clips lose their RGB and which their flow: each clip loses one of the two with probability
    ``p`` (the RGB with probability ``rgb_share``, else the flow), never both. Returns two bool tensors (B,)."""
    drop = torch.rand(batch, generator=generator) < p
    rgb_side = torch.rand(batch, generator=generator) < rgb_share
    return drop & rgb_side, drop & ~rgb_side


def modality_dropout(rgb: torch.Tensor, flow: torch.Tensor, drop_rgb: torch.Tensor, drop_flow: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the network input of the marked clips; the kept stream is not rescaled (docs/design.md)."""
    keep_rgb = (~drop_rgb).to(rgb.device, rgb.dtype).view(-1, 1, 1, 1)
    keep_flow = (~drop_flow).to(flow.device, flow.dtype).view(-1, 1, 1, 1)
    return rgb * keep_rgb, flow * keep_flow
