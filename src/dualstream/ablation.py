"""Ablation: several models trained and evaluated with one recipe and cache over folds and seeds (README "Models")."""

from __future__ import annotations

import dataclasses
import itertools
import json
import statistics
from pathlib import Path

import yaml

from .config import Config, ConfigError
from .engine.evaluate import EVAL_JSON, evaluate_run
from .engine.build import CONFIG, build_model
from .engine.train import train
from .files import atomic_write_text
from .models import list_models
from .report.plots import pyplot, save_figure

TABLE = "ablation.md"
CHART = "ablation.png"
RUNS_JSON = "ablation.json"


def _finished(run: Path, cfg: Config) -> dict | None:
    """The evaluation already in ``run`` when it was trained with exactly ``cfg``, else None."""
    try:
        same = yaml.safe_load((run / CONFIG).read_text()) == yaml.safe_load(yaml.safe_dump(cfg.to_dict()))
        return json.loads((run / EVAL_JSON).read_text()) if same else None
    except (OSError, ValueError, yaml.YAMLError):
        return None


def _check(models: list[str], folds: list[int], seeds: list[int]) -> None:
    unknown = [m for m in models if m not in list_models()]
    if unknown:
        raise ConfigError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(list_models())}")
    if not models:
        raise ConfigError("--models lists no model")
    for what, items in (("--models", models), ("--folds", folds), ("--seeds", seeds)):
        if len(set(items)) != len(items):
            raise ConfigError(f"{what} lists a value twice")


def run_ablation(cfg: Config, models: list[str], out: str | Path, *, folds: list[int] | None = None,
                 seeds: list[int] | None = None, progress: bool = True) -> list[dict]:
    """Train + evaluate every model on every fold with every seed; returns one summary row per model
    (``video_top1`` / ``clip_top1`` are means, ``*_std`` their standard deviations, ``runs`` each run)."""
    folds = list(folds) if folds else [cfg.data.split]
    seeds = list(seeds) if seeds else [cfg.seed]
    _check(models, folds, seeds)
    out = Path(out)
    single = len(folds) == 1 and len(seeds) == 1
    runs: list[dict] = []
    total = len(models) * len(folds) * len(seeds)
    for n, (name, split, seed) in enumerate(itertools.product(models, folds, seeds), 1):
        run_cfg = dataclasses.replace(cfg, seed=seed, model=dataclasses.replace(cfg.model, name=name),
                                      data=dataclasses.replace(cfg.data, split=split))
        run = out / name if single else out / name / f"split{split}_seed{seed}"
        result = _finished(run, run_cfg)
        if progress:
            print(f"== [{n}/{total}] {name}, split {split}, seed {seed}" + (" (done before)" if result else ""),
                  flush=True)
        if result is None:
            train(run_cfg, run, progress=progress)
            result = evaluate_run(run, progress=progress)
        model = build_model(run_cfg, len(result["classes"]), aux=False)  # the architecture, not its training heads
        runs.append({"model": name, "split": split, "seed": seed, "run": str(run),
                     "params": sum(p.numel() for p in model.parameters()),
                     "clip_top1": result["clip_top1"], "video_top1": result["video_top1"]})
    rows = summarise(runs, models)
    write_table(rows, out / TABLE, cfg, folds=folds, seeds=seeds)
    plot_rows(rows, out / CHART, folds=folds, seeds=seeds)
    atomic_write_text(out / RUNS_JSON, json.dumps({"summary": rows, "runs": runs}, indent=1))
    return rows


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(runs: list[dict], models: list[str]) -> list[dict]:
    """Per model: mean and sample standard deviation of clip and video top-1 over its runs, and per fold
    the mean video top-1 over the seeds."""
    rows = []
    for name in models:
        mine = [r for r in runs if r["model"] == name]
        video, video_std = _mean_std([r["video_top1"] for r in mine])
        clip, clip_std = _mean_std([r["clip_top1"] for r in mine])
        splits = dict.fromkeys(r["split"] for r in mine)
        per_split = {k: _mean_std([r["video_top1"] for r in mine if r["split"] == k]) for k in splits}
        rows.append({"model": name, "params": mine[0]["params"], "runs": len(mine),
                     "video_top1": video, "video_top1_std": video_std, "clip_top1": clip, "clip_top1_std": clip_std,
                     "per_split": {str(k): {"mean": m, "std": s} for k, (m, s) in per_split.items()},
                     "video_top1_runs": [r["video_top1"] for r in mine]})
    return rows


