"""The workers' clip path (whole network-ready batches cut into reused shared memory) against its device
twin; the views' order; the batch memory pool; loader workers forked after OpenCV's pool ran."""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dualstream.data import device as dev
from dualstream.data.dataset import EvalViews, TrainClips
from dualstream.data.sampling import ClipSpec
from dualstream.data.batches import BatchPool, collate_batches, release_batch
from dualstream.data.clips import cut_arrays, shrink_filter
from dualstream.data.transforms import IMAGENET_MEAN, IMAGENET_STD, CropParams, crop_params
from dualstream.prepare.pack import pack_cache
from dualstream.cache import read_packed
from dualstream.engine.accel import DeviceBatches, loader_worker_init
from dualstream.engine.train import EpochClips, EpochSampler

from .test_data_device import fake_cache

CPU = torch.device("cpu")
RGB_LEVEL = 1 / (0.224 * 255)  # one uint8 step of RGB in normalised units (the smallest std)


def _flow_level(size: int, side: int) -> float:
    """One quantisation step of the flow (bound 20) in network units, for a crop of ``side`` resized to ``size``."""
    return 2 / 255 * size / side


def test_worker_clips_agree_with_the_device_twin_within_one_level(tmp_path):
    """Same draws and labels as the device pipeline's TrainFrames, and the same values within one uint8
    step (one quantisation level for the flow), bilinear both: crops shrunk by less than 2 everywhere,
    enlarged crops inside a 2-pixel border (there the device samples the frame beyond the crop, OpenCV
    repeats the crop's edge). Shrinking by 2 or more (area against a box pre-filter) is not compared."""
    entries = fake_cache(tmp_path, [(40, 52), (44, 60)])
    spec = ClipSpec(frames=3, interval=3, offsets=(1, 2), input_size=32, crop_scale_min=0.6)
    clips, frames = TrainClips(tmp_path, entries, spec), dev.TrainFrames(tmp_path, entries, spec)
    seen = set()
    for epoch in range(6):
        for ds in (clips, frames):
            ds.set_epoch(epoch)
        for i in range(len(entries)):
            rgb, flow, label = clips[i]
            crop = clips.crop(i, *frames.sizes[i])
            assert crop == frames.crop(i, *frames.sizes[i])
            assert rgb.shape == (9, 32, 32) and flow.shape == (6, 32, 32) and rgb.dtype == torch.float32
            want_rgb, want_flow, want_label = dev.to_train_input(dev.collate_frames([frames[i]]), CPU, size=32,
                                                                 flow_bound=20.0)
            assert label == int(want_label[0])
            inside = slice(2, -2) if crop.size < 32 else slice(None)
            seen.add("enlarged" if crop.size < 32 else "shrunk")
            d_rgb, d_flow = (rgb - want_rgb[0])[:, inside, inside], (flow - want_flow[0])[:, inside, inside]
            assert d_rgb.abs().max() <= RGB_LEVEL + 1e-5
            assert d_flow.abs().max() <= _flow_level(32, crop.size) + 1e-5
    assert seen == {"enlarged", "shrunk"}


def test_cut_arrays_is_the_workers_cut(tmp_path):
    """``cut_arrays`` (predict, live) gives exactly the tensors a worker cuts for the same frames and crop."""
    entries = fake_cache(tmp_path, [(40, 52)])
    spec = ClipSpec(frames=3, interval=3, offsets=(1,), input_size=24, crop_scale_min=0.6)
    clips = TrainClips(tmp_path, entries, spec)
    v, idx, crop = clips.clip(0)
    rgb, flow = cut_arrays(*clips.load(v, idx), crop, size=24)
    want = clips[0]
    assert np.array_equal(rgb, want[0].numpy()) and np.array_equal(flow, want[1].numpy())


def test_shrinking_by_two_or_more_averages_the_covered_pixels():
    """Area from a 2x shrink on (where bilinear would skip pixels), bilinear below; a 3x shrink of a crop is
    the mean of each 3 x 3 block, for RGB and flow alike."""
    import cv2

    assert [shrink_filter(side, 32) for side in (16, 32, 63, 64, 80, 96)] == [cv2.INTER_LINEAR] * 3 + [cv2.INTER_AREA] * 3
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (2, 100, 100, 3), dtype=np.uint8)
    flow = rng.integers(0, 256, (2, 100, 100, 2), dtype=np.uint8)
    r, f = cut_arrays(rgb, flow, CropParams(top=1, left=3, size=96, flip=False), size=32)

    def block_means(x):  # (T, 96, 96, C) -> (T, C, 32, 32), rounded to uint8 as the resize is
        x = x[:, 1:97, 3:99].reshape(2, 32, 3, 32, 3, -1).mean((2, 4))
        return np.floor(x + 0.5).transpose(0, 3, 1, 2)

    mean, std = np.array(IMAGENET_MEAN)[:, None, None], np.array(IMAGENET_STD)[:, None, None]
    np.testing.assert_allclose(r.reshape(2, 3, 32, 32), (block_means(rgb) / 255 - mean) / std, atol=1e-4)
    np.testing.assert_allclose(f.reshape(2, 2, 32, 32), (2 * block_means(flow) / 255 - 1) / 3, atol=1e-5)


