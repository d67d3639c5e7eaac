"""Run configuration: dataclasses loaded from YAML, overridden with ``--set key=value``.

The config is turned into constructor arguments in one place (``engine.build``); components never
see the config object itself.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .flow.quantize import BOUND_RANGE
from .text import cut, one_line, shown

#: What a config may expand to, checked while its YAML is composed, before any value is used: an alias
#: bomb (nested ``&a [*b, *b, ...]``) of a few hundred bytes otherwise stands for gigabytes of values.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_NODES = 10_000
"""Scalars, lists and mappings of a document once expanded: an alias counts as every node it stands for."""
MAX_CONFIG_DEPTH = 32


class ConfigError(ValueError):
    """A bad config file or override; the message is meant for the user as is."""


def _require(ok: bool, key: str, rule: str, value: Any) -> None:
    """Raise ``key must be <rule>, got <value>`` unless ``ok`` (written as what is accepted, so NaN fails it)."""
    if not ok:
        raise ConfigError(f"{key} must be {rule}, got {shown(value)}")


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
    """Where clips are cut: ``workers`` (the loader workers cut whole network-ready batches in one pass per
    clip, into reused shared memory: the fastest on a CPU), ``device`` (workers only read/decode uint8
    frames; crop, flip, resize and normalisation run batched on the training device: for GPUs), or
    ``auto``: device on CUDA, workers elsewhere. Both cut the same clips with the same filter rule
    (within one uint8 level). ``classic``, ``u8`` and ``fused`` (before 0.2) are read as ``workers``."""
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
        _require(self.split in (1, 2, 3), "data.split", "1, 2 or 3", self.split)
        for name in ("input_size", "frames", "interval", "offset_period", "eval_clips"):
            _require(getattr(self, name) >= 1, f"data.{name}", ">= 1", getattr(self, name))
        _require(bool(self.offsets) and all(type(o) is int and o >= 1 for o in self.offsets), "data.offsets",
                 "a non-empty list of frame numbers >= 1", self.offsets)
        lo, hi = BOUND_RANGE
        _require(lo <= self.flow_bound <= hi, "data.flow_bound", f"in [{lo}, {hi:g}]", self.flow_bound)
        _require(self.sampling in ("interval", "spread"), "data.sampling", "interval or spread", self.sampling)
        _require(0 < self.span_min <= 1, "data.span_min", "in (0, 1]", self.span_min)
        _require(0 < self.crop_scale_min <= 1, "data.crop_scale_min", "in (0, 1]", self.crop_scale_min)
        _require(self.num_workers >= -1, "data.num_workers", ">= 0 or -1 (auto)", self.num_workers)
        _require(0 <= self.colour_jitter < 1, "data.colour_jitter", "in [0, 1)", self.colour_jitter)
        _require(0 <= self.val_fraction < 1, "data.val_fraction", "in [0, 1)", self.val_fraction)
        _require(self.eval_crops in (1, 3), "data.eval_crops", "1 or 3", self.eval_crops)
        if self.pipeline in ("classic", "u8", "fused"):  # the worker pipelines before 0.2, now one
            self.pipeline = "workers"
        _require(self.pipeline in ("auto", "workers", "device"), "data.pipeline", "auto, workers or device", self.pipeline)
        _require(self.jpeg_decode in ("auto", "worker", "device"), "data.jpeg_decode", "auto, worker or device",
                 self.jpeg_decode)


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
    """Probability that a training clip loses one of its two inputs (RGB or flow, set to zero) in a model
    with both streams, so the fusion cannot lean on one stream; 0: off."""
    modality_dropout_rgb: float = 0.5
    """Of the clips that lose an input, the share that loses its RGB (the rest lose their flow): 0.5, either
    equally likely; 1.0, only RGB is ever dropped (for sets where appearance does not carry to new scenes)."""
    aux_loss: float = 0.0
    """Weight of the per-stream auxiliary losses of a fusion model (early or late): each stream's features
    also classify on their own through a linear head, and the loss is ``CE(fused) + aux_loss * (CE(rgb) +
    CE(flow)) / 2``, so the fused classifier cannot leave one stream untrained; 0: off."""
    patience: int = 0
    """With data.val_fraction: stop when the validation accuracy has not improved for this many
    evaluations (0: never stop early)."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_every", "keep_checkpoints", "plot_every"):
            _require(getattr(self, name) >= 1, f"train.{name}", ">= 1", getattr(self, name))
        for name in ("checkpoint_every", "steps", "patience"):
            _require(getattr(self, name) >= 0, f"train.{name}", ">= 0", getattr(self, name))
        _require(self.lr > 0, "train.lr", "> 0", self.lr)
        _require(self.weight_decay >= 0, "train.weight_decay", ">= 0", self.weight_decay)
        _require(0 <= self.label_smoothing < 1, "train.label_smoothing", "in [0, 1)", self.label_smoothing)
        _require(0 <= self.modality_dropout <= 1, "train.modality_dropout", "in [0, 1]", self.modality_dropout)
        _require(0 <= self.aux_loss <= 10, "train.aux_loss", "in [0, 10]", self.aux_loss)
        _require(0 <= self.modality_dropout_rgb <= 1, "train.modality_dropout_rgb", "in [0, 1]",
                 self.modality_dropout_rgb)
        _require(self.precision in ("auto", "bf16", "fp32"), "train.precision", "auto, bf16 or fp32", self.precision)
        _require(self.memory_format in ("auto", "channels_last", "contiguous"), "train.memory_format",
                 "auto, channels_last or contiguous", self.memory_format)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    """Seeds every RNG of a run (numpy's takes 32 bits)."""

    def __post_init__(self) -> None:
        _require(type(self.seed) is int and 0 <= self.seed < 2**32, "seed", "an integer in [0, 2**32)", self.seed)

    def to_dict(self) -> dict:
        return asdict(self)


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def _build(raw: dict) -> Config:
    unknown = set(raw) - set(_SECTIONS) - {"seed"}
    if unknown:
        raise ConfigError(f"unknown config section(s): {shown(', '.join(sorted(map(str, unknown))))}")
    parts = {}
    for name, cls in _SECTIONS.items():
        section = raw.get(name) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"config section {name!r} must be a mapping, got {shown(section)}")
        bad = set(section) - {f.name for f in fields(cls)}
        if bad:
            raise ConfigError(f"unknown config key(s): {shown(', '.join(f'{name}.{b}' for b in sorted(map(str, bad))))}")
        _check_types(name, cls, section)
        parts[name] = cls(**section)
    return Config(**parts, seed=raw.get("seed", 0))


