import dataclasses
import re

import pytest

from dualstream.data.ucf101 import (GroupLeakageError, Split, SplitError, VideoEntry, check_group_overlap, entry_group,
                                    group_id, groups_across_classes, missing_videos, read_class_index, read_list,
                                    read_split, split_summary, validate_split)

from .conftest import shared_data


def test_official_split_1_counts():
    split = read_split(shared_data("ucf101", "ucfTrainTestlist"), 1)
    assert (len(split.classes), len(split.train), len(split.test)) == (101, 9537, 3783)
    assert split.train[0].path == "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi" and split.train[0].label == 0
    assert split.test[0].key == "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01"


def _write_lists(d, train, test="A/v_A_g01_c01.avi\r\n"):
    d.mkdir(exist_ok=True)
    (d / "classInd.txt").write_text("1 A\r\n2 B\r\n")
    (d / "trainlist01.txt").write_text(train)
    (d / "testlist01.txt").write_text(test)


@pytest.mark.parametrize(
    "train, message",
    [
        ("A/v_A_g02_c01.avi 1\r\nB/v_B_g02_c01.avi 1\r\n", r"trainlist01.txt:2: label 1 does not match"),
        ("A/v_A_g02_c01.avi\r\n", r"trainlist01.txt:1: expected"),
        ("../A/v_A_g02_c01.avi 1\r\n", r"trainlist01.txt:1: entry"),
        ("C/v_C_g02_c01.avi 1\r\n", r"class folder 'C'"),
        ("A/v_A_g02_c01.avi 1\r\nA/v_A_g02_c01.avi 1\r\n", r"trainlist01.txt:2: duplicate"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, train, message):
    _write_lists(tmp_path / "s", train)
    with pytest.raises(SplitError, match=message):
        read_split(tmp_path / "s", 1)


def test_class_index_order_bom_blank_lines_and_errors(tmp_path):
    path = tmp_path / "classInd.txt"
    path.write_bytes("\ufeff2 B\r\n\r\n1 A\r\n".encode())  # any order, a BOM and blank lines
    assert read_class_index(path) == read_class_index(str(path)) == ["A", "B"]
    for text, message in (
        ("1 A\r\n1 B\r\n", ":2: duplicate class entry '1 B'"),
        ("1 A\r\n2 A\r\n", ":2: duplicate class entry '2 A'"),
        ("1 A\r\n\r\nx B\r\n", ":3: expected 'INDEX ClassName', got 'x B'"),
        ("1 A extra\r\n", ":1: expected 'INDEX ClassName', got '1 A extra'"),
        ("1 A\r\n2\r\n", ":2: expected 'INDEX ClassName', got '2'"),
        ("1 A\r\n3 C\r\n", ": class indices must run 1..2 without gaps"),
        ("2 B\r\n", ": class indices must run 1..1 without gaps"),
        ("0 A\r\n1 B\r\n", ": class indices must run 1..2 without gaps"),
    ):
        path.write_text(text)
        with pytest.raises(SplitError, match=f"^{re.escape(str(path) + message)}$"):
            read_class_index(path)
    with pytest.raises(SplitError, match="missing.txt: split file not found"):
        read_class_index(tmp_path / "missing.txt")


def test_list_entries_labels_paths_and_errors(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("A\\v_A_g01_c01.avi 1\r\n\r\nB/v_B_g01_c01.avi 2\r\n")  # Windows separators are read
    assert read_list(str(path), ["A", "B"], labelled=True) == [VideoEntry("A/v_A_g01_c01.avi", 0),
                                                                VideoEntry("B/v_B_g01_c01.avi", 1)]
    path.write_text("B/v_B_g01_c01.avi\r\nA/v_A_g01_c01.avi 1\r\n")  # a test list may carry labels
    assert read_list(path, ["A", "B"], labelled=False) == [VideoEntry("B/v_B_g01_c01.avi", 1),
                                                            VideoEntry("A/v_A_g01_c01.avi", 0)]
    for text, labelled, message in (
        ("A/x.avi 1 2", False, ":1: expected 'Class/file.avi', got 'A/x.avi 1 2'"),
        ("A/x.avi 1 2", True, ":1: expected 'Class/file.avi LABEL', got 'A/x.avi 1 2'"),
        ("A/x.avi x", True, ":1: label x does not match class 'A' (index 1)"),
        ("A/x.avi 1\r\nB/y.avi 1", True, ":2: label 1 does not match class 'B' (index 2)"),
        ("A/x.avi 2", False, ":1: label 2 does not match class 'A' (index 1)"),
        ("x.avi", False, ":1: entry 'x.avi' must be 'Class/file' inside the videos folder"),
        ("A/B/x.avi", False, ":1: entry 'A/B/x.avi' must be 'Class/file' inside the videos folder"),
        ("../x.avi", False, ":1: entry '../x.avi' must be 'Class/file' inside the videos folder"),
        ("/A/x.avi", False, ":1: entry '/A/x.avi' must be 'Class/file' inside the videos folder"),
        ("C/x.avi", False, ":1: class folder 'C' is not in classInd.txt"),
        ("A/x.avi\r\nA\\x.avi", False, ":2: duplicate entry 'A/x.avi'"),
    ):
        path.write_text(text)
        with pytest.raises(SplitError, match=f"^{re.escape(str(path) + message)}$"):
            read_list(path, ["A", "B"], labelled=labelled)


def test_read_split_picks_the_numbered_lists(tmp_path):
    d = tmp_path / "s"
    _write_lists(d, "A/v_A_g02_c01.avi 1\r\n")
    (d / "trainlist02.txt").write_text("B/v_B_g03_c01.avi 2\r\n")
    (d / "testlist02.txt").write_text("B/v_B_g04_c01.avi\r\n")
    split = read_split(d, 2)
    assert (split.classes, split.train, split.test) == (["A", "B"], [VideoEntry("B/v_B_g03_c01.avi", 1)],
                                                        [VideoEntry("B/v_B_g04_c01.avi", 1)])
    assert read_split(d).train == [VideoEntry("A/v_A_g02_c01.avi", 0)]  # split 1 by default
    with pytest.raises(SplitError, match="nowhere: splits folder not found"):
        read_split(tmp_path / "nowhere")


def test_check_split_reads_the_three_numbered_splits(tmp_path, capsys):
    from dualstream.cli import main

    d = tmp_path / "s"
    _write_lists(d, "A/v_A_g02_c01.avi 1\r\n")
    for n in (2, 3, 4):  # 4 is no UCF-101 split
        (d / f"trainlist{n:02d}.txt").write_text(f"B/v_B_g0{n}_c01.avi 2\r\n")
        (d / f"testlist{n:02d}.txt").write_text("A/v_A_g09_c01.avi\r\n")
    assert main(["check-split", "--splits", str(d)]) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("split")] == ["split 1", "split 2",
                                                                                            "split 3"]


def test_groups_of_videos():
    e = VideoEntry("Run/v_Run_g08_c02.avi", 0)
    assert {e, VideoEntry("Run/v_Run_g08_c02.avi", 0)} == {e}  # a value: hashable, equal by content
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.label = 1
    assert (e.key, e.group, entry_group(e), group_id(e)) == ("Run/v_Run_g08_c02", "08", "Run/08", "08")
    odd = VideoEntry("Run/take3.mp4", 0)  # no group: its own
    assert (odd.group, entry_group(odd), group_id(odd)) == (None, "Run/take3.mp4", "Run/take3.mp4")
    person = VideoEntry("Run/person12_take3.mp4", 0)
    assert entry_group(person, re.compile(r"person(\d+)")) == "Run/12"  # the capture group names it
    assert entry_group(person, re.compile(r"person\d+")) == "Run/person12"  # or the whole match
    assert group_id(person, re.compile(r"person(\d+)")) == "12"
    assert group_id(VideoEntry("Run/a_person12.mp4", 0), re.compile(r"person\d+")) == "person12"  # sorts after the name
    entries = [VideoEntry(f"{c}/v_{c}_g{g:02d}_c01.avi", label) for label, c, g in
               ((0, "A", 1), (0, "A", 2), (1, "B", 2), (1, "B", 3), (2, "C", 3), (2, "C", 4), (0, "A", 5))]
    assert groups_across_classes(entries) == ["02", "03"]


def test_overlap_across_classes_and_the_guard_message():
    train = [VideoEntry(f"A/v_A_g{g:02d}_c01.avi", 0) for g in range(1, 8)] + [VideoEntry("B/v_B_g09_c01.avi", 1)]
    test = ([VideoEntry(f"A/v_A_g{g:02d}_c02.avi", 0) for g in range(1, 8)] + [VideoEntry("A/v_A_g01_c03.avi", 0)] +
            [VideoEntry("B/v_B_g01_c01.avi", 1), VideoEntry("A/v_A_g09_c01.avi", 0)])
    split = Split(["A", "B"], train, test)
    with pytest.raises(dataclasses.FrozenInstanceError):
        split.test = []
    overlap = split.group_overlap()
    assert overlap == {"A/01": (1, 2), **{f"A/{g:02d}": (1, 1) for g in range(2, 8)}}
    assert split.shared_across_classes() == {"01": (1, 3), **{f"{g:02d}": (1, 1) for g in (2, 3, 4, 5, 6, 7, 9)}}
    assert check_group_overlap(split, allow=True, where="x") == overlap
    with pytest.raises(GroupLeakageError, match=r"^W: 7 group\(s\) appear in both train and test: A/01 \(train 1, "
                                                r"test 2\), A/02 \(train 1, test 1\), A/03 \(train 1, test 1\), "
                                                r"A/04 \(train 1, test 1\), A/05 \(train 1, test 1\) and 2 more\. "):
        check_group_overlap(split, allow=False, where="W")
    five = Split(["A"], train[:5], test[:5])
    with pytest.raises(GroupLeakageError, match=r": A/01 .*, A/05 \(train 1, test 1\)\. Clips"):  # five: no "and more"
        check_group_overlap(five, allow=False, where="W")
    six = Split(["A"], train[:6], test[:6])
    with pytest.raises(GroupLeakageError, match=r": A/01 .*, A/05 \(train 1, test 1\) and 1 more\. Clips"):
        check_group_overlap(six, allow=False, where="W")
    one = Split(["A"], train[1:2], test[1:2])
    with pytest.raises(GroupLeakageError, match=r"^W: 1 group\(s\) appear in both train and test: A/02 \(train 1, "
                                                r"test 1\)\. Clips"):
        check_group_overlap(one, allow=False, where="W")
    assert check_group_overlap(Split(["A"], train[:2], test[2:4]), allow=False, where="W") == {}


def test_missing_videos_are_sorted_once_and_long_lists_are_cut(tmp_path):
    videos = tmp_path / "videos"
    (videos / "A").mkdir(parents=True)
    (videos / "A" / "b.avi").write_bytes(b"x")
    entries = [VideoEntry(p, 0) for p in ("A/c.avi", "A/b.avi", "A/a.avi", "A/c.avi")]
    assert missing_videos(entries, videos) == ["A/a.avi", "A/c.avi"]
    with pytest.raises(SplitError, match="nothing: videos folder not found"):
        missing_videos(entries, tmp_path / "nothing")
    many = [VideoEntry(f"A/{i:02d}.avi", 0) for i in range(22)]
    with pytest.raises(SplitError, match=r"^S: 22 listed video\(s\) not found under .*: A/00.avi, .*, A/19.avi "
                                         r"and 2 more$"):
        validate_split(Split(["A"], many, []), where="S", videos_dir=videos)
    with pytest.raises(SplitError, match=r"^S: 20 listed video\(s\) not found under .*: A/00.avi, .*, A/19.avi$"):
        validate_split(Split(["A"], many[:20], []), where="S", videos_dir=videos)
    validate_split(Split(["A"], [VideoEntry("A/b.avi", 0)], []), where="S", videos_dir=videos)
    both = Split(["A"], many[:3], many[1:])
    with pytest.raises(SplitError, match=r"^S: 2 video\(s\) listed in both train and test: A/01.avi, A/02.avi$"):
        validate_split(both, where="S")


def test_split_summary_counts_overlap_and_shared_ids():
    train = [VideoEntry(f"A/v_A_g{g:02d}_c01.avi", 0) for g in range(1, 24)]
    test = [VideoEntry(f"B/v_B_g{g:02d}_c01.avi", 1) for g in range(1, 24)] + [VideoEntry("A/v_A_g01_c02.avi", 0)]
    split = Split(["A", "B"], train, test)
    overlap, shared = split.group_overlap(), split.shared_across_classes()
    assert split_summary(split, overlap) == ("classes 2, train 23, test 24, groups 46, groups in both train and "
                                             "test 1\n  overlap A/01: train 1, test 1")
    lines = split_summary(split, overlap, shared).splitlines()
    assert lines[0].endswith("group ids on both sides across classes 23, groups in both train and test 1")
    assert lines[1:3] == ["  overlap A/01: train 1, test 1", "  across classes 01: train 1, test 2"]
    assert len(lines) == 2 + 20 + 1 and lines[-2] == "  across classes 20: train 1, test 1"
    assert lines[-1] == "  across classes: and 3 more"
    assert split_summary(split, {}, dict(list(shared.items())[:20])).splitlines()[-1] == \
        "  across classes 20: train 1, test 1"
    assert split_summary(split, {}, dict(list(shared.items())[:21])).splitlines()[-1] == "  across classes: and 1 more"
    assert split_summary(split, {}, dict(list(shared.items())[:3])).splitlines()[-1] == \
        "  across classes 03: train 1, test 1"
    assert split_summary(split, {}, {}).endswith("group ids on both sides across classes 0, groups in both train and test 0")
