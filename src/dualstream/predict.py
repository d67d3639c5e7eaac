"""Predict the action in a video with a trained model package, building inputs exactly as training did.

Training reads clips from the prepared cache; prediction rebuilds the same inputs straight from the
video, with the same functions:

* frames are decoded (only as far as the clips need), and their short side is resized as
  ``dualstream prepare`` did (``prepare.resize_short_side``);
* the clips are the evaluation clips: ``eval_offsets(interval, clips)`` offsets, each turned into
  frame numbers by ``clip_indices`` with the video's frame count (a short video shrinks the
  interval, as in training);
* optical flow is computed only for the pairs (i, i + 1) the clips use, on the resized gray frames,
  then quantised to uint8 and dequantised with the model's flow bound, as the cache round trip does;
  the JPEG compression of the cached RGB and flow images is not reproduced (a difference of JPEG
  noise only);
* a centre crop, resize and normalisation by ``apply_clip_transform``.

Frame rate is not resampled (training did not either). The clip softmax outputs are averaged.
"""

from __future__ import annotations

import os
import time
from contextlib import closing
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torch import nn

from .data.prepare import PrepareOptions, resize_short_side
from .data.sampling import clip_indices, eval_offsets
from .data.transforms import CropParams, apply_clip_transform, center_crop_params
from .flow import DEFAULT_BOUND, compute_flow, dequantize_flow, quantize_flow, resolve_method
from .model_package import MODEL_JSON, ModelPackageError
from .video import FrameLimits, VideoReadError, iter_frames

#: Clips per video when the caller does not say (the demo recipe's ``eval_clips``).
DEFAULT_CLIPS = 5
#: Short side of the frames before flow when model.json does not record it (``prepare``'s default).
DEFAULT_SHORT_SIDE = PrepareOptions().short_side
DEFAULT_FLOW_METHOD = "dis"


@dataclass(frozen=True)
class InputSpec:
    """How a model's inputs are built from a video, read from its ``model.json``.

    ``short_side`` (the prepared frames' short side) falls back to DEFAULT_SHORT_SIDE for packages written
    before the trainer recorded it.
    """

    frames: int
    interval: int
    input_size: int
    flow_bound: float = DEFAULT_BOUND
    flow_method: str = DEFAULT_FLOW_METHOD
    short_side: int = DEFAULT_SHORT_SIDE

    @classmethod
    def from_model_spec(cls, spec: dict) -> "InputSpec":
        method = spec.get("flow_method") or DEFAULT_FLOW_METHOD
        if method == "unknown":
            method = DEFAULT_FLOW_METHOD
        return cls(
            frames=int(spec["frames"]),
            interval=int(spec.get("interval", 10)),
            input_size=int(spec["input_size"]),
            flow_bound=float(spec.get("flow_bound", DEFAULT_BOUND)),
            flow_method=str(method),
            short_side=int(spec.get("short_side", DEFAULT_SHORT_SIDE)),
        )


@dataclass
class Clips:
    """The network inputs of one video and what they were cut from (kept for explanations).

    rgb (K, 3T, S, S) and flow (K, 2T, S, S) as in training; ``indices`` holds each clip's 1-based
    frame numbers; ``frames`` (T, H, W, 3) uint8 and ``flow_px`` (T, 2, H, W) are the resized frames
    and dequantised flow of the first clip, ``crop`` its centre crop.
    """

    rgb: torch.Tensor
    flow: torch.Tensor
    indices: list[list[int]]
    num_frames: int | None
    frames: np.ndarray
    flow_px: np.ndarray
    crop: CropParams


