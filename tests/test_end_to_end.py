"""The real entry point on a tiny synthetic set: prepare -> train -> evaluate, and the user errors."""

import json

import pytest

from dualstream.cli import main
from dualstream.config import demo_config_path

TINY_RECIPE = ["data.input_size=32", "data.frames=4", "data.interval=3", "data.offsets=[1,2]",
               "data.offset_period=1", "data.eval_clips=2", "train.epochs=2", "train.batch_size=4",
               "model.kwargs.widths=[8,4,8]"]


def _train_args(cache, splits, out, *extra):
    sets = [f"data.cache={cache}", f"data.splits={splits}", *TINY_RECIPE, *extra]
    return ["-q", "train", "--config", str(demo_config_path()), "--out", str(out)] + [a for s in sets for a in ("--set", s)]


def test_train_evaluate_resume(tiny_dataset, tiny_cache, tmp_path, capsys):
    splits = tiny_dataset / "ucfTrainTestlist"
    run = tmp_path / "run"
    assert main(_train_args(tiny_cache, splits, run)) == 0
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [0, 1]
    assert set(lines[0]) >= {"train_loss", "train_acc", "test_acc"}
    for name in ("model.safetensors", "model.json", "config.yaml", "run.json", "curves.png",
                 "checkpoint/epoch-0002/weights.safetensors", "checkpoint/epoch-0002/state.pt"):
        assert (run / name).is_file(), name
    assert not (run / "checkpoint" / "epoch-0001").exists()  # only the newest is kept
    spec = json.loads((run / "model.json").read_text())
    assert (spec["short_side"], spec["eval_clips"], spec["frames"]) == (48, 2, 4)  # what predict rebuilds inputs from

    assert main(["-q", "evaluate", "--run", str(run)]) == 0
    result = json.loads((run / "eval.json").read_text())
    assert result["num_videos"] == len((splits / "testlist01.txt").read_text().split())
    assert result["num_clips"] == 2 * result["num_videos"] and result["views_per_video"] == 2
    assert (run / "confusion.png").is_file()
    header, *wrong = (run / "mistakes.csv").read_text().splitlines()
    assert header == "video,true,predicted,confidence" and len(wrong) == result["num_mistakes"]
    assert len(wrong) == round(result["num_videos"] * (1 - result["video_top1"]))
    assert 0.0 <= result["clip_top1"] <= 1.0 and 0.0 <= result["video_top1"] <= result["top5"] <= 1.0
    assert set(result["per_class"]) == {"MoveUp", "MoveDown", "Grow"}
    assert "video_top1=" in capsys.readouterr().out
    assert main(["-q", "report", str(run), "--out", str(tmp_path / "report.md")]) == 0
    row = f"| `{run}` | demo_synthetic | early_fusion_small | "
    assert row in (tmp_path / "report.md").read_text() and row in capsys.readouterr().out

    # resume: extend to 3 epochs; the first two lines are kept as they were
    assert main(_train_args(tiny_cache, splits, run, "train.epochs=3") + ["--resume"]) == 0
    resumed = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert resumed[:2] == lines and resumed[2]["epoch"] == 2


def test_split_naming_missing_videos_is_one_clear_error(tiny_dataset, tiny_cache, tmp_path, capsys):
    splits = tmp_path / "splits"
    splits.mkdir()
    for name in ("classInd.txt", "trainlist01.txt"):
        (splits / name).write_bytes((tiny_dataset / "ucfTrainTestlist" / name).read_bytes())
    (splits / "testlist01.txt").write_text("Grow/v_Grow_g09_c01.avi\r\nGrow/v_Grow_g09_c02.avi\r\n")
    assert main(_train_args(tiny_cache, splits, tmp_path / "run")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "Grow/v_Grow_g09_c01" in err and "Grow/v_Grow_g09_c02" in err


def test_unknown_set_key_is_one_clear_error(tiny_dataset, tiny_cache, tmp_path, capsys):
    code = main(_train_args(tiny_cache, tiny_dataset / "ucfTrainTestlist", tmp_path / "run", "train.epochz=3"))
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown config key 'train.epochz'" in err and err.count("\n") == 1


@pytest.mark.parametrize("argv", [["evaluate", "--run", "/nonexistent/run"], ["generate", "--out", "/tmp/x", "--classes", "1"]])
def test_user_errors_exit_2_without_traceback(argv, capsys):
    assert main(["-q", *argv]) == 2
    assert "error:" in capsys.readouterr().err


def test_exceptions_dualstream_defines_are_user_errors_and_a_bug_is_not(monkeypatch, capsys):
    """One line and exit 2 for an exception class dualstream defines; a built-in exception is a bug and
    propagates with its traceback."""
    from dualstream import cli
    from dualstream.inference.live import LiveError

    def fail_with(exc):
        def cmd(args):
            raise exc
        monkeypatch.setitem(cli.COMMANDS, "models", (*cli.COMMANDS["models"][:2], cmd))

    fail_with(LiveError("camera 0: cannot be opened"))
    assert main(["models"]) == 2
    assert capsys.readouterr().err == "dualstream models: error: camera 0: cannot be opened\n"
    fail_with(KeyError("a bug"))
    with pytest.raises(KeyError):
        main(["models"])


def test_ablation_table_and_chart(tiny_dataset, tiny_cache, tmp_path):
    sets = [f"data.cache={tiny_cache}", f"data.splits={tiny_dataset / 'ucfTrainTestlist'}", *TINY_RECIPE,
            "train.epochs=1", "model.kwargs={}"]
    argv = ["-q", "ablation", "--config", str(demo_config_path()), "--models", "early_fusion_small,rgb_only_small",
            "--out", str(tmp_path)] + [a for s in sets for a in ("--set", s)]
    assert main(argv) == 0
    table = (tmp_path / "ablation.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| ") and "_small" in line]
    assert [r.split("|")[1].strip() for r in rows] == ["early_fusion_small", "rgb_only_small"]
    assert table[2].startswith("Recipe: 4 frames every 3, input 32, 1 epochs")
    assert (tmp_path / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "rgb_only_small" / "eval.json").is_file()


