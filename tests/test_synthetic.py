import re

import numpy as np
import pytest

from dualstream.prepare.synthetic import (MOTIONS, VIBRATION_AMPLITUDE, VIBRATION_PERIOD, SyntheticSpec, _appearance, _hue_colour, generate, render_video)
from dualstream.data.ucf101 import read_split

from .conftest import TINY, read_video


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


def test_hard_preset_classes_cross_colour_and_motion(tmp_path):
    spec = SyntheticSpec(preset="hard", classes=6, videos_per_class=2, frames=12, size=32, seed=1)
    out = generate(tmp_path / "hard", spec, progress=False)
    names = (out / "ucfTrainTestlist" / "classInd.txt").read_text().split()[1::2]
    assert names == ["WarmStill", "CoolStill", "WarmVibrateVertical", "CoolVibrateVertical",
                     "WarmVibrateHorizontal", "CoolVibrateHorizontal"]
    assert not [n for n in names if re.search("left|right", n, re.IGNORECASE)]  # flipping keeps every class
    for name in names:
        assert read_video(out / "videos" / name / f"v_{name}_g01_c01.avi").shape == (12, 32, 32, 3)
    rng = np.random.default_rng(0)
    warm = np.stack([_hue_colour(rng, "Warm") for _ in range(50)])
    cool = np.stack([_hue_colour(rng, "Cool") for _ in range(50)])
    assert (warm[:, 0] > warm[:, 2]).all() and (cool[:, 2] > cool[:, 0]).all()  # red over blue, blue over red


def test_hard_preset_vibration_is_invisible_at_the_sampling_interval():
    """Frames VIBRATION_PERIOD apart show the object at one place; consecutive frames one amplitude
    apart, never at the same place (so flow sees it). A white object on black, without shake."""
    spec = SyntheticSpec(preset="hard", classes=6, frames=24, size=64, seed=3)
    look = _appearance(np.random.default_rng(1), 64)
    look = {**look, "background": np.zeros((64, 64, 3), np.float32), "texture": np.ones_like(look["texture"])}
    amplitude = VIBRATION_AMPLITUDE * 64
    for motion, axis in (("VibrateVertical", 0), ("VibrateHorizontal", 1)):
        video = render_video(spec, motion, look, np.random.default_rng(5))
        pos = np.array([np.argwhere(f.mean(axis=2) > 128).mean(axis=0) for f in video])  # (T, 2): y, x
        sampled = pos[::VIBRATION_PERIOD]
        assert np.abs(sampled - sampled[0]).max() < 0.2  # the stacked frames see no motion
        steps = np.abs(np.diff(pos, axis=0))
        assert steps[:, axis].min() > 0.8 * amplitude and steps[:, 1 - axis].max() < 0.2


def test_hard_preset_shakes_the_camera_and_leaves_the_default_alone(tmp_path):
    hard = SyntheticSpec(preset="hard", classes=2, videos_per_class=2, frames=12, size=32, seed=7)
    a = read_video(generate(tmp_path / "a", hard, progress=False) / "videos" / "WarmStill" / "v_WarmStill_g01_c01.avi")
    corner = a[:, :4, :4].astype(float)  # background only: it moves with the shake alone
    assert np.abs(np.diff(corner, axis=0)).mean() > 1.0
    with pytest.raises(ValueError, match="--preset"):
        SyntheticSpec(preset="harder")
    with pytest.raises(ValueError, match="between 2 and 6"):
        SyntheticSpec(preset="hard", classes=7)
