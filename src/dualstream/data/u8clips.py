"""Training clips as uint8, normalised on the device: a loader that can keep up with a GPU.

``TrainClips`` does the whole transform on the CPU in float32 (about 80 ms per 224x224 clip on
one core). Here the workers only decode, crop, flip and resize in uint8 and hand over uint8
tensors (4x fewer bytes to copy to the device); ``to_network_input`` then dequantises the flow
and normalises both streams on the device, batched. The result equals ``TrainClips``' up to the
rounding of the uint8 resize (at most about one grey level): a flip of quantised flow is exact
(``255 - q`` is the quantised ``-flow``).
"""

from __future__ import annotations

import numpy as np
import torch

from .cache import load_clip_u8
from .dataset import TrainClips
from .transforms import IMAGENET_MEAN, IMAGENET_STD, resize_stack


class TrainClipsU8(TrainClips):
    """Same clips and augmentation draws as ``TrainClips``; items are (rgb uint8 (3T, S, S), flow uint8
    (2T, S, S), label, scale) with ``scale`` = S / crop side, for ``to_network_input``."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int, float]:  # type: ignore[override]
        s = self.spec
        idx = self.clip_frames(i)
        entry = self.entries[self.video(i)]
        rgb, q = load_clip_u8(self.cache / entry.key, idx)
        crop = self.crop(i, *rgb.shape[1:3])  # the same draw as TrainClips
        rows, cols = slice(crop.top, crop.top + crop.size), slice(crop.left, crop.left + crop.size)
        r = rgb[:, rows, cols]  # (T, c, c, 3)
        f = q[:, :, rows, cols].transpose(0, 2, 3, 1)  # (T, 2, c, c) -> (T, c, c, 2)
        if crop.flip:
            r = r[:, :, ::-1]
            f = f[:, :, ::-1].copy()
            f[..., 0] = 255 - f[..., 0]  # the mirrored field's x component changes sign
        r = resize_stack(np.ascontiguousarray(r), s.input_size)
        f = resize_stack(np.ascontiguousarray(f), s.input_size)
        t, size = len(idx), s.input_size
        rt = torch.from_numpy(np.ascontiguousarray(r.transpose(0, 3, 1, 2))).reshape(3 * t, size, size)
        ft = torch.from_numpy(np.ascontiguousarray(f.transpose(0, 3, 1, 2))).reshape(2 * t, size, size)
        return rt, ft, entry.label, size / crop.size


def to_network_input(rgb: torch.Tensor, flow: torch.Tensor, scale: torch.Tensor, *, flow_bound: float
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 batches (B, 3T, S, S), (B, 2T, S, S) -> the float inputs ``TrainClips`` gives, on their device.

    RGB: ImageNet mean/std per channel; flow: quantised -> px, times the crop's resize factor
    ``scale`` (B,), divided by the bound.
    """
    b, c3, h, w = rgb.shape
    mean = torch.tensor(IMAGENET_MEAN, device=rgb.device).repeat(c3 // 3).view(1, c3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=rgb.device).repeat(c3 // 3).view(1, c3, 1, 1) * 255
    r = (rgb.float() - mean) / std
    px = flow.float() * (2 * flow_bound / 255.0) - flow_bound
    f = px * (scale.to(flow.device, torch.float32) / flow_bound).view(-1, 1, 1, 1)
    return r, f
