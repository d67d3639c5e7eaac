"""Split validation, the train/test group leakage guard, check-split and make-split."""

import pytest

from dualstream.cli import main
from dualstream.config import load_config
from dualstream.data.make_split import make_split
from dualstream.data.ucf101 import (GroupLeakageError, SplitError, check_group_overlap, read_split,
                                    validate_split)
from dualstream.engine.build import load_split

from .conftest import shared_data


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
    assert "groups in both train and test 1\n  overlap ApplyEyeMakeup/01: train 1, test 5" in out

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
    assert len(err) == 2 and "is not a valid regular expression" in err[0] and "--test-fraction must be between 0 and 1" in err[1]


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


def test_egogest10_folds_and_a_made_split_are_recording_disjoint(tmp_path, capsys):
    data = shared_data("egogest10")
    for n in (1, 2, 3):
        split = read_split(data / "ucfTrainTestlist", n)
        assert split.shared_across_classes() == {} and len(split.train) + len(split.test) == 160
    assert main(["make-split", "--videos", str(data / "videos"), "--out", str(tmp_path / "s")]) == 0
    assert "train 110, test 50, groups 160 (no group number on both sides in any class)" in capsys.readouterr().out
    split = read_split(tmp_path / "s", 1)
    assert split.shared_across_classes() == {} and len({e.group for e in split.test}) == 5
