"""Run configuration: dataclasses loaded from YAML, overridden with ``--set key=value``.

The config is turned into constructor arguments in one place (``engine.build``); components never
see the config object itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad config file or override; the message is meant for the user as is."""


@dataclass
class DataConfig:
    cache: str = ""
    """Folder written by ``dualstream prepare`` (rawframes + manifests)."""
    splits: str = ""
    """UCF-101-format split folder (classInd.txt, trainlist0N.txt, testlist0N.txt)."""
    split: int = 1
    """Which split to use (1-3)."""
    allow_group_overlap: bool = False
    """Train even if train and test share a group (inflates accuracy); config.yaml of the run records it."""
    input_size: int = 224
    """Side of the square network input, after crop and resize."""
    frames: int = 10
    """Frames per clip (paper: 10)."""
    sampling: str = "interval"
    """Which frames a clip takes (``data.sampling``): ``interval`` (the paper's: ``frames`` frames at
    ``interval``, from an offset) or ``spread`` (``frames`` frames spread in order over the whole video,
    one per equal segment, TSN-like: the clip covers the whole action whatever its duration or frame
    rate; ``interval`` and ``offsets`` are then unused, ``temporal_jitter`` draws the position in each
    segment, ``eval_clips`` are phases of the segments)."""
    span_min: float = 1.0
    """With ``spread`` sampling: a training clip covers a random part of at least this fraction of the
    video (the action looks up to 1 / span_min times slower: speed augmentation); 1: the whole video."""
    interval: int = 10
    """Frames between two sampled frames (paper: 10, f5, f15, ...); shrinks for short videos."""
    offsets: list[int] = field(default_factory=lambda: [5, 8])
    """First frame of a training clip, cycled every ``offset_period`` epochs (paper: f5 then f8)."""
    offset_period: int = 100
    """Epochs between offset shifts (paper: 100)."""
    flow_bound: float = 20.0
    """Bound used when the flow was quantised (must match the cache)."""
    crop_scale_min: float = 0.8
    """Random crop side as a fraction of the short side: uniform(crop_scale_min, 1)."""
    flip: bool = True
    """Random horizontal flip (mirrors the flow field and negates flow-x)."""
    temporal_jitter: bool = False
    """Start each training clip at a random frame (any offset whose clip fits the video) instead of the
    ``offsets`` schedule: many more distinct clips from a short list of videos."""
    colour_jitter: float = 0.0
    """Per-clip brightness, contrast, saturation and tint jitter of training clips, applied to the batch
    (``augment.colour_jitter``): factors in [1 - x, 1 + x] (the tint half as much); 0: off."""
    in_memory: bool = False
    """Keep the decoded training frames in memory (each loader process): for small sets, whose frames
    are then decoded once instead of once per clip."""
    val_fraction: float = 0.0
    """Share of the train list's groups held out (whole groups) as validation, to choose the checkpoint
    (the best validation accuracy) and stop early; 0: none, the last epoch's weights are kept."""
    eval_clips: int = 5
    """Frame offsets per video for video-level evaluation, spread over one interval (softmax averaged);
    ``interval`` or more: every offset of the interval."""
    eval_crops: int = 1
    """Crops per clip at evaluation: 1 (centre) or 3 (both ends and centre of the long side)."""
    eval_flip: bool = False
    """Also evaluate the mirrored clips (doubles the views per video)."""
    num_workers: int = 2
    """DataLoader worker processes per training process; -1: one per core (at most 16)."""
    pipeline: str = "auto"
    """Where clips are cut: ``classic`` (workers crop, flip, resize and normalise in float: the results
    of earlier versions, bit for bit), ``u8`` (workers crop, flip, resize in uint8, the device
    normalises; RGB identical, flow within one quantisation level), ``fused`` (each worker cuts whole
    batches network-ready in one pass per clip, into reused shared memory: the fastest on a CPU,
    ``benchmarks/loader.py``; bilinear resize as ``device``, so not bit-identical),
    ``device`` (workers only read/decode uint8 frames; crop, flip, resize, normalise run batched on the
    training device: for GPUs; bilinear resize), or ``auto``: device on CUDA, classic on the CPU.
    Evaluation uses the device path with ``device``, the fused one with ``fused``, the classic one otherwise."""
    jpeg_decode: str = "auto"
    """With the device pipeline: ``worker`` (OpenCV in the loader workers), ``device`` (nvJPEG on the
    GPU via torchvision; the workers only read bytes), ``auto``: device where torchvision's decoder
    imports, the cache is not packed and every video has one size, else worker."""

    def sampling_text(self) -> str:
        """How a clip takes its frames, in words: ``16 frames spread over each whole video``, ``10 frames every 4``."""
        if self.sampling == "spread":
            return f"{self.frames} frames spread over each whole video"
        return f"{self.frames} frames every {self.interval}"

    def __post_init__(self) -> None:
        for name in ("input_size", "frames", "interval", "offset_period", "eval_clips"):
            if getattr(self, name) < 1:
                raise ConfigError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        if self.sampling not in ("interval", "spread"):
            raise ConfigError(f"data.sampling must be interval or spread, got {str(self.sampling)[:40]!r}")
        if not 0 < self.span_min <= 1:
            raise ConfigError(f"data.span_min must be in (0, 1], got {self.span_min}")
        if not self.offsets or any(o < 1 for o in self.offsets):
            raise ConfigError(f"data.offsets must be a non-empty list of frame numbers >= 1, got {self.offsets}")
        if not 0 < self.crop_scale_min <= 1:
            raise ConfigError(f"data.crop_scale_min must be in (0, 1], got {self.crop_scale_min}")
        if self.num_workers < -1:
            raise ConfigError(f"data.num_workers must be >= 0 or -1 (auto), got {self.num_workers}")
        if self.colour_jitter < 0 or self.colour_jitter >= 1:
            raise ConfigError(f"data.colour_jitter must be in [0, 1), got {self.colour_jitter}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.eval_crops not in (1, 3):
            raise ConfigError(f"data.eval_crops must be 1 or 3, got {self.eval_crops}")
        if self.pipeline not in ("auto", "classic", "u8", "fused", "device"):
            raise ConfigError(f"data.pipeline must be auto, classic, u8, fused or device, got {self.pipeline!r}")
        if self.jpeg_decode not in ("auto", "worker", "device"):
            raise ConfigError(f"data.jpeg_decode must be auto, worker or device, got {self.jpeg_decode!r}")


@dataclass
class ModelConfig:
    name: str = "early_fusion_small"
    """A registered model (``dualstream models`` lists them)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra builder arguments, e.g. width or dropout."""


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 25
    """Clips per step per process (paper: 25 on one GPU); under torchrun the global batch is this times
    the number of processes."""
    lr: float = 1e-4
    """Adam learning rate (paper: 1e-4)."""
    weight_decay: float = 0.0
    device: str = "cpu"
    """cpu, cuda, cuda:N (under torchrun: cuda means this process's local GPU)."""
    precision: str = "auto"
    """auto (bf16 autocast on CUDA, fp32 elsewhere), bf16 or fp32."""
    memory_format: str = "auto"
    """auto (channels_last on CUDA, contiguous elsewhere), channels_last or contiguous."""
    compile: bool = False
    """Compile the model with torch.compile (minutes of warm-up; pays off on long GPU runs)."""
    keep_checkpoints: int = 1
    """Newest checkpoints kept in RUN/checkpoint."""
    checkpoint_every: int = 0
    """Also save a checkpoint every this many batches within an epoch (0: at the end of each epoch only)."""
    plot_every: int = 10
    """Redraw RUN/curves.png every this many epochs (and at the end)."""
    steps: int = 0
    """Train for this many optimizer steps instead of ``epochs`` (0: use epochs). An epoch then draws
    enough clips per video for about ``eval_every`` steps, so a 20-video set gets its updates without
    an evaluation and a checkpoint after every step or two."""
    eval_every: int = 50
    """With ``steps``: steps between two evaluations (validation, checkpoint, metrics line)."""
    label_smoothing: float = 0.0
    """Label smoothing of the cross-entropy loss (0: none)."""
    modality_dropout: float = 0.0
    """Probability that a training clip loses one of its two inputs (RGB or flow, equally likely, set
    to zero) in a model with both streams, so the fusion cannot lean on one stream; 0: off."""
    patience: int = 0
    """With data.val_fraction: stop when the validation accuracy has not improved for this many
    evaluations (0: never stop early)."""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("train.epochs and train.batch_size must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError("train.lr must be > 0 and train.weight_decay >= 0")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ConfigError(f"train.precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.memory_format not in ("auto", "channels_last", "contiguous"):
            raise ConfigError(f"train.memory_format must be auto, channels_last or contiguous, got {self.memory_format!r}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"train.checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if self.steps < 0 or self.eval_every < 1 or self.patience < 0:
            raise ConfigError("train.steps and train.patience must be >= 0, train.eval_every >= 1")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.modality_dropout <= 1:
            raise ConfigError("train.label_smoothing must be in [0, 1), train.modality_dropout in [0, 1]")
        if self.keep_checkpoints < 1 or self.plot_every < 1:
            raise ConfigError("train.keep_checkpoints and train.plot_every must be >= 1")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def _known_keys() -> list[str]:
    keys = [f"{s}.{f.name}" for s, cls in _SECTIONS.items() for f in fields(cls)]
    return keys + ["seed"]


def _build(raw: dict) -> Config:
    raw = dict(raw or {})
    unknown = set(raw) - set(_SECTIONS) - {"seed"}
    if unknown:
        raise ConfigError(f"unknown config section(s): {', '.join(sorted(unknown))}")
    parts = {}
    for name, cls in _SECTIONS.items():
        section = raw.get(name) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"config section {name!r} must be a mapping")
        names = {f.name for f in fields(cls)}
        bad = set(section) - names
        if bad:
            raise ConfigError(f"unknown config key(s): {', '.join(f'{name}.{b}' for b in sorted(bad))}")
        _check_types(name, cls, section)
        try:
            parts[name] = cls(**section)
        except TypeError as exc:
            raise ConfigError(f"bad value in section {name!r}: {exc}") from None
    try:
        seed = int(raw.get("seed", 0))
    except (TypeError, ValueError):
        raise ConfigError(f"seed must be an integer, got {raw.get('seed')!r}") from None
    return Config(**parts, seed=seed)


def _check_types(sname: str, cls: type, section: dict) -> None:
    """Each value must have the type of its field's default (an int is accepted for a float)."""
    for f in fields(cls):
        if f.name not in section:
            continue
        value = section[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if isinstance(default, float) and isinstance(value, str):  # YAML reads 1e-4 as a string
            try:
                value = section[f.name] = float(value)
            except ValueError:
                pass
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{sname}.{f.name} must be true or false, got {value!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{sname}.{f.name} must be a number, got {value!r}")
            if isinstance(default, int) and not isinstance(value, int):
                raise ConfigError(f"{sname}.{f.name} must be an integer, got {value!r}")
        if isinstance(default, (str, list, dict)) and not isinstance(value, type(default)):
            raise ConfigError(f"{sname}.{f.name} must be a {type(default).__name__}, got {value!r}")


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key=value`` overrides (values parsed as YAML) to a raw config dict."""
    raw = yaml.safe_load(yaml.safe_dump(raw or {}))  # deep copy
    known = set(_known_keys())
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if key not in known and not (len(parts) == 3 and parts[:2] == ["model", "kwargs"]):
            raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(sorted(known))}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = raw
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"cannot set {key!r}: {p!r} is not a mapping")
        node[parts[-1]] = value
    return raw


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None) and apply overrides."""
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: {'a directory, not a config file' if p.is_dir() else 'config file not found'}")
        try:
            raw = yaml.safe_load(p.read_bytes().decode("utf-8")) or {}
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: not a text file (a config is UTF-8 YAML)") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML ({' '.join(str(exc).split())})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: a config must be a YAML mapping")
    return _build(apply_overrides(raw, list(overrides)))


def demo_config_path() -> Path:
    """The built-in demo recipe, shipped inside the package (``configs/`` links to the same folder)."""
    return Path(__file__).parent / "configs" / "demo_synthetic.yaml"


def config_from_dict(raw: dict) -> Config:
    return _build(raw)
