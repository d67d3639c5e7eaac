"""``dualstream fit``: a class-per-folder video set -> make-split (group-disjoint) -> prepare -> train -> evaluate,
into one run folder that also holds the split (``RUN/splits``) and the cache (``RUN/cache``, reused by a rerun)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError, load_config
from .text import shown
from .data.make_split import compile_group_regex, make_split
from .prepare.common import PrepareOptions
from .video import find_videos
from .prepare.run import prepare_dataset
from .data.ucf101 import SplitError, VideoEntry, entry_group, read_split

CONFIGS = Path(__file__).parent / "configs"
DEFAULT_RECIPE = "small_real"


def check_groups(videos_dir: str | Path, group_regex: str | None) -> bool:
    """Refuse a folder that cannot be split group-disjointly: every class needs two or more groups (a video
    whose name has no group is its own group). Returns whether any file name matched the regex."""
    pattern = compile_group_regex(group_regex)
    videos = find_videos(videos_dir)
    if not videos:
        raise FileNotFoundError(f"{videos_dir}: no video files found (expected <Class>/<video>.avi etc.)")
    groups: dict[str, set[str]] = defaultdict(set)
    matched = False
    for v in videos:
        group = entry_group(VideoEntry(v, 0), pattern)
        matched |= group != v
        groups[v.split("/")[0]].add(group)
    classes = sorted(groups)
    if len(classes) < 2:
        raise SplitError(f"{videos_dir}: {len(classes)} class folder found; a classifier needs two or more")
    single = [c for c in classes if len(groups[c]) < 2]
    if single:
        how = "the group regex" if group_regex else "UCF-101's _gGG_ (--group-regex to change it)"
        raise SplitError(f"{videos_dir}: class(es) {', '.join(single)} have only one group of videos by {how}, "
                         "so no test set can hold groups unseen in training; add recordings of other groups")
    return matched


@dataclass
class FitResult:
    run: Path
    video_top1: float
    clip_top1: float
    train: int
    test: int
    note: str = ""
    across: bool = False
    """The split keeps each group number on one side for every class (make_split's group_scope)."""
    clips: str = ""
    """How the recipe cut the training clips (sampling, horizontal flip), as ``fit`` prints it."""


def fit(videos: str | Path, out: str | Path, *, recipe: str = DEFAULT_RECIPE, group_regex: str | None = None,
        flow: str = "dis", overrides: list[str] = (), test_fraction: float = 0.3, seed: int = 0,
        workers: int = 0, progress: bool = True, group_scope: str = "auto") -> FitResult:
    """Split, prepare, train and evaluate ``videos`` into the run folder ``out``."""
    from .engine.evaluate import evaluate_run
    from .engine.train import train

    out, path = Path(out), Path(recipe)
    if path.suffix not in (".yaml", ".yml"):  # a recipe name: a YAML file shipped in the package's configs/
        path = CONFIGS / f"{recipe}.yaml"
        if not path.is_file():
            names = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.yaml")))
            raise ConfigError(f"unknown recipe {shown(recipe)}; shipped recipes: {names} (or give a .yaml file)")
    elif not path.is_file():
        raise ConfigError(f"{path}: recipe file not found")
    load_config(path, list(overrides))  # a bad recipe or --set fails before any work
    matched = check_groups(videos, group_regex)
    note = "" if matched else ("note: no file name matches the group regex, so every video is its own group; "
                               "clips cut from one recording may land on both sides")
    splits = out / "splits"
    # both sides get groups of every class: check_groups made sure that each class has two or more
    counts = make_split(videos, splits, test_fraction=test_fraction, group_regex=group_regex, seed=seed,
                        group_scope=group_scope)
    sets = [f"data.cache={json.dumps(str(out / 'cache'))}", f"data.splits={json.dumps(str(splits))}", "data.split=1",
            f"seed={seed}", *overrides]
    cfg = load_config(path, sets)
    split = read_split(splits, 1)
    listed = [e.path for e in (*split.train, *split.test)]
    opts = PrepareOptions(flow=flow, short_side=cfg.data.input_size, bound=cfg.data.flow_bound)
    summary = prepare_dataset(videos, out / "cache", opts, workers=workers, videos=listed, progress=progress)
    if summary.failed:
        raise SplitError(f"{summary.failed} video(s) could not be prepared: "
                         f"see {out / 'cache' / summary.failures_file}")
    train(cfg, out, progress=progress, recipe=path.stem)
    result = evaluate_run(out, progress=progress)
    return FitResult(out, result["video_top1"], result["clip_top1"], counts["train"], counts["test"], note,
                     bool(counts["across"]),
                     f"clips: {cfg.data.sampling_text()}; horizontal flip {'on' if cfg.data.flip else 'off'}")
