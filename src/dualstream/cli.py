"""The ``dualstream`` command: one subcommand per stage (``@command``); parsing here, logic in the modules."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from . import __version__
from .files import atomic_write
from .data.ucf101 import GROUP_SCOPES
from .text import UserError


#: Errors a user can fix, printed as one line: these OS errors and every exception class dualstream defines
#: (UserError, ConfigError, SplitError, ModelPackageError, ...; none is raised for a bug). Told by the class's
#: module, so that no module is imported to name them: that would pull in PyTorch for commands that never use it
#: (the onnx runtime of predict, live and serve).
_OS_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FloatingPointError)


def _require(*checks: tuple[object, str]) -> None:
    for ok, message in checks:
        if not ok:
            raise UserError(message)


Arg = tuple[tuple[str, ...], dict]
COMMANDS: dict[str, tuple[str, tuple[Arg, ...], Callable[[argparse.Namespace], int | None]]] = {}


def arg(*flags: str, **kw) -> Arg:
    return flags, kw


def command(name: str, help: str, *args: Arg):
    """Register ``cmd(args) -> exit status`` (None: 0) as the subcommand ``name``, in the order of this file."""
    def register(cmd):
        COMMANDS[name] = (help, args, cmd)
        return cmd
    return register


VIDEOS = arg("--videos", required=True, help="folder of <Class>/<video> files")
WORKERS = arg("--workers", type=int, default=0, help="worker processes (default: all cores)")
SEED = arg("--seed", type=int, default=0)
SET = arg("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
TEST_FRACTION = arg("--test-fraction", type=float, default=0.3,
                    help="share of each class's videos in test (default 0.3)")
GROUP_SCOPE = arg("--group-scope", choices=GROUP_SCOPES, default="auto",
                  help="auto (default): a group number that appears in several classes stays on one side for all "
                       "of them (recording-disjoint); dataset: always so; class: choose test groups class by class")
GROUP_REGEX = arg("--group-regex", default=None, help="regex whose first capture group (or whole match) names a "
                  "video's group (default: UCF-101's _gGG_cCC); a video without a match is its own group")


def model_options(help: str = "run folder or model package, or an exported model.onnx", *, threads: int = 0,
                  threads_note: str = "its choice") -> tuple[Arg, ...]:
    """--model and how to run it (the options of predict, live and serve)."""
    return (arg("--model", required=True, help=help),
            arg("--runtime", choices=("torch", "onnx"), default=None,
                help="torch (a run folder) or onnx (an exported .onnx, or RUN/model.onnx; no PyTorch needed); "
                     "default: onnx for a .onnx file, else torch"),
            arg("--device", default="cpu", help="torch device for the model (default cpu; onnx: cpu only)"),
            arg("--threads", type=int, default=threads,
                help=f"CPU threads of the runtime (default {threads}: {threads_note}; "
                     "1 is fastest for small models on busy CPUs)"))


def _load_recipe(path: str | Path, sets: list[str]):
    from .config import load_config

    cfg = load_config(path, sets)
    _require((cfg.data.cache and cfg.data.splits,
              "data.cache and data.splits must be set (in the config or with --set)"))
    return cfg


def _read_splits(folder: str, videos: str | None, only: int = 0):
    """(number, split, where) of split ``only`` (0: every split in ``folder``), each validated before it is yielded
    (its videos present in ``videos`` when given)."""
    from .data.ucf101 import SPLITS, read_split, validate_split

    numbers = [only] if only else [n for n in SPLITS if (Path(folder) / f"trainlist{n:02d}.txt").is_file()]
    _require((numbers, f"{folder}: no trainlist0N.txt found"))
    for n in numbers:
        split, where = read_split(folder, n), f"split {n} of {folder}"
        validate_split(split, where=where, videos_dir=videos)
        yield n, split, where


@command("generate", "write a synthetic action dataset in the UCF-101 layout",
         arg("--out", required=True, help="dataset folder to create"),
         arg("--classes", type=int, default=6),
         arg("--videos-per-class", type=int, default=30),
         arg("--frames", type=int, default=48),
         arg("--size", type=int, default=96),
         SEED,
         arg("--preset", choices=("default", "hard"), default="default",
             help="default: motion-only classes (the demo); hard: colour x vibration classes with a distractor "
                  "and camera shake (flow cannot see the colour, RGB sampled every 4 frames the vibration)"))
def cmd_generate(args: argparse.Namespace) -> None:
    from .prepare.synthetic import SyntheticSpec, generate

    spec = SyntheticSpec(classes=args.classes, videos_per_class=args.videos_per_class,
                         frames=args.frames, size=args.size, seed=args.seed, preset=args.preset)
    out = generate(args.out, spec, progress=not args.quiet)
    print(f"wrote {spec.classes * spec.videos_per_class} videos to {out / 'videos'} "
          f"and splits to {out / 'ucfTrainTestlist'}")


@command("prepare", "decode videos, compute optical flow, write the rawframes cache",
         VIDEOS,
         arg("--out", required=True, help="cache folder"),
         arg("--flow", default="dis", help="flow method: dis (default, OpenCV), farneback, opencv-tvl1, tvl1, "
             "tvl1-quality or brox (PyTorch, batched)"),
         arg("--short-side", "--resize", dest="short_side", type=int, default=128,
             help="resize so the short side is this (0: keep)"),
         arg("--flow-bound", type=float, default=20.0,
             help="flow is clipped to +-this many px before it is stored as uint8 (default 20; small or "
                  "slow footage wants less, e.g. 4 for 64x64 clips; train with the same data.flow_bound)"),
         WORKERS,
         arg("--device", default="cpu", help="device for the PyTorch flow methods"),
         arg("--shard", default=None, metavar="I/N",
             help="prepare only part I of N (1-based), e.g. one per machine into one shared --out"),
         arg("--executor", default="process", choices=["process", "ray"],
             help="process: local worker processes (default); ray: a Ray cluster (RAY_ADDRESS, else local)"),
         arg("--splits", default=None,
             help="prepare only the videos these split files list, after checking that all exist"),
         arg("--only-sampled", action="store_true",
             help="keep only the frames the sampling schedule can ask for (train offsets + eval clips)"),
         arg("--config", default=None, help="with --only-sampled: take the schedule (data.frames, interval, offsets, "
             "eval_clips) from this recipe (default: the paper's)"),
         arg("--format", default="rawframes", choices=("rawframes", "packed"),
             help="rawframes: JPEGs (default); packed: memory-mapped uint8 arrays per video, "
                  "about 12x the disk of the JPEGs, read without decoding (see `dualstream pack`)"))
def cmd_prepare(args: argparse.Namespace) -> int:
    from .prepare.common import PrepareOptions
    from .prepare.run import parse_shard, prepare_dataset
    from .data.sampling import ClipSpec

    _require((args.only_sampled or not args.config,
              "--config only sets the schedule of --only-sampled; add --only-sampled or drop --config"))
    schedule = None
    if args.only_sampled:
        from .config import load_config

        d = load_config(args.config).data
        if d.sampling == "spread":
            print("note: data.sampling is spread: a clip may use any frame, so every frame is kept", file=sys.stderr)
        else:
            schedule = ClipSpec.from_config(d)
    opts = PrepareOptions(flow=args.flow, short_side=args.short_side, bound=args.flow_bound, device=args.device,
                          schedule=schedule, format=args.format)
    shard = parse_shard(args.shard) if args.shard else None
    videos = None
    if args.splits:  # every split is checked before any work
        videos = sorted({e.path for _, s, _ in _read_splits(args.splits, args.videos) for e in (*s.train, *s.test)})
    summary = prepare_dataset(args.videos, args.out, opts, workers=args.workers, shard=shard,
                              executor=args.executor, videos=videos, progress=not args.quiet)
    print(summary.line(Path(args.out)))
    return 0 if summary.prepared + summary.skipped else 1


@command("pack", "add a packed uint8 store to a rawframes cache (a clip is read without decoding: for caches "
         "that fit in RAM or on fast disk)",
         arg("cache", help="cache folder written by `dualstream prepare` or `import-rawframes`"),
         WORKERS,
         arg("--drop-jpeg", action="store_true", help="remove the JPEGs once a video is packed"))
def cmd_pack(args: argparse.Namespace) -> None:
    from .prepare.pack import pack_cache

    _require((args.workers >= 0, "--workers must be >= 0 (0: all cores)"))
    summary = pack_cache(args.cache, workers=args.workers, drop_jpeg=args.drop_jpeg, progress=not args.quiet)
    print(summary.line(Path(args.cache)))


@command("flow", "optical flow between two images -> .flo (+ colour PNG)",
         arg("frame_a"),
         arg("frame_b"),
         arg("--method", default="tvl1", help="opencv-dis, opencv-farneback, opencv-tvl1, tvl1 (default), "
             "tvl1-quality (more accurate, slower), brox"),
         arg("--out", required=True, help="output .flo file"),
         arg("--png", default=None, help="also write the flow in colour (Middlebury wheel)"),
         arg("--device", default="cpu", help="cpu or cuda (PyTorch methods)"))
def cmd_flow(args: argparse.Namespace) -> None:
    from .flow.command import run_flow_command

    try:
        run_flow_command(args.frame_a, args.frame_b, method=args.method, out=args.out, png=args.png, device=args.device)
    except (ValueError, RuntimeError) as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {args.out}" + (f" and {args.png}" if args.png else ""))


@command("check-split", "validate UCF-101-format split files; print counts and train/test group overlap",
         arg("--splits", required=True, help="folder with classInd.txt, trainlist0N.txt, testlist0N.txt"),
         arg("--split", type=int, default=0, help="check only split N (default: every split present)"),
         arg("--videos", default=None, help="also check that every listed video exists in this folder"),
         GROUP_REGEX,
         arg("--allow-group-overlap", action="store_true", help="exit 0 even when train and test share a group"))
def cmd_check_split(args: argparse.Namespace) -> int:
    from .data.make_split import compile_group_regex
    from .data.ucf101 import check_group_overlap, split_summary

    pattern = compile_group_regex(args.group_regex)
    leaking = shared = 0
    for n, split, where in _read_splits(args.splits, args.videos, args.split):
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


@command("make-split", "write a group-disjoint UCF-101-format split for a class-per-folder dataset",
         VIDEOS,
         arg("--out", required=True, help="split folder to write (classInd.txt, trainlist01.txt, testlist01.txt)"),
         TEST_FRACTION,
         GROUP_REGEX,
         SEED,
         GROUP_SCOPE)
def cmd_make_split(args: argparse.Namespace) -> None:
    from .data.make_split import make_split

    counts = make_split(args.videos, args.out, test_fraction=args.test_fraction, group_regex=args.group_regex,
                        seed=args.seed, group_scope=args.group_scope)
    sides = "no group number on both sides in any class" if counts["across"] else "no group on both sides"
    print(f"wrote split 1 to {args.out}: classes {counts['classes']}, train {counts['train']}, "
          f"test {counts['test']}, groups {counts['groups']} ({sides})")


@command("import-rawframes", "adopt frames + flow extracted by MMAction2 (img_/flow_x_/flow_y_%%05d.jpg): "
         "validate, write manifests",
         arg("--src", required=True, help="folder of <Class>/<video>/ rawframes (build_rawframes.py --level 2)"),
         arg("--out", required=True, help="cache folder (the same as --src: manifests written in place; "
             "else files are hard-linked, or copied across file systems)"),
         arg("--flow-method", default="tvl1",
             help="how the flow was computed, recorded in the manifests (default tvl1)"),
         arg("--flow-bound", type=float, default=20.0, help="the +-px bound of the uint8 flow images (default 20)"),
         arg("--threads", type=int, default=8, help="threads for the file-system work (default 8)"))
def cmd_import_rawframes(args: argparse.Namespace) -> int:
    from .prepare.import_rawframes import import_rawframes

    summary = import_rawframes(args.src, args.out, flow_method=args.flow_method, flow_bound=args.flow_bound,
                               threads=args.threads, progress=not args.quiet)
    print(summary.line(Path(args.out)))
    return 0 if summary.imported + summary.skipped else 1


@command("train", "train a model from a YAML config",
         arg("--config", help="YAML recipe, e.g. configs/demo_synthetic.yaml (optional with --resume)"),
         SET,
         arg("--out", required=True, help="run folder"),
         arg("--resume", action="store_true", help="continue exactly from the run's last checkpoint"),
         arg("--allow-group-overlap", action="store_true",
             help="train even if train and test share a group (inflated accuracy; config.yaml records it)"))
def cmd_train(args: argparse.Namespace) -> None:
    from .engine.build import CONFIG
    from .engine.train import train

    _require((args.config or args.resume,
              "--config is required (without it, --resume continues with RUN/config.yaml)"))
    overrides = (args.set or []) + (["data.allow_group_overlap=true"] if args.allow_group_overlap else [])
    cfg = _load_recipe(args.config or Path(args.out) / CONFIG, overrides)
    recipe = Path(args.config).stem if args.config else None
    history = train(cfg, args.out, resume=args.resume, progress=not args.quiet, recipe=recipe)
    if history and int(os.environ.get("RANK", "0")) == 0:
        last = history[-1]
        print(f"trained {cfg.model.name} for {last['epoch'] + 1} epochs: test_acc={last['test_acc']:.4f} -> {args.out}")


@command("evaluate", "evaluate a run on its test split (RUN/eval.json, mistakes.csv, confusion.png)",
         arg("--run", dest="run_option", metavar="RUN", help="run folder"),
         arg("run", nargs="?", metavar="RUN", help="run folder, also positional (what torchrun can pass on)"),
         arg("--clips", type=int, default=None,
             help="frame offsets per video (default: data.eval_clips; >= data.interval: all offsets)"),
         arg("--crops", type=int, choices=(1, 3), default=None, help="crops per clip (default: data.eval_crops)"),
         arg("--flip", action=argparse.BooleanOptionalAction, default=None,
             help="also score mirrored clips (default: data.eval_flip)"),
         arg("--split", type=int, default=None, help="test list of this split (default: the run's)"))
def cmd_evaluate(args: argparse.Namespace) -> None:
    from .engine.evaluate import EVAL_JSON, evaluate_run

    _require(((args.run is None) != (args.run_option is None), "give the run folder once: --run RUN (or RUN)"))
    run = args.run or args.run_option
    result = evaluate_run(run, clips=args.clips, crops=args.crops, flip=args.flip, split=args.split,
                          progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"clip_top1={result['clip_top1']:.4f} video_top1={result['video_top1']:.4f} "
              f"top5={result['top5']:.4f} videos={result['num_videos']} views={result['views_per_video']} "
              f"mistakes={result['num_mistakes']} -> {Path(run) / EVAL_JSON}")


@command("report", "Markdown comparison of evaluated runs (mean over splits 1-3 when all given)",
         arg("runs", nargs="+", metavar="RUN"),
         arg("--out", default="report.md", help="Markdown file to write (default: report.md)"))
def cmd_report(args: argparse.Namespace) -> None:
    from .report.markdown import write_report

    out = write_report(args.runs, args.out)
    print(out.read_text(), end="")
    print(f"-> {out}", file=sys.stderr)


@command("demo", "generate -> prepare -> train -> evaluate on synthetic data",
         arg("--out", default="demo_out", help="working folder (default: demo_out)"))
def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    print(f"video_top1={run_demo(args.out, quiet=args.quiet)['video_top1']:.4f}")


def _int_list(text: str | None, option: str) -> list[int] | None:
    try:
        return [int(x) for x in text.split(",") if x.strip()] if text else None
    except ValueError:
        raise UserError(f"{option} expects comma-separated integers, e.g. 1,2,3, got {text!r}") from None


@command("ablation", "train + evaluate several models with one recipe over folds and seeds; mean ± std table "
         "and chart",
         arg("--config", required=True),
         SET,
         arg("--models", required=True, help="comma-separated model names (see `dualstream models`)"),
         arg("--folds", default=None, metavar="K,K",
             help="splits to train and test on, e.g. 1,2,3 (default: data.split)"),
         arg("--seeds", default=None, metavar="S,S", help="seeds per split, e.g. 0,1,2 (default: seed)"),
         arg("--out", required=True, help="folder for the runs, ablation.md and ablation.png"))
def cmd_ablation(args: argparse.Namespace) -> None:
    from .ablation import CHART, TABLE, run_ablation

    cfg = _load_recipe(args.config, args.set or [])
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    folds, seeds = _int_list(args.folds, "--folds"), _int_list(args.seeds, "--seeds")
    rows = run_ablation(cfg, models, args.out, folds=folds, seeds=seeds, progress=not args.quiet)
    for r in rows:
        spread = f" ± {r['video_top1_std']:.4f} ({r['runs']} runs)" if r["runs"] > 1 else ""
        print(f"{r['model']:<28} params {r['params']:>11,}  clip_top1 {r['clip_top1']:.4f}  "
              f"video_top1 {r['video_top1']:.4f}{spread}")
    print(f"-> {Path(args.out) / TABLE}, {Path(args.out) / CHART}")


@command("fit", "make-split (group-disjoint) -> prepare -> train -> evaluate a folder of <Class>/<video> files "
         "with a recipe",
         VIDEOS,
         arg("--out", required=True, help="run folder (also holds the split and the prepared cache)"),
         arg("--recipe", default="small_real",
             help="a shipped recipe name (small_real, the default; demo_synthetic, ...) or a .yaml file"),
         GROUP_REGEX,
         arg("--flow", default="dis", help="flow method for prepare (default dis)"),
         TEST_FRACTION,
         arg("--seed", type=int, default=0, help="seed of the split and of training"),
         GROUP_SCOPE,
         arg("--workers", type=int, default=0, help="prepare worker processes (default: all cores)"),
         SET)
def cmd_fit(args: argparse.Namespace) -> None:
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


def load_predictor(args: argparse.Namespace):
    """The predictor for ``--model`` / ``--runtime`` / ``--device`` / ``--threads``."""
    from .inference.runtime import load_predictor as load

    return load(args.model, runtime=args.runtime, device=args.device, threads=args.threads)


@command("predict", "top-k classes of videos with a trained model package",
         arg("videos", nargs="+", metavar="VIDEO", help="video files (any format OpenCV reads)"),
         *model_options("run folder or model package (model.json + model.safetensors), or an exported model.onnx"),
         arg("--topk", type=int, default=5, help="classes to print (default 5)"),
         arg("--clips", type=int, default=5,
             help="clips per video at offsets spread over one interval, as evaluate (default 5)"),
         arg("--json", action="store_true", help="one JSON line per video"),
         arg("--explain", metavar="OUT.png",
             help="write the frames, flow and fusion attention of the first video's first clip"),
         arg("--timeline", action="store_true",
             help="the top class of every window (one clip's frames) over the video, for long videos"),
         arg("--stride", type=int, default=0,
             help="with --timeline: frames between windows (default: one sampling step, the model's interval)"),
         arg("--plot", metavar="OUT.png", help="with --timeline: draw the first video's timeline chart"))
def cmd_predict(args: argparse.Namespace) -> int:
    from .inference.predict import format_top
    from .video import VideoReadError

    _require((args.topk >= 1 and args.clips >= 1, "--topk and --clips must be >= 1"),
             (not (args.explain and args.timeline), "--explain and --timeline are separate views: give one of them"),
             (args.timeline or not args.plot, "--plot draws the timeline: add --timeline"),
             (args.stride >= 0, "--stride must be >= 0 (0: one sampling step of the model, its interval)"))
    predictor = load_predictor(args)
    failed = 0
    for i, video in enumerate(args.videos):
        try:
            if args.timeline:
                from .inference.timeline import format_timeline, predict_timeline, render_timeline

                timeline = predict_timeline(predictor, video, stride=args.stride, progress=not args.quiet)
                print(json.dumps(timeline.to_dict(args.topk)) if args.json else format_timeline(timeline), flush=True)
                if args.plot and i == 0:
                    atomic_write(args.plot, lambda tmp: tmp.write_bytes(render_timeline(timeline)))
                continue
            clips = predictor.clips(video, clips=args.clips)
        except VideoReadError as exc:  # one bad file does not stop the others
            print(f"dualstream predict: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        pred = predictor.run(clips, video=video, attention=bool(args.explain and i == 0))
        print(json.dumps(pred.to_dict(args.topk)) if args.json else format_top(pred, args.topk), flush=True)
        if args.explain and i == 0:
            from .inference.explain import render_explanation

            atomic_write(args.explain, lambda tmp: tmp.write_bytes(render_explanation(clips, pred, topk=args.topk)))
    return 2 if failed else 0


@command("live", "recognise actions on a webcam, stream or file as it plays (sliding window)",
         arg("source", metavar="SOURCE",
             help="webcam index (0), stream URL OpenCV opens (rtsp://, http://...), or a video file"),
         *model_options(threads=1, threads_note="the reader and the flow use the other cores; 0: the runtime's choice"),
         arg("--stride", type=int, default=0,
             help="frames between predictions (default 0: one sampling step, the model's interval)"),
         arg("--smooth", type=int, default=3, help="average the last K predictions (default 3)"),
         arg("--topk", type=int, default=3, help="classes per prediction (default 3)"),
         arg("--json", action="store_true",
             help='one JSON line per prediction {"frame", "time", "top"}, and a JSON summary line'),
         arg("--out", metavar="ANNOTATED.mp4", help="write the video with the label and a confidence bar"),
         arg("--realtime", action="store_true", help="keep up with the source: drop (and count) frames that arrive "
             "while busy; a file is paced at its frame rate"),
         arg("--timeout", type=float, default=10.0,
             help="end when no frame arrives for this many seconds (default 10; 0: wait forever)"),
         arg("--max-frames", type=int, default=0, help="stop after this many frames (default 0: no limit)"))
def cmd_live(args: argparse.Namespace) -> int:
    from .inference.live import LiveError, print_prediction, run_live

    _require((args.stride >= 0 and args.smooth >= 1 and args.topk >= 1, "--stride must be >= 0 (0: one sampling "
              "step of the model, its interval), --smooth and --topk >= 1"),
             (args.timeout >= 0 and args.max_frames >= 0, "--timeout and --max-frames must be >= 0 (0: no limit)"))
    predictor = load_predictor(args)
    show = lambda pred: print_prediction(pred, predictor.classes, k=args.topk, as_json=args.json)  # noqa: E731
    error = None
    try:
        summary = run_live(predictor, args.source, stride=args.stride, smooth=args.smooth, realtime=args.realtime,
                           timeout=args.timeout, out=args.out, max_frames=args.max_frames, on_prediction=show)
    except LiveError as exc:  # after some frames: the summary of what was seen, then exit 1
        summary, error = getattr(exc, "summary", None), exc
        if summary is None or not summary.frames:
            raise
        print(f"dualstream live: {exc}", file=sys.stderr)
    if summary.ended == "stream ended":
        print(f"dualstream live: {args.source}: the stream ended after {summary.frames} frames", file=sys.stderr)
    print(json.dumps(summary.to_dict()) if args.json else summary.line(), flush=True)
    if args.out and error is None:
        print(f"wrote {args.out}", file=sys.stderr)
    return 1 if error else 0


@command("export", "export a model package to ONNX or TorchScript (with a parity check)",
         arg("--model", required=True, help="run folder or model package"),
         arg("--format", required=True, choices=("onnx", "torchscript")),
         arg("--out", required=True, help="file to write (e.g. model.onnx, model.pt)"))
def cmd_export(args: argparse.Namespace) -> None:
    from .inference.export import export_model

    print(export_model(args.model, fmt=args.format, out=args.out).line())


@command("serve", "web demo: upload a video, see the top-5 and the explanation",
         *model_options(),
         arg("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"),
         arg("--port", type=int, default=8000),
         arg("--max-upload-mb", type=float, default=200.0, help="largest accepted upload (default 200)"),
         arg("--clips", type=int, default=5, help="clips per video (default 5)"),
         arg("--allow-host", action="append", metavar="NAME",
             help="also answer requests for this Host name (repeatable; default: localhost, 127.0.0.1, ::1 "
                  "and the --host address; needed to reach a server bound to 0.0.0.0 by its name)"),
         arg("--docs", action="store_true",
             help="serve the API docs at /docs, /redoc, /openapi.json (their page loads Swagger UI from a CDN)"),
         arg("--timeout", type=float, default=30.0,
             help="seconds a client may take to send its request headers, or pause in an upload (default 30)"),
         arg("--max-frame-megapixels", type=float, default=8.3, help="largest video frame accepted (default 8.3: "
             "3840x2160); frames thinner than 10:1 are refused too"),
         arg("--budget-frames", type=int, default=20_000,
             help="most frames one request may decode, the timeline's included (default 20000; 413 beyond)"),
         arg("--budget-megapixels", type=float, default=2_000.0,
             help="most pixels one request may decode, summed over its frames (default 2000: "
                  "26000 frames of 320x240, 240 of 3840x2160; 413 beyond)"),
         arg("--budget-seconds", type=float, default=60.0,
             help="longest one prediction may run, from when it starts (default 60; 413 beyond)"),
         arg("--max-uploads", type=int, default=4,
             help="prediction requests in flight at once, uploading or predicting (default 4; 503 with "
                  "Retry-After beyond); disk held for uploads is at most twice this times --max-upload-mb"))
def cmd_serve(args: argparse.Namespace) -> None:
    try:
        from .serve import DEFAULT_FRAME_LIMITS, serve
    except ImportError as exc:
        raise UserError(f"serve needs the 'serve' extra ({exc.name} is missing): "
                        "pip install 'dualstream[serve]'") from None
    _require((args.max_upload_mb > 0, "--max-upload-mb must be positive"),
             (0 <= args.port <= 65535, f"--port must be 0-65535, got {args.port}"),
             (args.clips >= 1, "--clips must be >= 1"),
             (args.timeout > 0 and args.max_frame_megapixels > 0,
              "--timeout and --max-frame-megapixels must be positive"),
             (args.budget_frames >= 1 and args.max_uploads >= 1, "--budget-frames and --max-uploads must be >= 1"),
             (args.budget_megapixels > 0 and args.budget_seconds > 0,  # NaN fails too
              "--budget-megapixels and --budget-seconds must be positive"))
    from .video import DecodeBudget

    serve(lambda: load_predictor(args), host=args.host, port=args.port, max_upload_mb=args.max_upload_mb,
          clips=args.clips, docs=args.docs, allowed_hosts=args.allow_host, timeout_s=args.timeout,
          frame_limits=dataclasses.replace(DEFAULT_FRAME_LIMITS, max_pixels=int(args.max_frame_megapixels * 1e6)),
          budget=DecodeBudget(max_frames=args.budget_frames, max_pixels=int(args.budget_megapixels * 1e6),
                              seconds=args.budget_seconds), max_uploads=args.max_uploads)


@command("models", "list the registered models with parameters and GFLOPs",
         arg("--num-classes", type=int, default=101, help="classes for the counts (default: 101, UCF-101)"))
def cmd_models(args: argparse.Namespace) -> None:
    from .models import format_model_table, summary_rows

    _require((args.num_classes >= 1, f"--num-classes must be >= 1, got {args.num_classes}"))
    print(format_model_table(summary_rows(num_classes=args.num_classes)))


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage block only with --help), as every other error here."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dualstream", description="Dual-stream action recognition with self-attention fusion.")
    p.add_argument("--version", action="version", version=f"dualstream {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (text, args, cmd) in COMMANDS.items():
        a = sub.add_parser(name, help=text)
        for flags, kw in args:
            a.add_argument(*flags, **kw)
        a.set_defaults(func=cmd)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except Exception as exc:
        user_error = isinstance(exc, _OS_ERRORS) or type(exc).__module__.partition(".")[0] == __package__
        if not user_error or os.environ.get("DUALSTREAM_DEBUG", "0") not in ("", "0"):
            raise
        if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:  # as ``path: reason``
            text = f"{exc.filename}: {exc.strerror}"
        else:
            text = str(exc) or type(exc).__name__
        print(f"dualstream {args.command}: error: {' '.join(text.split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dualstream {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
