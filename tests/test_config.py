import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dualstream.config import MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, MAX_CONFIG_NODES, ConfigError, DataConfig, load_config
from dualstream.config import demo_config_path

SRC = Path(__file__).resolve().parents[1] / "src"


def _bomb(levels: int = 9, width: int = 10) -> str:
    """Nested aliases, each level ``width`` times the one below: ``width ** levels`` strings in a few hundred bytes."""
    lines = [f"- &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"- &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "[" + ", ".join(line[2:] for line in lines) + "]"


def test_demo_recipe_loads_and_overrides_apply():
    cfg = load_config(demo_config_path(), ["train.epochs=3", "train.lr=1e-4", "data.offsets=[2, 4]", "model.kwargs.widths=[8, 4, 8]"])
    assert cfg.train.epochs == 3 and cfg.train.lr == pytest.approx(1e-4)
    assert cfg.data.offsets == [2, 4] and cfg.model.kwargs == {"widths": [8, 4, 8]}
    assert cfg.model.name == "early_fusion_small"


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.nope=1", "unknown config key 'train.nope'; known keys: data.allow_group_overlap, data.cache, "),
        ("train.epochs=many", "train.epochs must be an integer, got 'many'"),
        ("train.epochs=2.5", "train.epochs must be an integer, got 2.5"),
        ("train.epochs=true", "train.epochs must be an integer, got True"),
        ("data.flip=3", "data.flip must be true or false, got 3"),
        ("train.lr=fast", "train.lr must be a number, got 'fast'"),
        ("train.lr=true", "train.lr must be a number, got True"),
        ("data.cache=[1]", "data.cache must be a str, got [1]"),
        ("data.offsets=[a]", "data.offsets must be a non-empty list of frame numbers >= 1, got ['a']"),
        ("data.offsets=[1.5]", "data.offsets must be a non-empty list of frame numbers >= 1, got [1.5]"),
        ("data.offsets=[true]", "data.offsets must be a non-empty list of frame numbers >= 1, got [True]"),
        ("seed=.inf", "seed must be an integer in [0, 2**32), got inf"),
        ("seed=2.5", "seed must be an integer in [0, 2**32), got 2.5"),
        ("seed=abc", "seed must be an integer in [0, 2**32), got 'abc'"),
        ("seed=-1", "seed must be an integer in [0, 2**32), got -1"),
        (f"seed={2**32}", f"seed must be an integer in [0, 2**32), got {2**32}"),
        ("epochs", "--set expects key=value, got 'epochs'"),
    ],
)
def test_bad_overrides_are_one_clear_error(override, message):
    with pytest.raises(ConfigError) as exc:
        load_config(None, [override])
    assert str(exc.value) == message or message.endswith(", ") and str(exc.value).startswith(message)


@pytest.mark.parametrize("value", [0, 2**32 - 1])
def test_seed_range_inside(value):
    assert load_config(None, [f"seed={value}"]).seed == value


FLOATS = ["data.flow_bound", "data.crop_scale_min", "data.colour_jitter", "data.val_fraction", "train.lr",
          "train.weight_decay", "train.label_smoothing", "train.modality_dropout", "train.modality_dropout_rgb"]


@pytest.mark.parametrize("key", FLOATS)
@pytest.mark.parametrize("value, shown", [(".nan", "nan"), (".inf", "inf"), ("-.inf", "-inf"), ("1e400", "inf"),
                                          ("1" + "0" * 400, "1" + "0" * 17 + "..." + "0" * 19)])
def test_every_float_field_must_be_finite(key, value, shown):
    with pytest.raises(ConfigError) as exc:
        load_config(None, [f"{key}={value}"])
    assert str(exc.value) == f"{key} must be a finite number, got {shown}"


