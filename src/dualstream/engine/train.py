"""Training: Adam + cross-entropy, data-parallel under torchrun, a checkpoint and a metrics line per epoch.

One code path for one process and many (``torchrun --nproc_per_node N -m dualstream train ...``):
distributed details stay at the edges (``model_without_ddp``, ``sampler.set_epoch``, rank 0 writes).
A resumed run reproduces the uninterrupted one exactly on CPU: the checkpoint holds the model,
optimizer, epoch, step, every process's RNG states, the sampler position and the metrics history.

The loop (``train``) is three calls per epoch: ``setup`` builds the run once, ``train_epoch`` trains
one pass, ``end_of_epoch`` evaluates, checkpoints and writes the metrics line. The small-set regime
(``train.steps``, a validation part that chooses the packaged weights and stops early, batch hooks)
lives in ``engine.regime``.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler
from tqdm import tqdm

from ..config import Config
from ..files import atomic_write_text
from ..text import one_line
from ..cache import load_manifest
from ..data.dataset import TrainClips
from ..data.holdout import carve_validation
from ..data.device import TrainFrames, collate_frames, to_train_input
from ..data.sampling import ClipSpec, offset_for_epoch
from ..data.ucf101 import Split
from .accel import DeviceBatches, autocast, autocast_dtype, loader_workers, use_channels_last
from .build import (CONFIG, batch_loader, build_model, device_input, eval_batches, has_aux_heads, load_split,
                    resolve_pipeline, worker_batches, worker_input)
from .checkpoint import (CHECKPOINT_DIR, CheckpointError, checkpoint_dirs, load_checkpoint, save_checkpoint,
                         MODEL_JSON, MODEL_WEIGHTS, save_model_package)
from .distributed import World, all_reduce_sum, gather_objects, joined_world
from .evaluate import CONFUSION_PNG, EVAL_JSON, MISTAKES_CSV, predict
from .regime import BatchHook, Selection, batch_hook, plan_epochs

METRICS = "metrics.jsonl"
RUN_JSON = "run.json"
CURVES_PNG = "curves.png"
TENSORBOARD_DIR = "tensorboard"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """This process's RNG states, as tensors and numbers (loadable with ``weights_only``)."""
    _, key, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_initialized() else torch.zeros(0, dtype=torch.uint8),
        "numpy": {"key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "gauss": float(gauss)},
        "python": list(random.getstate()[1]),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"].numel():  # this process's own GPU only
        torch.cuda.set_rng_state(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate((3, tuple(state["python"]), None))


class EpochSampler(DistributedSampler):
    """DistributedSampler yielding ``(epoch, index)``: loader workers that persist across epochs
    still cut each epoch's clips (offset schedule, augmentation) for the right epoch.

    ``skip``: leading items of this process's share already trained (a mid-epoch resume).
    """

    skip = 0

    def __iter__(self):
        return ((self.epoch, i) for i in list(super().__iter__())[self.skip:])

    def __len__(self) -> int:
        return super().__len__() - self.skip


class EpochClips(Dataset):
    def __init__(self, clips: TrainClips):
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: tuple[int, int]):
        epoch, i = key
        self.clips.set_epoch(epoch)
        return self.clips[i]

    def __getitems__(self, keys: list[tuple[int, int]]):
        """A whole batch from datasets that cut one (the workers' path), a list of items from the others."""
        epochs = {epoch for epoch, _ in keys}
        if not getattr(self.clips, "__getitems__", None) or len(epochs) != 1:
            return [self[key] for key in keys]
        self.clips.set_epoch(epochs.pop())
        return self.clips.__getitems__([i for _, i in keys])


def train(cfg: Config, run: str | Path, *, resume: bool = False, progress: bool = True,
          recipe: str | None = None) -> list[dict]:
    """Train ``cfg`` into the run folder (rank 0 writes); returns the metrics lines (one per epoch)."""
    with contextlib.ExitStack() as cleanup:
        world, device = cleanup.enter_context(joined_world(cfg.train.device))
        progress = progress and world.main
        s = setup(cfg, Path(run), world, device, resume=resume, recipe=recipe)
        if s.writer is not None:
            cleanup.callback(s.writer.close)
        for epoch in range(s.start, s.epochs):
            if s.selection.stop:
                break
            end_of_epoch(s, epoch, train_epoch(s, epoch, progress=progress), progress=progress)
        return s.history


@dataclass
class Session:
    """What a training run carries from one epoch to the next (built by ``setup``)."""

    cfg: Config
    run: Path
    world: World
    device: torch.device
    model: nn.Module
    """What trains: the model, wrapped in DDP and/or compiled."""
    model_without_ddp: nn.Module
    """What is saved and evaluated."""
    optimizer: torch.optim.Optimizer
    loader: DeviceBatches
    test_loader: DeviceBatches
    dtype: torch.dtype | None
    info: dict
    """run.json's fixed part: recipe, model, parameters, world size, precision, ..."""
    start: int = 0
    """First epoch to train (0-based)."""
    step: int = 0
    history: list[dict] = field(default_factory=list)
    partial: dict | None = None
    """A mid-epoch checkpoint's position (batches trained, partial sums), consumed by the first epoch."""
    spec_json: dict | None = None
    writer: Any = None
    epochs: int = 0
    """Epochs to train: train.epochs, or as many as train.steps takes (``regime.plan_epochs``)."""
    val_loader: DeviceBatches | None = None
    """The validation part carved from the train list (data.val_fraction), None without one."""
    selection: Selection = field(default_factory=Selection)
    hook: BatchHook | None = None


def setup(cfg: Config, run: Path, world: World, device: torch.device, *, resume: bool,
          recipe: str | None) -> Session:
    """Model, optimizer, loaders and run folder; with ``resume`` the newest checkpoint's state restored."""
    split = load_split(cfg)
    seed_everything(cfg.seed)  # the same initial weights in every process
    model = build_model(cfg, len(split.classes))
    state = load_checkpoint(run, model, what=f"{cfg.model.name} with {len(split.classes)} classes") if resume else None
    channels_last = use_channels_last(cfg.train.memory_format, device)
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    start, step, history, partial = _restore(state, optimizer, cfg, run, world)
    model_without_ddp = model
    if world.size > 1:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.train.compile:
        model = torch.compile(model)

    train_entries, val_entries = carve_validation(split.train, cfg.data.val_fraction)
    epochs, repeats = plan_epochs(cfg, len(train_entries), world.size)
    loader, test_loader, val_loader, pipeline = _loaders(cfg, split, world, device, channels_last, train_entries,
                                                         val_entries, repeats=repeats)
    dtype = autocast_dtype(cfg.train.precision, device)
    info = {
        "recipe": recipe or (state or {}).get("recipe") or cfg.model.name, "model": cfg.model.name,
        "params": sum(p.numel() for p in model_without_ddp.parameters()), "classes": len(split.classes),
        "split": cfg.data.split, "world_size": world.size, "global_batch": cfg.train.batch_size * world.size,
        "device": device.type, "precision": str(dtype or torch.float32).replace("torch.", ""),
        "compile": cfg.train.compile, "pipeline": pipeline, "train_videos": len(train_entries),
        "val_videos": len(val_entries), "clips_per_video": repeats,
    }
    s = Session(cfg, run, world, device, model, model_without_ddp, optimizer, loader, test_loader, dtype,
                info, start, step, history, partial, epochs=epochs, val_loader=val_loader,
                selection=Selection.from_history(history, cfg.train.patience if val_loader is not None else 0),
                hook=batch_hook(cfg, model_without_ddp))
    if val_loader is None and cfg.data.val_fraction > 0 and world.main:
        tqdm.write("note: data.val_fraction is set but the train list has too few groups for a group-disjoint "
                   "validation part; the last epoch's weights are kept")
    if world.main:
        _open_run_folder(s, split, fresh=state is None)
    return s


def _restore(state: dict | None, optimizer: torch.optim.Optimizer, cfg: Config, run: Path, world: World
             ) -> tuple[int, int, list[dict], dict | None]:
    """(first epoch, step, history, mid-epoch position) from a checkpoint's state, and its optimizer and
    RNG states restored; a fresh run gives each process other than rank 0 dropout draws of its own."""
    if state is None:
        if world.rank:
            seed_everything(cfg.seed + world.rank)
        return 0, 0, [], None
    was = state.get("config", {}).get("model", {}).get("name")
    if was is not None and was != cfg.model.name:
        raise CheckpointError(f"{run}: the checkpoint is for model {was!r}, the config asks for {cfg.model.name!r}")
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:  # another model's optimizer, or torn
        raise CheckpointError(f"{checkpoint_dirs(run)[-1]}: its optimizer state does not fit this model "
                              f"({one_line(exc, 160)})") from None
    for group in optimizer.param_groups:  # the config's values win over the checkpoint's
        group.update(lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    start, step, history = state["epoch"] + 1, int(state["step"]), list(state["history"])
    partial = state.get("partial")
    saved_batch = state.get("config", {}).get("train", {}).get("batch_size", cfg.train.batch_size)
    if partial and saved_batch != cfg.train.batch_size:
        raise CheckpointError(f"{run}: a mid-epoch checkpoint resumes with the batch size that wrote it "
                              f"(train.batch_size={saved_batch}, not {cfg.train.batch_size})")
    if partial and len(state["rng"]) != world.size:
        raise CheckpointError(f"{run}: a mid-epoch checkpoint resumes with as many processes as wrote it "
                              f"({len(state['rng'])}, not {world.size})")
    if len(state["rng"]) == world.size:
        try:
            set_rng_state(state["rng"][world.rank])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:  # a torn or foreign state
            raise CheckpointError(f"{checkpoint_dirs(run)[-1]}: its RNG state cannot be restored "
                                  f"({type(exc).__name__}: {one_line(exc, 120)})") from None
    else:
        seed_everything(cfg.seed + 1000 * start + world.rank)
        if world.main:
            tqdm.write(f"note: resuming {len(state['rng'])}-process state in {world.size} processes; "
                       "the continuation is valid but not bit-identical to an uninterrupted run")
    return start, step, history, partial


def _loaders(cfg: Config, split: Split, world: World, device: torch.device, channels_last: bool, train_entries: list,
             val_entries: list, *, repeats: int) -> tuple[DeviceBatches, DeviceBatches, DeviceBatches | None, str]:
    """The training batches (``repeats`` augmented clips of each of ``train_entries`` per epoch; ``.sampler``: an
    ``EpochSampler``), the per-epoch test batches (one centre clip per video), the validation batches (None without
    ``val_entries``: the checkpoint is chosen on them, never on the test list) and the pipeline's name."""
    spec = ClipSpec.from_config(cfg.data)
    workers = loader_workers(cfg.data.num_workers)
    pipeline, jpeg = resolve_pipeline(cfg, device, split.train)
    if pipeline == "workers":
        train_set = TrainClips(cfg.data.cache, train_entries, spec, seed=cfg.seed, repeats=repeats,
                               in_memory=cfg.data.in_memory)
        (collate, release), to_input = worker_batches(train_set, device), worker_input(device, channels_last)
    else:
        train_set = TrainFrames(cfg.data.cache, train_entries, spec, seed=cfg.seed, jpeg_bytes=jpeg, repeats=repeats)
        collate, release, to_input = collate_frames, None, device_input(to_train_input, spec, device, channels_last)
    sampler = EpochSampler(train_set, num_replicas=world.size, rank=world.rank, shuffle=True, seed=cfg.seed)
    loader = batch_loader(EpochClips(train_set), sampler=sampler, batch_size=cfg.train.batch_size, workers=workers,
                          pin=device.type == "cuda" and not jpeg, collate_fn=collate, seed=cfg.seed)
    where = {"world": world, "device": device, "workers": workers, "channels_last": channels_last}
    test = eval_batches(cfg, split.test, clips=1, **where)
    val = eval_batches(cfg, val_entries, clips=cfg.data.eval_clips, **where) if val_entries else None
    name = pipeline + (" (JPEG decoded on the device)" if jpeg else "")
    return DeviceBatches(loader, to_input, device, release=release), test, val, name


def _open_run_folder(s: Session, split: Split, *, fresh: bool) -> None:
    """Rank 0: config.yaml, metrics.jsonl as the checkpoint left it, TensorBoard, the model package's spec."""
    run, cfg = s.run, s.cfg
    run.mkdir(parents=True, exist_ok=True)
    if fresh:  # a fresh run: an older run's checkpoints and results here must not mix with it
        shutil.rmtree(run / CHECKPOINT_DIR, ignore_errors=True)
        for stale in (EVAL_JSON, MISTAKES_CSV, CONFUSION_PNG, MODEL_WEIGHTS, MODEL_JSON):
            (run / stale).unlink(missing_ok=True)
    atomic_write_text(run / CONFIG, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    # exactly the checkpoint's history: no line lost or doubled
    atomic_write_text(run / METRICS, "".join(json.dumps(line) + "\n" for line in s.history))
    with contextlib.suppress(ImportError):  # TensorBoard when it is installed
        from torch.utils.tensorboard import SummaryWriter

        s.writer = SummaryWriter(str(run / TENSORBOARD_DIR))
    # What the model package records so that predict rebuilds inputs exactly as in training: the architecture
    # (the kwargs it was built with), the classes and the run's ClipSpec with what the cache decided: the short
    # side of the prepared frames, the flow method and, with spread sampling, the window (the median frame count
    # of the training videos: the stretch of a stream that live and timeline spread a clip over).
    cache = Path(cfg.data.cache)
    manifest = load_manifest(cache / split.train[0].key)
    window = 0
    if cfg.data.sampling == "spread":
        window = max(2, int(np.median([load_manifest(cache / e.key)["num_frames"] for e in split.train])))
    spec = ClipSpec.from_config(cfg.data, flow_method=manifest.get("flow_method", "unknown"),
                                short_side=min(manifest["height"], manifest["width"]), window=window)
    kwargs = {**cfg.model.kwargs, "aux_heads": True} if has_aux_heads(s.model_without_ddp) else cfg.model.kwargs
    s.spec_json = {"name": cfg.model.name, "kwargs": kwargs, "classes": split.classes, **spec.to_model_json(),
                   "normalisation": {"rgb": "imagenet mean/std on 0..1", "flow": "px / flow_bound"},
                   "split": cfg.data.split}


def train_epoch(s: Session, epoch: int, *, progress: bool) -> dict:
    """Train one epoch (the rest of it after a mid-epoch resume) over this process's shard; loss and accuracy
    summed over all processes, clips and seconds. The batch hook (``regime.batch_hook``) transforms each batch
    on the device before the forward pass; ``train.aux_loss`` weighs the streams' own losses."""
    t, desc, sampler = s.cfg.train, f"epoch {epoch + 1}/{s.epochs}", s.loader.sampler
    sampler.set_epoch(epoch)
    done, sums = 0, torch.zeros(3, dtype=torch.float64, device=s.device)  # batches trained; loss * n, correct, n
    if s.partial:  # the rest of an epoch that a mid-epoch checkpoint cut
        done, sums = s.partial["batches"], s.partial["sums"][s.world.rank].to(s.device)
    sampler.skip = done * t.batch_size
    full = -(-sampler.num_samples // t.batch_size)
    aux_loss = t.aux_loss if has_aux_heads(s.model_without_ddp) else 0.0
    t0 = time.perf_counter()
    s.model.train()
    batches = tqdm(s.loader, desc=desc, unit="batch", leave=False, disable=not progress)
    for b, (rgb, flow, label) in enumerate(batches, start=done + 1):  # b: this batch's number in the epoch
        label = label.to(s.device, non_blocking=True)  # rgb and flow are on the device already (DeviceBatches)
        if s.hook is not None:
            rgb, flow = s.hook(rgb, flow)
        with autocast(s.device, s.dtype):
            logits, aux = s.model(rgb, flow, aux=True) if aux_loss else (s.model(rgb, flow), [])
        loss = F.cross_entropy(logits.float(), label, label_smoothing=t.label_smoothing)
        for head in aux:
            loss = loss + aux_loss / len(aux) * F.cross_entropy(head.float(), label, label_smoothing=t.label_smoothing)
        if not torch.isfinite(all_reduce_sum(loss.detach().clone())):  # every process stops together
            last = checkpoint_dirs(s.run)
            kept = f"the last good checkpoint {last[-1]} is kept" if last else "no checkpoint was written"
            raise FloatingPointError(f"training stopped: loss is {loss.item()} at {desc}, batch {b}; {kept} "
                                     "(try a lower train.lr)")
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer.step()
        n = torch.tensor(label.numel(), dtype=torch.float64, device=s.device)
        sums += torch.stack([loss.detach().double() * n, (logits.argmax(1) == label).sum().double(), n])
        if t.checkpoint_every and b % t.checkpoint_every == 0 and b < full:
            save(s, epoch - 1, step=s.step + b - done, batch=b, sums=sums)
    loss_sum, correct, seen = all_reduce_sum(sums).tolist()
    s.step += len(s.loader)
    sampler.skip, s.partial = 0, None
    return {"loss": loss_sum / seen, "acc": correct / seen, "clips": int(seen), "seconds": time.perf_counter() - t0}


def _scores(s: Session, loader: DeviceBatches) -> tuple[float, float, int]:
    """(loss, accuracy, clips) of the model to save on one evaluation loader."""
    probs, labels, _ = predict(s.model_without_ddp, loader, s.device, dtype=s.dtype)
    loss = F.nll_loss(probs.double().clamp_min(1e-12).log(), labels).item()
    return loss, float((probs.argmax(1) == labels).double().mean()), int(labels.numel())


def end_of_epoch(s: Session, epoch: int, stats: dict, *, progress: bool) -> None:
    """Evaluate on the test list (one centre clip per video) and the validation part, checkpoint, write the
    metrics line and plots; the model package holds the weights validation chose (the newest without one)."""
    cfg, train_s = s.cfg, stats["seconds"]
    t1 = time.perf_counter()
    test_loss, test_acc, test_clips = _scores(s, s.test_loader)
    line = {
        "epoch": epoch, "step": s.step,
        "offset": offset_for_epoch(epoch, offsets=list(cfg.data.offsets), period=cfg.data.offset_period),
        "train_loss": round(stats["loss"], 6), "train_acc": round(stats["acc"], 6), "train_clips": stats["clips"],
        "test_loss": round(test_loss, 6), "test_acc": round(test_acc, 6), "test_clips": test_clips,
        "time": {"train_s": round(train_s, 3), "eval_s": round(time.perf_counter() - t1, 3),
                 "clips_per_s": round(stats["clips"] / max(train_s, 1e-9), 1)},
    }
    best = True
    if s.val_loader is not None:
        val_loss, val_acc, _ = _scores(s, s.val_loader)
        line.update(val_loss=round(val_loss, 6), val_acc=round(val_acc, 6))
        line["best"] = best = s.selection.update(epoch, line["val_acc"], line["val_loss"])
    s.history.append(line)
    if s.world.main and best:
        save_model_package(s.run, s.model_without_ddp, s.spec_json)
    save(s, epoch, step=s.step)
    if s.world.main:
        with (s.run / METRICS).open("a") as fh:
            fh.write(json.dumps(line) + "\n")
        wall = sum(h["time"]["train_s"] + h["time"]["eval_s"] for h in s.history if "time" in h)
        chosen = [h["epoch"] for h in s.history if h.get("best")]  # with a validation part: the packaged epoch
        extra = {"chosen_epoch": chosen[-1]} if chosen else {}
        info = {**s.info, "epochs": len(s.history), **extra, "wall_s": round(wall, 1)}
        atomic_write_text(s.run / RUN_JSON, json.dumps(info, indent=1))
        if s.writer is not None:
            for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
                s.writer.add_scalar(key.replace("_", "/", 1), line[key], epoch + 1)
            s.writer.add_scalar("speed/clips_per_s", line["time"]["clips_per_s"], epoch + 1)
            s.writer.flush()
        recipe = s.info["recipe"]
        if (epoch + 1) % cfg.train.plot_every == 0 or epoch + 1 == s.epochs or s.selection.stop:
            from ..report.plots import plot_curves

            plot_curves(s.history, s.run / CURVES_PNG,
                        title=recipe if recipe == cfg.model.name else f"{recipe} ({cfg.model.name})")
        if progress:
            val = f" val_acc {line['val_acc']:.3f}{' *' if best else ''}" if "val_acc" in line else ""
            tqdm.write(f"epoch {epoch + 1}/{s.epochs}: loss {line['train_loss']:.4f} train_acc "
                       f"{line['train_acc']:.3f}{val} test_acc {line['test_acc']:.3f} ({train_s:.1f}s, "
                       f"{line['time']['clips_per_s']:.0f} clips/s)")


def save(s: Session, completed: int, *, step: int, batch: int = 0, sums: torch.Tensor | None = None) -> None:
    """Checkpoint after epoch ``completed`` (0-based) and ``batch`` batches of the next (every process calls)."""
    cfg = s.cfg
    rngs = gather_objects(rng_state())
    part = {"batches": batch, "sums": gather_objects(sums.cpu())} if batch else None
    if s.world.main:
        save_checkpoint(s.run, s.model_without_ddp, {
            "optimizer": s.optimizer.state_dict(), "step": step, "rng": rngs, "history": s.history, "partial": part,
            "sampler": {"seed": cfg.seed, "epoch": completed + 1, "index": batch * cfg.train.batch_size},
            "config": cfg.to_dict(), "world_size": s.world.size, "recipe": s.info["recipe"]},
            epoch=completed, batch=batch, keep=cfg.train.keep_checkpoints)

