"""Data preparation against hostile or concurrent conditions: frames symlinked out of the source folder,
a SIGKILLed prepare's (or pack's) workers, two runs into one cache (live temporary folders, failures files),
cut JPEGs and lying manifests given to pack, damaged packed stores given to train and evaluate."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import json
import time
from pathlib import Path

import numpy as np
import pytest

from dualstream.cli import main
from dualstream.files import _is_stale, _start_time, atomic_folder
from dualstream.prepare.import_rawframes import import_rawframes
from dualstream.prepare.common import FAILURES, PrepareOptions, write_failures
from dualstream.cache import MANIFEST
from dualstream.prepare.run import prepare_dataset
from dualstream.cache import CacheError, check_packed
from dualstream.prepare.pack import pack_cache
from dualstream.data.ucf101 import read_split

from .test_data_import_rawframes import _copy_frames
from .test_end_to_end import _train_args

SRC = Path(__file__).resolve().parents[1] / "src"
KEY = "Grow/v_Grow_g01_c01"


def test_import_refuses_frames_symlinked_outside_the_source(tiny_cache, tmp_path, capsys):
    src, out = tmp_path / "rawframes", tmp_path / "cache"
    outside = tmp_path / "secret.jpg"
    shutil.copyfile(tiny_cache / KEY / "img_00004.jpg", outside)  # a readable JPEG: only the link gives it away
    evil = _copy_frames(tiny_cache, KEY, src / "Grow" / "evil")
    (evil / "img_00004.jpg").unlink()
    (evil / "img_00004.jpg").symlink_to(outside)
    passwd = _copy_frames(tiny_cache, KEY, src / "Grow" / "passwd")
    (passwd / "img_00004.jpg").unlink()
    (passwd / "img_00004.jpg").symlink_to("/etc/passwd")
    inside = _copy_frames(tiny_cache, KEY, src / "Grow" / "inside")  # a link within SRC is fine
    (inside / "img_00004.jpg").unlink()
    (inside / "img_00004.jpg").symlink_to(evil / "img_00003.jpg")
    elsewhere = _copy_frames(tiny_cache, KEY, tmp_path / "elsewhere" / "video")
    (src / "Grow" / "linked").symlink_to(elsewhere, target_is_directory=True)  # a whole folder from outside
    broken = _copy_frames(tiny_cache, KEY, src / "Grow" / "broken")
    (broken / "img_00004.jpg").unlink()
    (broken / "img_00004.jpg").symlink_to(src / "nowhere.jpg")

    assert main(["-q", "import-rawframes", "--src", str(src), "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("imported 1, skipped 0 (already have a manifest), failed 4")
    lines = dict(line.split("\t") for line in (out / FAILURES).read_text().splitlines())
    assert lines["Grow/evil"] == f"img_00004.jpg: a symlink leading outside {src} (to {outside}); refused"
    assert lines["Grow/passwd"] == f"img_00004.jpg: a symlink leading outside {src} (to /etc/passwd); refused"
    assert lines["Grow/linked"].startswith(f"the folder is a symlink leading outside {src}")
    assert lines["Grow/broken"] == "img_00004.jpg: a broken symlink"
    assert sorted(p.name for p in (out / "Grow").iterdir()) == ["inside"]  # nothing of the refused ones written
    # in place (--out = --src) too: no manifest makes an outside file part of the cache
    again = import_rawframes(src, src, progress=False)
    assert sorted(k for k, _ in again.failures) == ["Grow/broken", "Grow/evil", "Grow/linked", "Grow/passwd"]
    assert not (evil / MANIFEST).exists() and (inside / MANIFEST).is_file()


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers through /proc")
@pytest.mark.parametrize("when", ["importing", "working"])
def test_workers_end_when_prepare_is_sigkilled(tiny_dataset, tmp_path, when):
    """SIGKILL of prepare's main process alone (not its process group): its workers end too, whether they
    were still starting (before PR_SET_PDEATHSIG is set) or already preparing videos."""
    cmd = [sys.executable, "-m", "dualstream", "-q", "prepare", "--videos", str(tiny_dataset / "videos"),
           "--out", str(tmp_path / "cache"), "--short-side", "0", "--workers", "2", "--flow", "tvl1"]
    proc = subprocess.Popen(cmd, env=dict(os.environ, PYTHONPATH=str(SRC)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 or (when == "working" and not list((tmp_path / "cache").glob("*/.*.tmp-*"))):
            assert proc.poll() is None and time.monotonic() < deadline, "prepare ended before it could be killed"
            workers = [k for k in _children(proc.pid) if "spawn_main" in Path(f"/proc/{k}/cmdline").read_text()]
            time.sleep(0.05)
        assert not _orphans_after_sigkill(proc, workers), "orphaned workers"
    finally:
        _end(proc, workers)


def _orphans_after_sigkill(proc: subprocess.Popen, pids) -> list[int]:
    """SIGKILL ``proc`` alone; those of its helper processes ``pids`` still alive a minute later."""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60  # a worker still importing torch ends once its initialiser runs
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [p for p in pids if _alive(p)]


def _end(proc: subprocess.Popen, pids) -> None:
    for p in pids:
        if _alive(p):
            os.kill(p, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def test_a_live_runs_temporary_folder_is_never_removed(tiny_dataset, tmp_path):
    cache = tmp_path / "cache"
    other = _sleeper()  # stands for a concurrent prepare: alive, on this machine
    try:
        start = _start_time(other.pid)
        live = cache / "Grow" / f".v_Grow_g01_c01.tmp-{socket.gethostname()}-{other.pid}-{start}"
        reused = cache / "Grow" / f".v_Grow_g01_c01.tmp-{socket.gethostname()}-{other.pid}-1"  # pid reused since
        foreign = cache / "Grow" / ".v_Grow_g01_c01.tmp-elsewhere-12-34"  # another machine's, recent
        dead = _sleeper()
        dead.kill()
        dead.wait()
        gone = cache / "Grow" / f".v_Grow_g01_c01.tmp-{socket.gethostname()}-{dead.pid}-5"
        for folder in (live, reused, foreign, gone):
            folder.mkdir(parents=True)
            (folder / "img_00001.jpg").write_bytes(b"partial")
        summary = prepare_dataset(tiny_dataset / "videos", cache, PrepareOptions(short_side=0), workers=1,
                                  progress=False)
        assert summary.failed == 0 and (cache / "Grow" / "v_Grow_g01_c01" / MANIFEST).is_file()
        assert live.is_dir() and foreign.is_dir() and not reused.exists() and not gone.exists()
    finally:
        other.kill()
        other.wait()
    os.utime(foreign, (0, 0))  # a day old: an interrupted run of that machine
    assert _is_stale(foreign) and _is_stale(live)


def test_a_video_finished_meanwhile_by_a_concurrent_run_is_not_a_failure(tmp_path):
    dst = tmp_path / "A" / "v"
    with atomic_folder(dst, done=MANIFEST) as tmp:
        (tmp / "img_00001.jpg").write_bytes(b"ours")
        dst.mkdir()  # the other run renames its complete copy into place first
        (dst / MANIFEST).write_text("{}")
        (dst / "img_00001.jpg").write_bytes(b"theirs")
    assert (dst / "img_00001.jpg").read_bytes() == b"theirs"
    assert [p.name for p in dst.parent.iterdir()] == ["v"]


def test_failures_of_a_concurrent_run_stay_listed(tiny_dataset, tmp_path):
    path = tmp_path / FAILURES
    path.write_text("A/bad.avi\tfrom the other run\nA/fixed.avi\tprepared since\nA/gone.avi\tno longer listed\n")
    keep = {"A/bad.avi": True, "A/fixed.avi": False, "A/gone.avi": False}
    write_failures(path, [("B/new.avi", "this run's")], keep=keep.get)
    assert path.read_text() == "A/bad.avi\tfrom the other run\nB/new.avi\tthis run's\n"
    write_failures(path, [("A/bad.avi", "again")], keep=lambda rel: False)  # this run's reason wins
    assert path.read_text() == "A/bad.avi\tagain\n"
    write_failures(path, [], keep=lambda rel: False)
    assert not path.exists()

    videos, cache = tmp_path / "videos", tmp_path / "cache"
    shutil.copytree(tiny_dataset / "videos" / "Grow", videos / "Grow")
    (videos / "Bad").mkdir()
    (videos / "Bad" / "zero.avi").write_bytes(b"")
    cache.mkdir()
    (cache / FAILURES).write_text("Bad/zero.avi\tan older reason\nGrow/v_Grow_g01_c01.avi\ta false failure\n"
                                  "Old/removed.avi\tits video was deleted\n")
    summary = prepare_dataset(videos, cache, PrepareOptions(short_side=0), workers=1, progress=False)
    assert [rel for rel, _ in summary.failures] == ["Bad/zero.avi"]
    assert (cache / FAILURES).read_text() == "Bad/zero.avi\tempty file (0 bytes)\n"


def _one_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"dualstream {command}: error: "), err
    return err[len(f"dualstream {command}: error: "):-1]


def _two_videos(tiny_cache: Path, cache: Path) -> Path:
    """A cache of two of the tiny videos; returns the folder of the first."""
    for key in (KEY, "MoveUp/v_MoveUp_g01_c01"):
        shutil.copytree(tiny_cache / key, cache / key)
    return cache / KEY


def _no_store(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.suffix != ".jpg" and p.name != MANIFEST]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_pack_refuses_a_cut_jpeg(tiny_cache, tmp_path, capsys, workers):
    folder = _two_videos(tiny_cache, tmp_path / "cache")
    frame = folder / "img_00003.jpg"
    frame.write_bytes(frame.read_bytes()[: frame.stat().st_size // 2])  # OpenCV decodes it, its lower half grey
    assert main(["-q", "pack", str(tmp_path / "cache"), "--workers", workers]) == 2
    assert _one_line(capsys, "pack") == f"{frame}: missing, unreadable or cut short frame"
    _no_store(folder)


def _lie(field, value):
    def damage(manifest: Path) -> None:
        m = json.loads(manifest.read_text())
        m[field] = value
        manifest.write_text(json.dumps(m))
    return damage


MANIFEST_LIES = {
    "taller": (_lie("height", 100), "img_00001.jpg: {w}x{h} pixels, not the video's {w}x100 (its manifest.json and other frames)"),
    "negative count": (_lie("num_frames", -5), "manifest.json: num_frames must be an integer >= 2, got -5"),
    "no flows": (_lie("num_flows", -3), "manifest.json: num_flows must be num_frames - 1 or num_frames (15 or 16), got -3"),
    "frames not a list": (_lie("frames", "abc"), 'manifest.json: frames must be "all" or increasing frame numbers in 1..16, got \'abc\''),
    "frames past the end": (_lie("frames", [3, 17]), 'manifest.json: frames must be "all" or increasing frame numbers in 1..16, got [3, 17]'),
    "zero width": (_lie("width", 0), "manifest.json: width must be an integer >= 1, got 0"),
    "height a string": (_lie("height", "48"), "manifest.json: height must be an integer >= 1, got '48'"),
    "frames repeated": (_lie("frames", [3, 3]), 'manifest.json: frames must be "all" or increasing frame numbers in 1..16, got [3, 3]'),
    "flows unlike frames": (lambda m: _lie("num_flows", 3)(m) or _lie("frames", [2, 5])(m),
                            "manifest.json: num_flows must be the number of kept frames (2), got 3"),
    "not JSON": (lambda m: m.write_text("{"), "manifest.json: not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    "not an object": (lambda m: m.write_text("[1]"), "manifest.json: not a JSON object"),
}


@pytest.mark.parametrize("case", list(MANIFEST_LIES))
def test_pack_refuses_a_lying_manifest(case, tiny_cache, tmp_path, capsys):
    folder = _two_videos(tiny_cache, tmp_path / "cache")
    m = json.loads((folder / MANIFEST).read_text())
    assert m["num_frames"] == 16 and m["frames"] == "all"
    damage, expected = MANIFEST_LIES[case]
    damage(folder / MANIFEST)
    assert main(["-q", "pack", str(tmp_path / "cache"), "--workers", "1"]) == 2
    assert _one_line(capsys, "pack") == f"{folder}/" + expected.format(w=m["width"], h=m["height"])
    _no_store(folder)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers through /proc")
def test_workers_end_when_pack_is_sigkilled(tiny_cache, tmp_path):
    """SIGKILL of pack's main process alone: its workers and multiprocessing's resource tracker end too."""
    shutil.copytree(tiny_cache, tmp_path / "cache")
    cmd = [sys.executable, "-m", "dualstream", "-q", "pack", str(tmp_path / "cache"), "--workers", "2"]
    proc = subprocess.Popen(cmd, env=dict(os.environ, PYTHONPATH=str(SRC)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    helpers: dict[int, str] = {}  # pid -> the multiprocessing module it runs
    try:
        deadline = time.monotonic() + 120
        while sorted(helpers.values()) != ["resource_tracker", "spawn", "spawn"]:
            assert proc.poll() is None and time.monotonic() < deadline, "pack ended before it could be killed"
            for k in _children(proc.pid):
                cmdline = Path(f"/proc/{k}/cmdline").read_text()
                helpers.update({k: kind for kind in ("spawn", "resource_tracker") if f"multiprocessing.{kind} " in cmdline})
            time.sleep(0.02)
        assert not {h: helpers[h] for h in _orphans_after_sigkill(proc, helpers)}, "orphaned workers or resource tracker"
    finally:
        _end(proc, helpers)


@pytest.mark.parametrize("keep", [50, 0])
def test_a_damaged_packed_store_stops_train_and_evaluate_before_any_work(keep, tiny_dataset, tiny_cache, tmp_path,
                                                                        capsys):
    cache, splits = tmp_path / "cache", tiny_dataset / "ucfTrainTestlist"
    shutil.copytree(tiny_cache, cache)
    assert main(["-q", "pack", str(cache), "--workers", "1", "--drop-jpeg"]) == 0
    assert main(_train_args(cache, splits, tmp_path / "run", "train.epochs=1")) == 0
    capsys.readouterr()
    test_video = read_split(splits, 1).test[0].key
    store = cache / test_video / "rgb.npy"
    store.write_bytes(store.read_bytes()[:keep])
    reason = ("EOF: reading array header, expected 118 bytes got 40" if keep else
              "EOF: reading magic string, expected 8 bytes got 0")
    expected = f"{store}: damaged packed store ({reason}); prepare or pack the video again"
    assert main(["-q", "evaluate", str(tmp_path / "run")]) == 2
    assert _one_line(capsys, "evaluate") == expected
    assert not (tmp_path / "run" / "eval.json").exists()
    assert main(_train_args(cache, splits, tmp_path / "run2", "train.epochs=1")) == 2
    assert _one_line(capsys, "train") == expected
    assert not (tmp_path / "run2").exists()  # refused while the datasets are built: no epoch, no run folder


def _cut_data(path: Path) -> str:
    path.write_bytes(path.read_bytes()[:-1])
    return "truncated: {size} bytes of {full}"


def _reshaped(path: Path) -> str:
    a = np.load(path)
    np.save(path, a[:, :, 1:])
    return "shape {got}, the manifest gives {want}"


def _as_float(path: Path) -> str:
    np.save(path, np.load(path).astype(np.float32))
    return "a float32 array of shape {want}, not (N, H, W, C) uint8"


@pytest.mark.parametrize("damage", [_cut_data, _reshaped, _as_float])
def test_check_packed_refuses_a_store_unlike_its_manifest(damage, tiny_cache, tmp_path):
    folder = _two_videos(tiny_cache, tmp_path / "cache")
    pack_cache(tmp_path / "cache", workers=1, progress=False)
    manifest = json.loads((folder / MANIFEST).read_text())
    check_packed(folder, manifest)  # intact
    store = folder / "flow.npy"
    full = store.stat().st_size
    reason = damage(store).format(size=store.stat().st_size, full=full,
                                  want=(15, manifest["height"], manifest["width"], 2),
                                  got=(15, manifest["height"], manifest["width"] - 1, 2))
    with pytest.raises(CacheError) as exc:
        check_packed(folder, manifest)
    assert str(exc.value) == f"{store}: damaged packed store ({reason}); prepare or pack the video again"
