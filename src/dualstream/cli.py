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
    from .data.ucf101 import SplitError
    from .engine.checkpoint import CheckpointError
    from .video import VideoReadError

    return (UserError, ConfigError, CacheError, SplitError, CheckpointError, VideoReadError,
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


def cmd_prepare(args: argparse.Namespace) -> int:
    from .data.prepare import PrepareOptions, prepare_dataset

    try:
        opts = PrepareOptions(flow=args.flow, short_side=args.short_side, device=args.device)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    summary = prepare_dataset(args.videos, args.out, opts, workers=args.workers, progress=not args.quiet)
    print(summary.line(Path(args.out)))
    if summary.prepared + summary.skipped == 0:
        return 1
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .engine.train import CONFIG, train

    config = args.config
    if config is None:
        if not args.resume:
            raise UserError("--config is required (without it, --resume continues with RUN/config.yaml)")
        config = Path(args.out) / CONFIG
    cfg = load_config(config, args.set or [])
    if not cfg.data.cache or not cfg.data.splits:
        raise UserError("data.cache and data.splits must be set (in the config or with --set)")
    recipe = Path(args.config).stem if args.config else None
    history = train(cfg, args.out, resume=args.resume, progress=not args.quiet, recipe=recipe)
    if history and int(os.environ.get("RANK", "0")) == 0:
        last = history[-1]
        print(f"trained {cfg.model.name} for {last['epoch'] + 1} epochs: test_acc={last['test_acc']:.4f} -> {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .engine.evaluate import EVAL_JSON, evaluate_run

    if (args.run is None) == (args.run_option is None):
        raise UserError("give the run folder once: --run RUN (or RUN)")
    args.run = args.run or args.run_option
    result = evaluate_run(args.run, clips=args.clips, crops=args.crops, flip=args.flip, split=args.split,
                          progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"clip_top1={result['clip_top1']:.4f} video_top1={result['video_top1']:.4f} "
              f"top5={result['top5']:.4f} videos={result['num_videos']} views={result['views_per_video']} "
              f"mistakes={result['num_mistakes']} -> {Path(args.run) / EVAL_JSON}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report.markdown import write_report

    out = write_report(args.runs, args.out)
    print(out.read_text(), end="")
    print(f"-> {out}", file=sys.stderr)
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
    pr.add_argument("--short-side", type=int, default=128, help="resize so the short side is this (0: keep)")
    pr.add_argument("--workers", type=int, default=0, help="worker processes (default: all cores)")
    pr.add_argument("--device", default="cpu", help="device for the PyTorch flow methods")
    pr.set_defaults(func=cmd_prepare)

    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("--config", help="YAML recipe, e.g. configs/demo_synthetic.yaml (optional with --resume)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--resume", action="store_true", help="continue exactly from the run's last checkpoint")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a run on its test split (RUN/eval.json, mistakes.csv, confusion.png)")
    e.add_argument("--run", dest="run_option", metavar="RUN", help="run folder")
    e.add_argument("run", nargs="?", metavar="RUN", help="run folder, also positional (what torchrun can pass on)")
    e.add_argument("--clips", type=int, default=None,
                   help="frame offsets per video (default: data.eval_clips; >= data.interval: all offsets)")
    e.add_argument("--crops", type=int, choices=(1, 3), default=None, help="crops per clip (default: data.eval_crops)")
    e.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="also score mirrored clips (default: data.eval_flip)")
    e.add_argument("--split", type=int, default=None, help="test list of this split (default: the run's)")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("report", help="Markdown comparison of evaluated runs (mean over splits 1-3 when all given)")
    r.add_argument("runs", nargs="+", metavar="RUN")
    r.add_argument("--out", default="report.md", help="Markdown file to write (default: report.md)")
    r.set_defaults(func=cmd_report)

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
