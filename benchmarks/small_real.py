"""Recipe search for small real sets: ../shared/data/weizmann3 (3 person-disjoint folds) and egogest10
(3 recording-disjoint folds), with the same recipe.

    python benchmarks/small_real.py --variants base,bound3 --models flow_only_small --folds 1,2,3 --seeds 0
    python benchmarks/small_real.py --data egogest10 --variants base,interval --folds 1,2,3

Each variant is a list of ``--set`` overrides on top of ``--config`` (default configs/small_real.yaml).
Settings are compared on the *validation* part carved from each fold's train list (whole people,
``data.val_fraction``): that is the figure to choose by. The test figure of each fold is printed too,
for the record, but choosing on it would make it optimistic.

The caches (short side, flow bound) are prepared once under --work and shared by every run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import cv2  # noqa: E402
import torch  # noqa: E402

from dualstream.config import load_config  # noqa: E402
from dualstream.prepare.common import PrepareOptions
from dualstream.prepare.run import prepare_dataset  # noqa: E402
from dualstream.engine.evaluate import evaluate_run  # noqa: E402
from dualstream.engine.train import train  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
DATA = SHARED / "weizmann3"

# name -> (prepare short side, flow bound, overrides)
VARIANTS: dict[str, tuple[int, float, list[str]]] = {
    # the demo recipe's input (prepare's default 128 px short side, flow bound 20 px), the recipe's training
    "input_demo": (128, 20.0, ["data.flow_bound=20.0"]),
    # the demo recipe's training as well (25 epochs of one clip per video, no augmentation but crop/flip)
    "demo": (128, 20.0, ["data.flow_bound=20.0", "train.steps=0", "train.epochs=25", "train.batch_size=16",
                         "data.temporal_jitter=false", "data.colour_jitter=0.0", "train.modality_dropout=0.0",
                         "data.crop_scale_min=0.8", "data.eval_clips=5", "data.val_fraction=0.0"]),
    # the demo recipe's training on the recipe's input (64 px short side, flow bound 3 px)
    "demo_input_fixed": (64, 3.0, ["train.steps=0", "train.epochs=25", "train.batch_size=16", "data.temporal_jitter=false",
                                   "data.colour_jitter=0.0", "train.modality_dropout=0.0", "data.crop_scale_min=0.8",
                                   "data.eval_clips=5", "data.val_fraction=0.0"]),
    "bound20": (64, 20.0, ["data.flow_bound=20.0"]),
    "bound6": (64, 6.0, ["data.flow_bound=6.0"]),
    "bound3": (64, 3.0, ["data.flow_bound=3.0"]),
    "s128b6": (128, 6.0, ["data.flow_bound=6.0"]),
    "base": (64, 3.0, []),
    "nojitter": (64, 3.0, ["data.temporal_jitter=false"]),
    "nocolour": (64, 3.0, ["data.colour_jitter=0.0"]),
    "nomoddrop": (64, 3.0, ["train.modality_dropout=0.0"]),
    "moddrop5": (64, 3.0, ["train.modality_dropout=0.5"]),
    "rgbdrop5": (64, 3.0, ["train.modality_dropout=0.5", "train.modality_dropout_rgb=1.0"]),
    "aux5": (64, 3.0, ["train.aux_loss=0.5"]),
    "centred": (64, 3.0, ["model.kwargs.rgb_centred=true"]),
    "centredaux1": (64, 3.0, ["model.kwargs.rgb_centred=true", "train.aux_loss=1.0"]),
    "aux1": (64, 3.0, ["train.aux_loss=1.0"]),
    "aux1rgbdrop5": (64, 3.0, ["train.aux_loss=1.0", "train.modality_dropout=0.5", "train.modality_dropout_rgb=1.0"]),
    "wd": (64, 3.0, ["train.weight_decay=0.0005"]),
    "ls": (64, 3.0, ["train.label_smoothing=0.1"]),
    "crop6": (64, 3.0, ["data.crop_scale_min=0.6"]),
    "gamma0": (64, 3.0, ["model.kwargs.gamma_init=0.0"]),
    "steps600": (64, 3.0, ["train.steps=600"]),
    "steps150": (64, 3.0, ["train.steps=150"]),
    "interval2": (64, 3.0, ["data.interval=2"]),
    "interval6": (64, 3.0, ["data.interval=6"]),
    # egogest10 (issue 18): the recipe before spread sampling (10 frames at interval 4, flip on), and what
    # each of its changes gives on its own
    "interval": (64, 3.0, ["data.sampling=interval", "data.flip=true", "train.steps=150"]),
    "interval_noflip_s600_i7": (64, 3.0, ["data.sampling=interval", "data.interval=7", "train.steps=600"]),
    "flip": (64, 3.0, ["data.flip=true"]),
    "frames10": (64, 3.0, ["data.frames=10"]),
    "frames24": (64, 3.0, ["data.frames=24"]),
    "frames6": (64, 3.0, ["data.frames=6"]),
    "span1": (64, 3.0, ["data.span_min=1.0"]),
    "span08": (64, 3.0, ["data.span_min=0.8"]),
    "span06": (64, 3.0, ["data.span_min=0.6"]),
    "nojitter_spread": (64, 3.0, ["data.temporal_jitter=false"]),
    "steps300": (64, 3.0, ["train.steps=300"]),
    "steps900": (64, 3.0, ["train.steps=900"]),
}


def cache_for(work: Path, short_side: int, bound: float) -> Path:
    cache = work / DATA.name / f"cache_s{short_side}_b{bound:g}"
    prepare_dataset(DATA / "videos", cache, PrepareOptions(flow="dis", short_side=short_side, bound=bound),
                    workers=2, progress=False)
    return cache


def flow_stats(work: Path) -> None:
    """What the flow input looks like for each prepared cache: motion in px, one uint8 step, and the
    network's input (px / bound, scaled with the crop's resize to the 64 px input)."""
    import numpy as np

    from dualstream.cache import load_frames_u8
    from dualstream.video import find_videos
    from dualstream.prepare.run import video_key
    from dualstream.flow import dequantize_flow

    print("| prepare | \\|flow\\| px: mean / p99 (all pixels) | share < 1 step | uint8 step px | levels at p99 | network input p99 |")
    print("|---|---:|---:|---:|---:|---:|")
    for short_side, bound in ((128, 20.0), (64, 20.0), (64, 3.0)):
        cache = cache_for(work, short_side, bound)
        mags = []
        for rel in find_videos(DATA / "videos"):
            _, q = load_frames_u8(cache / video_key(rel), list(range(3, 40, 4)))
            f = dequantize_flow(q.transpose(0, 3, 1, 2), bound)
            mag = np.hypot(f[:, 0], f[:, 1])
            mags.append(mag.ravel())
        m = np.concatenate(mags)
        p99 = float(np.percentile(m, 99))
        step = 2 * bound / 255
        print(f"| --short-side {short_side} --flow-bound {bound:g} | {m.mean():.2f} / {p99:.2f} | "
              f"{(m < step).mean():.2f} | {step:.3f} | "
              f"{p99 / step:.0f} | {p99 / bound * 64 / short_side:.3f} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs" / "small_real.yaml"))
    p.add_argument("--data", default="weizmann3", help="a set under --shared with videos/ and ucfTrainTestlist/")
    p.add_argument("--shared", default=str(SHARED), help="the shared data folder (default ../shared/data)")
    p.add_argument("--variants", default="base")
    p.add_argument("--models", default="early_fusion_small")
    p.add_argument("--folds", default="1,2,3")
    p.add_argument("--seeds", default="0")
    p.add_argument("--work", default="/tmp/dualstream_small_real")
    p.add_argument("--set", action="append", default=[], help="extra override for every run")
    p.add_argument("--out", default=None, help="append one JSON line per run here")
    p.add_argument("--flow-stats", action="store_true", help="only print the flow input's statistics per cache")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: fastest for these small models on a busy CPU)")
    args = p.parse_args()
    global DATA
    DATA = Path(args.shared) / args.data
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found")
        return 0
    work = Path(args.work)
    if args.flow_stats:
        flow_stats(work)
        return 0
    folds = [int(f) for f in args.folds.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    summary = []
    for variant in args.variants.split(","):
        short_side, bound, sets = VARIANTS[variant]
        cache = cache_for(work, short_side, bound)
        for model in args.models.split(","):
            vals, tests = [], []
            for fold in folds:
                for seed in seeds:
                    run = work / "runs" / DATA.name / f"{variant}_{model}_f{fold}_s{seed}"
                    cfg = load_config(args.config, [f"data.cache={cache}", f"data.splits={DATA / 'ucfTrainTestlist'}",
                                                    f"data.split={fold}", f"model.name={model}", f"seed={seed}",
                                                    "data.num_workers=0", *sets, *args.set])
                    t0 = time.perf_counter()
                    history = train(cfg, run, progress=False)
                    result = evaluate_run(run, progress=False, plots=False)
                    chosen = [h for h in history if h.get("best")] or history[-1:]
                    val = chosen[-1].get("val_acc", float("nan"))
                    vals.append(val)
                    tests.append(result["video_top1"])
                    row = {"data": DATA.name, "variant": variant, "model": model, "fold": fold, "seed": seed, "val_acc": val,
                           "chosen_epoch": chosen[-1]["epoch"], "epochs": len(history),
                           "test_video_top1": result["video_top1"], "seconds": round(time.perf_counter() - t0, 1)}
                    print(json.dumps(row), flush=True)
                    if args.out:
                        with open(args.out, "a") as fh:
                            fh.write(json.dumps(row) + "\n")
            sd = statistics.pstdev
            val = "val -" if any(v != v for v in vals) else f"val {statistics.mean(vals):.3f} +- {sd(vals):.3f}"
            summary.append(f"{variant:<16} {model:<22} {val}   test {statistics.mean(tests):.3f} +- {sd(tests):.3f}"
                           f"   (n={len(vals)})")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
