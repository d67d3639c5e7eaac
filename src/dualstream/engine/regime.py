"""The training regime of small sets: a step budget, the checkpoint chosen on validation, per-batch augmentation."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..config import Config
from ..data.augment import colour_jitter_normalised, draw_colour_jitter, draw_modality_dropout, modality_dropout

BatchHook = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def plan_epochs(cfg: Config, videos: int, world_size: int = 1) -> tuple[int, int]:
    """(epochs, clips per video per epoch) for ``videos`` training videos: without ``train.steps``, ``train.epochs``
    epochs of one clip per video; with it, ``repeats`` clips per video so that an epoch is about ``train.eval_every``
    steps, and enough epochs for at least ``train.steps`` steps."""
    t = cfg.train
    if t.steps <= 0:
        return t.epochs, 1
    batch = t.batch_size * world_size
    repeats = max(1, round(t.eval_every * batch / max(1, videos)))
    per_epoch = math.ceil(videos * repeats / batch)
    return max(1, math.ceil(t.steps / per_epoch)), repeats


class Selection:
    """The best evaluation so far: highest validation accuracy, ties broken by the lower loss."""

    def __init__(self, patience: int = 0):
        self.patience = patience
        self.best: tuple[float, float] | None = None
        self.best_epoch: int | None = None
        self.since = 0

    def update(self, epoch: int, acc: float, loss: float) -> bool:
        """Record epoch ``epoch``'s validation result; True when it is the best so far."""
        score = (acc, -loss)
        if self.best is None or score > self.best:
            self.best, self.best_epoch, self.since = score, epoch, 0
            return True
        self.since += 1
        return False

    @property
    def stop(self) -> bool:
        return bool(self.patience) and self.since >= self.patience

    @classmethod
    def from_history(cls, history: list[dict], patience: int = 0) -> "Selection":
        """The selection state after the metrics lines of a resumed run."""
        sel = cls(patience)
        for line in history:
            if "val_acc" in line:
                sel.update(line["epoch"], line["val_acc"], line["val_loss"])
        return sel


def batch_hook(cfg: Config, model: nn.Module) -> BatchHook | None:
    """The per-batch transform of the training loop (colour jitter, one draw per clip; modality dropout), or
    None when there is nothing to do. It draws from the global RNGs, which checkpoints hold: a resume draws the same."""
    strength = cfg.data.colour_jitter
    both_streams = getattr(model, "modality", None) is None  # the single-stream baselines have a modality
    p = cfg.train.modality_dropout if both_streams else 0.0
    if strength <= 0 and p <= 0:
        return None

    def hook(rgb: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if strength > 0:
            rng = np.random.default_rng(int(torch.randint(2**62, (1,))))
            rgb = colour_jitter_normalised(rgb, draw_colour_jitter(rng, strength, batch=rgb.shape[0]))
        if p > 0:
            rgb, flow = modality_dropout(rgb, flow, *draw_modality_dropout(
                rgb.shape[0], p, rgb_share=cfg.train.modality_dropout_rgb))
        return rgb, flow

    return hook