def _check_types(sname: str, cls: type, section: dict) -> None:
    """Each value must have the type of its field's default: an int for an int, a finite number for a float."""
    defaults = cls()
    for name, value in section.items():
        key, default = f"{sname}.{name}", getattr(defaults, name)
        if isinstance(default, float) and isinstance(value, str):  # YAML reads 1e-4 as a string
            with contextlib.suppress(ValueError):
                value = section[name] = float(value)
        if isinstance(default, bool):
            _require(isinstance(value, bool), key, "true or false", value)
        elif isinstance(default, int):
            _require(type(value) is int, key, "an integer", value)
        elif isinstance(default, float):
            _require(type(value) in (int, float), key, "a number", value)
            _require(math.isfinite(value) if type(value) is float else abs(value) < 2**1023, key, "a finite number",
                     value)
            section[name] = float(value)
        else:
            _require(isinstance(value, type(default)), key, f"a {type(default).__name__}", value)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a document that expands past ``MAX_CONFIG_NODES`` nodes (an alias
    counts as the nodes of its anchor) or ``MAX_CONFIG_DEPTH`` levels, and an alias inside its own anchor."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = self._depth = 0
        self._sizes: dict[str, int] = {}  # anchor -> expanded nodes under it, once composed

    def _add(self, nodes: int) -> None:
        self._nodes += nodes
        if self._nodes > MAX_CONFIG_NODES:
            raise ConfigError(f"expands to more than {MAX_CONFIG_NODES} values (through aliases?)")

    def compose_node(self, parent, index):  # noqa: ANN001 (PyYAML's signature)
        if self.check_event(yaml.AliasEvent):
            anchor = self.peek_event().anchor
            if anchor in self.anchors and anchor not in self._sizes:
                raise ConfigError(f"the alias *{shown(anchor, 40)} is inside its own anchor")
            self._add(self._sizes.get(anchor, 1))
            return super().compose_node(parent, index)
        anchor, start = self.peek_event().anchor, self._nodes
        self._add(1)
        self._depth += 1
        if self._depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"nested more than {MAX_CONFIG_DEPTH} levels deep")
        node = super().compose_node(parent, index)
        self._depth -= 1
        if anchor is not None:
            self._sizes[anchor] = self._nodes - start
        return node


def parse_yaml(text: str | bytes, where: str) -> Any:
    """One YAML document (bytes: UTF-8), bounded in size and expansion (``_BoundedLoader``); ConfigError
    names ``where``. Invalid UTF-8 stays a UnicodeDecodeError, a syntax error a ``yaml.YAMLError``."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_CONFIG_BYTES} bytes (a config is a few KB)")
    loader = _BoundedLoader(text.decode("utf-8") if isinstance(text, bytes) else text)
    try:
        return loader.get_single_data()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise ConfigError(f"{where}: {cut(str(exc), 120)}") from None
    finally:
        loader.dispose()


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key=value`` overrides (values parsed as YAML) to a raw config dict, in place."""
    known = {f"{s}.{f.name}" for s, cls in _SECTIONS.items() for f in fields(cls)} | {"seed"}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {shown(item)}")
        key, text = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if key not in known and not (len(parts) == 3 and parts[:2] == ["model", "kwargs"]):
            raise ConfigError(f"unknown config key {shown(key)}; known keys: {', '.join(sorted(known))}")
        try:
            value = parse_yaml(text, f"--set {key}")
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
        with open(p, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
        try:
            raw = parse_yaml(data, str(p)) or {}
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: not a text file (a config is UTF-8 YAML)") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML ({one_line(exc, 300)})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: a config must be a YAML mapping")
    return _build(apply_overrides(raw, overrides))


def demo_config_path() -> Path:
    """The built-in demo recipe, shipped inside the package (``configs/`` links to the same folder)."""
    return Path(__file__).parent / "configs" / "demo_synthetic.yaml"
