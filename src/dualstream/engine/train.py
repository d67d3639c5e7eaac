"""Training loop: Adam + cross-entropy, a checkpoint and a metrics line per epoch."""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..config import Config
from ..data.cache import check_prepared, read_manifest
from ..data.dataset import ClipSpec, EvalClips, TrainClips
from ..data.ucf101 import Split, check_group_overlap, read_split, validate_split
from ..models import create_model
from .checkpoint import load_checkpoint, save_checkpoint, save_model_package
from .evaluate import predict

METRICS = "metrics.jsonl"
CONFIG = "config.yaml"


def clip_spec(cfg: Config) -> ClipSpec:
    d = cfg.data
    return ClipSpec(
        frames=d.frames, interval=d.interval, offsets=tuple(d.offsets), offset_period=d.offset_period,
        input_size=d.input_size, flow_bound=d.flow_bound, crop_scale_min=d.crop_scale_min, flip=d.flip,
    )


def load_split(cfg: Config) -> Split:
    """Read the split, refuse train/test group leakage (unless data.allow_group_overlap) and check
    that the cache holds every video it lists (one error naming all)."""
    split = read_split(cfg.data.splits, cfg.data.split)
    where = f"split {cfg.data.split} of {cfg.data.splits}"
    validate_split(split, where=where)
    overlap = check_group_overlap(split, allow=cfg.data.allow_group_overlap, where=where)
    if overlap:
        tqdm.write(f"warning: {where} shares {len(overlap)} group(s) between train and test "
                   "(data.allow_group_overlap=true): test accuracy is inflated", file=sys.stderr)
    check_prepared(cfg.data.cache, [e.key for e in split.train + split.test])
    return split


def build_model(cfg: Config, num_classes: int) -> nn.Module:
    return create_model(cfg.model.name, num_classes=num_classes, frames=cfg.data.frames,
                        input_size=cfg.data.input_size, **cfg.model.kwargs)


def model_spec(cfg: Config, classes: list[str], flow_method: str) -> dict:
    """What a model package records so that ``predict`` can rebuild inputs exactly as in training."""
    return {
        "name": cfg.model.name, "kwargs": cfg.model.kwargs, "classes": classes,
        "frames": cfg.data.frames, "interval": cfg.data.interval, "offsets": cfg.data.offsets,
        "input_size": cfg.data.input_size, "flow_bound": cfg.data.flow_bound, "flow_method": flow_method,
        "normalisation": {"rgb": "imagenet mean/std on 0..1", "flow": "px / flow_bound"},
    }


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    device: torch.device, *, desc: str, progress: bool) -> tuple[float, float]:
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for rgb, flow, label in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress):
        rgb, flow, label = rgb.to(device), flow.to(device), label.to(device)
        logits = model(rgb, flow)
        loss = F.cross_entropy(logits, label)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training diverged: loss is {loss.item()} ({desc})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * label.numel()
        correct += (logits.argmax(1) == label).sum().item()
        seen += label.numel()
    return loss_sum / seen, correct / seen


def train(cfg: Config, run: str | Path, *, resume: bool = False, progress: bool = True) -> list[dict]:
    """Train ``cfg`` into the run folder; returns the metrics lines (one per epoch)."""
    run = Path(run)
    split = load_split(cfg)
    spec = clip_spec(cfg)
    device = torch.device(cfg.train.device)
    seed_everything(cfg.seed)
    model = build_model(cfg, len(split.classes)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    start = 0
    metrics_path = run / METRICS
    if resume:
        start = load_checkpoint(run, model, optimizer) + 1
        kept = [line for line in metrics_path.read_text().splitlines() if json.loads(line)["epoch"] < start] \
            if metrics_path.exists() else []
        metrics_path.write_text("".join(line + "\n" for line in kept))
    else:
        run.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text("")
    (run / CONFIG).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    flow_method = read_manifest(cfg.data.cache, split.train[0].key).get("flow_method", "unknown")
    train_set = TrainClips(cfg.data.cache, split.train, spec, seed=cfg.seed)
    test_set = EvalClips(cfg.data.cache, split.test, spec, clips=1)
    workers = cfg.data.num_workers
    test_loader = DataLoader(test_set, batch_size=cfg.train.batch_size, num_workers=workers)
    history = []
    for epoch in range(start, cfg.train.epochs):
        t0 = time.time()
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout etc.: an epoch is the same after a resume
        train_set.set_epoch(epoch)
        loader = DataLoader(train_set, batch_size=cfg.train.batch_size, shuffle=True, drop_last=False,
                            num_workers=workers, generator=torch.Generator().manual_seed(cfg.seed + epoch))
        loss, acc = train_one_epoch(model, loader, optimizer, device, desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
                                    progress=progress)
        probs, labels, _ = predict(model, test_loader, device)
        test_acc = float((probs.argmax(1) == labels).float().mean())
        line = {"epoch": epoch, "train_loss": round(loss, 6), "train_acc": round(acc, 6),
                "test_acc": round(test_acc, 6), "time_s": round(time.time() - t0, 3)}
        history.append(line)
        save_model_package(run, model, model_spec(cfg, split.classes, flow_method))
        save_checkpoint(run, model, optimizer, epoch=epoch)
        with metrics_path.open("a") as fh:
            fh.write(json.dumps(line) + "\n")
        if progress:
            tqdm.write(f"epoch {epoch + 1}/{cfg.train.epochs}: loss {loss:.4f} train_acc {acc:.3f} "
                       f"test_acc {test_acc:.3f} ({line['time_s']:.1f}s)")
    return history
