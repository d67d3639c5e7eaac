"""Split validation, the train/test group leakage guard, check-split and make-split."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dualstream.cli import main
from dualstream.config import load_config
from dualstream.data.make_split import make_split
from dualstream.data.ucf101 import (GroupLeakageError, SplitError, check_group_overlap, read_split,
                                    validate_split)
from dualstream.engine.build import load_split

from .conftest import shared_data

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.parametrize("n, train, test", [(1, 9537, 3783), (2, 9586, 3734), (3, 9624, 3696)])
def test_official_splits_parse_and_pass_the_guard(n, train, test):
    split = read_split(shared_data("ucf101", "ucfTrainTestlist"), n)
    assert (len(split.classes), len(split.train), len(split.test)) == (101, train, test)
    assert check_group_overlap(split, allow=False, where=f"split {n}") == {}


def _leaky_copy(src, dst):
    """The official split 1 with one test video (g01 of ApplyEyeMakeup) moved to train."""
    dst.mkdir()
    (dst / "classInd.txt").write_bytes((src / "classInd.txt").read_bytes())
    test = (src / "testlist01.txt").read_bytes().decode().splitlines(keepends=True)
    moved = test.pop(0)
    assert moved == "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n"
    (dst / "testlist01.txt").write_bytes("".join(test).encode())
    train = (src / "trainlist01.txt").read_bytes().decode()
    (dst / "trainlist01.txt").write_bytes((train + moved.rstrip() + " 1\r\n").encode())


def test_moving_one_test_video_to_train_is_refused(tmp_path, capsys):
    leaky = tmp_path / "leaky"
    _leaky_copy(shared_data("ucf101", "ucfTrainTestlist"), leaky)
    split = read_split(leaky, 1)
    with pytest.raises(GroupLeakageError, match=r"1 group\(s\) appear in both train and test: "
                                                r"ApplyEyeMakeup/01 \(train 1, test 5\)"):
        check_group_overlap(split, allow=False, where="x")
    assert check_group_overlap(split, allow=True, where="x") == {"ApplyEyeMakeup/01": (1, 5)}

    assert main(["check-split", "--splits", str(leaky), "--split", "1"]) == 1
    out = capsys.readouterr().out
    assert "group ids on both sides across classes 1, groups in both train and test 1\n" in out
    assert "\n  overlap ApplyEyeMakeup/01: train 1, test 5\n  across classes 01: train 1, test 532\n" in out

    cache = tmp_path / "cache"  # the guard comes before the cache check
    cfg = load_config(None, [f"data.splits={leaky}", f"data.cache={cache}"])
    with pytest.raises(GroupLeakageError):
        load_split(cfg)
    cfg = load_config(None, [f"data.splits={leaky}", f"data.cache={cache}", "data.allow_group_overlap=true"])
    with pytest.raises(Exception, match="not in the cache"):
        load_split(cfg)
    assert "shares 1 group(s) between train and test" in capsys.readouterr().err


def _lists(d, train, test):
    d.mkdir()
    (d / "classInd.txt").write_text("1 A\r\n2 B\r\n")
    (d / "trainlist01.txt").write_text(train)
    (d / "testlist01.txt").write_text(test)


def test_every_missing_video_is_reported_at_once(tmp_path):
    videos = tmp_path / "videos"
    (videos / "A").mkdir(parents=True)
    (videos / "A" / "v_A_g01_c01.avi").write_bytes(b"x")
    _lists(tmp_path / "s", "A/v_A_g01_c01.avi 1\r\nB/v_B_g01_c01.avi 2\r\n", "A/v_A_g02_c01.avi\r\n")
    split = read_split(tmp_path / "s", 1)
    with pytest.raises(SplitError, match=r"^S: 2 listed video\(s\) not found under .*videos: "
                                         r"A/v_A_g02_c01.avi, B/v_B_g01_c01.avi$"):
        validate_split(split, where="S", videos_dir=videos)


def test_a_video_on_both_sides_is_refused(tmp_path):
    _lists(tmp_path / "s", "A/v_A_g01_c01.avi 1\r\n", "A/v_A_g01_c01.avi\r\n")
    with pytest.raises(SplitError, match=r"^S: 1 video\(s\) listed in both train and test: A/v_A_g01_c01.avi$"):
        validate_split(read_split(tmp_path / "s", 1), where="S")


def test_absolute_path_is_rejected(tmp_path):
    _lists(tmp_path / "s", "/etc/v_A_g01_c01.avi 1\r\n", "")
    with pytest.raises(SplitError, match=r"trainlist01.txt:1: entry '/etc/v_A_g01_c01.avi' must be"):
        read_split(tmp_path / "s", 1)


def _touch_videos(root, names):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def test_make_split_is_group_disjoint_and_reads_back(tmp_path, capsys):
    videos = tmp_path / "videos"
    names = [f"{c}/v_{c}_g{g:02d}_c{k:02d}.avi" for c, gs in (("Run", range(1, 11)), ("Walk", range(11, 21)))
             for g in gs for k in range(1, 4)]
    _touch_videos(videos, names + ["Walk/odd_name.mp4"])
    out = tmp_path / "split"
    assert main(["make-split", "--videos", str(videos), "--out", str(out), "--seed", "1"]) == 0
    assert "classes 2, train 43, test 18, groups 21 (no group on both sides)" in capsys.readouterr().out
    assert (out / "trainlist01.txt").read_bytes().endswith(b" 2\r\n")
    split = read_split(out, 1)
    assert split.classes == ["Run", "Walk"]
    assert sorted(e.path for e in split.train + split.test) == sorted(names + ["Walk/odd_name.mp4"])
    assert check_group_overlap(split, allow=False, where="made") == {}
    assert main(["check-split", "--splits", str(out), "--videos", str(videos)]) == 0
    # same seed, same split; another seed, another one
    again = make_split(videos, tmp_path / "again", seed=1)
    assert (tmp_path / "again" / "testlist01.txt").read_bytes() == (out / "testlist01.txt").read_bytes()
    assert again == {"classes": 2, "train": 43, "test": 18, "groups": 21, "across": 0}
    make_split(videos, tmp_path / "other", seed=2)
    assert (tmp_path / "other" / "testlist01.txt").read_bytes() != (out / "testlist01.txt").read_bytes()


def _recordings(tmp_path, classes=("Circle", "Left", "Right", "Up"), serials=range(1, 9)):
    """Every class recorded in every session: g01 of Circle and g01 of Left are one recording."""
    videos = tmp_path / "videos"
    _touch_videos(videos, [f"{c}/v_{c}_g{g:02d}_c01.mp4" for c in classes for g in serials])
    return videos


@pytest.mark.parametrize("seed", range(6))
def test_make_split_keeps_a_recording_on_one_side_for_every_class(tmp_path, seed, capsys):
    videos = _recordings(tmp_path)
    out = tmp_path / "split"
    assert main(["make-split", "--videos", str(videos), "--out", str(out), "--seed", str(seed)]) == 0
    assert "(no group number on both sides in any class)" in capsys.readouterr().out
    split = read_split(out, 1)
    test_ids = {e.group for e in split.test}
    assert test_ids and not test_ids & {e.group for e in split.train}
    assert split.shared_across_classes() == {}
    assert {e.label for e in split.test} == {e.label for e in split.train} == {0, 1, 2, 3}  # every class on both sides
    assert len(split.test) == 4 * len(test_ids)  # whole recordings: every class of a test serial
    assert main(["check-split", "--splits", str(out)]) == 0
    assert "group ids on both sides across classes 0" in capsys.readouterr().out


def test_class_by_class_splits_share_recordings_and_check_split_says_so(tmp_path, capsys):
    videos = _recordings(tmp_path)
    counts = make_split(videos, tmp_path / "split", seed=0, group_scope="class")
    assert counts["across"] == 0
    split = read_split(tmp_path / "split", 1)
    shared = split.shared_across_classes()
    assert shared  # class by class, a serial tested for one class is trained on for another
    assert check_group_overlap(split, allow=False, where="x") == {}  # which the per-class guard cannot see
    capsys.readouterr()
    assert main(["check-split", "--splits", str(tmp_path / "split")]) == 0
    out, err = capsys.readouterr()
    assert f"group ids on both sides across classes {len(shared)}" in out
    g, (a, b) = next(iter(shared.items()))
    assert f"  across classes {g}: train {a}, test {b}" in out
    assert "put one group number on both sides in different classes" in err


def test_a_serial_missing_from_some_classes_still_gives_every_class_a_test_video(tmp_path):
    videos = tmp_path / "videos"
    # Circle has serials 1-4 only, Left 5-8 only, Up 1-8: shared ids, yet each class needs both sides
    names = ([f"Circle/v_Circle_g{g:02d}_c01.mp4" for g in range(1, 5)] +
             [f"Left/v_Left_g{g:02d}_c01.mp4" for g in range(5, 9)] +
             [f"Up/v_Up_g{g:02d}_c01.mp4" for g in range(1, 9)])
    _touch_videos(videos, names)
    for seed in range(8):
        make_split(videos, tmp_path / f"s{seed}", seed=seed, test_fraction=0.2)
        split = read_split(tmp_path / f"s{seed}", 1)
        assert split.shared_across_classes() == {}
        assert {e.label for e in split.test} == {e.label for e in split.train} == {0, 1, 2}, seed


def test_make_split_custom_regex_and_no_groups(tmp_path):
    videos = tmp_path / "videos"
    _touch_videos(videos, [f"Jump/person{p}_take{t}.mp4" for p in range(1, 6) for t in range(1, 3)])
    make_split(videos, tmp_path / "s", group_regex=r"person(\d+)", test_fraction=0.4)
    split = read_split(tmp_path / "s", 1)
    test_people = {e.path.split("_")[0] for e in split.test}
    assert len(split.test) == 4 and len(test_people) == 2
    assert not test_people & {e.path.split("_")[0] for e in split.train}
    # without a matching regex each video is its own group
    make_split(videos, tmp_path / "s2", test_fraction=0.3)
    assert len(read_split(tmp_path / "s2", 1).test) == 3


def test_make_split_bad_arguments_are_one_line_errors(tmp_path, capsys):
    _touch_videos(tmp_path / "v", ["A/a.avi"])
    assert main(["make-split", "--videos", str(tmp_path / "v"), "--out", str(tmp_path / "s"), "--group-regex", "("]) == 2
    assert main(["make-split", "--videos", str(tmp_path / "v"), "--out", str(tmp_path / "s"), "--test-fraction", "1.5"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "--test-fraction must be between 0 and 1" in err[1]
    assert err[0] == ("dualstream make-split: error: --group-regex '(' is not a regular expression RE2 accepts "
                      "(linear time: no backreferences or lookaround, a bounded size): missing ): (")


@pytest.mark.parametrize("pattern, reason", [(r"(a)\1", r"invalid escape sequence: \1"),
                                             (r"x(?=y)", "invalid perl operator: (?="),
                                             (r"\pL{1000}", "pattern too large - compile failed")])
@pytest.mark.parametrize("command", ["make-split", "check-split"])
def test_a_group_regex_re2_refuses_is_one_line(pattern, reason, command, tmp_path, capsys):
    _touch_videos(tmp_path / "v", ["A/a.avi"])
    where = ["--out", str(tmp_path / "s")] if command == "make-split" else ["--splits", str(tmp_path / "s")]
    assert main([command, "--videos", str(tmp_path / "v"), *where, "--group-regex", pattern]) == 2
    assert capsys.readouterr().err == (f"dualstream {command}: error: --group-regex {pattern!r} is not a regular "
                                       "expression RE2 accepts (linear time: no backreferences or lookaround, "
                                       f"a bounded size): {reason}\n")
    assert not (tmp_path / "s").exists()


def test_a_backtracking_group_regex_runs_in_linear_time(tmp_path):
    """``(a+)+$`` on names of 40 a's and a b: Python's backtracking re takes minutes on each name; RE2 is
    linear. In a process of its own, so that a regression fails on the timeout instead of holding the run."""
    videos = tmp_path / "videos"
    _touch_videos(videos, [f"{c}/{'a' * 40}b{i}.avi" for c in ("Run", "Walk") for i in range(3)])
    cmd = [sys.executable, "-m", "dualstream", "make-split", "--videos", str(videos), "--out", str(tmp_path / "s"),
           "--group-regex", "(a+)+$"]
    proc = subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=str(SRC)), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"wrote split 1 to {tmp_path / 's'}: classes 2, train 4, test 2, groups 6 (no group on both sides)\n"


def test_training_refuses_a_leaky_split_and_records_the_override(tiny_dataset, tiny_cache, tmp_path, capsys):
    import yaml

    from .test_end_to_end import _train_args

    leaky = tmp_path / "leaky"
    leaky.mkdir()
    src = tiny_dataset / "ucfTrainTestlist"
    (leaky / "classInd.txt").write_bytes((src / "classInd.txt").read_bytes())
    test = (src / "testlist01.txt").read_text().splitlines(keepends=True)
    moved = test.pop(0).strip()  # MoveUp/v_MoveUp_g01_c01.avi, its group stays in test
    (leaky / "testlist01.txt").write_text("".join(test))
    (leaky / "trainlist01.txt").write_text((src / "trainlist01.txt").read_text() + f"{moved} 1\r\n")

    run = tmp_path / "run"
    assert main(_train_args(tiny_cache, leaky, run, "train.epochs=1")) == 2
    assert "1 group(s) appear in both train and test: MoveUp/01 (train 1, test 1)" in capsys.readouterr().err
    assert not run.exists()
    assert main(_train_args(tiny_cache, leaky, run, "train.epochs=1") + ["--allow-group-overlap"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["allow_group_overlap"] is True
    assert "shares 1 group(s) between train and test" in capsys.readouterr().err


def test_make_split_refuses_what_split_files_cannot_hold(tmp_path):
    videos = tmp_path / "v"
    _touch_videos(videos, ["A/v_A_g01_c01.avi", "B/v_B_g01_c01.avi"])
    for fraction in (0.0, 1.0, -0.5):
        with pytest.raises(SplitError, match=f"^--test-fraction must be between 0 and 1, got {fraction}$"):
            make_split(videos, tmp_path / "s", test_fraction=fraction)
    with pytest.raises(SplitError, match=f"^--group-scope must be one of auto, dataset, class, got '{'x' * 40}'$"):
        make_split(videos, tmp_path / "s", group_scope="x" * 100)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: no video files found"):
        make_split(tmp_path / "empty", tmp_path / "s")
    _touch_videos(videos, ["B/w B.avi", "B/v B g02.avi"])
    with pytest.raises(SplitError, match=r"v: 2 path\(s\) contain spaces, which split files cannot hold \(they are "
                                         r"space-separated\), e\.g\. 'B/v B g02\.avi'$"):
        make_split(videos, tmp_path / "s")
    assert not (tmp_path / "s").exists()  # nothing written


@pytest.mark.parametrize("groups, size, fraction, tested", [
    (4, 3, 0.35, 3),  # target 4.2: a second group of 3 would overshoot by more than half of it
    (6, 2, 0.25, 4),  # target 3: a second group of 2 overshoots by exactly half of it, which is still taken
    (10, 1, 0.3, 3),
])
def test_make_split_takes_whole_groups_until_the_fraction(tmp_path, groups, size, fraction, tested):
    videos = tmp_path / "v"
    _touch_videos(videos, [f"A/v_A_g{g:02d}_c{c:02d}.avi" for g in range(1, groups + 1) for c in range(1, size + 1)])
    counts = make_split(videos, tmp_path / "s", test_fraction=fraction)
    assert counts == {"classes": 1, "train": groups * size - tested, "test": tested, "groups": groups, "across": 0}
    split = read_split(tmp_path / "s", 1)
    assert len(split.test) == tested and not {e.group for e in split.test} & {e.group for e in split.train}


def test_make_split_writes_sorted_crlf_lists_and_keeps_a_class_that_cannot_spare_a_group_in_train(tmp_path):
    videos = tmp_path / "v"
    names = [f"Walk/v_Walk_g{g:02d}_c01.avi" for g in (3, 1, 2, 4)] + ["Run/v_Run_g09_c01.avi", "Run/v_Run_g09_c02.avi"]
    _touch_videos(videos, names)
    out = tmp_path / "new" / "folder"
    make_split(videos, out, test_fraction=0.5, group_scope="class")  # made with its parents, and rewritten
    counts = make_split(videos, out, test_fraction=0.5, group_scope="class")
    # Run has one group: taking it would leave the class nothing to train on, so it has no test video
    assert counts == {"classes": 2, "train": 4, "test": 2, "groups": 5, "across": 0}
    assert (out / "classInd.txt").read_bytes() == b"1 Run\r\n2 Walk\r\n"
    train = (out / "trainlist01.txt").read_bytes().decode().split("\r\n")
    assert train[:2] == ["Run/v_Run_g09_c01.avi 1", "Run/v_Run_g09_c02.avi 1"] and train[-1] == ""
    walk = [line.split()[0] for line in train[2:-1]] + (out / "testlist01.txt").read_bytes().decode().split("\r\n")[:-1]
    assert sorted(walk) == sorted(names[:4]) and all(line.endswith(" 2") for line in train[2:-1])
    test = (out / "testlist01.txt").read_bytes().decode().split("\r\n")[:-1]
    assert test == sorted(test) and len(test) == 2  # by class, then group
    # the dataset scope puts a group number on one side for every class, even when no number is shared
    # (a scope given on the command line: equal to, not the same object as, the literal)
    assert make_split(videos, tmp_path / "d", test_fraction=0.5, group_scope="".join(["data", "set"]))["across"] == 1
    # seed 0 by default
    make_split(videos, tmp_path / "seed0", test_fraction=0.5, seed=0)
    assert (tmp_path / "seed0" / "testlist01.txt").read_bytes() == (out / "testlist01.txt").read_bytes()


def test_a_group_that_would_empty_a_class_of_training_videos_is_never_taken(tmp_path):
    # dataset scope: recording 01 holds the only Bend video, so it stays in train, and the fraction is
    # made up of other recordings (counted only when taken)
    videos = tmp_path / "v"
    _touch_videos(videos, [f"Jump/v_Jump_g{g:02d}_c01.avi" for g in range(1, 7)] + ["Bend/v_Bend_g01_c01.avi"])
    for seed in range(12):
        counts = make_split(videos, tmp_path / f"s{seed}", test_fraction=0.4, group_scope="dataset", seed=seed)
        # 2.8 videos wanted: three single-video groups, or two when recording 01 (2 videos) comes up third
        assert counts["test"] in (2, 3) and counts["train"] + counts["test"] == 7, seed
        split = read_split(tmp_path / f"s{seed}", 1)
        assert "Bend/v_Bend_g01_c01.avi" in [e.path for e in split.train]
        assert "01" not in {e.group for e in split.test}
    # the guard counts what earlier choices took: of two single-video groups, one stays for training
    _touch_videos(tmp_path / "two", ["Jump/v_Jump_g01_c01.avi", "Jump/v_Jump_g02_c01.avi"])
    assert make_split(tmp_path / "two", tmp_path / "t", test_fraction=0.9)["test"] == 1


def test_the_auto_scope_typed_on_the_command_line_keeps_recordings_together(tmp_path):
    # a scope read from argv is equal to, not the same object as, the literal "auto"
    assert make_split(_recordings(tmp_path), tmp_path / "s", group_scope="".join(["au", "to"]))["across"] == 1


def test_egogest10_folds_and_a_made_split_are_recording_disjoint(tmp_path, capsys):
    data = shared_data("egogest10")
    for n in (1, 2, 3):
        split = read_split(data / "ucfTrainTestlist", n)
        assert split.shared_across_classes() == {} and len(split.train) + len(split.test) == 160
    assert main(["make-split", "--videos", str(data / "videos"), "--out", str(tmp_path / "s")]) == 0
    assert "train 110, test 50, groups 160 (no group number on both sides in any class)" in capsys.readouterr().out
    split = read_split(tmp_path / "s", 1)
    assert split.shared_across_classes() == {} and len({e.group for e in split.test}) == 5
