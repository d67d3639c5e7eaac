"""Predict the action in a video: its evaluation clips built with training's functions, the clips' softmax
averaged (docs/design.md, "inference"). Imports neither runtime: ``predict --model model.onnx`` imports no torch."""

from __future__ import annotations

import os
import time
from contextlib import closing
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..data.sampling import ClipSpec, eval_positions, view_indices
from ..data.clips import cut_arrays
from ..data.transforms import CropParams, center_crop_params, resize_short_side
from ..flow import TORCH_METHODS, compute_flow, dequantize_flow, quantize_flow, resolve_method
from .package import MODEL_JSON, ModelPackageError, load_model
from ..video import FrameLimits, VideoReadError, iter_frames

#: Clips per video when the caller does not say (the demo recipe's ``eval_clips``).
DEFAULT_CLIPS = 5


@dataclass
class Clips:
    """The inputs of one video: rgb (K, 3T, S, S) and flow (K, 2T, S, S) float32, each clip's 1-based frame
    ``indices``; for explanations the first clip's resized ``frames`` (T, H, W, 3) uint8, its dequantised
    ``flow_px`` (T, 2, H, W) and its centre ``crop``."""

    rgb: np.ndarray
    flow: np.ndarray
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
        return top_k(self.probabilities, self.classes, k)

    def to_dict(self, k: int = 5) -> dict:
        return {"video": self.video, "clips": self.clips, "top": top_dicts(self.top(k))}


