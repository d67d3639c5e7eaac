"""``dualstream import-rawframes`` (README "MMAction2 interop"): rawframes checked and given their manifests, in
place or hard-linked into another cache (through a temporary folder, so an interrupted import resumes)."""

from __future__ import annotations

import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
from tqdm import tqdm

from ..cache import MANIFEST, is_prepared, new_manifest
from ..files import atomic_folder
from .common import FAILURES, failure_reason, write_failures
from ..files import atomic_write_text

FRAME_RE = re.compile(r"^(img|flow_x|flow_y)_(\d+)\.jpg$")


class RawframesError(ValueError):
    """A rawframes folder that cannot be imported at all (wrong layout); printed as one line."""


@dataclass
class ImportSummary:
    imported: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def line(self, out: Path) -> str:
        text = f"imported {self.imported}, skipped {self.skipped} (already have a manifest), failed {len(self.failures)}"
        return text + (f" (see {out / FAILURES})" if self.failures else "")


class _Invalid(Exception):
    pass


def find_rawframe_folders(src: str | Path) -> list[str]:
    """``Class/video`` folders under ``src`` (two levels, as ``build_rawframes.py --level 2`` writes)."""
    root = Path(src)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: rawframes folder not found")
    folders = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*") if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise RawframesError(f"{root}: no <Class>/<video>/ folders found (expected SRC/<Class>/<video>/img_00001.jpg, "
                           "as MMAction2's build_rawframes.py --level 2 writes)")
    return folders


def _refuse_outside(path: str | Path, root: Path, real_root: str, what: str) -> None:
    """_Invalid when ``path`` leads (by a symlink) outside ``root`` (``real_root``: its realpath, resolved once per
    folder); ``what``: how the message names it."""
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise _Invalid(f"{what} a symlink leading outside {root} (to {real}); refused")


def _numbers(folder: Path, root: Path) -> dict[str, list[int]]:
    """Frame numbers per kind; a file or folder that leads (by a symlink) outside ``root`` is refused."""
    found: dict[str, list[int]] = {"img": [], "flow_x": [], "flow_y": []}
    real_root = os.path.realpath(root)
    _refuse_outside(folder, root, real_root, "the folder is")
    for entry in os.scandir(folder):
        m = FRAME_RE.match(entry.name)
        if not m:
            continue
        if len(m.group(2)) != 5:
            raise _Invalid(f"{entry.name}: frame numbers must have 5 digits (img_00001.jpg)")
        if entry.is_symlink():
            _refuse_outside(entry.path, root, real_root, f"{entry.name}:")
            if not os.path.exists(entry.path):
                raise _Invalid(f"{entry.name}: a broken symlink")
        if not entry.is_file():
            raise _Invalid(f"{entry.name}: not a regular file")
        if entry.stat().st_size == 0:
            raise _Invalid(f"{entry.name}: empty file")
        found[m.group(1)].append(int(m.group(2)))
    return {k: sorted(v) for k, v in found.items()}


def _check_run(kind: str, numbers: list[int]) -> int:
    """The count of a gap-free numbering from 1; a gap is an error naming the first missing file."""
    for expected, n in enumerate(numbers, 1):
        if n != expected:
            raise _Invalid(f"{kind}_{expected:05d}.jpg is missing (numbering must run from 1 without gaps)")
    return len(numbers)


def _shape(path: Path) -> tuple[int, int]:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)  # the size alone: every frame decoded as one channel
    if img is None:
        raise _Invalid(f"{path.name}: not a readable JPEG")
    return img.shape


def validate_rawframes(folder: Path, *, flow_method: str, flow_bound: float, root: Path) -> dict:
    """Check one video folder and return the manifest it should get (raises _Invalid); ``root``: see _numbers."""
    nums = _numbers(folder, root)
    n_img = _check_run("img", nums["img"])
    n_x, n_y = _check_run("flow_x", nums["flow_x"]), _check_run("flow_y", nums["flow_y"])
    if n_img < 2:
        raise _Invalid(f"{n_img} img_*.jpg frames; a clip needs at least 2")
    if n_x != n_y:
        raise _Invalid(f"{n_x} flow_x but {n_y} flow_y files")
    if not n_img - 1 <= n_x <= n_img:
        raise _Invalid(f"{n_x} flow files for {n_img} frames (expected {n_img - 1}, one per frame pair, or {n_img})")
    size = _shape(folder / "img_00001.jpg")
    for name in (f"img_{n_img:05d}.jpg", "flow_x_00001.jpg", f"flow_x_{n_x:05d}.jpg", "flow_y_00001.jpg",
                 f"flow_y_{n_y:05d}.jpg"):
        if (other := _shape(folder / name)) != size:
            raise _Invalid(f"{name} is {other[::-1]} but img_00001.jpg is {size[::-1]} (w, h)")
    return {**new_manifest(folder.name, n_img, n_x, *size, flow_method, flow_bound), "imported": True}


def _link_tree(src: Path, dst: Path) -> None:
    for entry in os.scandir(src):
        if entry.is_file() and FRAME_RE.match(entry.name):
            try:
                os.link(entry.path, dst / entry.name)
            except OSError:  # another file system, or links not supported: copy
                shutil.copyfile(entry.path, dst / entry.name)


def import_video(src: Path, dst: Path, *, flow_method: str, flow_bound: float, root: Path) -> dict:
    """Validate ``src`` and make ``dst`` a finished cache folder (manifest written last, atomically);
    ``root``: the folder no frame may lead outside of."""
    manifest = validate_rawframes(src, flow_method=flow_method, flow_bound=flow_bound, root=root)
    manifest["bytes"] = sum(entry.stat().st_size for entry in os.scandir(src) if FRAME_RE.match(entry.name))
    if src.resolve() == dst.resolve():
        atomic_write_text(src / MANIFEST, json.dumps(manifest, indent=1))
        return manifest
    with atomic_folder(dst, done=MANIFEST) as tmp:
        _link_tree(src, tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def import_rawframes(src: str | Path, out: str | Path, *, flow_method: str = "tvl1", flow_bound: float = 20.0,
                     threads: int = 8, progress: bool = True) -> ImportSummary:
    """Import every ``Class/video`` folder of ``src`` into the cache ``out`` (in threads); failures go to
    ``out/failures.txt``; ``flow_method`` and ``flow_bound`` are recorded, not checked (docs/design.md)."""
    if flow_bound <= 0:
        raise RawframesError(f"--flow-bound must be positive, got {flow_bound}")
    if threads < 1:
        raise RawframesError(f"--threads must be >= 1, got {threads}")
    src, out = Path(src), Path(out)
    folders = find_rawframe_folders(src)
    out.mkdir(parents=True, exist_ok=True)
    todo = [key for key in folders if not is_prepared(out, key)]
    summary = ImportSummary(skipped=len(folders) - len(todo))

    def one(key: str) -> str | None:
        """The folder's failure, or None once it is imported."""
        try:
            import_video(src / key, out / key, flow_method=flow_method, flow_bound=flow_bound, root=src)
            return None
        except _Invalid as exc:
            return str(exc)
        except OSError as exc:
            return failure_reason(exc)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for key, error in tqdm(zip(todo, pool.map(one, todo)), total=len(todo), desc="import", unit="video",
                               disable=not progress or not todo):
            if error is None:
                summary.imported += 1
            else:
                summary.failures.append((key, error))
    listed = set(folders)  # a concurrent import's failures stay listed while their folder is not imported
    write_failures(out / FAILURES, summary.failures, keep=lambda key: key in listed and not is_prepared(out, key))
    return summary
