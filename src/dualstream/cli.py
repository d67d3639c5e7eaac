"""The ``dualstream`` command: one subcommand per stage; parsing here, logic in the modules."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from . import __version__
from .data.ucf101 import GROUP_SCOPES

GROUP_SCOPE_HELP = ("auto (default): a group number that appears in several classes stays on one side for all "
                    "of them (recording-disjoint); dataset: always so; class: choose test groups class by class")


def demo_config_path() -> Path:
    """The demo recipe's path (config.py, imported on use: PyYAML is not needed to parse a command line)."""
    from .config import demo_config_path as path

    return path()


class UserError(Exception):
    """An error the user can fix; printed as one line without a traceback."""


#: (module, class) of every error a user can fix. Only modules already imported are looked at: an
#: exception class can only be raised once its module is loaded, and importing the others here would
#: pull in PyTorch for commands that never use it (the onnx runtime of predict, live and serve).
_USER_ERRORS = (("config", "ConfigError"), ("cache", "CacheError"), ("data.ucf101", "SplitError"),
                ("prepare.common", "PrepareError"), ("prepare.import_rawframes", "RawframesError"),
                ("engine.checkpoint", "CheckpointError"), ("video", "VideoReadError"), ("inference.export", "ExportError"),
                ("flow", "FlowBackendError"), ("inference.package", "ModelPackageError"), ("inference.live", "LiveError"))


def _user_errors() -> tuple[type[BaseException], ...]:
    loaded = (getattr(sys.modules.get(f"{__package__}.{m}"), name, None) for m, name in _USER_ERRORS)
    return (UserError, *(c for c in loaded if c is not None), FileNotFoundError, NotADirectoryError,
            IsADirectoryError, PermissionError, FloatingPointError)


