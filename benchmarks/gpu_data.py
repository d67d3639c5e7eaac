"""A prepared synthetic cache of 320x240 videos and a UCF-101-format split for ``benchmarks/gpu.sh``.

    python benchmarks/gpu_data.py OUT [--videos 64] [--train-copies 16] [--test-copies 2] [--size 320x240]

Writes ``--videos`` moving-texture videos (``benchmarks/prepare.py``), prepares them with DIS flow at
their native size (short side 240, so that 224 crops are not upsampled) into ``OUT/cache``, and makes
``OUT/splits`` (classInd, trainlist01, testlist01) whose entries are links to those folders: each
training video appears ``--train-copies`` times under other names (the last fifth of the videos is
the test side, ``--test-copies`` times each), so that an epoch is long enough to
time while the page cache holds the few real videos. Train and test groups are disjoint.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dualstream.prepare.common import PrepareOptions
from dualstream.video import find_videos
from dualstream.prepare.run import prepare_dataset

sys.path.insert(0, str(Path(__file__).parent))
from prepare import write_moving_videos  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--videos", type=int, default=64)
    ap.add_argument("--frames", type=int, default=110)
    ap.add_argument("--size", default="320x240", help="WIDTHxHEIGHT of the videos (default 320x240)")
    ap.add_argument("--train-copies", type=int, default=16)
    ap.add_argument("--test-copies", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out)
    width, height = (int(v) for v in args.size.lower().split("x"))
    write_moving_videos(out / "videos", count=args.videos, frames=args.frames, height=height, width=width)
    s = prepare_dataset(out / "videos", out / "cache", PrepareOptions(short_side=0), progress=False)
    if s.failed:
        raise SystemExit(f"prepare failed: {s.failures}")
    real = [rel.rsplit(".", 1)[0] for rel in find_videos(out / "videos")]  # Class/v_Class_gGG_c01
    classes = sorted({k.split("/")[0] for k in real})
    splits = out / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    (splits / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    # entries are links named v_<Class>_g<GG>_c<NNN>: train groups 01-20, test groups 21-40, so that no
    # group is on both sides; the last fifth of the real videos (at least one) is the test side
    n_test = max(1, len(real) // 5)
    train, test = [], []
    for k, key in enumerate(real):
        cls, name = key.split("/")
        is_test = k >= len(real) - n_test
        side, copies = (test, args.test_copies) if is_test else (train, args.train_copies)
        group = (21 if is_test else 1) + k % 20
        for c in range(copies):
            link = f"v_{cls}_g{group:02d}_c{100 * (k // 20) + c + 1:03d}"
            if not (out / "cache" / cls / link).exists():
                os.symlink(name, out / "cache" / cls / link)
            side.append(f"{cls}/{link}.avi")
    (splits / "trainlist01.txt").write_text("".join(f"{p} {classes.index(p.split('/')[0]) + 1}\n" for p in train))
    (splits / "testlist01.txt").write_text("".join(f"{p}\n" for p in test))
    print(f"{len(real)} videos of {width}x{height} prepared in {out / 'cache'}; split: {len(train)} train, "
          f"{len(test)} test entries ({s.line(out / 'cache')})")


if __name__ == "__main__":
    main()
