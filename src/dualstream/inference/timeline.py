"""Which action happens when: the top class of every window (one clip of the model, every ``stride`` frames,
``live``'s sliding window without smoothing) of a long video, as JSON and as a chart. A window stands for
the time from half-way after its predecessor's centre to half-way before its successor's (the first from
its start, the last to its end); neighbours with the same top class merge into one segment."""

from __future__ import annotations

import io
import os
from contextlib import closing
from dataclasses import dataclass, field
from itertools import groupby

import numpy as np
from tqdm import tqdm

from .window import SlidingWindow
from .predict import Predictor, top_dicts, top_k
from ..video import FrameLimits, VideoReadError, iter_frames, video_info

#: Class colours (matplotlib's tab10, then tab20's lighter shades), shared by the chart and the serve page.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
           "#dbdb8d", "#9edae5")
FALLBACK_FPS = 25.0


def class_colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


@dataclass
class TimelineWindow:
    first: int  # 1-based first and last frame of the clip
    last: int
    probabilities: np.ndarray = field(repr=False)


@dataclass
class Timeline:
    video: str
    classes: list[str]
    fps: float
    frames: int
    stride: int
    windows: list[TimelineWindow]

    def centre(self, w: TimelineWindow) -> float:
        return ((w.first - 1) + w.last) / 2 / self.fps

    def bands(self) -> list[tuple[float, float]]:
        """The stretch of time each window stands for (see the module docstring)."""
        centres = [self.centre(w) for w in self.windows]
        edges = [(self.windows[0].first - 1) / self.fps]
        edges += [(a + b) / 2 for a, b in zip(centres, centres[1:])]
        edges.append(self.windows[-1].last / self.fps)
        return list(zip(edges, edges[1:]))

    def top_index(self) -> np.ndarray:
        return np.array([int(np.argmax(w.probabilities)) for w in self.windows])

    def segments(self) -> list[dict]:
        """Runs of windows with the same top class: class, start, end (s), mean top probability, windows."""
        out = []
        for top, run in groupby(zip(self.bands(), self.windows, self.top_index()), key=lambda r: r[2]):
            run = list(run)
            out.append({"class": self.classes[top], "start": round(run[0][0][0], 3), "end": round(run[-1][0][1], 3),
                        "probability": round(float(np.mean([w.probabilities[top] for _, w, _ in run])), 4),
                        "windows": len(run)})
        return out

    def to_dict(self, k: int = 3) -> dict:
        windows = []
        for (start, end), w in zip(self.bands(), self.windows):
            top = top_dicts(top_k(w.probabilities, self.classes, k))
            windows.append({"frames": [w.first, w.last], "time": round(self.centre(w), 3),
                            "start": round(start, 3), "end": round(end, 3), **top[0], "top": top})
        return {"video": self.video, "fps": round(self.fps, 3), "frames": self.frames, "stride": self.stride,
                "duration": round(self.frames / self.fps, 3),
                "colours": {c: class_colour(i) for i, c in enumerate(self.classes)},
                "segments": self.segments(), "windows": windows}


def predict_timeline(predictor: Predictor, video: str | os.PathLike, *, stride: int = 0,
                     progress: bool = False, limits: FrameLimits | None = None) -> Timeline:
    """Decode ``video`` once and predict every window, under ``limits`` (default ``predictor.limits``)."""
    info = video_info(video)  # VideoReadError for a file that is not a video
    fps = info["fps"] if info["fps"] > 0 else FALLBACK_FPS
    window = SlidingWindow(predictor, stride=stride, smooth=1)
    found: list[TimelineWindow] = []
    with closing(iter_frames(video, limits=limits or predictor.limits)) as frames:
        for rgb in tqdm(frames, total=info["declared_frames"] or None, unit="frame", desc=os.path.basename(str(video)),
                        leave=False, mininterval=0.5, disable=not progress):
            if (pred := window.push(rgb)) is not None:
                found.append(TimelineWindow(pred.indices[0], pred.indices[-1], pred.clip))
    if not found:
        raise VideoReadError(video, f"{window.frames} frames decoded; a timeline window needs "
                                    f"{predictor.input.span + 1} (predict without --timeline reads short videos)")
    return Timeline(video=str(video), classes=predictor.classes, fps=fps, frames=window.frames,
                    stride=window.stride, windows=found)


