"""Decode video files to uint8 RGB frames: the one place in the project that touches codecs."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2  # its log level is set in dualstream/__init__.py, before any module imports it
import numpy as np

#: Fewer decoded frames than this fraction of the container's declared count is a truncated video (the
#: declared count is only a hint, a few frames off at times; the decoded frames are what the project counts).
TRUNCATION_RATIO = 0.9
#: File name endings taken for videos (when listing a folder, or checking an upload).
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp")


class VideoReadError(Exception):
    """A file that cannot be decoded as a video; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class BudgetExceeded(VideoReadError):
    """A video that is more work than its ``DecodeBudget`` allows."""


@dataclass
class DecodeBudget:
    """The work that the decodes sharing this budget may do together (``serve`` gives each request a ``restarted``
    copy): frames and pixels decoded, seconds since it was made (whatever a caller does between frames counts too);
    ``spend`` runs on every decoded frame, before it is converted (docs/design.md)."""

    max_frames: int
    max_pixels: int
    seconds: float
    frames: int = field(default=0, init=False)
    pixels: int = field(default=0, init=False)
    deadline: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.seconds

    def restarted(self) -> DecodeBudget:
        return DecodeBudget(max_frames=self.max_frames, max_pixels=self.max_pixels, seconds=self.seconds)

    def remaining(self) -> float:
        """Seconds left before the deadline (0 when past it)."""
        return max(0.0, self.deadline - time.monotonic())

    def spend(self, source: str | os.PathLike, width: int, height: int) -> None:
        """Count one decoded frame of ``width`` x ``height``; BudgetExceeded (naming ``source``) past a limit."""
        self.frames += 1
        self.pixels += width * height
        if self.frames > self.max_frames:
            raise BudgetExceeded(source, f"more than {self.max_frames} frames to decode, the limit per request")
        if self.pixels > self.max_pixels:
            raise BudgetExceeded(source, f"more than {self.max_pixels / 1e6:g} megapixels to decode (frames of "
                                         f"{width}x{height}), the limit per request")
        if time.monotonic() > self.deadline:
            raise BudgetExceeded(source, f"not done within {self.seconds:g} s, the limit per request "
                                         f"(stopped at frame {self.frames})")


@dataclass(frozen=True)
class FrameLimits:
    """Bounds on the frames a decoder may hand on, checked on the declared size and on every decoded frame before
    anything resizes it (why an aspect ratio too: docs/design.md)."""

    max_pixels: int = 7680 * 4320  # per frame: 8K UHD
    max_aspect: float = 10.0  # long side over short side (16:9 is 1.8)
    budget: DecodeBudget | None = field(default=None, compare=False)  # shared by every decode given these limits

    def check(self, path: str | os.PathLike, width: int, height: int) -> None:
        """Raise VideoReadError when a frame of ``width`` x ``height`` is over the limits."""
        if width <= 0 or height <= 0:
            return
        if width * height > self.max_pixels:
            raise VideoReadError(path, f"frames of {width}x{height} pixels are over the limit of "
                                       f"{self.max_pixels / 1e6:.1f} megapixels per frame")
        aspect = max(width, height) / min(width, height)
        if aspect > self.max_aspect:
            raise VideoReadError(path, f"frames of {width}x{height} pixels have an aspect ratio of {aspect:.0f}:1, "
                                       f"over the limit of {self.max_aspect:g}:1")


def open_video(path: str | os.PathLike) -> cv2.VideoCapture:
    """An opened FFmpeg capture of the file ``path``; VideoReadError (one line) when it is not a readable video."""
    path = Path(path)
    if not path.exists():
        raise VideoReadError(path, "file not found")
    if path.is_dir():
        raise VideoReadError(path, "is a directory, not a video file")
    if path.stat().st_size == 0:
        raise VideoReadError(path, "empty file (0 bytes)")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise VideoReadError(path, "not a video, or a format/codec FFmpeg cannot open")
    return cap


def video_info(path: str | os.PathLike) -> dict:
    """Container metadata (declared frame count, fps, width, height) without decoding frames."""
    cap = open_video(path)
    try:
        return {"declared_frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
                "fps": float(cap.get(cv2.CAP_PROP_FPS) or 0.0), "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
                "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)}
    finally:
        cap.release()


def decoded_frames(cap: cv2.VideoCapture, source: str | os.PathLike, limits: FrameLimits | None = None
                   ) -> Iterator[np.ndarray]:
    """The frames ``cap`` decodes until it stops, as uint8 RGB (H, W, 3); each checked against ``limits``
    and spent from their budget (VideoReadError naming ``source``) before it is converted."""
    while True:
        ok, bgr = cap.read()
        if not ok or bgr is None:
            return
        if limits is not None:
            limits.check(source, bgr.shape[1], bgr.shape[0])
            if limits.budget is not None:
                limits.budget.spend(source, bgr.shape[1], bgr.shape[0])
        if bgr.ndim == 2:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def iter_frames(path: str | os.PathLike, *, limits: FrameLimits | None = None) -> Iterator[np.ndarray]:
    """The frames of a video one at a time, uint8 RGB (H, W, 3). VideoReadError when the file cannot be
    opened, yields no frame or stops well short of its declared frame count, or a frame is over ``limits``."""
    path = Path(path)
    cap = open_video(path)
    declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    count = 0  # frames decoded
    try:
        if limits is not None:
            limits.check(path, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
                         int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0))
        for count, rgb in enumerate(decoded_frames(cap, path, limits), 1):
            yield rgb
    finally:
        cap.release()
    if count == 0:
        raise VideoReadError(path, "no frame could be decoded")
    if declared > 0 and count < TRUNCATION_RATIO * declared:
        raise VideoReadError(
            path, f"truncated or corrupt: decoded {count} of the {declared} frames the container declares"
        )


def write_video(path: str | os.PathLike, frames: np.ndarray, *, fps: float = 25.0, fourcc: str = "MJPG") -> None:
    """Encode uint8 RGB frames (T, H, W, 3) to a video file (used by the synthetic generator and tests)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames of shape (T, H, W, 3), got {frames.dtype} {frames.shape}")
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise VideoReadError(path, f"cannot open a {fourcc} video writer")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def find_videos(videos_dir: str | Path) -> list[str]:
    """Video files under ``videos_dir`` as sorted ``Class/file.ext`` paths (one class level deep)."""
    root = Path(videos_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: videos folder not found")
    return sorted(p.relative_to(root).as_posix() for p in root.glob("*/*")
                  if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
