"""uint8 training clips normalised on the device equal TrainClips' (RGB exactly, flow within one
quantisation level), from the JPEGs and from the packed store."""

import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from dualstream.data.dataset import ClipSpec, TrainClips
from dualstream.prepare.pack import pack_cache
from dualstream.video import find_videos
from dualstream.data.transforms import random_crop_params
from dualstream.data.u8clips import TrainClipsU8, to_u8_input
from dualstream.data.ucf101 import VideoEntry


@pytest.mark.parametrize("packed", [False, True])
def test_u8_clips_match_the_float_path(tiny_dataset, tiny_cache, tmp_path, packed):
    entries = [VideoEntry(rel, 0) for rel in find_videos(tiny_dataset / "videos")]
    cache = tiny_cache
    if packed:
        cache = tmp_path / "packed"
        shutil.copytree(tiny_cache, cache)
        pack_cache(cache, drop_jpeg=True, workers=1, progress=False)
    spec = ClipSpec(input_size=40, frames=4, interval=3, offsets=(2,), crop_scale_min=0.6)
    ref, fast = TrainClips(tiny_cache, entries, spec, seed=5), TrainClipsU8(cache, entries, spec, seed=5)
    ref.set_epoch(1), fast.set_epoch(1)
    flipped = 0
    for i in range(len(entries)):
        r, f, label = ref[i]
        item = fast[i]
        assert item[0].dtype == item[1].dtype == torch.uint8 and (item[0].shape, item[1].shape) == \
            ((4, 40, 40, 3), (4, 40, 40, 2))
        r2, f2, label2 = to_u8_input(default_collate([item]), torch.device("cpu"), flow_bound=20.0)
        assert label2.tolist() == [label] and (r2.shape, f2.shape) == ((1, 12, 40, 40), (1, 8, 40, 40))
        assert torch.equal(r2[0], r)  # RGB is resized in uint8 on both paths
        level = 2 * 20.0 / 255 * item[3] / 20.0  # one quantisation level of normalised flow
        assert float((f2[0] - f).abs().max()) <= level + 1e-6
        flipped += random_crop_params(48, 48, rng=np.random.default_rng([5, 1, i]), scale_min=0.6, flip=True).flip
    assert 0 < flipped < len(entries)  # both branches were compared
