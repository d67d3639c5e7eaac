"""uint8 training clips normalised on the device equal TrainClips' up to one quantisation level."""

import numpy as np
import torch

from dualstream.data.dataset import ClipSpec, TrainClips
from dualstream.data.prepare import find_videos
from dualstream.data.transforms import random_crop_params
from dualstream.data.u8clips import TrainClipsU8, to_network_input
from dualstream.data.ucf101 import VideoEntry


def test_u8_clips_match_the_float_path(tiny_dataset, tiny_cache):
    entries = [VideoEntry(rel, 0) for rel in find_videos(tiny_dataset / "videos")]
    spec = ClipSpec(input_size=40, frames=4, interval=3, offsets=(2,), crop_scale_min=0.6)
    ref, fast = TrainClips(tiny_cache, entries, spec, seed=5), TrainClipsU8(tiny_cache, entries, spec, seed=5)
    ref.set_epoch(1), fast.set_epoch(1)
    flipped = 0
    for i in range(len(entries)):
        r, f, label = ref[i]
        ru, fu, label_u, scale = fast[i]
        assert ru.dtype == fu.dtype == torch.uint8 and (ru.shape, fu.shape) == ((12, 40, 40), (8, 40, 40))
        r2, f2 = to_network_input(ru[None], fu[None], torch.tensor([scale]), flow_bound=20.0)
        assert label_u == label and torch.equal(r2[0], r)  # RGB is resized in uint8 on both paths
        level = 2 * 20.0 / 255 * scale / 20.0  # one quantisation level of normalised flow
        assert float((f2[0] - f).abs().max()) <= level
        flipped += random_crop_params(48, 48, rng=np.random.default_rng([5, 1, i]), scale_min=0.6, flip=True).flip
    assert 0 < flipped < len(entries)  # both branches were compared
