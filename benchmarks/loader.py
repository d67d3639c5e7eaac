"""Training clips/s per loader variant at 224x224, per worker and in total, next to the model's train step.

    python benchmarks/loader.py [--videos 16] [--workers N] [--batches 12] [--seconds 60] [--device cpu|cuda]
                                [--variants baseline device-packed ...] [--json FILE] [--profile]
    python benchmarks/loader.py --cache CACHE ...     # an existing prepared cache (copied, never changed)

Writes ``--videos`` 320x240 videos of 110 frames and prepares them (DIS flow, short side 240, the
native UCF-101 size, so that a 224 crop is not upsampled), or copies ``--cache``; packs a copy
(``dualstream pack --drop-jpeg``). Then, one after the other in one run, each variant delivers
batches of 25 (paper) network-ready clips (10 RGB + 10 x/y flow frames, paired random crop, flip,
resize to 224, normalisation) on ``--device``, through the engine's ``DeviceBatches``:

* ``baseline``: the yardstick, the classic float path of ``TrainClips`` before 0.2, reproduced here
  (``BaselineClips``): per clip, decode the 30 JPEGs, dequantise the flow to float px, crop + flip,
  resize with OpenCV (area filter when shrinking; RGB in uint8, flow in float32), normalise in float,
  one clip per ``__getitem__``, default collate, OpenCV's own thread pool in every worker; the same
  frames and crop draws as ``TrainClips``. ``benchmarks/RESULTS.md``'s "x baseline" figures are against it;
* ``workers``: ``TrainClips`` as training uses it (``data.pipeline: workers``, ``engine.build.worker_batches``):
  each worker cuts whole batches (``__getitems__``, ``data.clips.cut_clip``: crop rows read, uint8
  resize, flip, every plane normalised straight into the shared-memory batch; on the CPU a released
  batch's memory is reused), one OpenCV thread per worker; ``workers-packed``: the same from the packed store;
* ``device``: ``TrainFrames`` (workers decode JPEGs only) + crop/flip/resize/normalise batched on the
  device (``data.pipeline: device``); ``device-packed``: the same from the packed store (workers
  slice arrays only); ``device-nvjpeg``: workers read bytes, the GPU decodes (CUDA + torchvision only).

Two rates per variant, clips/s after a warm-up batch, in total and per worker (total / workers):
as the workers hand the batches over (what a GPU's host has to deliver; the device pipeline hands
over uint8 frames), and network-ready on ``--device``, the variant's device-side work included (on
the CPU that work competes with the workers for the cores). Then the train step: ``early_fusion`` forward +
backward + Adam at 224 on random inputs already on the device (bf16 + channels_last on CUDA).
``--profile`` first prints where one clip's time goes in the baseline, stage by stage (thread CPU
time, which the machine's load changes little).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from dualstream.cache import MANIFEST, load_frames_u8
from dualstream.data import device as dev
from dualstream.data.batches import release_batch
from dualstream.data.dataset import ClipSpec, TrainClips
from dualstream.data.transforms import _MEAN, _STD, CropParams
from dualstream.data.ucf101 import VideoEntry
from dualstream.engine.accel import DeviceBatches, loader_worker_init
from dualstream.engine.build import worker_batches, worker_input
from dualstream.flow import dequantize_flow
from dualstream.prepare.common import PrepareOptions
from dualstream.prepare.pack import pack_cache
from dualstream.prepare.run import prepare_dataset

sys.path.insert(0, str(Path(__file__).parent))
from prepare import write_moving_videos  # noqa: E402
from train import measure  # noqa: E402

SIZE = 224
BATCH = 25  # --batch
VARIANTS = ("baseline", "workers", "workers-packed", "device", "device-packed", "device-nvjpeg")


def resize_stack(frames: np.ndarray, size: int) -> np.ndarray:
    """Baseline: resize (T, h, w, C) frames to (T, size, size, C) with OpenCV (area filter when shrinking)."""
    if frames.shape[1] == size and frames.shape[2] == size:
        return frames
    interp = cv2.INTER_AREA if frames.shape[1] > size else cv2.INTER_LINEAR
    out = [cv2.resize(f, (size, size), interpolation=interp) for f in frames]
    return np.stack([o if o.ndim == 3 else o[..., None] for o in out])


def baseline_arrays(rgb: np.ndarray, flow: np.ndarray, crop: CropParams, *, size: int, flow_bound: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Baseline: crop, flip, resize and normalise a clip in float, as the classic path did. rgb uint8
    (T, H, W, 3), flow float32 px (T, 2, H, W) -> rgb (3T, size, size), flow (2T, size, size) float32."""
    t = rgb.shape[0]
    rows, cols = slice(crop.top, crop.top + crop.size), slice(crop.left, crop.left + crop.size)
    r = rgb[:, rows, cols]
    f = flow[:, :, rows, cols].transpose(0, 2, 3, 1)
    if crop.flip:
        r = r[:, :, ::-1]
        f = f[:, :, ::-1] * np.array([-1.0, 1.0], np.float32)
    r = resize_stack(np.ascontiguousarray(r), size).astype(np.float32)
    f = resize_stack(np.ascontiguousarray(f, dtype=np.float32), size)
    r = (r - _MEAN) / _STD
    f = f * (size / crop.size / flow_bound)
    r = np.ascontiguousarray(r.transpose(0, 3, 1, 2)).reshape(3 * t, size, size)
    f = np.ascontiguousarray(f.transpose(0, 3, 1, 2)).reshape(2 * t, size, size)
    return r, f


