"""``dualstream live`` (README "Live recognition"): a source decoded in a reader thread, classified by
``window.SlidingWindow``, the smoothed top class printed, optionally drawn into a video, and a summary."""

from __future__ import annotations

import json
import math
import queue
import signal
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from ..video import FrameLimits, VideoReadError, decoded_frames, open_video
from .predict import Predictor
from .window import LivePrediction, SlidingWindow

DEFAULT_TIMEOUT = 10.0
#: Frames the reader may run ahead of the processing without --realtime.
READ_AHEAD = 8


class LiveError(Exception):
    """A source that cannot be opened or stalls; one line for the user."""


def _open_source(source: str, kind: str, timeout: float) -> cv2.VideoCapture:
    if kind == "file":
        return open_video(source)  # its VideoReadError becomes a LiveError in the reader
    if kind == "camera":
        cap = cv2.VideoCapture(int(source))
        what = f"camera {source}: cannot be opened (no such device, no permission, or in use)"
    else:
        # FFmpeg gives up a little after our own --timeout, so that a stall is reported as one
        params = [] if timeout <= 0 else [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(timeout * 1000) + 2000,
                                          cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(timeout * 1000) + 2000]
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
        what = f"{source}: cannot open the stream (unreachable, refused, or a format FFmpeg does not read)"
    if not cap.isOpened():
        cap.release()
        raise LiveError(what)
    return cap


_END = object()


class FrameReader(threading.Thread):
    """Decode SOURCE in the background into a queue of (frame number, RGB frame); ``realtime``: the newest frame
    replaces an unprocessed one (counted in ``dropped``) and a file is paced at its frame rate."""

    def __init__(self, source: str, *, realtime: bool, timeout: float, max_frames: int = 0,
                 limits: FrameLimits | None = None):
        super().__init__(name="dualstream-live-reader", daemon=True)
        self.source = source
        self.kind = "camera" if source.isdigit() else "stream" if "://" in source else "file"  # camera: an index
        self.realtime, self.timeout, self.max_frames = realtime, timeout, max_frames
        self.limits = limits
        self.frames: queue.Queue = queue.Queue(maxsize=1 if realtime else READ_AHEAD)
        self.opened = threading.Event()
        self.stopping = threading.Event()  # set by Ctrl-C (run_live) or at the end: both threads stop at the next frame
        self.fps = 0.0
        self.read = self.dropped = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        cap = None
        try:
            cap = _open_source(self.source, self.kind, self.timeout)
            self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            self.opened.set()
            pace = self.realtime and self.kind == "file" and self.fps > 0
            start = time.perf_counter()
            for rgb in decoded_frames(cap, self.source, self.limits):  # checked before anything resizes them
                self.read += 1
                if pace:  # deliver the file as a camera would: frame k at k / fps seconds
                    time.sleep(max(0.0, start + (self.read - 1) / self.fps - time.perf_counter()))
                self._put((self.read, rgb))
                if self.stopping.is_set() or self.read == self.max_frames:
                    break
        except VideoReadError as exc:  # not a video, or a frame over the limits
            self.error = LiveError(str(exc))
        except BaseException as exc:  # handed to the consumer, which raises it in its thread
            self.error = exc
        finally:
            if cap is not None:
                cap.release()
            self._put(_END)

    def _put(self, item) -> None:
        """Only this thread puts, and ``_END`` last: a full queue stays full until the consumer takes from it, and
        what ``realtime`` drops is always a frame."""
        if not self.realtime:
            while not self.stopping.is_set():
                with suppress(queue.Full):
                    self.frames.put(item, timeout=0.1)
                    return
            return
        try:
            self.frames.put_nowait(item)
        except queue.Full:  # keep only the newest frame; the one it replaces is dropped
            with suppress(queue.Empty):  # unless the consumer took it meanwhile
                self.frames.get_nowait()
                self.dropped += 1
            self.frames.put_nowait(item)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        """(frame number, RGB frame) until the source ends or ``stopping`` is set (polled every 0.1 s); LiveError
        after ``timeout`` s without a frame."""
        limit = self.timeout if self.timeout > 0 else math.inf
        deadline = time.monotonic() + limit
        while not self.stopping.is_set():
            wait = min(0.1, deadline - time.monotonic())
            if wait <= 0:
                if not self.opened.is_set():
                    raise LiveError(f"{self.source}: not opened within {self.timeout:g} s (--timeout)")
                raise LiveError(f"{self.source}: no frame for {self.timeout:g} s after frame {self.read} "
                                "(the stream stalled or stopped; --timeout)")
            try:
                item = self.frames.get(timeout=wait)
            except queue.Empty:
                continue
            if item is _END:
                if self.error is not None:
                    raise self.error
                return
            yield item
            deadline = time.monotonic() + limit


