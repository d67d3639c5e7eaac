"""predict: inputs built from a video match training's, decoding stops early, CLI output and errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

import dualstream
from dualstream.inference import predict as predict_mod
from dualstream.cli import main
from dualstream.cache import load_manifest
from dualstream.data.dataset import EvalViews
from dualstream.data.sampling import ClipSpec
from dualstream.data.sampling import clip_indices, eval_offsets, eval_phases, spread_indices
from dualstream.data.ucf101 import read_split
from dualstream.engine.checkpoint import save_model_package
from dualstream.models import create_model
from dualstream.inference.predict import TorchPredictor, build_clips
from dualstream.inference.runtime import load_predictor
from dualstream.video import VideoReadError, write_video

from .conftest import shared_data

CLASSES = ["MoveUp", "MoveDown", "Grow"]
FRAMES, INTERVAL, SIZE = 4, 3, 32


def make_package(folder, *, short_side: int | None = 0, name: str = "early_fusion_small", size: int = SIZE,
                 kwargs: dict | None = None, **extra) -> None:
    """A tiny untrained package with the spec keys training writes, plus ``short_side``
    (0: keep the size, as the tiny cache was prepared; None: leave the key out, as training does now)."""
    torch.manual_seed(0)
    kwargs = {"widths": [8, 4, 8]} if kwargs is None else kwargs
    model = create_model(name, num_classes=len(CLASSES), frames=FRAMES, input_size=size, **kwargs)
    spec = {"name": name, "kwargs": kwargs, "classes": CLASSES,
            "frames": FRAMES, "interval": INTERVAL, "offsets": [1, 2], "input_size": size, "flow_bound": 20.0,
            "flow_method": "dis", "normalisation": {"rgb": "imagenet mean/std on 0..1", "flow": "px / flow_bound"},
            **({} if short_side is None else {"short_side": short_side}), **extra}
    save_model_package(folder, model, spec)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    folder = tmp_path_factory.mktemp("package")
    make_package(folder)
    return folder


def _moving_video(path, frames: int, size: tuple[int, int] = (40, 56)) -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (size[0], size[1] + frames, 3), dtype=np.uint8)
    write_video(path, np.stack([base[:, t:t + size[1]] for t in range(frames)]))


def test_inputs_match_the_training_cache(tiny_dataset, tiny_cache):
    """The clips predict builds from the video equal EvalViews' from the prepared cache (up to JPEG)."""
    entries = read_split(tiny_dataset / "ucfTrainTestlist", 1).test[:2]
    dataset = EvalViews(tiny_cache, entries, ClipSpec(frames=FRAMES, interval=INTERVAL, input_size=SIZE), offsets=eval_offsets(INTERVAL, 3))
    spec = ClipSpec(frames=FRAMES, interval=INTERVAL, input_size=SIZE, short_side=0)
    for v, entry in enumerate(entries):
        clips = build_clips(tiny_dataset / "videos" / entry.path, spec, clips=3)
        n = load_manifest(tiny_cache / entry.key)["num_frames"]
        assert clips.indices == [clip_indices(n, frames=FRAMES, interval=INTERVAL, offset=o) for o in dataset.offsets]
        for k in range(len(dataset.offsets)):
            rgb, flow, _, _ = dataset[v * len(dataset.offsets) + k]
            assert clips.rgb[k].shape == tuple(rgb.shape) and clips.flow[k].shape == tuple(flow.shape)
            assert np.abs(clips.rgb[k] - rgb.numpy()).mean() < 0.05  # JPEG noise of ~1 grey level, normalised
            # without the uint8 round trip every still pixel would be off by the rounding of 0 px
            # (0.0026 after the resize), far above this
            assert np.abs(clips.flow[k] - flow.numpy()).mean() < 5e-4
            assert flow.abs().max() > 0.015  # the objects do move