def test_fused_mirror_negates_flow_x(tmp_path):
    """An uncropped, unresized clip and its mirror: RGB and flow-y mirrored, flow-x mirrored and negated."""
    entries = fake_cache(tmp_path, [(24, 24)])
    spec = ClipSpec(frames=2, interval=3, offsets=(1,), input_size=24, crop_scale_min=1.0)
    fused = TrainClips(tmp_path, entries, spec)
    flips = {}
    for epoch in range(12):
        fused.set_epoch(epoch)
        flips[fused.crop(0, 24, 24).flip] = fused[0]
    (rgb, flow, _), (mrgb, mflow, _) = flips[False], flips[True]
    torch.testing.assert_close(mrgb, rgb.flip(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(mflow[1::2], flow[1::2].flip(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(mflow[0::2], -flow[0::2].flip(-1), atol=1e-5, rtol=0)
    assert flow.abs().max() > 0.05  # the fake flows are not zero


def test_eval_views_in_order_batched_as_one_by_one(tmp_path):
    """Every view (offsets x 3 crops x mirrors) in EvalViews' order; a batch equals its views cut one by one,
    and a mirrored view is its unmirrored twin mirrored (flow-x negated)."""
    entries = fake_cache(tmp_path, [(40, 52), (52, 40)])
    spec = ClipSpec(frames=3, interval=3, input_size=40)
    views = EvalViews(tmp_path, entries, spec, offsets=[1, 3], crops=3, flip=True)
    assert len(views) == 2 * 2 * 3 * 2
    crops = [crop_params(40, 52, 3), crop_params(52, 40, 3)]
    assert [views.clip(k)[2] for k in range(4)] == [crops[0][0], replace(crops[0][0], flip=True), crops[0][1],
                                                    replace(crops[0][1], flip=True)]
    assert views.clip(12) == (1, views.view_frames(1, 0), crops[1][0]) != (1, views.view_frames(1, 1), crops[1][0])
    assert views.clip(23) == (1, views.view_frames(1, 1), replace(crops[1][2], flip=True))
    rgb, flow, labels, videos = views.__getitems__(list(range(len(views))))
    for k in range(len(views)):
        want = views[k]
        assert torch.equal(rgb[k], want[0]) and torch.equal(flow[k], want[1])
        assert (int(labels[k]), int(videos[k])) == want[2:] == (entries[k // 12].label, k // 12)
    for k in range(0, len(views), 2):  # view k + 1 is view k mirrored
        torch.testing.assert_close(rgb[k + 1], rgb[k].flip(-1), atol=1e-5, rtol=0)
        torch.testing.assert_close(flow[k + 1][0::2], -flow[k][0::2].flip(-1), atol=1e-5, rtol=0)


def test_fused_reads_only_the_crop_lines_of_a_packed_store(tmp_path):
    entries = fake_cache(tmp_path / "cache", [(40, 52), (52, 40)], kept=[1, 4, 7, 10])
    packed = tmp_path / "packed"
    shutil.copytree(tmp_path / "cache", packed)
    pack_cache(packed, drop_jpeg=True, workers=1, progress=False)
    folder = packed / entries[0].key
    whole = read_packed(folder, [0, 2])
    part = read_packed(folder, [0, 2], (5, 30))
    assert part[0].shape == (2, 30, 52, 3) and part[1].shape == (2, 30, 52, 2)
    assert all(np.array_equal(p, w[:, 5:35]) for p, w in zip(part, whole))
    with pytest.raises(IndexError, match="lines"):
        read_packed(folder, [0], (20, 30))
    spec = ClipSpec(frames=3, interval=3, offsets=(1, 2), input_size=32, crop_scale_min=0.6)
    jpeg, pk = TrainClips(tmp_path / "cache", entries, spec), TrainClips(packed, entries, spec)
    for epoch in range(3):
        jpeg.set_epoch(epoch)
        pk.set_epoch(epoch)
        a, b = jpeg.__getitems__([0, 1]), pk.__getitems__([0, 1])
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_batch_pool_reuses_only_released_batches():
    pool = BatchPool(keep=2)
    shapes = (2, 3, 4, 4), (2, 2, 4, 4)
    a = pool.batch(*shapes)
    b = pool.batch(*shapes)
    assert a[0].data_ptr() != b[0].data_ptr()
    assert a[1].data_ptr() == a[0].data_ptr() + 4 * a[0].numel()  # one storage, the flag after both
    assert pool.batch(*shapes)[0].data_ptr() not in (a[0].data_ptr(), b[0].data_ptr())  # none released yet
    release_batch(b)
    release_batch(b)  # twice: harmless
    c = pool.batch(*shapes)
    assert c[0].data_ptr() == b[0].data_ptr()  # b's memory, once released
    assert pool.batch(*shapes)[0].data_ptr() != b[0].data_ptr()  # c holds it now
    release_batch((torch.zeros(2, 3), torch.zeros(2, 2), torch.zeros(2)))  # not a pooled batch: nothing happens
    release_batch(a)
    assert pool.batch((1, 3, 4, 4), (1, 2, 4, 4))[0].data_ptr() != a[0].data_ptr()  # another size: fresh
    clone = copy.deepcopy(pool)  # a worker's copy (pickled through __getstate__) starts empty
    assert clone.storages == [] and clone.keep == 2


def test_fused_loader_workers_deliver_the_in_process_batches(tmp_path):
    """Two workers, two epochs, memory reused (the loop releases each batch): the batches equal those
    cut in this process, every batch fresh (a reused storage never overwrites one still in use)."""
    entries = fake_cache(tmp_path, [(40, 52)] * 5)
    spec = ClipSpec(frames=3, interval=3, offsets=(1, 2), offset_period=1, input_size=32, crop_scale_min=0.6)

    def batches(workers: int) -> list[tuple[torch.Tensor, ...]]:
        clips = TrainClips(tmp_path, entries, spec, seed=3, repeats=2).reuse_batches(keep=2)
        sampler = EpochSampler(clips, num_replicas=1, rank=0, shuffle=True, seed=3)
        loader = DataLoader(EpochClips(clips), batch_size=3, sampler=sampler, num_workers=workers,
                            collate_fn=collate_batches, worker_init_fn=loader_worker_init if workers else None,
                            persistent_workers=workers > 0, generator=torch.Generator().manual_seed(3))
        out = []
        for epoch in range(2):
            sampler.set_epoch(epoch)
            out += [tuple(t.clone() for t in b) for b in DeviceBatches(loader, lambda b: b, CPU, release=release_batch)]
        return out

    a, b = batches(0), batches(2)
    assert len(a) == len(b) == 2 * 4 and [x[0].shape[0] for x in a[:4]] == [3, 3, 3, 1]
    assert all(torch.equal(x, y) for p, q in zip(a, b) for x, y in zip(p, q))
    assert not torch.equal(a[0][0], a[4][0])  # another epoch: other clips


def test_loader_workers_start_after_opencv_pool_ran(tmp_path):
    """A worker forked after this process ran OpenCV's thread pool hung for ever in cv2.setNumThreads(1)
    (loader_worker_init) before DeviceBatches set the pool to one thread around the fork."""
    script = textwrap.dedent(f"""
        import cv2, numpy as np, sys, torch
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from pathlib import Path
        from torch.utils.data import DataLoader
        from tests.test_data_device import fake_cache
        from dualstream.data.batches import collate_batches
        from dualstream.data.dataset import TrainClips
        from dualstream.data.sampling import ClipSpec
        from dualstream.engine.accel import DeviceBatches, loader_worker_init
        cv2.GaussianBlur(np.zeros((400, 400, 3), np.uint8), (7, 7), 0)  # the pool has run
        threads = cv2.getNumThreads()
        entries = fake_cache(Path({str(tmp_path)!r}), [(24, 32)] * 4)
        clips = TrainClips({str(tmp_path)!r}, entries, ClipSpec(frames=3, interval=3, input_size=16))
        loader = DataLoader(clips, batch_size=2, num_workers=2, worker_init_fn=loader_worker_init,
                            collate_fn=collate_batches)
        n = len(list(DeviceBatches(loader, lambda b: b, torch.device("cpu"))))
        print(n, cv2.getNumThreads() == threads)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the hung workers too
        proc.communicate()
        pytest.fail("loader workers forked after OpenCV's pool ran did not start within 60 s")
    assert proc.returncode == 0, stderr
    assert stdout.split() == ["2", "True"]  # the batches came, this process's OpenCV threads are back
