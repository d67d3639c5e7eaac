import pytest

from dualstream.config import ConfigError, load_config

from dualstream.cli import demo_config_path


def test_demo_recipe_loads_and_overrides_apply():
    cfg = load_config(demo_config_path(), ["train.epochs=3", "train.lr=1e-4", "data.offsets=[2, 4]", "model.kwargs.widths=[8, 4, 8]"])
    assert cfg.train.epochs == 3 and cfg.train.lr == pytest.approx(1e-4)
    assert cfg.data.offsets == [2, 4] and cfg.model.kwargs == {"widths": [8, 4, 8]}
    assert cfg.model.name == "early_fusion_small"


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.nope=1", "unknown config key 'train.nope'"),
        ("train.epochs=many", "train.epochs must be a number"),
        ("data.flip=3", "data.flip must be true or false"),
        ("data.input_size=0", "data.input_size must be >= 1"),
        ("epochs", "--set expects key=value"),
    ],
)
def test_bad_overrides_are_one_clear_error(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_unknown_key_in_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match="train.epochz"):
        load_config(path)
