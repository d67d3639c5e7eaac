"""The validation part carved from a train list holds whole groups (people), across classes."""

from dualstream.data.holdout import carve_validation
from dualstream.data.ucf101 import VideoEntry, entry_group


def _entries(classes=("Bend", "Wave"), groups=range(4, 10)):
    return [VideoEntry(f"{c}/v_{c}_g{g:02d}_c01.avi", label) for label, c in enumerate(classes) for g in groups]


def test_whole_groups_across_classes_and_a_third_of_them():
    train, val = carve_validation(_entries(), 0.34)
    assert len(val) == 4 and len(train) == 8  # 2 of 6 people, in both classes
    held = {e.group for e in val}
    assert len(held) == 2 and not held & {e.group for e in train}
    assert {e.label for e in val} == {0, 1}
    assert carve_validation(_entries(), 0.34) == (train, val)  # deterministic
    assert train == [e for e in _entries() if e not in val]  # the list's order is kept


def test_no_fraction_or_one_group_keeps_everything_in_training():
    assert carve_validation(_entries(), 0.0) == (_entries(), [])
    one = _entries(groups=[4])
    assert carve_validation(one, 0.5) == (one, [])


def test_a_class_never_loses_all_its_training_videos():
    entries = _entries(groups=range(1, 5)) + [VideoEntry("Jump/v_Jump_g01_c01.avi", 2)]
    for seed in range(6):
        train, val = carve_validation(entries, 0.5, seed=seed)
        assert {e.label for e in train} == {0, 1, 2}
        assert not {entry_group(e) for e in train} & {entry_group(e) for e in val}
