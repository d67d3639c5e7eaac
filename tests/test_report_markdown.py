"""``dualstream report``: the Markdown table and the mean over splits 1-3."""

from __future__ import annotations

import json

import pytest
import yaml

from dualstream.cli import main
from dualstream.report.markdown import format_report, read_run


def _run(root, name, *, split, top1, recipe="early_fusion_ucf101", trained_split=None):
    run = root / name
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "early_fusion"}, "data": {"split": split}}))
    (run / "run.json").write_text(json.dumps({"recipe": f"{recipe}_split{split}", "params": 4994662, "wall_s": 3723}))
    (run / "metrics.jsonl").write_text('{"epoch": 0}\n{"epoch": 1}\n')
    (run / "eval.json").write_text(json.dumps({"clip_top1": top1 - 0.1, "video_top1": top1, "top5": 0.9,
                                               "views_per_video": 10, "split": split,
                                               "trained_split": trained_split or split}))
    return run


def test_mean_over_three_splits(tmp_path, capsys):
    runs = [_run(tmp_path, f"s{s}", split=s, top1=t) for s, t in ((1, 0.5), (2, 0.6), (3, 0.7))]
    out = tmp_path / "report.md"
    assert main(["-q", "report", *map(str, runs), "--out", str(out)]) == 0
    text = out.read_text()
    assert capsys.readouterr().out == text
    assert "| `" + str(runs[0]) + "` | early_fusion_ucf101_split1 | early_fusion | 4,994,662 | 1 | 40.00 | 50.00 | 90.00 | 10 | 2 | 1h02m |" in text
    assert "## Mean over UCF-101 splits 1-3" in text
    assert "| early_fusion_ucf101 | early_fusion | 4,994,662 | 50.00 | 60.00 | 90.00 | 2/2/2 | 3h06m |" in text


def test_no_mean_without_all_three_held_out_splits(tmp_path):
    rows = [read_run(_run(tmp_path, "s1", split=1, top1=0.5)), read_run(_run(tmp_path, "s2", split=2, top1=0.5)),
            read_run(_run(tmp_path, "s3", split=3, top1=0.5, trained_split=1))]
    text = format_report(rows)
    assert "3 (not held out)" in text and "Mean over" not in text


def test_unevaluated_run_is_one_clear_error(tmp_path, capsys):
    run = _run(tmp_path, "r", split=1, top1=0.5)
    (run / "eval.json").unlink()
    assert main(["-q", "report", str(run), "--out", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dualstream evaluate --run" in err


@pytest.mark.parametrize("seconds,text", [(59, "0m59s"), (3600, "1h00m")])
def test_wall_time_format(seconds, text):
    from dualstream.report.markdown import _wall

    assert _wall(seconds) == text


def test_a_run_whose_config_is_an_alias_bomb_is_one_line(tmp_path, capsys):
    run = _run(tmp_path, "bomb", split=1, top1=0.5)
    levels = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 6)]  # a million strings
    (run / "config.yaml").write_text(f"model:\n  name: [{', '.join(levels)}]\n")
    assert main(["-q", "report", str(run), "--out", str(tmp_path / "report.md")]) == 2
    assert capsys.readouterr().err == (f"dualstream report: error: {run / 'config.yaml'}: expands to more than "
                                       "10000 values (through aliases?)\n")
    assert not (tmp_path / "report.md").exists()