def _describe(exc: BaseException) -> str:
    """One line for a user error: an OSError as ``path: reason``, anything else its message."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _parser_generate(sub) -> None:
    a = sub.add_parser("generate", help="write a synthetic action dataset in the UCF-101 layout")
    a.add_argument("--out", required=True, help="dataset folder to create")
    a.add_argument("--classes", type=int, default=6)
    a.add_argument("--videos-per-class", type=int, default=30)
    a.add_argument("--frames", type=int, default=48)
    a.add_argument("--size", type=int, default=96)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--preset", choices=("default", "hard"), default="default",
                   help="default: motion-only classes (the demo); hard: colour x vibration classes with a distractor "
                        "and camera shake (flow cannot see the colour, RGB sampled every 4 frames the vibration)")
    a.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    from .prepare.synthetic import SyntheticSpec, generate

    try:
        spec = SyntheticSpec(classes=args.classes, videos_per_class=args.videos_per_class,
                             frames=args.frames, size=args.size, seed=args.seed, preset=args.preset)
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


def _parser_prepare(sub) -> None:
    a = sub.add_parser("prepare", help="decode videos, compute optical flow, write the rawframes cache")
    a.add_argument("--videos", required=True, help="folder of <Class>/<video> files")
    a.add_argument("--out", required=True, help="cache folder")
    a.add_argument("--flow", default="dis",
                   help="flow method: dis (default, OpenCV), farneback, opencv-tvl1, tvl1, tvl1-quality or brox "
                        "(PyTorch, batched)")
    a.add_argument("--short-side", "--resize", dest="short_side", type=int, default=128,
                   help="resize so the short side is this (0: keep)")
    a.add_argument("--flow-bound", type=float, default=20.0,
                   help="flow is clipped to +-this many px before it is stored as uint8 (default 20; small or "
                        "slow footage wants less, e.g. 4 for 64x64 clips; train with the same data.flow_bound)")
    a.add_argument("--workers", type=int, default=0, help="worker processes (default: all cores)")
    a.add_argument("--device", default="cpu", help="device for the PyTorch flow methods")
    a.add_argument("--shard", default=None, metavar="I/N",
                   help="prepare only part I of N (1-based), e.g. one per machine into one shared --out")
    a.add_argument("--executor", default="process", choices=["process", "ray"],
                   help="process: local worker processes (default); ray: a Ray cluster (RAY_ADDRESS, else local)")
    a.add_argument("--splits", default=None,
                   help="prepare only the videos these split files list, after checking that all exist")
    a.add_argument("--only-sampled", action="store_true",
                   help="keep only the frames the sampling schedule can ask for (train offsets + eval clips)")
    a.add_argument("--config", default=None,
                   help="with --only-sampled: take the schedule (data.frames, interval, offsets, eval_clips) "
                        "from this recipe (default: the paper's)")
    a.add_argument("--format", default="rawframes", choices=("rawframes", "packed"),
                   help="rawframes: JPEGs (default); packed: memory-mapped uint8 arrays per video, "
                        "about 12x the disk of the JPEGs, read without decoding (see `dualstream pack`)")
    a.set_defaults(func=cmd_prepare)


def cmd_prepare(args: argparse.Namespace) -> int:
    from .prepare.common import PrepareOptions
    from .prepare.run import parse_shard, prepare_dataset
    from .data.sampling import ClipSpec

    schedule = None
    if args.config and not args.only_sampled:
        raise UserError("--config only sets the schedule of --only-sampled; add --only-sampled or drop --config")
    if args.only_sampled:
        from .config import load_config

        d = load_config(args.config).data
        schedule = None if d.sampling == "spread" else ClipSpec.from_config(d)  # spread: every frame
        if schedule is None:
            print("note: data.sampling is spread: a clip may use any frame, so every frame is kept", file=sys.stderr)
    try:
        opts = PrepareOptions(flow=args.flow, short_side=args.short_side, bound=args.flow_bound, device=args.device,
                              schedule=schedule, format=args.format)
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


def _parser_pack(sub) -> None:
    a = sub.add_parser("pack", help="add a packed uint8 store to a rawframes cache (a clip is read without "
                       "decoding: for caches that fit in RAM or on fast disk)")
    a.add_argument("cache", help="cache folder written by `dualstream prepare` or `import-rawframes`")
    a.add_argument("--workers", type=int, default=0, help="worker processes (default: all cores)")
    a.add_argument("--drop-jpeg", action="store_true", help="remove the JPEGs once a video is packed")
    a.set_defaults(func=cmd_pack)


def cmd_pack(args: argparse.Namespace) -> int:
    from .prepare.pack import pack_cache

    if args.workers < 0:
        raise UserError("--workers must be >= 0 (0: all cores)")
    summary = pack_cache(args.cache, workers=args.workers, drop_jpeg=args.drop_jpeg, progress=not args.quiet)
    print(summary.line(Path(args.cache)))
    return 0


def _parser_flow(sub) -> None:
    a = sub.add_parser("flow", help="optical flow between two images -> .flo (+ colour PNG)")
    a.add_argument("frame_a")
    a.add_argument("frame_b")
    a.add_argument("--method", default="tvl1", help="opencv-dis, opencv-farneback, opencv-tvl1, tvl1 (default), "
                   "tvl1-quality (more accurate, slower), brox")
    a.add_argument("--out", required=True, help="output .flo file")
    a.add_argument("--png", default=None, help="also write the flow in colour (Middlebury wheel)")
    a.add_argument("--device", default="cpu", help="cpu or cuda (PyTorch methods)")
    a.set_defaults(func=cmd_flow)


def cmd_flow(args: argparse.Namespace) -> int:
    from .flow.command import run_flow_command

    try:
        run_flow_command(args.frame_a, args.frame_b, method=args.method, out=args.out, png=args.png, device=args.device)
    except (ValueError, RuntimeError) as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {args.out}" + (f" and {args.png}" if args.png else ""))
    return 0


def _parser_check_split(sub) -> None:
    a = sub.add_parser("check-split", help="validate UCF-101-format split files; print counts and train/test group overlap")
    a.add_argument("--splits", required=True, help="folder with classInd.txt, trainlist0N.txt, testlist0N.txt")
    a.add_argument("--split", type=int, default=0, help="check only split N (default: every split present)")
    a.add_argument("--videos", default=None, help="also check that every listed video exists in this folder")
    a.add_argument("--group-regex", default=None, help="group from the file name (default: UCF-101's _gGG_cCC)")
    a.add_argument("--allow-group-overlap", action="store_true", help="exit 0 even when train and test share a group")
    a.set_defaults(func=cmd_check_split)


def cmd_check_split(args: argparse.Namespace) -> int:
    from .data.make_split import compile_group_regex
    from .data.ucf101 import SPLITS, check_group_overlap, read_split, split_summary, validate_split

    pattern = compile_group_regex(args.group_regex)
    splits = [args.split] if args.split else [n for n in SPLITS if (Path(args.splits) / f"trainlist{n:02d}.txt").is_file()]
    if not splits:
        raise UserError(f"{args.splits}: no trainlist0N.txt found")
    leaking = shared = 0
    for n in splits:
        split = read_split(args.splits, n)
        where = f"split {n} of {args.splits}"
        validate_split(split, where=where, videos_dir=args.videos)
        overlap = check_group_overlap(split, allow=True, where=where, group_re=pattern)
        leaking += bool(overlap)
        across = split.shared_across_classes(pattern)
        shared += bool(across)
        print(f"split {n}: " + split_summary(split, overlap, across))
    if shared:
        print(f"note: {shared} split(s) put one group number on both sides in different classes: where a group "
              "number is one person or recording in every class, the split is not recording-disjoint "
              "(make-split keeps such groups on one side)", file=sys.stderr)
    if leaking and args.allow_group_overlap:
        print(f"{leaking} split(s) share groups between train and test (allowed by --allow-group-overlap)",
              file=sys.stderr)
    elif leaking:
        print(f"{leaking} split(s) share groups between train and test: training refuses them "
              "unless data.allow_group_overlap=true", file=sys.stderr)
        return 1
    return 0


def _parser_make_split(sub) -> None:
    a = sub.add_parser("make-split", help="write a group-disjoint UCF-101-format split for a class-per-folder dataset")
    a.add_argument("--videos", required=True, help="folder of <Class>/<video> files")
    a.add_argument("--out", required=True, help="split folder to write (classInd.txt, trainlist01.txt, testlist01.txt)")
    a.add_argument("--test-fraction", type=float, default=0.3, help="share of each class's videos in test (default 0.3)")
    a.add_argument("--group-regex", default=None,
                   help="regex whose first capture group (or whole match) names a video's group "
                        "(default: UCF-101's _gGG_cCC); a video without a match is its own group")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--group-scope", choices=GROUP_SCOPES, default="auto", help=GROUP_SCOPE_HELP)
    a.set_defaults(func=cmd_make_split)


def cmd_make_split(args: argparse.Namespace) -> int:
    from .data.make_split import make_split

    counts = make_split(args.videos, args.out, test_fraction=args.test_fraction, group_regex=args.group_regex,
                        seed=args.seed, group_scope=args.group_scope)
    sides = "no group number on both sides in any class" if counts["across"] else "no group on both sides"
    print(f"wrote split 1 to {args.out}: classes {counts['classes']}, train {counts['train']}, "
          f"test {counts['test']}, groups {counts['groups']} ({sides})")
    return 0


def _parser_import_rawframes(sub) -> None:
    a = sub.add_parser("import-rawframes",
                       help="adopt frames + flow extracted by MMAction2 (img_/flow_x_/flow_y_%%05d.jpg): validate, write manifests")
    a.add_argument("--src", required=True, help="folder of <Class>/<video>/ rawframes (build_rawframes.py --level 2)")
    a.add_argument("--out", required=True, help="cache folder (the same as --src: manifests written in place; "
                   "else files are hard-linked, or copied across file systems)")
    a.add_argument("--flow-method", default="tvl1", help="how the flow was computed, recorded in the manifests (default tvl1)")
    a.add_argument("--flow-bound", type=float, default=20.0, help="the +-px bound of the uint8 flow images (default 20)")
    a.add_argument("--threads", type=int, default=8, help="threads for the file-system work (default 8)")
    a.set_defaults(func=cmd_import_rawframes)


def cmd_import_rawframes(args: argparse.Namespace) -> int:
    from .prepare.import_rawframes import import_rawframes

    summary = import_rawframes(args.src, args.out, flow_method=args.flow_method, flow_bound=args.flow_bound,
                               threads=args.threads, progress=not args.quiet)
    print(summary.line(Path(args.out)))
    return 0 if summary.imported + summary.skipped else 1


def _parser_train(sub) -> None:
    a = sub.add_parser("train", help="train a model from a YAML config")
    a.add_argument("--config", help="YAML recipe, e.g. configs/demo_synthetic.yaml (optional with --resume)")
    a.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    a.add_argument("--out", required=True, help="run folder")
    a.add_argument("--resume", action="store_true", help="continue exactly from the run's last checkpoint")
    a.add_argument("--allow-group-overlap", action="store_true",
                   help="train even if train and test share a group (inflated accuracy; config.yaml records it)")
    a.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .engine.build import CONFIG
    from .engine.train import train

    config = args.config
    if config is None:
        if not args.resume:
            raise UserError("--config is required (without it, --resume continues with RUN/config.yaml)")
        config = Path(args.out) / CONFIG
    overrides = (args.set or []) + (["data.allow_group_overlap=true"] if args.allow_group_overlap else [])
    cfg = load_config(config, overrides)
    if not cfg.data.cache or not cfg.data.splits:
        raise UserError("data.cache and data.splits must be set (in the config or with --set)")
    recipe = Path(args.config).stem if args.config else None
    history = train(cfg, args.out, resume=args.resume, progress=not args.quiet, recipe=recipe)
    if history and int(os.environ.get("RANK", "0")) == 0:
        last = history[-1]
        print(f"trained {cfg.model.name} for {last['epoch'] + 1} epochs: test_acc={last['test_acc']:.4f} -> {args.out}")
    return 0


def _parser_evaluate(sub) -> None:
    a = sub.add_parser("evaluate", help="evaluate a run on its test split (RUN/eval.json, mistakes.csv, confusion.png)")
    a.add_argument("--run", dest="run_option", metavar="RUN", help="run folder")
    a.add_argument("run", nargs="?", metavar="RUN", help="run folder, also positional (what torchrun can pass on)")
    a.add_argument("--clips", type=int, default=None,
                   help="frame offsets per video (default: data.eval_clips; >= data.interval: all offsets)")
    a.add_argument("--crops", type=int, choices=(1, 3), default=None, help="crops per clip (default: data.eval_crops)")
    a.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="also score mirrored clips (default: data.eval_flip)")
    a.add_argument("--split", type=int, default=None, help="test list of this split (default: the run's)")
    a.set_defaults(func=cmd_evaluate)


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


def _parser_report(sub) -> None:
    a = sub.add_parser("report", help="Markdown comparison of evaluated runs (mean over splits 1-3 when all given)")
    a.add_argument("runs", nargs="+", metavar="RUN")
    a.add_argument("--out", default="report.md", help="Markdown file to write (default: report.md)")
    a.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from .report.markdown import write_report

    out = write_report(args.runs, args.out)
    print(out.read_text(), end="")
    print(f"-> {out}", file=sys.stderr)
    return 0


def _parser_demo(sub) -> None:
    a = sub.add_parser("demo", help="generate -> prepare -> train -> evaluate on synthetic data")
    a.add_argument("--out", default="demo_out", help="working folder (default: demo_out)")
    a.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    result = run_demo(args.out, quiet=args.quiet)
    print(f"video_top1={result['video_top1']:.4f}")
    return 0


def _int_list(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{option} expects comma-separated integers, e.g. 1,2,3, got {text!r}") from None


def _parser_ablation(sub) -> None:
    a = sub.add_parser("ablation", help="train + evaluate several models with one recipe over folds and seeds; "
                       "mean ± std table and chart")
    a.add_argument("--config", required=True)
    a.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    a.add_argument("--models", required=True, help="comma-separated model names (see `dualstream models`)")
    a.add_argument("--folds", default=None, metavar="K,K",
                   help="splits to train and test on, e.g. 1,2,3 (default: data.split)")
    a.add_argument("--seeds", default=None, metavar="S,S", help="seeds per split, e.g. 0,1,2 (default: seed)")
    a.add_argument("--out", required=True, help="folder for the runs, ablation.md and ablation.png")
    a.set_defaults(func=cmd_ablation)


def cmd_ablation(args: argparse.Namespace) -> int:
    from .ablation import CHART, TABLE, run_ablation
    from .config import load_config

    cfg = load_config(args.config, args.set or [])
    if not cfg.data.cache or not cfg.data.splits:
        raise UserError("data.cache and data.splits must be set (in the config or with --set)")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    folds, seeds = _int_list(args.folds, "--folds"), _int_list(args.seeds, "--seeds")
    try:
        rows = run_ablation(cfg, models, args.out, folds=folds, seeds=seeds, progress=not args.quiet)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    for r in rows:
        spread = f" ± {r['video_top1_std']:.4f} ({r['runs']} runs)" if r["runs"] > 1 else ""
        print(f"{r['model']:<28} params {r['params']:>11,}  clip_top1 {r['clip_top1']:.4f}  "
              f"video_top1 {r['video_top1']:.4f}{spread}")
    print(f"-> {Path(args.out) / TABLE}, {Path(args.out) / CHART}")
    return 0


def _parser_fit(sub) -> None:
    a = sub.add_parser("fit", help="make-split (group-disjoint) -> prepare -> train -> evaluate a folder of "
                       "<Class>/<video> files with a recipe")
    a.add_argument("--videos", required=True, help="folder of <Class>/<video> files")
    a.add_argument("--out", required=True, help="run folder (also holds the split and the prepared cache)")
    a.add_argument("--recipe", default="small_real",
                   help="a shipped recipe name (small_real, the default; demo_synthetic, ...) or a .yaml file")
    a.add_argument("--group-regex", default=None,
                   help="regex whose first capture group names a video's group (default: UCF-101's _gGG_cCC)")
    a.add_argument("--flow", default="dis", help="flow method for prepare (default dis)")
    a.add_argument("--test-fraction", type=float, default=0.3, help="share of each class's videos in test (default 0.3)")
    a.add_argument("--seed", type=int, default=0, help="seed of the split and of training")
    a.add_argument("--group-scope", choices=GROUP_SCOPES, default="auto", help=GROUP_SCOPE_HELP)
    a.add_argument("--workers", type=int, default=0, help="prepare worker processes (default: all cores)")
    a.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe key (repeatable)")
    a.set_defaults(func=cmd_fit)


def cmd_fit(args: argparse.Namespace) -> int:
    from .fit import fit

    result = fit(args.videos, args.out, recipe=args.recipe, group_regex=args.group_regex, flow=args.flow,
                 overrides=args.set or [], test_fraction=args.test_fraction, seed=args.seed, workers=args.workers,
                 progress=not args.quiet, group_scope=args.group_scope)
    if result.note:
        print(result.note, file=sys.stderr)
    print(result.clips)
    sides = "group numbers disjoint across classes" if result.across else "groups disjoint"
    print(f"video_top1={result.video_top1:.4f} clip_top1={result.clip_top1:.4f} "
          f"(train {result.train} videos, test {result.test}, {sides}) -> {result.run}")
    return 0


def load_predictor(args: argparse.Namespace):
    """The predictor for ``--model`` / ``--runtime`` / ``--device`` / ``--threads``; user errors in one line."""
    from .inference.runtime import load_predictor as load, resolve_runtime

    try:
        if resolve_runtime(args.model, args.runtime)[0] == "torch" and args.device != "cpu":
            _check_device(args.device)
        return load(args.model, runtime=args.runtime, device=args.device, threads=args.threads)
    except ValueError as exc:
        if type(exc) is not ValueError:  # ModelPackageError etc. reach main's handler as they are
            raise
        raise UserError(str(exc)) from None


def _parser_predict(sub) -> None:
    a = sub.add_parser("predict", help="top-k classes of videos with a trained model package")
    a.add_argument("videos", nargs="+", metavar="VIDEO", help="video files (any format OpenCV reads)")
    a.add_argument("--model", required=True,
                   help="run folder or model package (model.json + model.safetensors), or an exported model.onnx")
    _runtime_options(a)
    a.add_argument("--topk", type=int, default=5, help="classes to print (default 5)")
    a.add_argument("--clips", type=int, default=5,
                   help="clips per video at offsets spread over one interval, as evaluate (default 5)")
    a.add_argument("--json", action="store_true", help="one JSON line per video")
    a.add_argument("--explain", metavar="OUT.png",
                   help="write the frames, flow and fusion attention of the first video's first clip")
    a.add_argument("--timeline", action="store_true",
                   help="the top class of every window (one clip's frames) over the video, for long videos")
    a.add_argument("--stride", type=int, default=0,
                   help="with --timeline: frames between windows (default: one sampling step, the model's interval)")
    a.add_argument("--plot", metavar="OUT.png", help="with --timeline: draw the first video's timeline chart")
    a.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    import json

    from .inference.predict import format_top
    from .video import VideoReadError

    if args.topk < 1 or args.clips < 1:
        raise UserError("--topk and --clips must be >= 1")
    if args.explain and args.timeline:
        raise UserError("--explain and --timeline are separate views: give one of them")
    if args.plot and not args.timeline:
        raise UserError("--plot draws the timeline: add --timeline")
    if args.stride < 0:
        raise UserError("--stride must be >= 0 (0: one sampling step of the model, its interval)")
    predictor = load_predictor(args)
    failed = 0
    for i, video in enumerate(args.videos):
        try:
            if args.timeline:
                from .inference.timeline import format_timeline, predict_timeline, save_timeline_plot

                timeline = predict_timeline(predictor, video, stride=args.stride, progress=not args.quiet)
                print(json.dumps(timeline.to_dict(args.topk)) if args.json else format_timeline(timeline), flush=True)
                if args.plot and i == 0:
                    save_timeline_plot(args.plot, timeline)
                continue
            clips = predictor.clips(video, clips=args.clips)
        except VideoReadError as exc:  # one bad file does not stop the others
            print(f"dualstream predict: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        pred = predictor.run(clips, video=video, attention=bool(args.explain and i == 0))
        print(json.dumps(pred.to_dict(args.topk)) if args.json else format_top(pred, args.topk), flush=True)
        if args.explain and i == 0:
            from .inference.explain import save_explanation

            save_explanation(args.explain, clips, pred, topk=args.topk)
    return 2 if failed else 0


def _parser_live(sub) -> None:
    a = sub.add_parser("live", help="recognise actions on a webcam, stream or file as it plays (sliding window)")
    a.add_argument("source", metavar="SOURCE",
                   help="webcam index (0), stream URL OpenCV opens (rtsp://, http://...), or a video file")
    a.add_argument("--model", required=True, help="run folder or model package, or an exported model.onnx")
    # one network thread: the frame reader and the optical flow need the other cores (2 torch threads
    # on a busy 2-core machine measured 8 frames/s against 175 with one)
    _runtime_options(a, threads=1, threads_note="the reader and the flow use the other cores; 0: the runtime's choice")
    a.add_argument("--stride", type=int, default=0,
                   help="frames between predictions (default 0: one sampling step, the model's interval)")
    a.add_argument("--smooth", type=int, default=3, help="average the last K predictions (default 3)")
    a.add_argument("--topk", type=int, default=3, help="classes per prediction (default 3)")
    a.add_argument("--json", action="store_true",
                   help='one JSON line per prediction {"frame", "time", "top"}, and a JSON summary line')
    a.add_argument("--out", metavar="ANNOTATED.mp4", help="write the video with the label and a confidence bar")
    a.add_argument("--realtime", action="store_true",
                   help="keep up with the source: drop (and count) frames that arrive while busy; "
                        "a file is paced at its frame rate")
    a.add_argument("--timeout", type=float, default=10.0,
                   help="end when no frame arrives for this many seconds (default 10; 0: wait forever)")
    a.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (default 0: no limit)")
    a.set_defaults(func=cmd_live)


def cmd_live(args: argparse.Namespace) -> int:
    import json

    from .inference.live import LiveError, print_prediction, run_live

    if args.stride < 0 or args.smooth < 1 or args.topk < 1:
        raise UserError("--stride must be >= 0 (0: one sampling step of the model, its interval), --smooth and --topk >= 1")
    if args.timeout < 0 or args.max_frames < 0:
        raise UserError("--timeout and --max-frames must be >= 0 (0: no limit)")
    predictor = load_predictor(args)
    show = lambda pred: print_prediction(pred, predictor.classes, k=args.topk, as_json=args.json)  # noqa: E731
    try:
        summary = run_live(predictor, args.source, stride=args.stride, smooth=args.smooth, realtime=args.realtime,
                           timeout=args.timeout, out=args.out, max_frames=args.max_frames, on_prediction=show)
    except LiveError as exc:
        summary = getattr(exc, "summary", None)
        if summary is None or not summary.frames:
            raise
        print(f"dualstream live: {exc}", file=sys.stderr)
        print(json.dumps(summary.to_dict()) if args.json else summary.line(), flush=True)
        return 1
    if summary.ended == "stream ended":
        print(f"dualstream live: {args.source}: the stream ended after {summary.frames} frames", file=sys.stderr)
    print(json.dumps(summary.to_dict()) if args.json else summary.line(), flush=True)
    if args.out:
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _check_device(device: str) -> None:
    """A torch device the user named: one line when it is unknown or absent (before any work)."""
    from .flow._torch import resolve_device

    try:
        resolve_device(device)
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"--device {device}: {' '.join(str(exc).split())}") from None


def _parser_export(sub) -> None:
    a = sub.add_parser("export", help="export a model package to ONNX or TorchScript (with a parity check)")
    a.add_argument("--model", required=True, help="run folder or model package")
    a.add_argument("--format", required=True, choices=("onnx", "torchscript"))
    a.add_argument("--out", required=True, help="file to write (e.g. model.onnx, model.pt)")
    a.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from .inference.export import export_model

    print(export_model(args.model, fmt=args.format, out=args.out).line())
    return 0


def _parser_serve(sub) -> None:
    a = sub.add_parser("serve", help="web demo: upload a video, see the top-5 and the explanation")
    a.add_argument("--model", required=True, help="run folder or model package, or an exported model.onnx")
    _runtime_options(a)
    a.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    a.add_argument("--port", type=int, default=8000)
    a.add_argument("--max-upload-mb", type=float, default=200.0, help="largest accepted upload (default 200)")
    a.add_argument("--clips", type=int, default=5, help="clips per video (default 5)")
    a.add_argument("--allow-host", action="append", metavar="NAME",
                   help="also answer requests for this Host name (repeatable; default: localhost, 127.0.0.1, ::1 "
                        "and the --host address; needed to reach a server bound to 0.0.0.0 by its name)")
    a.add_argument("--docs", action="store_true",
                   help="serve the API docs at /docs, /redoc, /openapi.json (their page loads Swagger UI from a CDN)")
    a.add_argument("--timeout", type=float, default=30.0,
                   help="seconds a client may take to send its request headers, or pause in an upload (default 30)")
    a.add_argument("--max-frame-megapixels", type=float, default=8.3,
                   help="largest video frame accepted (default 8.3: 3840x2160); frames thinner than 10:1 are refused too")
    a.add_argument("--budget-frames", type=int, default=20_000,
                   help="most frames one request may decode, the timeline's included (default 20000; 413 beyond)")
    a.add_argument("--budget-megapixels", type=float, default=2_000.0,
                   help="most pixels one request may decode, summed over its frames (default 2000: "
                        "26000 frames of 320x240, 240 of 3840x2160; 413 beyond)")
    a.add_argument("--budget-seconds", type=float, default=60.0,
                   help="longest one prediction may run, from when it starts (default 60; 413 beyond)")
    a.add_argument("--max-uploads", type=int, default=4,
                   help="prediction requests in flight at once, uploading or predicting (default 4; 503 with "
                        "Retry-After beyond); disk held for uploads is at most twice this times --max-upload-mb")
    a.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from .serve import serve
    except ImportError as exc:
        raise UserError(f"serve needs the 'serve' extra ({exc.name} is missing): "
                        "pip install 'dualstream[serve]'") from None
    if args.max_upload_mb <= 0:
        raise UserError("--max-upload-mb must be positive")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0-65535, got {args.port}")
    if args.clips < 1:
        raise UserError("--clips must be >= 1")
    if args.timeout <= 0 or args.max_frame_megapixels <= 0:
        raise UserError("--timeout and --max-frame-megapixels must be positive")
    if args.budget_frames < 1 or args.max_uploads < 1:
        raise UserError("--budget-frames and --max-uploads must be >= 1")
    if not (args.budget_megapixels > 0 and args.budget_seconds > 0):  # NaN fails too
        raise UserError("--budget-megapixels and --budget-seconds must be positive")
    from .serve import DEFAULT_FRAME_LIMITS
    from .serve.guard import host_name
    from .video import DecodeBudget

    hosts = [h.strip() for item in args.allow_host or [] for h in item.split(",") if h.strip()]
    bad = [h for h in hosts if h != "*" and host_name(h) is None]
    if bad:
        raise UserError(f"--allow-host {bad[0]!r}: not a host name or address")
    limits = dataclasses.replace(DEFAULT_FRAME_LIMITS, max_pixels=int(args.max_frame_megapixels * 1e6))
    import socket

    try:  # before the model is loaded: a taken port or an address not of this machine is one line
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((args.host, args.port))
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    if args.host in ("0.0.0.0", "::", "") and not hosts:
        print("note: serving on every interface, but only requests for localhost, 127.0.0.1 or ::1 are "
              "answered; add this machine's name or address with --allow-host", file=sys.stderr)
    budget = DecodeBudget(max_frames=args.budget_frames, max_pixels=int(args.budget_megapixels * 1e6),
                          seconds=args.budget_seconds)
    serve(load_predictor(args), host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, clips=args.clips,
          docs=args.docs, allowed_hosts=hosts, frame_limits=limits, timeout_s=args.timeout, budget=budget,
          max_uploads=args.max_uploads)
    return 0


def _parser_models(sub) -> None:
    a = sub.add_parser("models", help="list the registered models with parameters and GFLOPs")
    a.add_argument("--num-classes", type=int, default=101, help="classes for the counts (default: 101, UCF-101)")
    a.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from .models import format_model_table, summary_rows

    if args.num_classes < 1:
        raise UserError(f"--num-classes must be >= 1, got {args.num_classes}")

    print(format_model_table(summary_rows(num_classes=args.num_classes)))
    return 0


def _runtime_options(p: argparse.ArgumentParser, *, threads: int = 0, threads_note: str = "its choice") -> None:
    p.add_argument("--runtime", choices=("torch", "onnx"), default=None,
                   help="torch (a run folder) or onnx (an exported .onnx, or RUN/model.onnx; no PyTorch needed); "
                        "default: onnx for a .onnx file, else torch")
    p.add_argument("--device", default="cpu", help="torch device for the model (default cpu; onnx: cpu only)")
    p.add_argument("--threads", type=int, default=threads,
                   help=f"CPU threads of the runtime (default {threads}: {threads_note}; "
                        "1 is fastest for small models on busy CPUs)")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage block only with --help), as every other error here."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dualstream", description="Dual-stream action recognition with self-attention fusion.")
    p.add_argument("--version", action="version", version=f"dualstream {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_parser_generate, _parser_prepare, _parser_pack, _parser_flow, _parser_check_split,
                _parser_make_split, _parser_import_rawframes, _parser_train, _parser_evaluate, _parser_report,
                _parser_demo, _parser_ablation, _parser_fit, _parser_predict, _parser_live,
                _parser_export, _parser_serve, _parser_models):
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except _user_errors() as exc:
        if os.environ.get("DUALSTREAM_DEBUG", "0") not in ("", "0"):
            raise
        print(f"dualstream {args.command}: error: {_describe(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dualstream {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
