"""Training clips cut in uint8 in the workers, normalised on the device: the fast loader for CPU training.

``TrainClips`` does the whole transform in float32 in the workers (about 65 ms of CPU per 224x224
clip: ``benchmarks/loader.py --profile``). Here a worker reads the clip's frames as uint8 arrays
(rows of the packed store, or the decoded JPEGs), crops, flips and resizes them in uint8 with
OpenCV and hands over uint8 (a quarter of the float bytes); ``to_u8_input`` dequantises the flow
and normalises both streams batched, on the device.
The RGB equals ``TrainClips``' exactly (it is resized in uint8 there too); the flow is within one
quantisation level (it is resized as uint8, not as float). ``data.pipeline: u8`` trains with it.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..cache import load_frames_u8
from .dataset import TrainClips
from .device import normalise, planes
from .transforms import CropParams


def crop_flip_resize_u8(frames: np.ndarray, crop: CropParams, size: int, *, flow: bool = False) -> np.ndarray:
    """(T, H, W, C) uint8 -> the crop, mirrored if ``crop.flip``, resized to (T, size, size, C) uint8
    (OpenCV, area filter when shrinking, as ``transforms.resize_stack``). ``flow``: channel 0 is the
    quantised flow-x, which a mirror turns into ``255 - q`` (the quantised ``-flow``)."""
    rows, cols = slice(crop.top, crop.top + crop.size), slice(crop.left, crop.left + crop.size)
    roi = frames[:, rows, cols]
    t, c = frames.shape[0], frames.shape[3]
    out = np.empty((t, size, size, c), np.uint8)
    interp = cv2.INTER_AREA if crop.size > size else cv2.INTER_LINEAR
    for k in range(t):
        src = cv2.flip(roi[k], 1) if crop.flip else roi[k]
        if crop.size == size:
            out[k] = src
        else:
            out[k] = cv2.resize(src, (size, size), interpolation=interp).reshape(size, size, c)
    if crop.flip and flow:
        np.subtract(255, out[..., 0], out=out[..., 0])
    return out


class TrainClipsU8(TrainClips):
    """Same clips and augmentation draws as ``TrainClips``; items are (rgb uint8 (T, S, S, 3), flow uint8
    (T, S, S, 2), label, scale) with ``scale`` = S / crop side, for ``to_u8_input``."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int, float]:  # type: ignore[override]
        s = self.spec
        v = self.video(i)
        rgb, flow = load_frames_u8(self.cache / self.entries[v].key, self.clip_frames(i), self.available[v])
        crop = self.crop(i, *rgb.shape[1:3])  # the same draw as TrainClips
        return (torch.from_numpy(crop_flip_resize_u8(rgb, crop, s.input_size)),
                torch.from_numpy(crop_flip_resize_u8(flow, crop, s.input_size, flow=True)),
                self.entries[v].label, s.input_size / crop.size)


def to_u8_input(batch, device: torch.device, *, flow_bound: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A collated ``TrainClipsU8`` batch -> (rgb (B, 3T, S, S), flow (B, 2T, S, S), label) as ``TrainClips``
    gives them: RGB with ImageNet mean/std, flow in px times the crop's resize factor over the bound."""
    rgb, flow, label, scale = batch
    rgb, flow = planes(rgb.to(device, non_blocking=True)), planes(flow.to(device, non_blocking=True))
    scale = scale.to(torch.float32)
    rgb, flow = normalise(rgb, flow, flow_bound=flow_bound, scale_xy=torch.stack([scale, scale], 1))
    return rgb, flow, label.to(device, non_blocking=True)