# (key, a value just outside the accepted range, one just inside): each range check of the config's
# dataclasses refuses the first and accepts the second
RANGES = [
    ("data.split", 0, 1), ("data.split", 4, 3),
    *[(f"data.{name}", 0, 1) for name in ("input_size", "frames", "interval", "offset_period", "eval_clips")],
    ("data.offsets", [], [1]), ("data.offsets", [1, 0], [1, 1]),
    ("data.flow_bound", 0.0099, 0.01), ("data.flow_bound", 10_000.1, 10_000.0),
    ("data.span_min", 0.0, 0.001), ("data.span_min", 1.001, 1.0), ("data.sampling", "tsn", "spread"),
    ("data.crop_scale_min", 0.0, 0.001), ("data.crop_scale_min", 1.001, 1.0),
    ("data.num_workers", -2, -1),
    ("data.colour_jitter", -0.001, 0.0), ("data.colour_jitter", 1.0, 0.999),
    ("data.val_fraction", -0.001, 0.0), ("data.val_fraction", 1.0, 0.999),
    ("data.eval_crops", 2, 3), ("data.eval_crops", 0, 1),
    ("data.pipeline", "gpu", "workers"), ("data.jpeg_decode", "cpu", "worker"),
    *[(f"train.{name}", 0, 1) for name in ("epochs", "batch_size", "eval_every", "keep_checkpoints", "plot_every")],
    *[(f"train.{name}", -1, 0) for name in ("checkpoint_every", "steps", "patience")],
    ("train.lr", 0.0, 1e-9),
    ("train.weight_decay", -1e-9, 0.0),
    ("train.label_smoothing", -0.001, 0.0), ("train.label_smoothing", 1.0, 0.999),
    ("train.modality_dropout", -0.001, 0.0), ("train.modality_dropout", 1.001, 1.0),
    ("train.modality_dropout_rgb", -0.001, 0.0), ("train.modality_dropout_rgb", 1.001, 1.0),
    ("train.precision", "fp16", "bf16"), ("train.memory_format", "nhwc", "channels_last"),
]


@pytest.mark.parametrize("key, outside, inside", RANGES, ids=[f"{k}={o}" for k, o, _ in RANGES])
def test_range_checks_at_their_boundary(key, outside, inside):
    with pytest.raises(ConfigError) as exc:
        load_config(None, [f"{key}={outside}"])
    assert re.fullmatch(rf"{re.escape(key)} must be .+, got {re.escape(repr(outside))}", str(exc.value))
    section, name = key.split(".")
    assert getattr(getattr(load_config(None, [f"{key}={inside}"]), section), name) == inside


@pytest.mark.parametrize("where", ["data:\n  cache: {bomb}\n", "model:\n  kwargs:\n    widths: {bomb}\n"])
def test_an_alias_bomb_is_refused_before_it_expands(where, tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(where.format(bomb=_bomb()))
    assert path.stat().st_size < 700
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: expands to more than {MAX_CONFIG_NODES} values (through aliases?)"


def test_an_alias_bomb_in_an_override_is_refused():
    with pytest.raises(ConfigError) as exc:
        load_config(None, [f"model.kwargs.widths={_bomb()}"])
    assert str(exc.value) == f"--set model.kwargs.widths: expands to more than {MAX_CONFIG_NODES} values (through aliases?)"


def test_aliases_that_stay_small_are_fine(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  cache: &c /tmp/cache\n  splits: *c\n  offsets: &o [2, 3]\n"
                    "model:\n  kwargs: {widths: *o, base: &b {dropout: 0.1}, more: {<<: *b, depth: 2}}\n")
    cfg = load_config(path)
    assert cfg.data.splits == "/tmp/cache" and cfg.data.offsets == [2, 3]
    assert cfg.model.kwargs == {"widths": [2, 3], "base": {"dropout": 0.1}, "more": {"dropout": 0.1, "depth": 2}}


def test_an_alias_inside_its_own_anchor_is_refused():
    with pytest.raises(ConfigError) as exc:
        load_config(None, ["model.kwargs.loop=&a [1, *a]"])
    assert str(exc.value) == "--set model.kwargs.loop: the alias *'a' is inside its own anchor"


@pytest.mark.parametrize("depth, refused", [(MAX_CONFIG_DEPTH, False), (MAX_CONFIG_DEPTH + 1, True), (5000, True)])
def test_nesting_depth_is_bounded(depth, refused):
    override = f"model.kwargs.deep={'[' * depth}{']' * depth}"
    if not refused:
        value = load_config(None, [override]).model.kwargs["deep"]
        for _ in range(depth - 1):
            value, = value
        assert value == []
        return
    with pytest.raises(ConfigError) as exc:
        load_config(None, [override])
    assert str(exc.value) == f"--set model.kwargs.deep: nested more than {MAX_CONFIG_DEPTH} levels deep"


def test_a_config_file_over_the_size_cap_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"seed: 1\n" + b"#" * (MAX_CONFIG_BYTES - 9) + b"\n")
    assert load_config(path).seed == 1  # exactly at the cap
    path.write_bytes(path.read_bytes() + b"#")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: larger than {MAX_CONFIG_BYTES} bytes (a config is a few KB)"


