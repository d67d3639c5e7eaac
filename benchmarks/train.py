"""Training throughput (clips/s) per model at 112 and 224 px on the present device.

    python benchmarks/train.py [--models early_fusion late_fusion ...] [--sizes 112 224] [--batch B]
                               [--precision auto|bf16|fp32] [--memory-format auto|channels_last|contiguous]
                               [--compile] [--seconds S] [--json FILE]
    python benchmarks/train.py --loader CACHE [--workers N] [--sizes 112 224]


One training step is what ``dualstream train`` does per batch: forward under autocast, cross-entropy,
backward, Adam step, with the same speed settings (bf16 autocast and channels_last on CUDA by
default). Inputs are random tensors already on the device, so this is the model's ceiling; the data
loader has to keep up separately (``data.num_workers``). Each measurement warms up, then times whole
steps until ``--seconds`` have passed (at least ``--min-steps``).

``--loader CACHE`` measures the other side: training clips/s that the data loader cuts from a
prepared cache (10 frames, paired random crop and flip, resize, normalise) with ``--workers``
processes, over every video in the cache; divide by the model's clips/s for the workers a GPU needs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, RandomSampler

from dualstream.data.batches import collate_batches
from dualstream.data.dataset import ClipSpec, TrainClips
from dualstream.data.ucf101 import VideoEntry
from dualstream.engine.accel import (autocast, autocast_dtype, forking_workers, loader_worker_init, to_device,
                                     use_channels_last)
from dualstream.models import create_model, list_models


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, size: int, *, device: torch.device, batch: int, frames: int, classes: int, precision: str,
            memory_format: str, compile: bool, seconds: float, warmup: int, min_steps: int) -> dict:
    """Training clips/s of one model at one input size."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=classes, frames=frames, input_size=size)
    channels_last = use_channels_last(memory_format, device)
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    step_model = torch.compile(model) if compile else model
    dtype = autocast_dtype(precision, device)
    rgb = to_device(torch.randn(batch, 3 * frames, size, size), device, channels_last)
    flow = to_device(torch.randn(batch, 2 * frames, size, size), device, channels_last)
    label = torch.randint(0, classes, (batch,), device=device)

    def step() -> None:
        with autocast(device, dtype):
            logits = step_model(rgb, flow)
        loss = F.cross_entropy(logits.float(), label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        step()
    _sync(device)
    steps, t0 = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - t0 < seconds:
        step()
        steps += 1
        if device.type == "cuda" and steps % 10:
            continue
        _sync(device)
    _sync(device)
    elapsed = time.perf_counter() - t0
    row = {"model": name, "size": size, "batch": batch, "steps": steps, "seconds": round(elapsed, 2),
           "clips_per_s": round(steps * batch / elapsed, 2),
           "precision": str(dtype or torch.float32).replace("torch.", ""), "channels_last": channels_last,
           "compile": compile}
    if device.type == "cuda":
        row["peak_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return row


def measure_loader(cache: str, size: int, *, workers: int, batch: int, seconds: float) -> dict:
    """Training clips/s of the data loader over every video of a prepared cache."""
    entries = [VideoEntry(f"{m.parent.parent.name}/{m.parent.name}.avi", 0)
               for m in sorted(Path(cache).glob("*/*/manifest.json"))]
    if not entries:
        raise SystemExit(f"{cache}: no prepared videos (run dualstream prepare first)")
    clips = TrainClips(cache, entries, ClipSpec(input_size=size))
    sampler = RandomSampler(clips, replacement=True, num_samples=10**9, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(clips, batch_size=batch, sampler=sampler, num_workers=workers, collate_fn=collate_batches,
                        worker_init_fn=loader_worker_init if workers else None)  # as data.pipeline: workers
    with forking_workers():
        loader = iter(loader)
    next(loader)  # workers started
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += next(loader)[0].shape[0]
    elapsed = time.perf_counter() - t0
    return {"size": size, "workers": workers, "videos": len(entries), "clips": n,
            "clips_per_s": round(n / elapsed, 2), "clips_per_s_per_worker": round(n / elapsed / max(1, workers), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["early_fusion", "late_fusion", "early_fusion_small",
                                                    "late_fusion_small"], help=f"any of: {', '.join(list_models())}")
    ap.add_argument("--sizes", nargs="+", type=int, default=[112, 224])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=None, help="clips per step (default: 25 on CUDA, 4 on CPU)")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--classes", type=int, default=101)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--memory-format", default="auto")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--seconds", type=float, default=None, help="timed seconds per row (default: 10 CUDA, 5 CPU)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 10 CUDA, 1 CPU)")
    ap.add_argument("--min-steps", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    ap.add_argument("--loader", metavar="CACHE", default=None, help="measure the data loader on this cache instead")
    ap.add_argument("--workers", type=int, default=2, help="loader worker processes (with --loader)")
    args = ap.parse_args()
    if args.loader:
        print(f"loader: {args.loader}, {args.workers} workers, {os.cpu_count()} cores")
        print(f"{'size':>4} {'clips/s':>9} {'per worker':>10}")
        rows = []
        for size in args.sizes:
            rows.append(measure_loader(args.loader, size, workers=args.workers, batch=args.batch or 25,
                                       seconds=args.seconds or 10))
            print(f"{size:>4} {rows[-1]['clips_per_s']:>9.2f} {rows[-1]['clips_per_s_per_worker']:>10.2f}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"loader": args.loader, "rows": rows}, indent=1))
        return
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    batch = args.batch or (25 if cuda else 4)
    what = torch.cuda.get_device_name(device) if cuda else (platform.processor() or platform.machine())
    print(f"device: {device} ({what}), {os.cpu_count()} cores, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'model':<20} {'size':>4} {'batch':>5} {'precision':>9} {'steps':>5} {'clips/s':>9}")
    rows = []
    for name in args.models:
        for size in args.sizes:
            row = measure(name, size, device=device, batch=batch, frames=args.frames, classes=args.classes,
                          precision=args.precision, memory_format=args.memory_format, compile=args.compile,
                          seconds=args.seconds if args.seconds is not None else (10 if cuda else 5),
                          warmup=args.warmup if args.warmup is not None else (10 if cuda else 1),
                          min_steps=args.min_steps)
            rows.append(row)
            mem = f"  peak {row['peak_mem_gib']} GiB" if cuda else ""
            print(f"{name:<20} {size:>4} {batch:>5} {row['precision']:>9} {row['steps']:>5} {row['clips_per_s']:>9.2f}{mem}",
                  flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": str(device), "name": what, "torch": torch.__version__, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
