"""Data preparation against hostile or concurrent conditions: frames symlinked out of the source folder,
a SIGKILLed prepare's workers, two runs into one cache (live temporary folders, failures files)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dualstream.cli import main
from dualstream.prepare import common as prep
from dualstream.prepare.import_rawframes import import_rawframes
from dualstream.prepare.common import FAILURES, PrepareOptions, atomic_folder, write_failures
from dualstream.cache import MANIFEST
from dualstream.prepare.run import prepare_dataset

from .test_data_import_rawframes import _copy_frames

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
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 60  # a worker still importing torch ends once its initialiser runs
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [w for w in workers if _alive(w)], "orphaned workers"
    finally:
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def test_a_live_runs_temporary_folder_is_never_removed(tiny_dataset, tmp_path):
    cache = tmp_path / "cache"
    other = _sleeper()  # stands for a concurrent prepare: alive, on this machine
    try:
        start = prep._start_time(other.pid)
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
    assert prep._is_stale(foreign) and prep._is_stale(live)


def test_a_video_finished_meanwhile_by_a_concurrent_run_is_not_a_failure(tmp_path):
    dst = tmp_path / "A" / "v"
    with atomic_folder(dst) as tmp:
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
