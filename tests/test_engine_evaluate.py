"""Evaluation maths and views: video-level averaging, top-5, confusion, mistakes, crops and flips."""

from __future__ import annotations

import pytest
import torch
import yaml

from dualstream.data.sampling import ClipSpec
from dualstream.data.transforms import CropParams
from dualstream.data.ucf101 import VideoEntry, read_split
from dualstream.data.dataset import EvalViews
from dualstream.data.sampling import eval_offsets
from dualstream.data.transforms import crop_params
from dualstream.config import Config, ConfigError
from dualstream.engine.build import CONFIG
from dualstream.engine.evaluate import evaluate_run, mistakes, video_metrics


def test_video_metrics_average_softmax_over_views():
    # video 0 (label 0): views disagree, the mean favours class 0; video 1 (label 2): predicted 1
    probs = torch.tensor([[0.6, 0.4, 0.0], [0.3, 0.5, 0.2], [0.1, 0.5, 0.4], [0.2, 0.5, 0.3]])
    labels, videos = torch.tensor([0, 0, 2, 2]), torch.tensor([0, 0, 1, 1])
    m = video_metrics(probs, labels, videos, ["a", "b", "c"])
    assert (m["clip_top1"], m["video_top1"], m["num_videos"], m["num_clips"]) == (0.25, 0.5, 2, 4)
    assert m["confusion"] == [[1, 0, 0], [0, 0, 0], [0, 1, 0]]
    assert m["per_class"] == {"a": 1.0, "b": None, "c": 0.0}
    assert m["top5"] == 1.0 and m["clip_top5"] == 1.0
    assert torch.allclose(m["_video_probs"][1], torch.tensor([0.15, 0.5, 0.35], dtype=torch.float64))
    wrong = mistakes(m["_video_probs"], [VideoEntry("a/v_a_g01_c01.avi", 0), VideoEntry("c/v_c_g01_c01.avi", 2)],
                     ["a", "b", "c"])
    assert wrong == [{"video": "c/v_c_g01_c01", "true": "c", "predicted": "b", "confidence": 0.5}]


def test_three_crops_span_the_long_side():
    assert crop_params(48, 64, 3) == [CropParams(0, 0, 48, False), CropParams(0, 8, 48, False), CropParams(0, 16, 48, False)]
    assert crop_params(64, 48, 1) == [CropParams(8, 0, 48, False)]


def test_eval_offsets_all_of_the_interval():
    assert eval_offsets(10, 10) == list(range(1, 11)) == eval_offsets(10, 25)
    assert eval_offsets(10, 1) == [5]


def test_views_per_video_and_mirrored_views(tiny_dataset, tiny_cache):
    entries = read_split(tiny_dataset / "ucfTrainTestlist", 1).test[:2]
    spec = ClipSpec(frames=3, interval=2, input_size=48)
    views = EvalViews(tiny_cache, entries, spec, offsets=[1, 2], crops=3, flip=True)
    assert (views.views_per_video, len(views)) == (12, 24)
    rgb, flow, label, video = views[12 + 4]  # video 1, offset 1, centre crop, plain
    rgb_m, flow_m, _, video_m = views[12 + 5]  # the same view mirrored
    assert (video, video_m, label) == (1, 1, entries[1].label)
    assert torch.equal(rgb_m, rgb.flip(-1))
    assert torch.equal(flow_m[0::2], -flow[0::2].flip(-1)) and torch.equal(flow_m[1::2], flow[1::2].flip(-1))
    with pytest.raises(IndexError):
        views[24]


@pytest.mark.parametrize("option, message", [({"split": 4}, "data.split must be 1, 2 or 3, got 4"),
                                             ({"clips": 0}, "data.eval_clips must be >= 1, got 0"),
                                             ({"crops": 2}, "data.eval_crops must be 1 or 3, got 2")])
def test_evaluate_options_are_checked_as_the_config_values(tmp_path, option, message):
    (tmp_path / CONFIG).write_text(yaml.safe_dump(Config().to_dict()))
    with pytest.raises(ConfigError) as exc:
        evaluate_run(tmp_path, **option)
    assert str(exc.value) == message
