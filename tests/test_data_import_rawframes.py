"""import-rawframes: MMAction2-extracted frames + flow become a cache without recomputation."""

import json
import shutil

import numpy as np

from dualstream.cli import main
from dualstream.cache import load_manifest
from dualstream.data.dataset import EvalViews
from dualstream.data.sampling import ClipSpec
from dualstream.prepare.import_rawframes import import_rawframes
from dualstream.data.sampling import eval_offsets
from dualstream.prepare.common import FAILURES
from dualstream.cache import MANIFEST
from dualstream.data.ucf101 import VideoEntry

from .conftest import TINY


def _copy_frames(cache, key, dst):
    """A video's JPEGs only, as build_rawframes.py leaves them (no manifest)."""
    dst.mkdir(parents=True)
    assert (cache / key / MANIFEST).is_file()
    for p in (cache / key).glob("*.jpg"):
        shutil.copyfile(p, dst / p.name)
    return dst


def test_import_validates_links_and_loads_like_prepared(tiny_cache, tmp_path, capsys):
    src = tmp_path / "rawframes"
    good = ["Grow/v_Grow_g01_c01", "MoveUp/v_MoveUp_g02_c01"]
    for key in good:
        _copy_frames(tiny_cache, key, src / key)
    (_copy_frames(tiny_cache, good[0], src / "Bad" / "gap") / "img_00005.jpg").unlink()
    (_copy_frames(tiny_cache, good[0], src / "Bad" / "fewer_y") / "flow_y_00015.jpg").unlink()
    (_copy_frames(tiny_cache, good[0], src / "Bad" / "empty") / "flow_x_00003.jpg").write_bytes(b"")
    (_copy_frames(tiny_cache, good[0], src / "Bad" / "garbage") / "img_00016.jpg").write_bytes(b"not a jpeg")
    shutil.copyfile(src / good[0] / "flow_x_00015.jpg", _copy_frames(tiny_cache, good[0], src / "Bad" / "equal") / "flow_x_00016.jpg")
    shutil.copyfile(src / good[0] / "flow_y_00015.jpg", src / "Bad" / "equal" / "flow_y_00016.jpg")
    (src / "Bad" / "nothing").mkdir()

    out = tmp_path / "cache"
    assert main(["-q", "import-rawframes", "--src", str(src), "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"imported 3, skipped 0 (already have a manifest), failed 5 (see {out / FAILURES})\n"
    assert (out / FAILURES).read_text().splitlines() == [
        "Bad/empty\tflow_x_00003.jpg: empty file",
        "Bad/fewer_y\t15 flow_x but 14 flow_y files",
        "Bad/gap\timg_00005.jpg is missing (numbering must run from 1 without gaps)",
        "Bad/garbage\timg_00016.jpg: not a readable JPEG",
        "Bad/nothing\t0 img_*.jpg frames; a clip needs at least 2",
    ]
    assert load_manifest(out / "Bad/equal")["num_flows"] == TINY.frames  # as many flows as frames is accepted
    manifest = load_manifest(out / good[0])
    prepared = load_manifest(tiny_cache / good[0])
    assert {k: manifest[k] for k in ("num_frames", "num_flows", "height", "width", "bytes", "frames")} == \
        {k: prepared[k] for k in ("num_frames", "num_flows", "height", "width", "bytes", "frames")}
    assert (manifest["flow_method"], manifest["flow_bound"], manifest["imported"]) == ("tvl1", 20.0, True)
    assert (out / good[0] / "img_00001.jpg").stat().st_ino == (src / good[0] / "img_00001.jpg").stat().st_ino

    entries = [VideoEntry(k + ".avi", 0) for k in good]
    a = EvalViews(out, entries, ClipSpec(input_size=32, frames=4, interval=3), offsets=eval_offsets(3, 2))
    b = EvalViews(tiny_cache, entries, ClipSpec(input_size=32, frames=4, interval=3), offsets=eval_offsets(3, 2))
    for k in range(len(a)):
        assert all(np.array_equal(x, y) for x, y in zip(a[k][:2], b[k][:2]))

    again = import_rawframes(src, out, progress=False)
    assert (again.imported, again.skipped, len(again.failures)) == (0, 3, 5)


def test_import_in_place_writes_only_manifests(tiny_cache, tmp_path):
    src = tmp_path / "rawframes"
    folder = _copy_frames(tiny_cache, "Grow/v_Grow_g01_c01", src / "Grow" / "v_Grow_g01_c01")
    before = sorted(p.name for p in folder.iterdir())
    summary = import_rawframes(src, src, flow_method="dis", progress=False)
    assert (summary.imported, summary.failures) == (1, [])
    assert sorted(p.name for p in folder.iterdir()) == sorted(before + [MANIFEST])
    grown = load_manifest(tiny_cache / "Grow/v_Grow_g01_c01")
    assert json.loads((folder / MANIFEST).read_text())["bytes"] == grown["bytes"]
    assert not (src / FAILURES).exists()


def test_import_of_a_flat_folder_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "img_00001.jpg").write_bytes(b"x")
    assert main(["-q", "import-rawframes", "--src", str(tmp_path / "flat"), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dualstream import-rawframes: error: ") and "no <Class>/<video>/ folders found" in err