def annotate(bgr: np.ndarray, label: str, probability: float | None, note: str = "") -> np.ndarray:
    """Draw the current label and a confidence bar at the top of a BGR frame (in place; returned)."""
    w = bgr.shape[1]
    scale = max(0.4, min(1.0, w / 640))
    bar_h = max(6, int(10 * scale))
    band = int(30 * scale) + bar_h + 6
    bgr[:band] = (bgr[:band] * np.float32(0.35)).astype(np.uint8)  # darken the band so the text reads on any video
    text = label if probability is None else f"{label}  {probability:.0%}"
    cv2.putText(bgr, text, (6, int(22 * scale) + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, (255, 255, 255),
                max(1, int(2 * scale)), cv2.LINE_AA)
    if note:
        size = cv2.getTextSize(note, cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, 1)[0]
        cv2.putText(bgr, note, (w - size[0] - 6, int(22 * scale) + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale,
                    (200, 200, 200), 1, cv2.LINE_AA)
    top, left, right = band - bar_h - 4, 6, w - 6
    cv2.rectangle(bgr, (left, top), (right, top + bar_h), (90, 90, 90), -1)
    if probability is not None:
        colour = (80, 200, 80) if probability >= 0.6 else (60, 190, 230) if probability >= 0.35 else (80, 80, 230)
        cv2.rectangle(bgr, (left, top), (left + int((right - left) * probability), top + bar_h), colour, -1)
    return bgr


class AnnotatedWriter:
    """``--out``: the processed frames with the current label and confidence bar, as a video file."""

    def __init__(self, path: str | Path, fps: float):
        self.path, self.fps = Path(path), fps if fps > 0 else 25.0
        if not self.path.parent.is_dir():
            raise LiveError(f"{self.path.parent}: output folder does not exist")
        self._writer: cv2.VideoWriter | None = None

    def write(self, rgb: np.ndarray, label: str, probability: float | None, note: str = "") -> None:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if self._writer is None:
            fourcc = "mp4v" if self.path.suffix.lower() in (".mp4", ".m4v", ".mov") else "MJPG"
            self._size = bgr.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc),
                                           self.fps, self._size[::-1])
            if not self._writer.isOpened():
                raise LiveError(f"{self.path}: cannot open a {fourcc} video writer")
        if bgr.shape[:2] != self._size:  # a stream that changed its resolution: keep the file's
            bgr = cv2.resize(bgr, self._size[::-1])
        self._writer.write(annotate(bgr, label, probability, note))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


@dataclass
class LiveSummary:
    frames: int = 0
    seconds: float = 0.0
    predictions: int = 0
    dropped: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)
    ended: str = "end of source"

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000) if self.latencies else 0.0

    def to_dict(self) -> dict:
        return {"frames": self.frames, "fps": round(self.fps, 2),
                "latency_ms": {"p50": round(self.percentile(50), 2), "p95": round(self.percentile(95), 2)},
                "predictions": self.predictions, "dropped": self.dropped, "seconds": round(self.seconds, 3),
                "ended": self.ended}

    def line(self) -> str:
        return (f"{self.frames} frames in {self.seconds:.2f} s: {self.fps:.1f} frames/s, {self.predictions} "
                f"predictions, latency p50 {self.percentile(50):.1f} ms p95 {self.percentile(95):.1f} ms, "
                f"{self.dropped} dropped ({self.ended})")


