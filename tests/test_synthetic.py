import re

import numpy as np
import pytest

from dualstream.data.synthetic import MOTIONS, SyntheticSpec, generate
from dualstream.data.ucf101 import read_split
from dualstream.video import read_video

from .conftest import TINY


def test_layout_and_official_split_format(tiny_dataset):
    lists = tiny_dataset / "ucfTrainTestlist"
    class_lines = (lists / "classInd.txt").read_bytes().decode().split("\r\n")
    assert class_lines[:3] == ["1 MoveUp", "2 MoveDown", "3 Grow"]
    train = (lists / "trainlist01.txt").read_bytes().decode()
    assert train.endswith("\r\n")
    for line in train.strip().split("\r\n"):
        assert re.fullmatch(r"(\w+)/v_\1_g\d\d_c\d\d\.avi [1-3]", line), line
    split = read_split(lists, 1)
    assert len(split.train) + len(split.test) == TINY.classes * TINY.videos_per_class
    for e in split.train + split.test:
        assert (tiny_dataset / "videos" / e.path).is_file()


def test_groups_never_cross_the_split(tiny_dataset):
    split = read_split(tiny_dataset / "ucfTrainTestlist", 1)
    train = {(e.label, e.group) for e in split.train}
    test = {(e.label, e.group) for e in split.test}
    assert train and test and not train & test


def test_videos_decode_with_the_requested_size(tiny_dataset):
    frames = read_video(tiny_dataset / "videos" / "Grow" / "v_Grow_g01_c01.avi")
    assert frames.shape == (TINY.frames, TINY.size, TINY.size, 3)


def test_deterministic_for_a_seed(tmp_path):
    spec = SyntheticSpec(classes=2, videos_per_class=2, frames=12, size=32, seed=7)
    a = generate(tmp_path / "a", spec, progress=False)
    b = generate(tmp_path / "b", spec, progress=False)
    rel = "MoveDown/v_MoveDown_g02_c01.avi"
    assert (a / "videos" / rel).read_bytes() == (b / "videos" / rel).read_bytes()
    c = generate(tmp_path / "c", SyntheticSpec(classes=2, videos_per_class=2, frames=12, size=32, seed=8), progress=False)
    assert not np.array_equal(read_video(a / "videos" / rel), read_video(c / "videos" / rel))


def test_no_class_hinges_on_left_or_right():
    # a horizontal flip must map every class onto itself
    assert not [name for name in MOTIONS if re.search("left|right", name, re.IGNORECASE)]


def test_bad_spec_is_a_clear_error():
    with pytest.raises(ValueError, match="--classes"):
        SyntheticSpec(classes=99)