def write_table(rows: list[dict], path: Path, cfg: Config, *, folds: list[int], seeds: list[int]) -> None:
    length = f"{cfg.train.steps} steps" if cfg.train.steps else f"{cfg.train.epochs} epochs"
    lines = [
        "# Ablation",
        "",
        f"Recipe: {cfg.data.sampling_text()}, input {cfg.data.input_size}, "
        f"{length}, batch {cfg.train.batch_size}, lr {cfg.train.lr}; splits {', '.join(map(str, folds))} "
        f"of {cfg.data.splits}; seeds {', '.join(map(str, seeds))}.",
        "",
        f"Mean and standard deviation over {len(folds)} split(s) x {len(seeds)} seed(s) = {len(folds) * len(seeds)} "
        "run(s) per model (standard deviation 0 for a single run).",
        "",
        "| model | params | video top-1 | clip top-1 |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {r['model']} | {r['params']:,} | {r['video_top1']:.4f} ± {r['video_top1_std']:.4f} | "
              f"{r['clip_top1']:.4f} ± {r['clip_top1_std']:.4f} |" for r in rows]
    if len(folds) > 1 or len(seeds) > 1:
        lines += ["", "Video top-1 per split (mean ± std over the seeds):", "",
                  "| model | " + " | ".join(f"split {k}" for k in folds) + " |",
                  "|---|" + "---:|" * len(folds)]
        lines += ["| " + r["model"] + " | " + " | ".join(
            f"{r['per_split'][str(k)]['mean']:.4f} ± {r['per_split'][str(k)]['std']:.4f}" for k in folds) + " |"
            for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def plot_rows(rows: list[dict], path: Path, *, folds: list[int], seeds: list[int]) -> None:
    spread = rows[0]["runs"] > 1
    fig, ax = pyplot().subplots(figsize=(max(5, 1.3 * len(rows) + 2), 4), dpi=120)
    x = list(range(len(rows)))
    w = 0.38

    def bars(key: str, offset: float, label: str):
        errors = {"yerr": [r[f"{key}_std"] for r in rows], "capsize": 4} if spread else {}
        return ax.bar([i + offset for i in x], [r[key] for r in rows], w, label=label, **errors)

    bars("clip_top1", -w / 2, "clip top-1")
    video = bars("video_top1", w / 2, "video top-1")
    if spread:
        for i, r in enumerate(rows):  # every run's video top-1 (spread a little to show ties), the label above
            vals = r["video_top1_runs"]
            ax.scatter([i + w / 2 + 0.1 * (j / max(1, len(vals) - 1) - 0.5) for j in range(len(vals))], vals,
                       s=9, color="black", zorder=3, label="one run (video)" if i == 0 else None)
            top = max(r["video_top1"] + r["video_top1_std"], max(vals))
            ax.text(i + w / 2, top + 0.03, f"{r['video_top1']:.3f}\n±{r['video_top1_std']:.3f}", ha="center",
                    va="bottom", fontsize=8)
        ax.set_title(f"Ablation: mean ± std over {len(folds)} split(s) x {len(seeds)} seed(s)", pad=28)
    else:
        ax.bar_label(video, fmt="%.3f", fontsize=8)
        ax.set_title("Ablation: same recipe and seed", pad=28)
    ax.set_xticks(x, [r["model"] for r in rows], rotation=20, ha="right")
    ax.set_ylim(0, 1.25 if spread else 1.1)
    ax.set_ylabel("accuracy")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3, frameon=False)
    fig.tight_layout()
    save_figure(fig, path)
