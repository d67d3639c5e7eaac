"""``dualstream report``: a Markdown table comparing evaluated runs, with the mean over UCF-101 splits 1-3."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..config import load_config
from ..files import atomic_write_text

COLUMNS = ["run", "recipe", "model", "params", "split", "clip top-1", "video top-1", "top-5", "views/video",
           "epochs", "wall time"]
MEAN_COLUMNS = ["recipe", "model", "params", "clip top-1", "video top-1", "top-5", "epochs", "wall time (total)"]


def read_run(run: str | Path) -> dict:
    """What the report shows about one run (needs config.yaml, run.json, metrics.jsonl and eval.json)."""
    run = Path(run)
    for name in ("config.yaml", "run.json", "metrics.jsonl", "eval.json"):
        if not (run / name).is_file():
            hint = f"; run `dualstream evaluate --run {run}` first" if name == "eval.json" else ""
            raise FileNotFoundError(f"{run}: no {name} (not a trained, evaluated run){hint}")
    info = json.loads((run / "run.json").read_text())
    ev = json.loads((run / "eval.json").read_text())
    cfg = load_config(run / "config.yaml")  # checked and bounded as for train: a damaged one is one line
    epochs = sum(1 for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip())
    return {
        "run": str(run), "recipe": info.get("recipe", cfg.model.name), "model": cfg.model.name,
        "params": info["params"], "split": ev.get("split", cfg.data.split), "clip_top1": ev["clip_top1"],
        "video_top1": ev["video_top1"], "top5": ev["top5"], "views": ev.get("views_per_video"), "epochs": epochs,
        "wall_s": info.get("wall_s", 0.0), "held_out": ev.get("split") == ev.get("trained_split", ev.get("split")),
    }


def _wall(seconds: float) -> str:
    h, rest = divmod(int(round(seconds)), 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _row(r: dict) -> list[str]:
    split = str(r["split"]) + ("" if r["held_out"] else " (not held out)")
    return [f"`{r['run']}`", r["recipe"], r["model"], f"{r['params']:,}", split, _pct(r["clip_top1"]),
            _pct(r["video_top1"]), _pct(r["top5"]), str(r["views"]), str(r["epochs"]), _wall(r["wall_s"])]


def split_means(rows: list[dict]) -> list[list[str]]:
    """Rows (``MEAN_COLUMNS``) of the mean over splits 1-3 of each recipe family (recipe without ``splitN``)."""
    families: dict[tuple[str, str], dict[int, dict]] = {}
    for r in rows:
        if r["held_out"]:
            name = re.sub(r"_?split[123]\b", "", r["recipe"])
            families.setdefault((name, r["model"]), {})[r["split"]] = r
    means = []
    for (name, model), by_split in families.items():
        if sorted(by_split) != [1, 2, 3]:
            continue
        group = [by_split[s] for s in (1, 2, 3)]
        means.append([name, model, f"{group[0]['params']:,}",
                      *(_pct(sum(g[k] for g in group) / 3) for k in ("clip_top1", "video_top1", "top5")),
                      "/".join(str(g["epochs"]) for g in group), _wall(sum(g["wall_s"] for g in group))])
    return means


def _table(columns: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(row) + " |" for row in [columns, *rows]]
    return [lines[0], "|" + "|".join("---" for _ in columns) + "|", *lines[1:]]


def format_report(rows: list[dict]) -> str:
    lines = ["# Run comparison", "", "Accuracies in %. Video top-1/top-5: softmax averaged over the views of each "
             "test video; clip top-1: each view alone.", "", *_table(COLUMNS, [_row(r) for r in rows])]
    means = split_means(rows)
    if means:
        lines += ["", "## Mean over UCF-101 splits 1-3", "", *_table(MEAN_COLUMNS, means)]
    return "\n".join(lines) + "\n"


def write_report(runs: list[str | Path], out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, format_report([read_run(r) for r in runs]))
    return out