class BaselineClips(Dataset):
    """baseline (pre-0.2 classic float path): ``TrainClips``' clips as its ``__getitem__`` cut them
    before 0.2, one clip at a time in float (the yardstick of the "x baseline" columns). The frames and
    crop draws are ``TrainClips``' own."""

    def __init__(self, cache: Path, entries: list[VideoEntry], spec: ClipSpec):
        self.draws, self.spec = TrainClips(cache, entries, spec), spec

    def set_epoch(self, epoch: int) -> None:
        self.draws.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.draws)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        d, s = self.draws, self.spec
        v = d.video(i)
        rgb, q = load_frames_u8(d.cache / d.entries[v].key, d.clip_frames(i), d.available[v])  # decode the JPEGs
        flow = dequantize_flow(q.transpose(0, 3, 1, 2), s.flow_bound)  # float px (T, 2, H, W), whole frames
        r, f = baseline_arrays(rgb, flow, d.crop(i, *rgb.shape[1:3]), size=s.input_size, flow_bound=s.flow_bound)
        return torch.from_numpy(r), torch.from_numpy(f), d.entries[v].label


def cache_entries(cache: Path) -> list[VideoEntry]:
    return [VideoEntry(f"{m.parent.parent.name}/{m.parent.name}.avi", 0) for m in sorted(cache.glob(f"*/*/{MANIFEST}"))]


def variant(name: str, cache: Path, packed: Path, entries: list[VideoEntry], device: torch.device):
    """(dataset, collate_fn, worker_init_fn, to_input, release) of one variant."""
    spec = ClipSpec(input_size=SIZE)

    def copy(batch):
        rgb, flow, label = batch
        return rgb.to(device, non_blocking=True), flow.to(device, non_blocking=True), label

    def frames(batch):
        return dev.to_train_input(batch, device, size=SIZE, flow_bound=spec.flow_bound)

    folder = packed if name.endswith("-packed") else cache
    if name == "baseline":
        return BaselineClips(cache, entries, spec), None, None, copy, None
    if name.startswith("workers"):
        ds = TrainClips(folder, entries, spec)
        collate, release = worker_batches(ds, device)
        return ds, collate, loader_worker_init, worker_input(device, False), release
    ds = dev.TrainFrames(folder, entries, spec, jpeg_bytes=name == "device-nvjpeg")
    return ds, dev.collate_frames, loader_worker_init, frames, None


