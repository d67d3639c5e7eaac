"""The summary table of ``benchmarks/gpu.sh`` from the JSON files its steps wrote into RESULTS."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch


def main(res: Path) -> None:
    def load(name: str):
        p = res / name
        return json.loads(p.read_text()) if p.is_file() else None

    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (smoke run)"
    print(f"\n== dualstream GPU benchmark: {name}, {os.cpu_count()} cores, torch {torch.__version__} ==")
    model, loader, ev = load("model.json"), load("loader.json"), load("evaluate.json")
    ceiling = None
    if model:
        r = model["rows"][0]
        ceiling = r["clips_per_s"]
        print(f"model only: {r['model']} {r['size']}px {r['precision']} batch {r['batch']} train step: "
              f"{ceiling:,.0f} clips/s")
    if loader:
        print(f"loader, {loader['workers']} workers, clips/s (per worker): handed over | network-ready on "
              f"{loader['device']}")
        for k, v in loader["variants"].items():
            print(f"  {k:<15} {v['handover_clips_per_s']:>9,.1f} ({v['handover_clips_per_s_per_worker']:>7,.1f})  |  "
                  f"{v['clips_per_s']:>9,.1f} ({v['clips_per_s_per_worker']:>7,.1f})")
    for run in ("device-jpeg", "device-packed"):
        metrics, info = res / f"train-{run}.jsonl", load(f"train-{run}-run.json")
        if not metrics.is_file() or info is None:
            print(f"dualstream train ({run}): no result")
            continue
        lines = [json.loads(x) for x in metrics.read_text().splitlines()]
        rates = [x["time"]["clips_per_s"] for x in lines]
        share = f" = {100 * max(rates) / ceiling:.0f} % of model only" if ceiling else ""
        print(f"dualstream train {info['model']} {info['precision']} ({run}, pipeline {info['pipeline']}): clips/s "
              f"per epoch {', '.join(f'{x:,.0f}' for x in rates)}; best {max(rates):,.0f}{share}; "
              f"{lines[-1]['train_clips']} clips per epoch")
    if ev:
        print(f"dualstream evaluate, device pipeline: {ev['views']} views, {ev['views_per_s']:,.0f} views/s "
              f"(start-up included); model forward only {ev['forward_clips_per_s']:,.0f} clips/s")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