def format_timeline(t: Timeline) -> str:
    """The segments, one line each: ``start - end s  class  (mean top probability, windows)``."""
    lines = [f"{t.video}: {t.frames} frames, {t.frames / t.fps:.2f} s, {len(t.windows)} windows every "
             f"{t.stride} frames"]
    for s in t.segments():
        lines.append(f"  {s['start']:7.2f} - {s['end']:7.2f} s  {s['class']:<24} "
                     f"(mean {s['probability']:.3f}, {s['windows']} window{'s' if s['windows'] != 1 else ''})")
    return "\n".join(lines)


def render_timeline(t: Timeline) -> bytes:
    """The chart as PNG bytes: the top class as coloured bands; below, the top class's probability (a step
    per window, filled in its colour) and each class on top somewhere as a line. No pyplot: thread-safe."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    bands = t.bands()
    top = t.top_index()
    duration = max(t.frames / t.fps, bands[-1][1])
    fig = Figure(figsize=(10, 3.6), dpi=110)
    grid = fig.add_gridspec(2, 1, height_ratios=(1, 2.4), hspace=0.08)
    ax_band = fig.add_subplot(grid[0])
    ax_conf = fig.add_subplot(grid[1], sharex=ax_band)
    for seg in t.segments():
        colour = class_colour(t.classes.index(seg["class"]))
        ax_band.axvspan(seg["start"], seg["end"], color=colour, lw=0)
        if seg["end"] - seg["start"] > duration * 0.07:  # the name inside the band when it fits
            ax_band.text((seg["start"] + seg["end"]) / 2, 0.5, seg["class"], ha="center", va="center",
                         fontsize=9, color="white", fontweight="bold", clip_on=True)
    ax_band.set(yticks=[], ylim=(0, 1))
    ax_band.set_ylabel("top class", rotation=0, ha="right", va="center", fontsize=9)
    ax_band.tick_params(labelbottom=False)
    shown = sorted(set(top.tolist()))
    centres = np.array([t.centre(w) for w in t.windows])
    probs = np.stack([w.probabilities for w in t.windows])
    for (start, end), w, c in zip(bands, t.windows, top):
        ax_conf.fill_between([start, end], 0, [w.probabilities[c]] * 2, color=class_colour(c), alpha=0.35, lw=0)
    edges = [b[0] for b in bands] + [bands[-1][1]]
    step = [float(w.probabilities[c]) for w, c in zip(t.windows, top)]
    ax_conf.stairs(step, edges, baseline=None, color="#222222", lw=1.4)
    for i in shown:
        ax_conf.plot(centres, probs[:, i], color=class_colour(i), lw=1.0, alpha=0.9)
    ax_conf.set(ylim=(0, 1.02), xlim=(0, duration))
    ax_conf.set_ylabel("probability", fontsize=9)
    ax_conf.set_xlabel("time (s)", fontsize=9)
    ax_conf.grid(axis="y", alpha=0.3)
    ax_conf.tick_params(labelsize=8)
    handles = [Patch(color=class_colour(i), label=t.classes[i]) for i in shown]
    handles.append(Line2D([], [], color="#222222", lw=1.4, label="top-class probability"))
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 7), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.93))
    fig.suptitle(f"{os.path.basename(t.video)}: top class per window ({len(t.windows)} windows of "
                 f"{(t.windows[0].last - t.windows[0].first + 1) / t.fps:.2f} s, one every {t.stride} frames)",
                 fontsize=10, y=0.985)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.8, bottom=0.14)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
