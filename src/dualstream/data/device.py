"""The device pipeline (docs/design.md): crop, flip, resize and normalisation of ``TrainClips``' draws, batched on
the device; ``clips.cut_clip``'s result within one uint8 level (bilinear, a k x k box pre-filter where OpenCV's
area filter shrinks by k >= 2; not rounded to uint8)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..cache import FRAME_FILES, load_frames_u8
from .batches import shared_empty
from .dataset import ClipSpec, EvalViews, TrainClips
from .transforms import IMAGENET_MEAN, IMAGENET_STD
from .ucf101 import VideoEntry

CHANNELS = 5  # per frame on the device: R, G, B, flow-x, flow-y


def _read(folder: Path, indices: list[int], available: list[int] | None, jpeg_bytes: bool) -> dict:
    """Frames ``indices`` as ``{"rgb", "flow"}`` uint8 tensors, or with ``jpeg_bytes`` ``{"jpeg": the
    files' bytes}``: the RGB images first, then flow-x, flow-y per frame (3T uint8 tensors)."""
    if jpeg_bytes:
        names = [FRAME_FILES[0].format(i) for i in indices] + [n.format(i) for i in indices for n in FRAME_FILES[1:]]
        return {"jpeg": [torch.from_numpy(np.fromfile(folder / n, np.uint8)) for n in names]}
    rgb, flow = load_frames_u8(folder, indices, available)
    return {"rgb": torch.from_numpy(rgb), "flow": torch.from_numpy(flow)}


class TrainFrames(TrainClips):
    """``TrainClips``' clips and draws, uncut: items ``{"rgb": (T, H, W, 3), "flow": (T, H, W, 2)`` uint8 (or
    ``"jpeg"``: 3T byte tensors), ``"box": (top, left, height, width), "flip", "label"}``."""

    __getitems__ = None  # items, not batches cut in the worker: the device cuts them

    def __init__(self, cache: str | Path, entries: list[VideoEntry], spec: ClipSpec, *, seed: int = 0,
                 jpeg_bytes: bool = False, repeats: int = 1):
        super().__init__(cache, entries, spec, seed=seed, repeats=repeats)
        self.jpeg_bytes = jpeg_bytes

    def __getitem__(self, i: int) -> dict:  # type: ignore[override]
        v, idx, crop = self.clip(i)
        frames = _read(self.cache / self.entries[v].key, idx, self.available[v], self.jpeg_bytes)
        return {"box": (crop.top, crop.left, crop.size, crop.size), "flip": crop.flip,
                "label": self.entries[v].label, **frames}


class EvalFrames(EvalViews):
    """``EvalViews``' clips, one item per (video, frame offset): the clip's whole frames and its ``views_per_item``
    views' ``"box"`` and ``"flip"`` (``EvalViews.view_crops``), which ``to_eval_input`` cuts on the device."""

    __getitems__ = None  # items, not batches cut in the worker: the device cuts them

    def __init__(self, cache: str | Path, entries: list[VideoEntry], spec: ClipSpec, *,
                 offsets: list[float], crops: int = 1, flip: bool = False, jpeg_bytes: bool = False):
        super().__init__(cache, entries, spec, offsets=offsets, crops=crops, flip=flip)
        self.jpeg_bytes, self.views_per_item = jpeg_bytes, crops * len(self.flips)

    def __len__(self) -> int:
        return len(self.entries) * len(self.offsets)

    def __getitem__(self, k: int) -> dict:  # type: ignore[override]
        v, o = divmod(k, len(self.offsets))
        views = self.view_crops(v)
        return {"label": self.entries[v].label, "video": v, "flip": [c.flip for c in views],
                "box": [(c.top, c.left, c.size, c.size) for c in views],
                **_read(self.cache / self.entries[v].key, self.view_frames(v, o), self.available[v], self.jpeg_bytes)}


def collate_frames(items: list[dict]) -> dict:
    """Stack a batch of ``TrainFrames`` / ``EvalFrames`` items; clips of other sizes are padded (edge
    pixels repeated) to the largest, which the crop boxes never leave."""
    out: dict = {}
    if "rgb" in items[0]:
        h, w = max(it["rgb"].shape[1] for it in items), max(it["rgb"].shape[2] for it in items)
        for key in ("rgb", "flow"):
            clips = [it[key] for it in items]
            if any(c.shape[1:3] != (h, w) for c in clips):
                clips = [F.pad(c.permute(0, 3, 1, 2).float(), (0, w - c.shape[2], 0, h - c.shape[1]),
                               mode="replicate").to(torch.uint8).permute(0, 2, 3, 1) for c in clips]
            # (B, T, H, W, 3 or 2), into shared memory in a loader worker
            out[key] = torch.stack(clips, out=shared_empty((len(clips), *clips[0].shape), clips[0].dtype))
    else:
        out["jpeg"] = [b for it in items for b in it["jpeg"]]
    for key in ("box", "label", "video", "flip"):
        if key in items[0]:
            out[key] = torch.tensor([it[key] for it in items])
    return out


def decode_jpeg_batch(data: list[torch.Tensor], batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``collate_frames``' JPEG bytes (per clip: T RGB images, then flow-x, flow-y per frame) decoded on ``device``
    (nvJPEG on CUDA, else OpenCV) -> rgb ``(B, T, H, W, 3)``, flow ``(B, T, H, W, 2)`` uint8."""
    per = len(data) // batch
    t = per // 3
    rgb_bytes = [data[b * per + k] for b in range(batch) for k in range(t)]
    gray_bytes = [data[b * per + t + k] for b in range(batch) for k in range(2 * t)]
    if device.type == "cuda":
        from torchvision.io import ImageReadMode, decode_jpeg

        rgb = torch.stack(decode_jpeg(rgb_bytes, mode=ImageReadMode.RGB, device=device)).permute(0, 2, 3, 1)
        gray = torch.stack(decode_jpeg(gray_bytes, mode=ImageReadMode.GRAY, device=device))[:, 0]
    else:
        import cv2

        rgb = torch.from_numpy(np.stack([cv2.imdecode(x.numpy(), cv2.IMREAD_COLOR)[..., ::-1] for x in rgb_bytes]))
        gray = torch.from_numpy(np.stack([cv2.imdecode(x.numpy(), cv2.IMREAD_GRAYSCALE) for x in gray_bytes]))
    h, w = gray.shape[-2:]  # rgb (B * T, H, W, 3), gray (B * 2T, H, W) -> (B, T, H, W, 3 or 2)
    return rgb.view(batch, t, h, w, 3).to(device), gray.view(batch, t, 2, h, w).permute(0, 1, 3, 4, 2).to(device)


def crop_resize(x: torch.Tensor, boxes: torch.Tensor, size: int, flips: torch.Tensor | None = None) -> torch.Tensor:
    """Crop box ``b`` (top, left, height, width in pixels) of image ``b`` of ``x`` (B, C, H, W) float, mirrored where
    ``flips``, resized to ``size`` x ``size`` by one bilinear ``grid_sample`` (k x k blocks averaged first: k >= 2)."""
    boxes = boxes.to(torch.float64).cpu()
    k = int(min(boxes[:, 2].min(), boxes[:, 3].min()) // size) if len(boxes) else 1
    if k >= 2:
        x = F.avg_pool2d(x, k, ceil_mode=True)
        boxes = boxes / k
    b, _, h, w = x.shape
    top, left, bh, bw = boxes.unbind(1)
    sign = torch.ones(b, dtype=torch.float64) if flips is None else 1 - 2 * flips.cpu().to(torch.float64)
    theta = torch.zeros(b, 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 2] = sign * bw / w, (2 * left + bw) / w - 1
    theta[:, 1, 1], theta[:, 1, 2] = bh / h, (2 * top + bh) / h - 1
    grid = F.affine_grid(theta.to(x.device, x.dtype), [b, 1, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def split_streams(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T * 5, S, S) frame-major R, G, B, flow-x, flow-y -> rgb (B, 3T, S, S), flow (B, 2T, S, S)."""
    b, c, h, w = x.shape
    x = x.view(b, c // CHANNELS, CHANNELS, h, w)
    return x[:, :, :3].reshape(b, -1, h, w), x[:, :, 3:].reshape(b, -1, h, w)


def normalise(rgb: torch.Tensor, flow: torch.Tensor, *, flow_bound: float, scale_xy: torch.Tensor,
              flips: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """In place: rgb 0..255 (B, 3T, S, S) float -> ImageNet mean/std (``(x - mean) / std`` as ``TrainClips``);
    quantised flow (B, 2T, S, S) float -> px, times the crop's resize factors ``scale_xy`` (B, 2) (x, y),
    negated in x where mirrored, over the bound (``TrainClips``' units)."""
    b, c3, h, w = rgb.shape
    mean = torch.tensor(IMAGENET_MEAN, device=rgb.device).repeat(c3 // 3).view(1, c3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=rgb.device).repeat(c3 // 3).view(1, c3, 1, 1) * 255
    rgb.sub_(mean).div_(std)
    factor = scale_xy.to(torch.float32) / flow_bound  # (B, 2)
    if flips is not None:
        factor[:, 0] *= 1 - 2 * flips.to(torch.float32)  # a mirrored field's x component changes sign
    factor = factor.to(flow.device).view(b, 1, 2, 1, 1)
    f = flow.view(b, -1, 2, h, w)  # px = q * 2 bound / 255 - bound, times factor
    f.mul_(factor * (2 * flow_bound / 255.0)).sub_(factor * flow_bound)
    return rgb, flow


def batch_frames(batch: dict, device: torch.device) -> torch.Tensor:
    """The batch's frames on ``device`` (moved, or decoded there from JPEG bytes): (B, T * 5, H, W) float32."""
    if "rgb" in batch:
        rgb, flow = batch["rgb"].to(device, non_blocking=True), batch["flow"].to(device, non_blocking=True)
    else:
        rgb, flow = decode_jpeg_batch(batch["jpeg"], len(batch["label"]), device)
    x = torch.cat([rgb, flow], -1)
    b, t, h, w, c = x.shape
    out = torch.empty((b, t, c, h, w), dtype=torch.float32, device=x.device)  # uint8 -> float32 in one pass
    return out.copy_(x.permute(0, 1, 4, 2, 3)).view(b, t * c, h, w)


def _cut(x: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor, *, size: int, flow_bound: float
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Box b (top, left, height, width) of clip b of ``x`` (B, T * 5, H, W), mirrored where ``flips``, as
    network inputs: rgb (B, 3T, S, S), flow (B, 2T, S, S)."""
    rgb, flow = split_streams(crop_resize(x, boxes, size, flips))
    scale = size / boxes[:, [3, 2]].to(torch.float32)  # (x, y): S / width, S / height
    return normalise(rgb, flow, flow_bound=flow_bound, scale_xy=scale, flips=flips)


def to_train_input(batch: dict, device: torch.device, *, size: int, flow_bound: float
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A collated ``TrainFrames`` batch -> (rgb, flow, label) on ``device``, as ``TrainClips`` gives them."""
    rgb, flow = _cut(batch_frames(batch, device), batch["box"], batch["flip"], size=size, flow_bound=flow_bound)
    return rgb, flow, batch["label"].to(device, non_blocking=True)


def to_eval_input(batch: dict, device: torch.device, *, size: int, flow_bound: float
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A collated ``EvalFrames`` batch -> (rgb, flow, label, video) of all its views, ``views_per_item``
    consecutive views per item (``EvalViews``' order); rgb and flow on ``device``, label and video on the CPU."""
    x = batch_frames(batch, device)
    m = batch["flip"].shape[1]  # box (B, m, 4), flip (B, m): one batched grid_sample per view
    outs = [_cut(x, batch["box"][:, r], batch["flip"][:, r], size=size, flow_bound=flow_bound) for r in range(m)]
    # (B, m, 3T or 2T, S, S) -> (B * m, 3T or 2T, S, S)
    rgb, flow = (torch.stack(stream, 1).flatten(0, 1) for stream in zip(*outs))
    return rgb, flow, batch["label"].repeat_interleave(m), batch["video"].repeat_interleave(m)


def jpeg_on_device_available(device: torch.device) -> bool:
    if device.type != "cuda":
        return False
    try:
        from torchvision.io import decode_jpeg  # noqa: F401
    except Exception:  # not installed, or built for another torch
        return False
    return True