def test_error_messages_show_a_bounded_part_of_the_value(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(None, ["data.pipeline=" + "x" * 100_000])
    prefix = "data.pipeline must be auto, workers or device, got 'xxxxxxxxxx"
    assert str(exc.value).startswith(prefix) and len(str(exc.value)) <= len(prefix) + 70
    path = tmp_path / "c.yaml"
    path.write_text("seed: " + "9" * 5000 + "\n")  # past Python's 4300-digit limit of int()
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: Exceeds the limit") as exc:
        load_config(path)
    assert len(str(exc.value)) < len(str(path)) + 130


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "config file not found"),
        ("dir", "a directory, not a config file"),
        (b"seed: 1\n\xff\xfe\n", "not a text file (a config is UTF-8 YAML)"),
        ("train: [1, 2\n", "not valid YAML (while parsing a flow sequence"),
        ("- 1\n- 2\n", "a config must be a YAML mapping"),
    ],
)
def test_load_config_errors(content, message, tmp_path):
    path = tmp_path / "c.yaml"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value).startswith(f"{path}: {message}")


@pytest.mark.parametrize(
    "content, message",
    [
        ("train:\n  epochz: 3\n", "unknown config key(s): 'train.epochz'"),
        ("optimiser: {}\n", "unknown config section(s): 'optimiser'"),
        ("train: 3\n", "config section 'train' must be a mapping, got 3"),
    ],
)
def test_bad_structure_in_file(content, message, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value) == message


def test_train_refuses_a_bomb_in_one_line_in_bounded_time(tmp_path):
    """Through the CLI (a process of its own, so a regression cannot take the test run's memory): one line,
    exit 2, no run folder."""
    path = tmp_path / "bomb.yaml"
    path.write_text(f"data:\n  cache: {_bomb()}\n  splits: /nowhere\n")
    proc = subprocess.run([sys.executable, "-m", "dualstream", "train", "--config", str(path), "--out",
                           str(tmp_path / "run")], env=dict(os.environ, PYTHONPATH=str(SRC)), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == (f"dualstream train: error: {path}: expands to more than {MAX_CONFIG_NODES} values "
                           "(through aliases?)\n")
    assert not (tmp_path / "run").exists()


def test_an_unknown_model_argument_is_shown_bounded():
    from dualstream.engine.build import build_model

    with pytest.raises(ConfigError) as exc:
        build_model(load_config(None, ["model.kwargs." + "k" * 10_000 + "=1"]), num_classes=3)
    assert str(exc.value).startswith("model 'early_fusion_small' with kwargs {'kkkkkkkk")
    assert "unexpected keyword argument" in str(exc.value) and len(str(exc.value)) < 320




def test_sampling_is_checked_and_said_in_words():
    assert DataConfig(frames=16, sampling="spread").sampling_text() == "16 frames spread over each whole video"
    assert DataConfig(frames=10, interval=4).sampling_text() == "10 frames every 4"
    with pytest.raises(ConfigError, match="data.sampling must be interval or spread, got 'tsn'"):
        DataConfig(sampling="tsn")
    with pytest.raises(ConfigError, match=r"data.span_min must be in \(0, 1\], got 1.5"):
        DataConfig(span_min=1.5)