def run_live(predictor: Predictor, source: str, *, stride: int = 0, smooth: int = 1, realtime: bool = False,
             timeout: float = DEFAULT_TIMEOUT, out: str | Path | None = None, max_frames: int = 0,
             on_prediction: Callable[[LivePrediction], None] | None = None) -> LiveSummary:
    """Run the sliding window over ``source`` until it ends (or ``max_frames``, a timeout, Ctrl-C); ``on_prediction``
    receives each LivePrediction (``time``: seconds into a file at its frame rate, else since the first frame). A
    timeout raises LiveError carrying the partial ``summary``; a source that ends before the first prediction is a
    LiveError saying why (``out`` is then removed)."""
    window = SlidingWindow(predictor, stride=stride, smooth=smooth)
    reader = FrameReader(source, realtime=realtime, timeout=timeout, max_frames=max_frames,
                         limits=predictor.limits)
    summary = LiveSummary()
    writer = previous = None
    need = predictor.input.span + 1
    label, prob = f"warming up: first {need} frames", None
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C sets a flag: a KeyboardInterrupt could land between a queue lock's acquire and its release
        # and leave the next get waiting forever
        previous = signal.signal(signal.SIGINT, lambda *_: reader.stopping.set())
    reader.start()
    start = None
    try:
        for number, rgb in reader:
            if start is None:
                start = time.perf_counter()
                if out is not None:
                    writer = AnnotatedWriter(out, reader.fps)
            pred = window.push(rgb)
            summary.frames += 1
            if pred is not None:
                file_time = reader.kind == "file" and reader.fps > 0
                pred.time = (number - 1) / reader.fps if file_time else time.perf_counter() - start
                summary.predictions += 1
                summary.latencies.append(pred.latency)
                (label, prob), = pred.top(predictor.classes, 1)
                if on_prediction is not None:
                    on_prediction(pred)
            if writer is not None:
                writer.write(rgb, label, prob, f"frame {number}")
        if reader.stopping.is_set():
            summary.ended = "interrupted"
        elif max_frames and summary.frames >= max_frames:
            summary.ended = f"--max-frames {max_frames}"
        elif reader.kind != "file":
            summary.ended = "stream ended"
    except KeyboardInterrupt:
        summary.ended = "interrupted"
    except LiveError as exc:
        summary.ended = "timeout" if "--timeout" in str(exc) else "error"
        exc.summary = summary  # type: ignore[attr-defined]
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        summary.seconds = time.perf_counter() - start if start is not None else 0.0
        reader.stopping.set()
        # the reader must leave the decoder: a thread inside OpenCV at exit aborts the process (docs/design.md)
        reader.join(timeout=(timeout if timeout > 0 else 10.0) + 3.0)
        summary.dropped = reader.dropped
        if writer is not None:
            writer.close()
    if not summary.predictions and summary.ended != "interrupted":
        if writer is not None:  # its frames only say "warming up"
            writer.path.unlink(missing_ok=True)
        if not summary.frames:
            raise LiveError(f"{source}: no frame could be decoded")
        raise LiveError(f"{source}: {summary.frames} frame{'s' if summary.frames != 1 else ''} "
                        f"{'read (--max-frames)' if summary.ended.startswith('--max-frames') else 'decoded'}, "
                        f"too few for one clip: the model needs {need} frames of one size")
    return summary


def print_prediction(pred: LivePrediction, classes: list[str], *, k: int, as_json: bool) -> None:
    if as_json:
        print(json.dumps(pred.to_dict(classes, k)), flush=True)
    else:
        top = "  ".join(f"{c} {p:.3f}" for c, p in pred.top(classes, k))
        print(f"frame {pred.frame:>6}  {pred.time:8.2f} s  {top}", flush=True)