def test_decoding_stops_at_the_last_frame_needed(tmp_path, monkeypatch):
    video = tmp_path / "long.avi"
    _moving_video(video, 60)
    decoded = []
    real = predict_mod.iter_frames

    def counting(path, **kwargs):
        for frame in real(path, **kwargs):
            decoded.append(1)
            yield frame

    monkeypatch.setattr(predict_mod, "iter_frames", counting)
    spec = ClipSpec(frames=FRAMES, interval=INTERVAL, input_size=SIZE, short_side=0)
    clips = build_clips(video, spec, clips=3)
    offsets = eval_offsets(INTERVAL, 3)
    assert clips.num_frames is None
    assert len(decoded) == max(offsets) + (FRAMES - 1) * INTERVAL + 1
    assert clips.indices == [clip_indices(60, frames=FRAMES, interval=INTERVAL, offset=o) for o in offsets]


def test_short_video_follows_the_training_rule(tmp_path):
    video = tmp_path / "short.avi"
    _moving_video(video, 6, size=(30, 20))
    spec = ClipSpec(frames=FRAMES, interval=INTERVAL, input_size=SIZE, short_side=16)
    clips = build_clips(video, spec, clips=2)
    assert clips.num_frames == 6
    assert clips.indices == [clip_indices(6, frames=FRAMES, interval=INTERVAL, offset=o) for o in eval_offsets(INTERVAL, 2)]
    assert clips.frames.shape == (FRAMES, 24, 16, 3)  # short side resized to 16 before the flow
    assert clips.flow_px.shape == (FRAMES, 2, 24, 16)
    assert tuple(clips.rgb.shape) == (2, 3 * FRAMES, SIZE, SIZE)


