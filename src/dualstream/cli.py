"""The ``dualstream`` command: one subcommand per stage; parsing here, logic in the modules."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__


class UserError(Exception):
    """An error the user can fix; printed as one line without a traceback."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from .config import ConfigError
    from .data.cache import CacheError
    from .data.import_rawframes import RawframesError
    from .data.prepare import PrepareError
    from .data.ucf101 import SplitError
    from .engine.checkpoint import CheckpointError
    from .video import VideoReadError

    return (UserError, ConfigError, CacheError, SplitError, PrepareError, RawframesError, CheckpointError, VideoReadError,
            FileNotFoundError, FloatingPointError)


def demo_config_path() -> Path:
    return Path(__file__).parent / "configs" / "demo_synthetic.yaml"


def cmd_generate(args: argparse.Namespace) -> int:
    from .data.synthetic import SyntheticSpec, generate

    try:
        spec = SyntheticSpec(classes=args.classes, videos_per_class=args.videos_per_class,
                             frames=args.frames, size=args.size, seed=args.seed)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    out = generate(args.out, spec, progress=not args.quiet)
    print(f"wrote {spec.classes * spec.videos_per_class} videos to {out / 'videos'} and splits to {out / 'ucfTrainTestlist'}")
    return 0


def _listed_videos(splits: str, videos: str) -> list[str]:
    """Every video listed by the split files in ``splits``, after checking they all exist (before any work)."""
    from .data.ucf101 import SPLITS, read_split, validate_split

    present = [n for n in SPLITS if (Path(splits) / f"trainlist{n:02d}.txt").is_file()]
    if not present:
        raise UserError(f"{splits}: no trainlist0N.txt found")
    listed: set[str] = set()
    for n in present:
        split = read_split(splits, n)
        validate_split(split, where=f"split {n} of {splits}", videos_dir=videos)
        listed.update(e.path for e in split.train + split.test)
    return sorted(listed)


def cmd_prepare(args: argparse.Namespace) -> int:
    from .data.prepare import PrepareOptions, parse_shard, prepare_dataset
    from .data.schedule import SampleSchedule

    schedule = None
    if args.config and not args.only_sampled:
        raise UserError("--config only sets the schedule of --only-sampled; add --only-sampled or drop --config")
    if args.only_sampled:
        from .config import load_config

        d = load_config(args.config).data
        schedule = SampleSchedule(frames=d.frames, interval=d.interval, offsets=tuple(d.offsets), eval_clips=d.eval_clips)
    try:
        opts = PrepareOptions(flow=args.flow, short_side=args.short_side, device=args.device, schedule=schedule)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    shard = parse_shard(args.shard) if args.shard else None
    videos = _listed_videos(args.splits, args.videos) if args.splits else None
    summary = prepare_dataset(args.videos, args.out, opts, workers=args.workers, shard=shard,
                              executor=args.executor, videos=videos, progress=not args.quiet)
    print(summary.line(Path(args.out)))
    if summary.prepared + summary.skipped == 0:
        return 1
    return 0


def cmd_check_split(args: argparse.Namespace) -> int:
    from .data.make_split import compile_group_regex
    from .data.ucf101 import SPLITS, check_group_overlap, read_split, split_summary, validate_split

    pattern = compile_group_regex(args.group_regex)
    splits = [args.split] if args.split else [n for n in SPLITS if (Path(args.splits) / f"trainlist{n:02d}.txt").is_file()]
    if not splits:
        raise UserError(f"{args.splits}: no trainlist0N.txt found")
    leaking = 0
    for n in splits:
        split = read_split(args.splits, n)
        where = f"split {n} of {args.splits}"
        validate_split(split, where=where, videos_dir=args.videos)
        overlap = check_group_overlap(split, allow=True, where=where, group_re=pattern)
        leaking += bool(overlap)
        print(f"split {n}: " + split_summary(split, overlap))
    if leaking and args.allow_group_overlap:
        print(f"{leaking} split(s) share groups between train and test (allowed by --allow-group-overlap)",
              file=sys.stderr)
    elif leaking:
        print(f"{leaking} split(s) share groups between train and test: training refuses them "
              "unless data.allow_group_overlap=true", file=sys.stderr)
        return 1
    return 0


def cmd_make_split(args: argparse.Namespace) -> int:
    from .data.make_split import make_split

    counts = make_split(args.videos, args.out, test_fraction=args.test_fraction, group_regex=args.group_regex,
                        seed=args.seed)
    print(f"wrote split 1 to {args.out}: classes {counts['classes']}, train {counts['train']}, "
          f"test {counts['test']}, groups {counts['groups']} (no group on both sides)")
    return 0


def cmd_import_rawframes(args: argparse.Namespace) -> int:
    from .data.import_rawframes import import_rawframes

    summary = import_rawframes(args.src, args.out, flow_method=args.flow_method, flow_bound=args.flow_bound,
                               threads=args.threads, progress=not args.quiet)
    print(summary.line(Path(args.out)))
    return 0 if summary.imported + summary.skipped else 1


def cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .engine.train import train

    overrides = (args.set or []) + (["data.allow_group_overlap=true"] if args.allow_group_overlap else [])
    cfg = load_config(args.config, overrides)
    if not cfg.data.cache or not cfg.data.splits:
        raise UserError("data.cache and data.splits must be set (in the config or with --set)")
    history = train(cfg, args.out, resume=args.resume, progress=not args.quiet)
    if history:
        last = history[-1]
        print(f"trained {cfg.model.name} for {last['epoch'] + 1} epochs: test_acc={last['test_acc']:.4f} -> {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .engine.evaluate import EVAL_JSON, evaluate_run

    result = evaluate_run(args.run, clips=args.clips, progress=not args.quiet)
    print(f"clip_top1={result['clip_top1']:.4f} video_top1={result['video_top1']:.4f} top5={result['top5']:.4f} "
          f"videos={result['num_videos']} -> {Path(args.run) / EVAL_JSON}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    result = run_demo(args.out, quiet=args.quiet)
    print(f"video_top1={result['video_top1']:.4f}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import format_model_table, summary_rows

    print(format_model_table(summary_rows(num_classes=args.num_classes)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dualstream", description="Dual-stream action recognition with self-attention fusion.")
    p.add_argument("--version", action="version", version=f"dualstream {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="write a synthetic action dataset in the UCF-101 layout")
    g.add_argument("--out", required=True, help="dataset folder to create")
    g.add_argument("--classes", type=int, default=6)
    g.add_argument("--videos-per-class", type=int, default=30)
    g.add_argument("--frames", type=int, default=48)
    g.add_argument("--size", type=int, default=96)
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_generate)

    pr = sub.add_parser("prepare", help="decode videos, compute optical flow, write the rawframes cache")
    pr.add_argument("--videos", required=True, help="folder of <Class>/<video> files")
    pr.add_argument("--out", required=True, help="cache folder")
    pr.add_argument("--flow", default="dis", help="flow method: dis (default), tvl1, farneback")
    pr.add_argument("--short-side", "--resize", dest="short_side", type=int, default=128,
                    help="resize so the short side is this (0: keep)")
    pr.add_argument("--workers", type=int, default=0, help="worker processes (default: all cores)")
    pr.add_argument("--device", default="cpu", help="device for the PyTorch flow methods")
    pr.add_argument("--shard", default=None, metavar="I/N",
                    help="prepare only part I of N (1-based), e.g. one per machine into one shared --out")
    pr.add_argument("--executor", default="process", choices=["process", "ray"],
                    help="process: local worker processes (default); ray: a Ray cluster (RAY_ADDRESS, else local)")
    pr.add_argument("--splits", default=None,
                    help="prepare only the videos these split files list, after checking that all exist")
    pr.add_argument("--only-sampled", action="store_true",
                    help="keep only the frames the sampling schedule can ask for (train offsets + eval clips)")
    pr.add_argument("--config", default=None,
                    help="with --only-sampled: take the schedule (data.frames, interval, offsets, eval_clips) "
                         "from this recipe (default: the paper's)")
    pr.set_defaults(func=cmd_prepare)

    cs = sub.add_parser("check-split", help="validate UCF-101-format split files; print counts and train/test group overlap")
    cs.add_argument("--splits", required=True, help="folder with classInd.txt, trainlist0N.txt, testlist0N.txt")
    cs.add_argument("--split", type=int, default=0, help="check only split N (default: every split present)")
    cs.add_argument("--videos", default=None, help="also check that every listed video exists in this folder")
    cs.add_argument("--group-regex", default=None, help="group from the file name (default: UCF-101's _gGG_cCC)")
    cs.add_argument("--allow-group-overlap", action="store_true", help="exit 0 even when train and test share a group")
    cs.set_defaults(func=cmd_check_split)

    ms = sub.add_parser("make-split", help="write a group-disjoint UCF-101-format split for a class-per-folder dataset")
    ms.add_argument("--videos", required=True, help="folder of <Class>/<video> files")
    ms.add_argument("--out", required=True, help="split folder to write (classInd.txt, trainlist01.txt, testlist01.txt)")
    ms.add_argument("--test-fraction", type=float, default=0.3, help="share of each class's videos in test (default 0.3)")
    ms.add_argument("--group-regex", default=None,
                    help="regex whose first capture group (or whole match) names a video's group "
                         "(default: UCF-101's _gGG_cCC); a video without a match is its own group")
    ms.add_argument("--seed", type=int, default=0)
    ms.set_defaults(func=cmd_make_split)

    ir = sub.add_parser("import-rawframes",
                        help="adopt frames + flow extracted by MMAction2 (img_/flow_x_/flow_y_%%05d.jpg): validate, write manifests")
    ir.add_argument("--src", required=True, help="folder of <Class>/<video>/ rawframes (build_rawframes.py --level 2)")
    ir.add_argument("--out", required=True, help="cache folder (the same as --src: manifests written in place; "
                                                 "else files are hard-linked, or copied across file systems)")
    ir.add_argument("--flow-method", default="tvl1", help="how the flow was computed, recorded in the manifests (default tvl1)")
    ir.add_argument("--flow-bound", type=float, default=20.0, help="the +-px bound of the uint8 flow images (default 20)")
    ir.add_argument("--threads", type=int, default=8, help="threads for the file-system work (default 8)")
    ir.set_defaults(func=cmd_import_rawframes)

    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("--config", required=True, help="YAML recipe, e.g. configs/demo_synthetic.yaml")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    t.add_argument("--allow-group-overlap", action="store_true",
                   help="train even if train and test share a group (inflated accuracy; config.yaml records it)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a run on its test split (writes RUN/eval.json)")
    e.add_argument("--run", required=True)
    e.add_argument("--clips", type=int, default=None, help="clips per video (default: the config's)")
    e.set_defaults(func=cmd_evaluate)

    d = sub.add_parser("demo", help="generate -> prepare -> train -> evaluate on synthetic data")
    d.add_argument("--out", default="demo_out", help="working folder (default: demo_out)")
    d.set_defaults(func=cmd_demo)

    m = sub.add_parser("models", help="list the registered models with parameters and GFLOPs")
    m.add_argument("--num-classes", type=int, default=101, help="classes for the counts (default: 101, UCF-101)")
    m.set_defaults(func=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except _user_errors() as exc:
        if os.environ.get("DUALSTREAM_DEBUG"):
            raise
        print(f"dualstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dualstream {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