def top_k(probabilities: np.ndarray, classes: list[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` (at least 1) most probable classes as (name, probability), most probable first (ties: class order)."""
    order = np.argsort(-probabilities, kind="stable")[: max(1, k)]
    return [(classes[i], float(probabilities[i])) for i in order]


def top_dicts(top: list[tuple[str, float]]) -> list[dict]:
    """``top_k``'s pairs as JSON objects (probabilities to 6 decimals)."""
    return [{"class": c, "probability": round(p, 6)} for c, p in top]


def flow_pairs(prev: np.ndarray, nxt: np.ndarray, spec: ClipSpec, *, device: str = "cpu") -> np.ndarray:
    """Flow of gray frame pairs as the cache stores it (the model's method and bound): (N, H, W, 2) uint8 (x, y)."""
    raw = compute_flow(prev, nxt, method=spec.flow_method, device=device)
    return quantize_flow(raw, spec.flow_bound).transpose(0, 2, 3, 1)


def build_clips(video: str | os.PathLike, spec: ClipSpec, *, clips: int = DEFAULT_CLIPS,
                indices: list[list[int]] | None = None, flow_device: str = "cpu",
                timings: dict[str, float] | None = None, limits: FrameLimits | None = None) -> Clips:
    """Decode ``video`` as far as its ``clips`` evaluation clips need and build their inputs. ``indices``
    (1-based frames of each clip, each followed by a frame for its flow) replaces the evaluation clips, e.g.
    the windows ``live`` saw. ``timings`` receives the seconds of ``decode``, ``flow`` and ``transform``.
    Frames over ``limits`` (default ``FrameLimits()``) are a VideoReadError."""
    t0 = time.perf_counter()
    if indices is None:
        positions = eval_positions(spec.sampling, interval=spec.interval, clips=clips)
        # ``need`` frames shorten no clip; spread clips depend on the whole video's frame count
        need = None if spec.sampling == "spread" else int(max(positions)) + spec.span
    else:
        need = max(max(idx) for idx in indices) + 1
    frames: list[np.ndarray] = []  # checked against ``limits``, then resized
    with closing(iter_frames(video, limits=limits or FrameLimits())) as stream:  # closing: we may stop early
        for rgb in stream:
            frames.append(resize_short_side(rgb, spec.short_side))
            if len(frames) == need:
                break
    num_frames = len(frames) if len(frames) != need else None  # None: the video may go on
    if len(frames) < 2:
        raise VideoReadError(video, f"only {len(frames)} frame decoded; optical flow needs at least 2")
    if indices is None:
        indices = [view_indices(len(frames), p, sampling=spec.sampling, frames=spec.frames, interval=spec.interval)
                   for p in positions]
    elif len(frames) < need:
        raise VideoReadError(video, f"{len(frames)} frames decoded; the clips asked for need {need}")
    t1 = time.perf_counter()
    pairs = sorted({i for idx in indices for i in idx})  # flow only for the pairs (i, i + 1) the clips use
    gray = {i: cv2.cvtColor(frames[i - 1], cv2.COLOR_RGB2GRAY) for i in {*pairs, *(p + 1 for p in pairs)}}
    flow_of = dict(zip(pairs, flow_pairs(np.stack([gray[i] for i in pairs]), np.stack([gray[i + 1] for i in pairs]),
                                         spec, device=flow_device)))
    t2 = time.perf_counter()
    crop = center_crop_params(*frames[0].shape[:2])
    cut = [cut_arrays(np.stack([frames[i - 1] for i in idx]), np.stack([flow_of[i] for i in idx]), crop,
                      size=spec.input_size) for idx in indices]
    first = indices[0]
    if timings is not None:
        timings.update(decode=t1 - t0, flow=t2 - t1, transform=time.perf_counter() - t2)
    return Clips(rgb=np.stack([r for r, _ in cut]), flow=np.stack([f for _, f in cut]), indices=indices,
                 num_frames=num_frames, frames=np.stack([frames[i - 1] for i in first]),
                 flow_px=dequantize_flow(np.stack([flow_of[i] for i in first]).transpose(0, 3, 1, 2), spec.flow_bound),
                 crop=crop)


def attention_layers(model) -> list:
    """The model's self-attention fusion layers (none for models without ``model.attention``, or no model)."""
    att = getattr(model, "attention", None)
    if att is None:
        return []
    from torch import nn

    return list(att) if isinstance(att, nn.ModuleList) else [att]


class Predictor:
    """A model package ready to predict videos (``runtime.load_predictor(path).predict("clip.mp4").top(5)``); a
    runtime implements ``_probabilities(rgb, flow)``, the softmax (B, K) of a batch of clips."""

    runtime = ""
    model = None  # the torch runtime's nn.Module: only it can record the fusion attention

    def __init__(self, spec: dict, *, where: str | os.PathLike = "the model"):
        self.limits = FrameLimits()  # bounds of decoded frames (the readers apply none without; serve passes its own)
        self.where = str(where)
        self.spec = spec
        self.classes: list[str] = list(spec["classes"])
        self.input = ClipSpec.from_model_json(spec)
        self.flow_device = "cpu"
        try:
            self.flow_method = resolve_method(self.input.flow_method)
        except ValueError as exc:  # a name recorded by import-rawframes that no solver here computes
            raise ModelPackageError(f"{MODEL_JSON}: flow_method {self.input.flow_method!r} "
                                    f"cannot be computed for prediction ({exc})") from None

    def probabilities(self, rgb: np.ndarray, flow: np.ndarray) -> np.ndarray:
        """The softmax (B, K) of clips rgb (B, 3T, S, S) and flow (B, 2T, S, S); a NaN or infinite answer
        (finite weights so large that the network overflows) is a ModelPackageError, never an answer."""
        probs = self._probabilities(rgb, flow)
        if not np.isfinite(probs).all():
            raise ModelPackageError(f"{self.where}: the model answered NaN or infinite probabilities "
                                    "(weights so large that it overflows?); refused")
        return probs

    def _probabilities(self, rgb: np.ndarray, flow: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def clips(self, video: str | os.PathLike, *, clips: int = DEFAULT_CLIPS,
              indices: list[list[int]] | None = None, limits: FrameLimits | None = None) -> Clips:
        """The inputs of ``video`` (see ``build_clips``), decoded under ``limits`` (default ``self.limits``)."""
        return build_clips(video, self.input, clips=clips, indices=indices, flow_device=self.flow_device,
                           limits=limits or self.limits)

    def run(self, clips: Clips, *, video: str = "", attention: bool = False) -> Prediction:
        """Mean softmax over the clips; with ``attention`` also the first clip's fusion attention (N, N)."""
        layers = attention_layers(self.model) if attention else []
        for layer in layers:
            layer.record, layer.last_attention = True, None
        try:
            probs = self.probabilities(clips.rgb, clips.flow).mean(0)
        finally:
            for layer in layers:
                layer.record = False
        att = np.mean([layer.last_attention[0].float().cpu().numpy() for layer in layers], axis=0) if layers else None
        return Prediction(video=video, classes=self.classes, probabilities=probs, clips=clips.rgb.shape[0],
                          attention=att)

    def predict(self, video: str | os.PathLike, *, clips: int = DEFAULT_CLIPS) -> Prediction:
        """Class probabilities of ``video`` averaged over ``clips`` centre-cropped clips."""
        return self.run(self.clips(video, clips=clips), video=str(video))


class TorchPredictor(Predictor):
    """The PyTorch runtime: a loaded ``nn.Module`` on ``device`` (where the torch flow solvers run too)."""

    runtime = "torch"

    def __init__(self, model, spec: dict, *, device: str = "cpu", where: str | os.PathLike = "the model"):
        import torch

        super().__init__(spec, where=where)
        self.model = model.eval()
        self.device = torch.device(device)
        self.flow_device = str(self.device) if self.flow_method in TORCH_METHODS else "cpu"

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "cpu") -> "TorchPredictor":
        model, spec = load_model(path, device=device)
        return cls(model, spec, device=device, where=path)

    def _probabilities(self, rgb: np.ndarray, flow: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            logits = self.model(torch.from_numpy(rgb).to(self.device), torch.from_numpy(flow).to(self.device))
            return torch.softmax(logits.float(), dim=1).cpu().numpy()


def format_top(pred: Prediction, k: int) -> str:
    """Human-readable top-k: the video on one line, then one ``probability  class`` line per class."""
    lines = [f"{pred.video} ({pred.clips} clip{'s' if pred.clips != 1 else ''})"]
    lines += [f"  {p:.4f}  {c}" for c, p in pred.top(k)]
    return "\n".join(lines)

