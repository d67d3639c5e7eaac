import pytest

from dualstream.data.ucf101 import SplitError, read_split

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