@dataclass
class Prediction:
    """Class probabilities of one video (mean softmax over its clips)."""

    video: str
    classes: list[str]
    probabilities: np.ndarray
    clips: int
    attention: np.ndarray | None = field(default=None, repr=False)

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable classes as (name, probability), most probable first."""
        order = np.argsort(-self.probabilities, kind="stable")[: max(1, k)]
        return [(self.classes[i], float(self.probabilities[i])) for i in order]

    def to_dict(self, k: int = 5) -> dict:
        return {"video": self.video, "clips": self.clips,
                "top": [{"class": c, "probability": round(p, 6)} for c, p in self.top(k)]}


def _read_frames(path: str | os.PathLike, need: int, short_side: int,
                 limits: FrameLimits | None = None) -> tuple[list[np.ndarray], bool]:
    """The first ``need`` frames, short side resized; also whether the video ended before ``need``.

    Each frame is checked against ``limits`` (default ``FrameLimits()``) before it is resized.
    """
    frames: list[np.ndarray] = []
    limits = FrameLimits() if limits is None else limits
    with closing(iter_frames(path, limits=limits)) as stream:  # closing releases the decoder when we stop early
        for rgb in stream:
            frames.append(resize_short_side(rgb, short_side))
            if len(frames) == need:
                return frames, False
    return frames, True


def build_clips(video: str | os.PathLike, spec: InputSpec, *, clips: int = DEFAULT_CLIPS,
                flow_device: str = "cpu", timings: dict[str, float] | None = None,
                limits: FrameLimits | None = None) -> Clips:
    """Decode ``video`` and build the inputs of ``clips`` evaluation clips (see the module docstring).

    Decoding stops at the last frame the clips need; only a video shorter than that is read to the
    end, and its clips then follow the short-video rule of ``clip_indices``. ``timings``, when
    given, receives the seconds spent in ``decode`` (with resize), ``flow`` and ``transform``.
    Frames over ``limits`` (size, aspect ratio; default ``FrameLimits()``) are a VideoReadError.
    """
    t0 = time.perf_counter()
    offsets = eval_offsets(spec.interval, clips)
    # With at least ``need`` frames no clip is shortened, so the frame count does not matter.
    need = max(offsets) + (spec.frames - 1) * spec.interval + 1
    frames, ended = _read_frames(video, need, spec.short_side, limits)
    num_frames = len(frames) if ended else None
    if len(frames) < 2:
        raise VideoReadError(video, f"only {len(frames)} frame decoded; optical flow needs at least 2")
    count = len(frames)
    t1 = time.perf_counter()
    indices = [clip_indices(count, frames=spec.frames, interval=spec.interval, offset=o) for o in offsets]
    pairs = sorted({i for idx in indices for i in idx})
    gray = {i: cv2.cvtColor(frames[i - 1], cv2.COLOR_RGB2GRAY) for i in {*pairs, *(p + 1 for p in pairs)}}
    raw = compute_flow(np.stack([gray[i] for i in pairs]), np.stack([gray[i + 1] for i in pairs]),
                       method=spec.flow_method, device=flow_device)
    px = dequantize_flow(quantize_flow(raw, spec.flow_bound), spec.flow_bound)  # the cache's uint8 round trip
    flow_of = dict(zip(pairs, px))
    t2 = time.perf_counter()
    crop = center_crop_params(*frames[0].shape[:2])
    rgbs, flows = [], []
    for idx in indices:
        r, f = apply_clip_transform(np.stack([frames[i - 1] for i in idx]), np.stack([flow_of[i] for i in idx]),
                                    crop, size=spec.input_size, flow_bound=spec.flow_bound)
        rgbs.append(r)
        flows.append(f)
    first = indices[0]
    if timings is not None:
        timings.update(decode=t1 - t0, flow=t2 - t1, transform=time.perf_counter() - t2)
    return Clips(rgb=torch.stack(rgbs), flow=torch.stack(flows), indices=indices, num_frames=num_frames,
                 frames=np.stack([frames[i - 1] for i in first]), flow_px=np.stack([flow_of[i] for i in first]),
                 crop=crop)


def attention_layers(model: nn.Module) -> list[nn.Module]:
    """The model's self-attention fusion layers (none for models without ``model.attention``)."""
    att = getattr(model, "attention", None)
    if att is None:
        return []
    return list(att) if isinstance(att, nn.ModuleList) else [att]


class Predictor:
    """A loaded model package ready to predict videos.

    >>> p = Predictor.load("runs/demo")            # doctest: +SKIP
    >>> p.predict("clip.mp4").top(5)               # doctest: +SKIP
    """

    def __init__(self, model: nn.Module, spec: dict, *, device: str = "cpu", limits: FrameLimits | None = None):
        self.model = model.eval()
        self.limits = limits or FrameLimits()  # bounds on decoded frames (serve sets tighter ones)
        self.spec = spec
        self.classes: list[str] = list(spec["classes"])
        self.input = InputSpec.from_model_spec(spec)
        self.device = torch.device(device)
        # only the PyTorch solvers run on the model's device; OpenCV methods ("dis", "opencv-*") on the CPU
        try:
            torch_flow = resolve_method(self.input.flow_method) in ("tvl1", "brox")
        except ValueError as exc:  # a name recorded by import-rawframes that no solver here computes
            raise ModelPackageError(f"{MODEL_JSON}: flow_method {self.input.flow_method!r} "
                                    f"cannot be computed for prediction ({exc})") from None
        self.flow_device = str(self.device) if torch_flow else "cpu"

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "cpu") -> "Predictor":
        """Load the model package (``model.safetensors`` + ``model.json``) in ``path``."""
        from .engine.checkpoint import load_model

        model, spec = load_model(path, device=device)
        return cls(model, spec, device=device)

    def clips(self, video: str | os.PathLike, *, clips: int = DEFAULT_CLIPS) -> Clips:
        return build_clips(video, self.input, clips=clips, flow_device=self.flow_device, limits=self.limits)

    @torch.no_grad()
    def run(self, clips: Clips, *, video: str = "", attention: bool = False) -> Prediction:
        """Mean softmax over the clips; with ``attention`` also the first clip's fusion attention (N, N)."""
        layers = attention_layers(self.model) if attention else []
        for layer in layers:
            layer.record, layer.last_attention = True, None
        try:
            logits = self.model(clips.rgb.to(self.device), clips.flow.to(self.device))
        finally:
            for layer in layers:
                layer.record = False
        probs = torch.softmax(logits.float(), dim=1).mean(0).cpu().numpy()
        att = None
        if layers:
            att = np.mean([layer.last_attention[0].float().cpu().numpy() for layer in layers], axis=0)
        return Prediction(video=video, classes=self.classes, probabilities=probs, clips=clips.rgb.shape[0],
                          attention=att)

    def predict(self, video: str | os.PathLike, *, clips: int = DEFAULT_CLIPS) -> Prediction:
        """Class probabilities of ``video`` averaged over ``clips`` centre-cropped clips."""
        return self.run(self.clips(video, clips=clips), video=str(video))


def format_top(pred: Prediction, k: int) -> str:
    """Human-readable top-k: the video on one line, then one ``probability  class`` line per class."""
    lines = [f"{pred.video} ({pred.clips} clip{'s' if pred.clips != 1 else ''})"]
    lines += [f"  {p:.4f}  {c}" for c, p in pred.top(k)]
    return "\n".join(lines)

