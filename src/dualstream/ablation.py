"""Ablation: train and evaluate several models with one recipe, over folds and seeds; tabulate and plot.

    dualstream ablation --config configs/demo_synthetic.yaml --models early_fusion_small,rgb_only_small --out DIR
    dualstream ablation --config configs/small_real.yaml --models early_fusion_small,flow_only_small,rgb_only_small \\
        --folds 1,2,3 --seeds 0,1,2 --out DIR --set data.cache=... --set data.splits=...

Only the model name, the split (fold) and the seed change between runs; every run reads the one
prepared cache of ``data.cache``. With one fold and one seed each model is trained into
``DIR/<model>`` (a normal run folder); otherwise into ``DIR/<model>/split<K>_seed<S>``. A run whose
folder already holds an evaluation of the same config is reused, so an interrupted ablation goes on
where it stopped. ``DIR/ablation.md`` holds per model the mean and standard deviation of video and
clip top-1 over all runs, and per fold the mean over the seeds; ``DIR/ablation.png`` the means with
error bars (one standard deviation) and every run as a dot; ``DIR/ablation.json`` every run.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

import yaml

from .config import Config
from .engine.evaluate import EVAL_JSON, evaluate_run
from .engine.build import CONFIG
from .engine.train import train
from .models import create_model, list_models

TABLE = "ablation.md"
CHART = "ablation.png"
RUNS_JSON = "ablation.json"


def _param_count(cfg: Config, num_classes: int) -> int:
    model = create_model(cfg.model.name, num_classes=num_classes, frames=cfg.data.frames,
                         input_size=cfg.data.input_size, **cfg.model.kwargs)
    return sum(p.numel() for p in model.parameters())


def run_folder(out: Path, model: str, split: int, seed: int, *, single: bool) -> Path:
    return out / model if single else out / model / f"split{split}_seed{seed}"


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
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(list_models())}")
    if not models:
        raise ValueError("--models lists no model")
    for what, items in (("--models", models), ("--folds", folds), ("--seeds", seeds)):
        if len(set(items)) != len(items):
            raise ValueError(f"{what} lists a value twice")
    if not folds or not seeds:
        raise ValueError("--folds and --seeds need at least one value each")


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
    total, n = len(models) * len(folds) * len(seeds), 0
    for name in models:
        for split in folds:
            for seed in seeds:
                n += 1
                run_cfg = dataclasses.replace(cfg, seed=seed, model=dataclasses.replace(cfg.model, name=name),
                                              data=dataclasses.replace(cfg.data, split=split))
                run = run_folder(out, name, split, seed, single=single)
                result = _finished(run, run_cfg)
                if progress:
                    print(f"== [{n}/{total}] {name}, split {split}, seed {seed}" + (" (done before)" if result else ""),
                          flush=True)
                if result is None:
                    train(run_cfg, run, progress=progress)
                    result = evaluate_run(run, progress=progress)
                runs.append({"model": name, "split": split, "seed": seed, "run": str(run),
                             "params": _param_count(run_cfg, len(result["classes"])),
                             "clip_top1": result["clip_top1"], "video_top1": result["video_top1"]})
    rows = summarise(runs, models)
    write_table(rows, out / TABLE, cfg, folds=folds, seeds=seeds)
    plot_rows(rows, out / CHART, folds=folds, seeds=seeds)
    (out / RUNS_JSON).write_text(json.dumps({"summary": rows, "runs": runs}, indent=1))
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
        per_split = {}
        for split in dict.fromkeys(r["split"] for r in mine):
            per_split[split] = _mean_std([r["video_top1"] for r in mine if r["split"] == split])
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
    path.write_text("\n".join(lines) + "\n")


def plot_rows(rows: list[dict], path: Path, *, folds: list[int] | None = None, seeds: list[int] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    n_runs = rows[0]["runs"] if rows else 1
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(rows) + 2), 4))
    x = list(range(len(rows)))
    w = 0.38
    clip = [r["clip_top1"] for r in rows]
    video = [r["video_top1"] for r in rows]
    errs = {} if n_runs == 1 else {"capsize": 4}
    ax.bar([i - w / 2 for i in x], clip, w, label="clip top-1",
           yerr=[r["clip_top1_std"] for r in rows] if n_runs > 1 else None, **errs)
    bars = ax.bar([i + w / 2 for i in x], video, w, label="video top-1",
                  yerr=[r["video_top1_std"] for r in rows] if n_runs > 1 else None, **errs)
    if n_runs > 1:
        for i, r in enumerate(rows):  # every run's video top-1, spread a little to show ties
            vals = r["video_top1_runs"]
            ax.scatter([i + w / 2 + 0.1 * (j / max(1, len(vals) - 1) - 0.5) for j in range(len(vals))], vals,
                       s=9, color="black", zorder=3, label="one run (video)" if i == 0 else None)
    if n_runs > 1:  # the label above the error bar and the dots
        for i, r in enumerate(rows):
            top = max(r["video_top1"] + r["video_top1_std"], max(r["video_top1_runs"]))
            ax.text(i + w / 2, top + 0.03, f"{r['video_top1']:.3f}\n±{r['video_top1_std']:.3f}", ha="center",
                    va="bottom", fontsize=8)
    else:
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(x, [r["model"] for r in rows], rotation=20, ha="right")
    ax.set_ylim(0, 1.25 if n_runs > 1 else 1.1)
    ax.set_ylabel("accuracy")
    title = "Ablation: same recipe and seed"
    if n_runs > 1:
        title = f"Ablation: mean ± std over {len(folds or [])} split(s) x {len(seeds or [])} seed(s)"
    ax.set_title(title, pad=28)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