def loader_rate(name: str, cache: Path, packed: Path, entries: list[VideoEntry], *, device: torch.device,
                workers: int, batches: int, seconds: float, transform: bool) -> float:
    """Clips/s over ``batches`` batches or ``seconds`` (whichever ends first, at least 2 batches), after
    one warm-up batch: as the workers hand them over
    (``transform=False``), or network-ready on ``device`` (the variant's device-side work included)."""
    dataset, collate, init, to_input, release = variant(name, cache, packed, entries, device)
    pin = device.type == "cuda" and name != "device-nvjpeg"
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers, collate_fn=collate,
                        worker_init_fn=init if workers else None, pin_memory=pin, persistent_workers=workers > 0,
                        prefetch_factor=4 if workers else None, generator=torch.Generator().manual_seed(0))
    source = DeviceBatches(loader, to_input if transform else (lambda b: b), device, release=release)
    seen, t0 = 0, 0.0
    for epoch in range(10**6):
        dataset.set_epoch(epoch)
        for batch in source:
            if t0 == 0.0:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()  # after the first batch: worker start-up is not counted
                continue
            seen += BATCH
            if seen >= batches * BATCH or (seen >= 2 * BATCH and time.perf_counter() - t0 > seconds):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                return seen / (time.perf_counter() - t0)
    raise AssertionError("unreachable")