@pytest.fixture(scope="module")
def spread_package(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spread_package")
    make_package(folder, sampling="spread", window=13)
    return folder


def test_a_spread_model_spreads_its_clips_over_the_whole_video(spread_package, tmp_path):
    predictor = load_predictor(spread_package)
    assert (predictor.input.sampling, predictor.input.window, predictor.input.span) == ("spread", 13, 12)
    video = tmp_path / "long.avi"
    _moving_video(video, 60)
    clips = predictor.clips(video, clips=3)
    assert clips.num_frames == 60  # read to the end: the clip positions depend on the frame count
    assert clips.indices == [spread_indices(60, frames=FRAMES, phase=p) for p in eval_phases(3)]
    assert clips.indices[0] == [3, 18, 32, 47]  # phase 1/6 of 4 segments of the whole video (usable 1..59)
    short = tmp_path / "short.avi"
    _moving_video(short, 7)
    assert build_clips(short, predictor.input, clips=1).indices == [spread_indices(7, frames=FRAMES)]


def test_one_frame_video_is_a_clear_error(tmp_path):
    video = tmp_path / "one.avi"
    _moving_video(video, 1)
    with pytest.raises(VideoReadError, match="only 1 frame decoded"):
        build_clips(video, ClipSpec(frames=FRAMES, interval=INTERVAL, input_size=SIZE), clips=1)


def test_short_side_defaults_when_model_json_lacks_it():
    spec = ClipSpec.from_model_json({"frames": 10, "interval": 4, "input_size": 64, "flow_method": "unknown"})
    assert (spec.short_side, spec.flow_method, spec.flow_bound) == (128, "dis", 20.0)


def test_predict_cli_json_and_bad_file(package, tiny_dataset, tmp_path, capsys):
    video = tiny_dataset / "videos" / "Grow" / "v_Grow_g01_c01.avi"
    junk = tmp_path / "notes.mp4"
    junk.write_text("not a video")
    rc = main(["predict", str(video), str(junk), "--model", str(package), "--json", "--topk", "2", "--clips", "2"])
    out, err = capsys.readouterr()
    assert rc == 2
    assert err == f"dualstream predict: error: {junk}: not a video, or a format/codec FFmpeg cannot open\n"
    (line,) = out.splitlines()
    result = json.loads(line)
    expected = load_predictor(package).predict(video, clips=2)
    assert result["video"] == str(video) and result["clips"] == 2
    assert [t["class"] for t in result["top"]] == [c for c, _ in expected.top(2)]
    assert [t["probability"] for t in result["top"]] == [round(p, 6) for _, p in expected.top(2)]
    assert expected.probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def test_predict_cli_text_output(package, tiny_dataset, capsys):
    video = tiny_dataset / "videos" / "MoveUp" / "v_MoveUp_g01_c01.avi"
    assert main(["predict", str(video), "--model", str(package), "--clips", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{video} (1 clip)"
    assert sorted(line.split()[1] for line in lines[1:]) == sorted(CLASSES)


def test_predict_cli_user_errors(package, tmp_path, capsys):
    assert main(["predict", "x.avi", "--model", str(tmp_path)]) == 2
    assert "no model.json" in capsys.readouterr().err
    assert main(["predict", "x.avi", "--model", str(package), "--topk", "0"]) == 2
    assert capsys.readouterr().err == "dualstream predict: error: --topk and --clips must be >= 1\n"


def test_real_clips_of_another_size_and_codec(package):
    videos = shared_data("ucf101", "videos")
    predictor = load_predictor(package)
    for video in sorted(videos.glob("*/*.avi")):
        pred = predictor.predict(video, clips=2)
        assert pred.probabilities.shape == (len(CLASSES),)
        assert pred.probabilities.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("ext, fourcc", [("mp4", "mp4v"), ("mkv", "MJPG"), ("webm", "VP80"), ("mov", "mp4v")])
def test_other_containers_and_sizes(tmp_path, ext, fourcc):
    rng = np.random.default_rng(2)
    texture = rng.integers(0, 255, (36, 52 + 40, 3), dtype=np.uint8)
    video = tmp_path / f"clip.{ext}"
    try:
        write_video(video, np.stack([texture[:, t:t + 52] for t in range(20)]), fourcc=fourcc)
    except VideoReadError as exc:
        pytest.skip(f"this FFmpeg build cannot write {fourcc} {ext}: {exc.reason}")
    make_package(tmp_path / "pkg", short_side=None)
    pred = load_predictor(tmp_path / "pkg")
    clips = pred.clips(video, clips=2)
    assert clips.num_frames is None  # 20 frames are more than the clips need
    assert clips.frames.shape[1:] == (128, 185, 3)  # short side 36 -> the default 128
    assert pred.run(clips).probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def test_top_is_sorted_and_load_model_is_reexported(package):
    pred = predict_mod.Prediction(video="v", classes=["a", "b", "c"], probabilities=np.array([0.2, 0.5, 0.3]), clips=1)
    assert pred.top(2) == [("b", 0.5), ("c", 0.3)]
    model, spec = dualstream.load_model(package)
    assert spec["classes"] == CLASSES and not model.training


def test_explain_writes_a_figure(package, tiny_dataset, tmp_path, capsys):
    from dualstream.inference.explain import attention_map

    out = tmp_path / "why.png"
    video = tiny_dataset / "videos" / "Grow" / "v_Grow_g01_c01.avi"
    assert main(["predict", str(video), "--model", str(package), "--clips", "2", "--explain", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = tmp_path / "no" / "why.png"  # the one-line error names the file asked for, not a temporary one
    assert main(["predict", str(video), "--model", str(package), "--clips", "2", "--explain", str(missing)]) == 2
    assert capsys.readouterr().err == f"dualstream predict: error: {missing}: No such file or directory\n"
    image = cv2.imread(str(out))
    assert image.shape[1] == 4 * 160  # one column per frame of the clip
    pred = load_predictor(package)
    clips = pred.clips(video, clips=1)
    att = pred.run(clips, attention=True).attention
    assert att.shape == (16, 16)  # 32 px input, 3 poolings: 4 x 4 positions
    np.testing.assert_allclose(att.sum(1), 1.0, atol=1e-5)
    assert attention_map(att).shape == (4, 4) and attention_map(att).sum() == pytest.approx(1.0, abs=1e-5)



@pytest.mark.parametrize("method, flow_device", [("dis", "cpu"), ("opencv-dis", "cpu"), ("opencv-tvl1", "cpu"),
                                                 ("tvl1", "cuda"), ("brox", "cuda")])
def test_only_pytorch_flow_follows_the_model_device(package, method, flow_device):
    model, spec = dualstream.load_model(package)
    # building the predictor touches no GPU: the device is only recorded here
    assert TorchPredictor(model, {**spec, "flow_method": method}, device="cuda").flow_device == flow_device