def test_ablation_unknown_model(tmp_path, capsys):
    argv = ["-q", "ablation", "--config", str(demo_config_path()), "--models", "nope", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "unknown model(s) nope" in capsys.readouterr().err


def test_flow_bound_must_match_the_cache(tiny_dataset, tiny_cache, tmp_path, capsys):
    code = main(_train_args(tiny_cache, tiny_dataset / "ucfTrainTestlist", tmp_path / "run", "data.flow_bound=10"))
    assert code == 2
    err = capsys.readouterr().err
    assert "flow was quantised with bound 20.0" in err and "data.flow_bound=10" in err and err.count("\n") == 1


def test_a_fresh_run_in_an_old_run_folder_drops_its_results(tiny_dataset, tiny_cache, tmp_path):
    splits = tiny_dataset / "ucfTrainTestlist"
    run = tmp_path / "run"
    assert main(_train_args(tiny_cache, splits, run, "train.epochs=1")) == 0
    assert main(["-q", "evaluate", "--run", str(run)]) == 0
    assert (run / "eval.json").is_file() and (run / "mistakes.csv").is_file()
    assert main(_train_args(tiny_cache, splits, run, "train.epochs=1")) == 0  # not --resume
    assert not (run / "eval.json").exists() and not (run / "mistakes.csv").exists()
    assert (run / "model.json").is_file()


def test_ablation_over_seeds_reports_mean_and_std_and_reuses_finished_runs(tiny_dataset, tiny_cache, tmp_path, capsys):
    sets = [f"data.cache={tiny_cache}", f"data.splits={tiny_dataset / 'ucfTrainTestlist'}", *TINY_RECIPE,
            "train.epochs=1", "model.kwargs={}"]
    argv = ["-q", "ablation", "--config", str(demo_config_path()), "--models", "rgb_only_small,flow_only_small",
            "--folds", "1", "--seeds", "0,1", "--out", str(tmp_path)] + [a for s in sets for a in ("--set", s)]
    assert main(argv) == 0
    runs = json.loads((tmp_path / "ablation.json").read_text())["runs"]
    assert [(r["model"], r["split"], r["seed"]) for r in runs] == [
        ("rgb_only_small", 1, 0), ("rgb_only_small", 1, 1), ("flow_only_small", 1, 0), ("flow_only_small", 1, 1)]
    assert (tmp_path / "flow_only_small" / "split1_seed1" / "eval.json").is_file()
    table = (tmp_path / "ablation.md").read_text()
    mine = [r["video_top1"] for r in runs if r["model"] == "flow_only_small"]
    mean = sum(mine) / 2
    std = (sum((v - mean) ** 2 for v in mine)) ** 0.5  # sample std of two values: |a - b| / sqrt(2)
    assert "| flow_only_small | " in table and f"{mean:.4f} ± {std:.4f}" in table and "split 1" in table
    assert (tmp_path / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(argv[1:]) == 0  # not quiet: says which runs it reuses
    assert capsys.readouterr().out.count("(done before)") == 4


@pytest.mark.parametrize("bad, message", [(["--seeds", "0,0"], "--seeds lists a value twice"),
                                          (["--folds", "one"], "--folds expects comma-separated integers")])
def test_ablation_bad_folds_or_seeds_are_one_line(bad, message, tmp_path, capsys):
    argv = ["-q", "ablation", "--config", str(demo_config_path()), "--models", "flow_only_small", "--out", str(tmp_path),
            "--set", "data.cache=x", "--set", "data.splits=y", *bad]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
