import pytest

from dualstream.config import ConfigError, DataConfig, load_config

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


def test_sampling_is_checked_and_said_in_words():
    assert DataConfig(frames=16, sampling="spread").sampling_text() == "16 frames spread over each whole video"
    assert DataConfig(frames=10, interval=4).sampling_text() == "10 frames every 4"
    with pytest.raises(ConfigError, match="data.sampling must be interval or spread, got 'tsn'"):
        DataConfig(sampling="tsn")
    with pytest.raises(ConfigError, match=r"data.span_min must be in \(0, 1\], got 1.5"):
        DataConfig(span_min=1.5)