def profile_stages(cache: Path, packed: Path, entries: list[VideoEntry], *, clips: int = 48) -> None:
    """Thread CPU ms per clip of each stage of the baseline (one thread), and of the current paths' stages."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    ds = TrainClips(cache, entries, ClipSpec(input_size=SIZE))
    stages: dict[str, float] = {}

    def tick(name: str, t0: float) -> float:
        t = time.thread_time()
        stages[name] = stages.get(name, 0.0) + t - t0
        return t

    items = []
    for n in range(clips):
        i = n % len(entries)
        ds.set_epoch(n // len(entries))
        idx, folder = ds.clip_frames(i), cache / entries[i].key
        t = time.thread_time()
        files = [folder / f"img_{k:05d}.jpg" for k in idx] + [folder / f"flow_{a}_{k:05d}.jpg" for k in idx for a in "xy"]
        raw = [np.fromfile(f, np.uint8) for f in files]
        t = tick("open + read 30 JPEG files", t)
        rgb = np.stack([cv2.imdecode(b, cv2.IMREAD_COLOR)[..., ::-1] for b in raw[:10]])
        q = np.stack([cv2.imdecode(b, cv2.IMREAD_GRAYSCALE) for b in raw[10:]]).reshape(10, 2, *rgb.shape[1:3])
        t = tick("JPEG decode (10 RGB + 20 grey)", t)
        flow = dequantize_flow(q, 20.0)
        t = tick("flow uint8 -> float px (whole frame)", t)
        crop = ds.crop(i, *rgb.shape[1:3])
        rows, cols = slice(crop.top, crop.top + crop.size), slice(crop.left, crop.left + crop.size)
        r, f = rgb[:, rows, cols], flow[:, :, rows, cols].transpose(0, 2, 3, 1)
        if crop.flip:
            r, f = r[:, :, ::-1], f[:, :, ::-1] * np.array([-1.0, 1.0], np.float32)
        r, f = np.ascontiguousarray(r), np.ascontiguousarray(f, dtype=np.float32)
        t = tick("crop + flip (copies)", t)
        r = resize_stack(r, SIZE)
        t = tick("resize RGB, uint8 (OpenCV)", t)
        f = resize_stack(f, SIZE)
        t = tick("resize flow, float32 (OpenCV)", t)
        r = (r.astype(np.float32) - _MEAN) / _STD
        f = f * (SIZE / crop.size / 20.0)
        t = tick("float conversion + normalisation", t)
        rt = torch.from_numpy(np.ascontiguousarray(r.transpose(0, 3, 1, 2))).reshape(30, SIZE, SIZE)
        ft = torch.from_numpy(np.ascontiguousarray(f.transpose(0, 3, 1, 2))).reshape(20, SIZE, SIZE)
        t = tick("HWC -> CHW, to torch", t)
        items.append((rt, ft, 0))
    t = time.thread_time()
    for k in range(0, clips, BATCH):
        default_collate(items[k:k + BATCH])
    tick("collate float clips (the copy into the batch)", t)
    total = sum(stages.values())
    print(f"\nprofile: baseline (pre-0.2 classic float path), one thread, {clips} clips of {SIZE}x{SIZE} from "
          f"{rgb.shape[2]}x{rgb.shape[1]} frames (thread CPU ms per clip)")
    for name, sec in stages.items():
        print(f"  {name:<46} {1000 * sec / clips:7.2f} ms {100 * sec / total:5.1f} %")
    print(f"  {'total':<46} {1000 * total / clips:7.2f} ms = {clips / total:.1f} clips per CPU-second")

    new: dict[str, float] = {}
    cpu = torch.device("cpu")

    def timed(name: str, fn):
        t0 = time.thread_time()
        out = fn()
        new[name] = time.thread_time() - t0
        return out

    picks = [(n % len(entries), ds.clip_frames(n % len(entries))) for n in range(clips)]
    timed("JPEG store: decode 30 JPEGs into uint8 arrays", lambda: [load_frames_u8(cache / entries[i].key, idx)
                                                                  for i, idx in picks])
    timed("packed store: read 10 rows of 2 files", lambda: [load_frames_u8(packed / entries[i].key, idx)
                                                           for i, idx in picks])
    frames = dev.TrainFrames(packed, entries, ClipSpec(input_size=SIZE))
    items = [frames[i] for i, _ in picks]
    fb = timed("device: collate uint8 frames", lambda: [dev.collate_frames(items[k:k + BATCH])
                                                        for k in range(0, clips, BATCH)])
    timed("device: crop/flip/resize/normalise on this CPU (1 thread)", lambda: [
        dev.to_train_input(b, cpu, size=SIZE, flow_bound=20.0) for b in fb])

    def cut_batches(cut: TrainClips) -> None:
        for k in range(0, clips, BATCH):
            release_batch(cut.__getitems__(list(range(k, min(k + BATCH, clips)))))

    for name, folder in (("JPEG cache", cache), ("packed store", packed)):
        cut = TrainClips(folder, entries, ClipSpec(input_size=SIZE)).reuse_batches()
        release_batch(cut.__getitems__(list(range(BATCH))))  # the batch memory is reused from here on, as in training
        timed(f"workers: a whole clip from the {name}, network-ready", partial(cut_batches, cut))
    print("  the current paths' stages (thread CPU ms per clip):")
    for name, sec in new.items():
        print(f"  {name:<58} {1000 * sec / clips:7.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=None, help="a prepared cache to read (copied first; default: make one)")
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--short-side", type=int, default=240, help="prepare's --short-side (default 240: native UCF-101)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="DataLoader workers (default: all cores)")
    ap.add_argument("--batch", type=int, default=25, help="clips per batch (default 25, the paper's)")
    ap.add_argument("--batches", type=int, default=12, help="batches to time per variant (default 12)")
    ap.add_argument("--seconds", type=float, default=60.0, help="or at most this long per variant (default 60)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--variants", nargs="+", default=None, choices=VARIANTS, metavar="NAME",
                    help=f"default: all that run here ({', '.join(VARIANTS)})")
    ap.add_argument("--steps", type=int, default=None, help="timed train steps (default: 2 on CPU, 20 on CUDA)")
    ap.add_argument("--step-batch", type=int, default=None, help="train step batch (default: 2 on CPU, 25 on CUDA)")
    ap.add_argument("--no-train-step", action="store_true", help="skip the train step")
    ap.add_argument("--profile", action="store_true", help="first print the per-stage profile of one clip")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    args = ap.parse_args()
    global BATCH
    BATCH = args.batch
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    names = args.variants or [v for v in VARIANTS if v != "device-nvjpeg" or dev.jpeg_on_device_available(device)]
    if "device-nvjpeg" in names and not dev.jpeg_on_device_available(device):
        raise SystemExit("device-nvjpeg needs --device cuda and torchvision's decode_jpeg")
    work = Path(tempfile.mkdtemp(prefix="dualstream-loader-bench-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout` (gpu.sh): still remove the work folder
    try:
        cache = work / "cache"
        if args.cache:
            shutil.copytree(args.cache, cache, symlinks=True)  # linked video folders stay links
        else:
            write_moving_videos(work / "videos", count=args.videos, frames=110, height=240, width=320)
            s = prepare_dataset(work / "videos", cache, PrepareOptions(short_side=args.short_side), progress=False)
            assert s.failed == 0, s.failures
        packed = work / "packed"
        shutil.copytree(cache, packed, symlinks=True)
        pack_cache(packed, drop_jpeg=True, progress=False)
        entries = cache_entries(cache)
        load0 = os.getloadavg()[0]
        print(f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), device {device}, "
              f"{len(entries)} videos, {args.workers} workers, batch {BATCH}, {SIZE}x{SIZE}, load average {load0:.1f}")
        if args.profile:
            threads = torch.get_num_threads()
            profile_stages(cache, packed, entries)
            torch.set_num_threads(threads)
            cv2.setNumThreads(-1)
        rows = {}
        print(f"\n{'variant':<15} {'handed over by the workers':>33}   {'network-ready on ' + str(device):>33}")
        print(f"{'':<15} {'clips/s':>9} {'per worker':>11} {'x base':>11}   {'clips/s':>9} {'per worker':>11} "
              f"{'x base':>11}")
        for name in names:
            kw = dict(device=device, workers=args.workers, batches=args.batches, seconds=args.seconds)
            handed = loader_rate(name, cache, packed, entries, transform=False, **kw)
            # the baseline's and the workers' device-side work is the copy alone: on the CPU the two rates are one
            same = device.type == "cpu" and name.startswith(("baseline", "workers"))
            ready = handed if same else loader_rate(name, cache, packed, entries, transform=True, **kw)
            w = max(1, args.workers)
            rows[name] = {"clips_per_s": round(ready, 2), "clips_per_s_per_worker": round(ready / w, 2),
                          "handover_clips_per_s": round(handed, 2), "handover_clips_per_s_per_worker": round(handed / w, 2)}
            base = rows.get("baseline")
            rel = (lambda k: f"{rows[name][k] / base[k]:>10.2f}x") if base else (lambda k: f"{'-':>11}")
            print(f"{name:<15} {handed:>9.1f} {handed / w:>11.1f} {rel('handover_clips_per_s')}   "
                  f"{ready:>9.1f} {ready / w:>11.1f} {rel('clips_per_s')}", flush=True)
        out = {"variants": rows, "workers": args.workers, "device": str(device), "load_average_start": load0}
        if not args.no_train_step:
            step_batch = args.step_batch or (25 if cuda else 2)
            row = measure("early_fusion", SIZE, device=device, batch=step_batch, frames=10, classes=101,
                          precision="auto", memory_format="auto", compile=False, seconds=0.0,
                          warmup=10 if cuda else 1, min_steps=args.steps or (20 if cuda else 2))
            out["train_step_clips_per_s"] = row["clips_per_s"]
            print(f"train step (early_fusion, 101 classes, batch {step_batch}, {row['precision']}): "
                  f"{row['clips_per_s']:.2f} clips/s")
            best = max(rows, key=lambda n: rows[n]["clips_per_s"])
            print(f"best loader ({best}) / train step: {rows[best]['clips_per_s'] / row['clips_per_s']:.2f}x")
        out["load_average_end"] = os.getloadavg()[0]
        print(f"load average at the end {out['load_average_end']:.1f}")
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
