"""Ablation: train and evaluate several models with one recipe and seed, then tabulate and plot.

    dualstream ablation --config configs/demo_synthetic.yaml --models early_fusion_small,rgb_only_small --out DIR

Each model is trained into ``DIR/<model>`` (a normal run folder) and evaluated on the test split;
``DIR/ablation.md`` holds the table (model, parameters, clip and video top-1) and
``DIR/ablation.png`` a bar chart of the same numbers.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .config import Config  # noqa: E402
from .engine.evaluate import evaluate_run  # noqa: E402
from .engine.train import train  # noqa: E402
from .models import create_model, list_models  # noqa: E402

TABLE = "ablation.md"
CHART = "ablation.png"


def _param_count(cfg: Config, num_classes: int) -> int:
    model = create_model(cfg.model.name, num_classes=num_classes, frames=cfg.data.frames,
                         input_size=cfg.data.input_size, **cfg.model.kwargs)
    return sum(p.numel() for p in model.parameters())


def run_ablation(cfg: Config, models: list[str], out: str | Path, *, progress: bool = True) -> list[dict]:
    """Train + evaluate ``models`` with ``cfg`` (only the model name changes); returns the table rows."""
    unknown = [m for m in models if m not in list_models()]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(list_models())}")
    if len(set(models)) != len(models):
        raise ValueError("--models lists a model twice")
    out = Path(out)
    rows = []
    for name in models:
        run_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name=name))
        if progress:
            print(f"== {name}")
        train(run_cfg, out / name, progress=progress)
        result = evaluate_run(out / name, progress=progress)
        rows.append({
            "model": name,
            "params": _param_count(run_cfg, len(result["classes"])),
            "clip_top1": result["clip_top1"],
            "video_top1": result["video_top1"],
        })
    write_table(rows, out / TABLE, cfg)
    plot_rows(rows, out / CHART)
    (out / "ablation.json").write_text(json.dumps(rows, indent=1))
    return rows


def write_table(rows: list[dict], path: Path, cfg: Config) -> None:
    lines = [
        "# Ablation",
        "",
        f"Recipe: {cfg.data.frames} frames, interval {cfg.data.interval}, input {cfg.data.input_size}, "
        f"{cfg.train.epochs} epochs, batch {cfg.train.batch_size}, lr {cfg.train.lr}, seed {cfg.seed}; "
        f"split {cfg.data.split} of {cfg.data.splits}.",
        "",
        "| model | params | clip top-1 | video top-1 |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {r['model']} | {r['params']:,} | {r['clip_top1']:.4f} | {r['video_top1']:.4f} |" for r in rows]
    path.write_text("\n".join(lines) + "\n")


def plot_rows(rows: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(rows) + 2), 4))
    x = range(len(rows))
    w = 0.38
    clip = [r["clip_top1"] for r in rows]
    video = [r["video_top1"] for r in rows]
    ax.bar([i - w / 2 for i in x], clip, w, label="clip top-1")
    bars = ax.bar([i + w / 2 for i in x], video, w, label="video top-1")
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(list(x), [r["model"] for r in rows], rotation=20, ha="right")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("accuracy")
    ax.set_title("Ablation: same recipe and seed", pad=28)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
