"""Accuracy and training time of the demo recipe per data pipeline, over seeds, in one run.

    PYTHONPATH=src python benchmarks/pipelines.py [--preset hard] [--seeds 0 1 2] [--pipelines workers device]
                                                  [--workers 0] [--json FILE]

Generates the built-in synthetic set (``--preset``; ``hard``: colour x vibration classes, where
neither stream alone can reach 1.0), prepares it as the demo does (DIS flow, short side 96), then
trains and evaluates the demo recipe once per (pipeline, seed) on the same cache. Prints per
pipeline the video top-1 (mean +- std over seeds, and each run) and the training seconds (the
sum of the epochs' ``train_s``). A pipeline changes where clips are cut (``data.pipeline``: ``workers``,
``data.clips.cut_clip`` in the loader workers, or ``device``, its batched torch twin on the training
device); the clips, augmentation draws and filter rule are the same (the two agree within one uint8
level), so differences come from that rounding and from speed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from dualstream.config import demo_config_path, load_config
from dualstream.prepare.common import PrepareOptions
from dualstream.prepare.run import prepare_dataset
from dualstream.prepare.synthetic import SyntheticSpec, generate
from dualstream.engine.evaluate import evaluate_run
from dualstream.engine.train import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="hard", choices=("default", "hard"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--pipelines", nargs="+", default=["workers", "device"], choices=("workers", "device"))
    ap.add_argument("--workers", type=int, default=0, help="data.num_workers (default 0, as the demo)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dualstream-pipelines-"))
    try:
        spec = SyntheticSpec(preset=args.preset)
        generate(work / "data", spec, progress=False)
        prepare_dataset(work / "data" / "videos", work / "cache", PrepareOptions(flow="dis", short_side=spec.size),
                        progress=False)
        runs: dict[str, list[dict]] = {p: [] for p in args.pipelines}
        for seed in args.seeds:
            for pipeline in args.pipelines:
                cfg = load_config(demo_config_path(), [
                    f"data.cache={json.dumps(str(work / 'cache'))}",
                    f"data.splits={json.dumps(str(work / 'data' / 'ucfTrainTestlist'))}",
                    f"data.pipeline={pipeline}", f"data.num_workers={args.workers}", f"seed={seed}"])
                run = work / f"run-{pipeline}-{seed}"
                t0 = time.perf_counter()
                lines = train(cfg, run, progress=False)
                result = evaluate_run(run, progress=False, plots=False)
                row = {"seed": seed, "video_top1": result["video_top1"], "clip_top1": result["clip_top1"],
                       "train_s": round(sum(line["time"]["train_s"] for line in lines), 1),
                       "wall_s": round(time.perf_counter() - t0, 1)}
                runs[pipeline].append(row)
                print(f"{pipeline:<8} seed {seed}: video_top1 {row['video_top1']:.4f}, train {row['train_s']} s",
                      flush=True)
        print(f"\n{args.preset} preset, demo recipe, {len(args.seeds)} seeds, data.num_workers={args.workers}")
        print(f"{'pipeline':<10} {'video top-1 (mean +- std)':>26} {'runs':>24} {'train s (mean)':>15}")
        for pipeline, rows in runs.items():
            acc = [r["video_top1"] for r in rows]
            sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
            each = " ".join(f"{a:.3f}" for a in acc)
            print(f"{pipeline:<10} {statistics.mean(acc):>17.3f} +- {sd:.3f} {each:>24} "
                  f"{statistics.mean(r['train_s'] for r in rows):>15.1f}")
        if args.json:
            out = {"preset": args.preset, "workers": args.workers, "runs": runs}
            Path(args.json).write_text(json.dumps(out, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
