"""The model's clip over the newest frames of a stream, one flow pair per new frame, built as ``predict`` does."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..data.clips import cut_arrays
from ..data.transforms import center_crop_params, resize_short_side
from .predict import Predictor, flow_pairs, top_dicts, top_k


@dataclass
class LivePrediction:
    """One prediction: at 1-based ``frame`` (the newest frame read), ``time`` seconds into the source."""

    frame: int
    time: float
    probabilities: np.ndarray  # smoothed over the last ``smooth`` clips
    clip: np.ndarray = field(repr=False)  # this window's own probabilities
    indices: list[int] = field(default_factory=list)  # 1-based frames of this window's clip
    latency: float = 0.0

    def top(self, classes: list[str], k: int) -> list[tuple[str, float]]:
        return top_k(self.probabilities, classes, k)

    def to_dict(self, classes: list[str], k: int) -> dict:
        return {"frame": self.frame, "time": round(self.time, 3), "top": top_dicts(self.top(classes, k))}


class SlidingWindow:
    """``push(rgb)`` takes a decoded uint8 RGB frame (any size: resized as ``predict`` does) and returns a
    LivePrediction when it completes a window due for prediction (every ``stride`` frames), else None."""

    def __init__(self, predictor: Predictor, *, stride: int = 0, smooth: int = 1):
        self.predictor, self.spec = predictor, predictor.input
        self.stride = stride or self.spec.step
        if self.stride < 1 or smooth < 1:
            raise ValueError("stride and smooth must be >= 1")
        self.history: deque[np.ndarray] = deque(maxlen=smooth)
        self.where = self.spec.window_indices()  # the frames of a window a clip takes (1-based)
        self.frames = 0  # frames pushed
        self._reset()

    def _reset(self) -> None:
        self._prev: tuple[np.ndarray, np.ndarray] | None = None  # previous resized RGB frame and its gray
        self._inputs: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=self.spec.span)  # (rgb, flow), oldest first
        self._first = self.frames + 1  # first frame of the current run of equally sized frames
        self.history.clear()

    def push(self, rgb: np.ndarray) -> LivePrediction | None:
        t0 = time.perf_counter()
        frame = resize_short_side(rgb, self.spec.short_side)
        if self._prev is not None and frame.shape != self._prev[0].shape:  # a stream that changed its resolution
            self._reset()
        self.frames += 1
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if self._prev is not None:
            prev, prev_gray = self._prev
            flow = flow_pairs(prev_gray[None], gray[None], self.spec)  # (1, H, W, 2) uint8
            self._inputs.append(cut_arrays(prev[None], flow, center_crop_params(*frame.shape[:2]),
                                           size=self.spec.input_size))
        self._prev = frame, gray
        span, where = self.spec.span, self.where
        complete = self.frames - self._first  # frames of this run that have their flow
        if complete < span or (complete - span) % self.stride:
            return None
        rgb_in = np.concatenate([self._inputs[i - 1][0] for i in where])[None]
        flow_in = np.concatenate([self._inputs[i - 1][1] for i in where])[None]
        clip = self.predictor.probabilities(rgb_in, flow_in)[0]
        self.history.append(clip)
        return LivePrediction(frame=self.frames, time=0.0, probabilities=np.mean(self.history, axis=0), clip=clip,
                              indices=[self.frames - 1 - span + i for i in where], latency=time.perf_counter() - t0)
