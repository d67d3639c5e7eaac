"""Clips/s the training loader delivers at 224x224 next to clips/s of an early-fusion training step.

    python benchmarks/loader.py [--videos 16] [--short-side 240] [--workers N] [--batches 12] [--steps 3]

Writes ``--videos`` 320x240 videos of 110 frames, prepares them (DIS flow; short side 240, the
native UCF-101 size, so that a 224 crop is not upsampled), then, one after the other in one run:

* loader: ``TrainClips`` (10 RGB frames + 10 x/y flow frames per clip, paired random crop, flip,
  resize to 224, normalisation) through a DataLoader with ``--workers`` processes, batch 25 (paper);
  then ``TrainClipsU8`` (the same in uint8, normalisation left to the device);
* train step: ``create_model("early_fusion", num_classes=101)`` forward + backward + Adam on
  random inputs of the same shape, batch ``--step-batch``, with all cores' torch threads.

The loader must deliver at least twice the step's clips/s, or the model waits for data. The
ratio is what to compare on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from dualstream.data.dataset import ClipSpec, TrainClips
from dualstream.data.prepare import PrepareOptions, find_videos, prepare_dataset
from dualstream.data.u8clips import TrainClipsU8
from dualstream.data.ucf101 import VideoEntry
from dualstream.models import create_model

sys.path.insert(0, str(Path(__file__).parent))
from prepare import write_moving_videos  # noqa: E402


def loader_rate(cache: Path, entries: list[VideoEntry], *, workers: int, batch: int, batches: int,
                dataset_class: type = TrainClips) -> float:
    """Clips/s over ``batches`` batches, after one warm-up batch (worker start-up is not counted)."""
    dataset = dataset_class(cache, entries, ClipSpec(input_size=224))
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0, prefetch_factor=4 if workers else None,
                        generator=torch.Generator().manual_seed(0))
    seen, t0, it = 0, 0.0, iter(loader)
    for epoch in range(100):
        for k, (rgb, *_) in enumerate(it):
            if epoch == 0 and k == 0:
                t0 = time.perf_counter()  # after the first batch
                continue
            seen += rgb.shape[0]
            if seen >= batches * batch:
                return seen / (time.perf_counter() - t0)
        dataset.set_epoch(epoch + 1)
        it = iter(loader)
    return seen / (time.perf_counter() - t0)


def train_step_rate(*, batch: int, steps: int) -> float:
    """Clips/s of forward + backward + Adam of the paper's early-fusion model at 224x224."""
    torch.manual_seed(0)
    model = create_model("early_fusion", num_classes=101)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    rgb, flow = torch.randn(batch, 30, 224, 224), torch.randn(batch, 20, 224, 224)
    label = torch.randint(0, 101, (batch,))

    def step() -> None:
        loss = F.cross_entropy(model(rgb, flow), label)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--short-side", type=int, default=240, help="prepare's --short-side (default 240: native UCF-101)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="DataLoader workers (default: all cores)")
    ap.add_argument("--batches", type=int, default=12, help="batches of 25 to time (default 12)")
    ap.add_argument("--steps", type=int, default=3, help="training steps to time (default 3)")
    ap.add_argument("--step-batch", type=int, default=8, help="batch of the timed training step (default 8)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dualstream-loader-bench-"))
    try:
        write_moving_videos(work / "videos", count=args.videos, frames=110, height=240, width=320)
        s = prepare_dataset(work / "videos", work / "cache", PrepareOptions(short_side=args.short_side), progress=False)
        assert s.failed == 0, s.failures
        entries = [VideoEntry(rel, 0) for rel in find_videos(work / "videos")]
        print(f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
              f"cache frames {args.short_side}px short side, load average {os.getloadavg()[0]:.1f}")
        load = loader_rate(work / "cache", entries, workers=args.workers, batch=25, batches=args.batches)
        print(f"loader (TrainClips, {args.workers} workers, batch 25, 224x224): {load:.1f} clips/s")
        load_u8 = loader_rate(work / "cache", entries, workers=args.workers, batch=25, batches=args.batches,
                              dataset_class=TrainClipsU8)
        print(f"loader (TrainClipsU8: uint8, normalisation left to the device): {load_u8:.1f} clips/s "
              f"({load_u8 / load:.2f}x TrainClips)")
        train = train_step_rate(batch=args.step_batch, steps=args.steps)
        print(f"train step (early_fusion, 101 classes, batch {args.step_batch}, 224x224, CPU): {train:.2f} clips/s")
        print(f"loader / train step: {load / train:.1f}x (need >= 2x); load average after {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
