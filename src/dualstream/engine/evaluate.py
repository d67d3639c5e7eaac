"""Evaluation: clip-level and video-level (softmax averaged over several clips per video) accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..config import config_from_dict

EVAL_JSON = "eval.json"


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device: torch.device, *, progress: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Softmax probabilities (N, K), labels (N,) and video indices (N,) for every clip of ``loader``."""
    model.eval()
    probs, labels, videos = [], [], []
    for batch in tqdm(loader, desc="evaluate", unit="batch", leave=False, disable=not progress):
        rgb, flow, label, video = batch
        probs.append(torch.softmax(model(rgb.to(device), flow.to(device)).float(), dim=1).cpu())
        labels.append(label)
        videos.append(video)
    return torch.cat(probs), torch.cat(labels), torch.cat(videos)


def video_metrics(probs: torch.Tensor, labels: torch.Tensor, videos: torch.Tensor, classes: list[str]) -> dict:
    """Clip top-1, video top-1/top-5 (mean softmax over a video's clips), per-class accuracy, confusion."""
    k = len(classes)
    n_videos = int(videos.max()) + 1
    vprobs = torch.zeros(n_videos, k).index_add_(0, videos, probs)
    counts = torch.bincount(videos, minlength=n_videos).clamp(min=1).unsqueeze(1)
    vprobs = vprobs / counts
    vlabels = torch.zeros(n_videos, dtype=torch.long).index_copy_(0, videos, labels)
    vpred = vprobs.argmax(1)
    top5 = vprobs.topk(min(5, k), dim=1).indices
    confusion = np.zeros((k, k), dtype=int)
    for t, p in zip(vlabels.tolist(), vpred.tolist()):
        confusion[t, p] += 1
    per_class = {
        c: (float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None)
        for i, c in enumerate(classes)
    }
    return {
        "clip_top1": float((probs.argmax(1) == labels).float().mean()),
        "video_top1": float((vpred == vlabels).float().mean()),
        "top5": float((top5 == vlabels.unsqueeze(1)).any(1).float().mean()),
        "num_videos": n_videos,
        "num_clips": int(probs.shape[0]),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "classes": classes,
    }


def evaluate_run(run: str | Path, *, clips: int | None = None, progress: bool = True) -> dict:
    """Evaluate a trained run on its split's test list and write ``RUN/eval.json``."""
    from ..data.dataset import EvalClips
    from .checkpoint import load_model
    from .train import CONFIG, clip_spec, load_split

    run = Path(run)
    if not (run / CONFIG).is_file():
        raise FileNotFoundError(f"{run}: not a run folder (no {CONFIG})")
    cfg = config_from_dict(yaml.safe_load((run / CONFIG).read_text()))
    device = torch.device(cfg.train.device)
    model, spec = load_model(run, device=device)
    split = load_split(cfg)
    n_clips = clips or cfg.data.eval_clips
    dataset = EvalClips(cfg.data.cache, split.test, clip_spec(cfg), clips=n_clips)
    loader = DataLoader(dataset, batch_size=cfg.train.batch_size, num_workers=cfg.data.num_workers)
    probs, labels, videos = predict(model, loader, device, progress=progress)
    result = video_metrics(probs, labels, videos, spec["classes"])
    result["clips_per_video"] = len(dataset.offsets)
    result["split"] = cfg.data.split
    tmp = run / f".{EVAL_JSON}.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(run / EVAL_JSON)
    return result
