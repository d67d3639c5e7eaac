"""Evaluation: clip-level and video-level accuracy (a video's score is the mean softmax over its views). A view is
one frame offset, one crop (centre, or three along the long side) and optionally its mirror image. Under torchrun
each process scores a disjoint shard of the views and the predictions are gathered."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from ..config import load_config
from ..data.ucf101 import VideoEntry
from ..files import atomic_write, atomic_write_text
from .accel import DeviceBatches, autocast, autocast_dtype, loader_workers, use_channels_last
from .build import CONFIG, eval_batches, load_split
from ..inference.package import load_model
from .distributed import gather_objects, joined_world

EVAL_JSON = "eval.json"
MISTAKES_CSV = "mistakes.csv"
CONFUSION_PNG = "confusion.png"


@torch.no_grad()
def predict(model: nn.Module, loader: DeviceBatches, device: torch.device, *, dtype: torch.dtype | None = None,
            progress: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Softmax probabilities (N, K), labels (N,) and video indices (N,) for every view of the dataset (inputs
    ready on ``device``; ``views_per_item`` consecutive views per loader item), gathered from every process in
    dataset order."""
    model.eval()
    probs, labels, videos = [], [], []
    for rgb, flow, label, video in tqdm(loader, desc="evaluate", unit="batch", leave=False, disable=not progress):
        with autocast(device, dtype):
            logits = model(rgb, flow)
        probs.append(torch.softmax(logits.float(), dim=1).cpu())
        labels.append(label)
        videos.append(video)
    k = getattr(model, "num_classes", None) or (probs[0].shape[1] if probs else 0)
    order = torch.tensor(list(loader.sampler), dtype=torch.long)
    m = getattr(loader, "views_per_item", 1)  # views cut on the device from one item: consecutive positions
    order = (order[:, None] * m + torch.arange(m)).flatten()
    mine = (order,
            torch.cat(probs) if probs else torch.zeros(0, k),
            torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long),
            torch.cat(videos) if videos else torch.zeros(0, dtype=torch.long))
    parts = gather_objects(mine)
    order = torch.cat([p[0] for p in parts]).argsort()
    return tuple(torch.cat([p[i] for p in parts])[order] for i in (1, 2, 3))  # type: ignore[return-value]


def video_metrics(probs: torch.Tensor, labels: torch.Tensor, videos: torch.Tensor, classes: list[str]) -> dict:
    """Clip top-1, video top-1/top-5 (mean softmax over a video's views), per-class accuracy, confusion."""
    k = len(classes)
    n_videos = int(videos.max()) + 1
    vprobs = torch.zeros(n_videos, k, dtype=torch.float64).index_add_(0, videos, probs.double())
    vprobs /= torch.bincount(videos, minlength=n_videos).clamp(min=1).unsqueeze(1)  # the mean over its views
    vlabels = torch.zeros(n_videos, dtype=torch.long).index_copy_(0, videos, labels)
    vpred = vprobs.argmax(1)
    confusion = torch.bincount(vlabels * k + vpred, minlength=k * k).reshape(k, k).numpy()  # true class per row
    totals = confusion.sum(1)  # videos per true class
    per_class = {c: float(confusion[i, i] / totals[i]) if totals[i] else None for i, c in enumerate(classes)}
    return {
        "clip_top1": float((probs.argmax(1) == labels).double().mean()),
        "clip_top5": float((probs.topk(min(5, k), dim=1).indices == labels.unsqueeze(1)).any(1).double().mean()),
        "video_top1": float((vpred == vlabels).double().mean()),
        "top5": float((vprobs.topk(min(5, k), dim=1).indices == vlabels.unsqueeze(1)).any(1).double().mean()),
        "num_videos": n_videos,
        "num_clips": int(probs.shape[0]),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "classes": classes,
        "_video_probs": vprobs,
    }


def mistakes(vprobs: torch.Tensor, entries: list[VideoEntry], classes: list[str]) -> list[dict]:
    """Misclassified videos, most confident first: video, true class, predicted class, confidence."""
    conf, pred = vprobs.max(1)
    rows = [{"video": e.key, "true": classes[e.label], "predicted": classes[int(p)], "confidence": round(float(c), 4)}
            for e, p, c in zip(entries, pred, conf) if int(p) != e.label]
    return sorted(rows, key=lambda r: (-r["confidence"], r["video"]))


def evaluate_run(run: str | Path, *, clips: int | None = None, crops: int | None = None, flip: bool | None = None,
                 split: int | None = None, progress: bool = True, plots: bool = True) -> dict:
    """Evaluate a trained run on a split's test list; writes eval.json, mistakes.csv and confusion.png (rank 0)."""
    run = Path(run)
    if not (run / CONFIG).is_file():
        raise FileNotFoundError(f"{run}: not a run folder (no {CONFIG})")
    cfg = load_config(run / CONFIG)  # a damaged config.yaml is one ConfigError line, as for train
    trained_split = cfg.data.split
    asked = {"split": split, "eval_clips": clips, "eval_crops": crops, "eval_flip": flip}
    cfg.data = replace(cfg.data, **{k: v for k, v in asked.items() if v is not None})  # checked as the config's
    use_gpu = cfg.train.device.startswith("cuda") and torch.cuda.is_available()
    with joined_world(cfg.train.device if use_gpu else "cpu") as (world, device):  # torchrun: one shard per process
        if cfg.data.split != trained_split and world.main:
            print(f"warning: the model was trained on split {trained_split}; the test list of split {split} "
                  "overlaps its training videos, so this accuracy is not a held-out figure", file=sys.stderr)
        model, spec = load_model(run, device=device)
        entries = load_split(cfg).test
        loader = eval_batches(cfg, entries, world=world, device=device, clips=cfg.data.eval_clips,
                              crops=cfg.data.eval_crops, flip=cfg.data.eval_flip,
                              workers=loader_workers(cfg.data.num_workers),
                              channels_last=use_channels_last(cfg.train.memory_format, device))
        probs, labels, videos = predict(model, loader, device, dtype=autocast_dtype(cfg.train.precision, device),
                                        progress=progress and world.main)
    result = video_metrics(probs, labels, videos, spec["classes"])
    wrong = mistakes(result.pop("_video_probs"), entries, spec["classes"])
    dataset = loader.dataset
    result.update(split=cfg.data.split, trained_split=trained_split, views_per_video=dataset.views_per_video,
                  clips_per_video=len(dataset.offsets), offsets=dataset.offsets, crops=dataset.crops,
                  flip=len(dataset.flips) == 2, num_mistakes=len(wrong), mistakes=MISTAKES_CSV)
    if world.main:
        atomic_write_text(run / EVAL_JSON, json.dumps(result, indent=1))

        def write_mistakes(tmp: Path) -> None:
            with tmp.open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=["video", "true", "predicted", "confidence"])
                writer.writeheader()
                writer.writerows(wrong)

        atomic_write(run / MISTAKES_CSV, write_mistakes)
        if plots:
            from ..report.plots import plot_confusion

            title = f"{spec['name']}, split {cfg.data.split}: video top-1 {result['video_top1']:.3f}"
            plot_confusion(result["confusion"], result["classes"], run / CONFUSION_PNG, title=title)
    return result
