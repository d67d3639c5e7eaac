"""`dualstream fit`: make-split -> prepare -> train -> evaluate from a folder, and its clear refusals."""

import json
import os

from dualstream.cli import main
from dualstream.data.ucf101 import read_split

from .test_end_to_end import TINY_RECIPE


def test_fit_end_to_end_on_a_folder(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    sets = [*TINY_RECIPE, "train.epochs=1", "train.steps=0", "data.val_fraction=0.0"]
    argv = ["-q", "fit", "--videos", str(tiny_dataset / "videos"), "--out", str(run), "--workers", "1"]
    assert main(argv + [a for s in sets for a in ("--set", s)]) == 0
    out = capsys.readouterr().out
    result = json.loads((run / "eval.json").read_text())
    assert f"video_top1={result['video_top1']:.4f}" in out and str(run) in out
    split = read_split(run / "splits", 1)
    assert split.test and not {e.group for e in split.train} & {e.group for e in split.test}  # recording-disjoint
    assert split.shared_across_classes() == {} and "group numbers disjoint across classes" in out
    assert "clips: 4 frames spread over each whole video; horizontal flip off\n" in out  # the recipe's choice, said
    spec = json.loads((run / "model.json").read_text())
    assert spec["sampling"] == "spread" and spec["window"] >= 2
    manifest = json.loads(next((run / "cache").glob("*/*/manifest.json")).read_text())
    assert min(manifest["height"], manifest["width"]) == 32  # prepared at the recipe's input size
    assert manifest["flow_bound"] == 3.0  # and quantised with its flow bound (small_real)
    assert (run / "model.safetensors").is_file() and (run / "splits" / "trainlist01.txt").is_file()


def test_a_folder_with_one_group_per_class_is_one_clear_line(tiny_dataset, tmp_path, capsys):
    videos = tmp_path / "videos"
    for src in (tiny_dataset / "videos").glob("*/*_g01_*.avi"):
        (videos / src.parent.name).mkdir(parents=True, exist_ok=True)
        os.symlink(src, videos / src.parent.name / src.name)
    assert main(["-q", "fit", "--videos", str(videos), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "only one group" in err and "Grow" in err
    assert not (tmp_path / "run" / "cache").exists()


def test_unknown_recipe_is_one_clear_line(tiny_dataset, tmp_path, capsys):
    assert main(["-q", "fit", "--videos", str(tiny_dataset / "videos"), "--out", str(tmp_path), "--recipe", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'nope'" in err and "small_real" in err
