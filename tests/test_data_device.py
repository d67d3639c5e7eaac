"""The device pipeline (workers read uint8, the device crops, flips, resizes, normalises) against the
classic datasets, and the packed store against the JPEGs it was made from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dualstream.cli import main
from dualstream.data import device as dev
from dualstream.cache import load_frames_u8
from dualstream.data.dataset import EvalViews, TrainClips
from dualstream.data.sampling import ClipSpec
from dualstream.cache import PACKED_FLOW, decode_frames, is_packed
from dualstream.prepare.pack import pack_cache
from dualstream.cache import MANIFEST
from dualstream.prepare.common import PrepareOptions
from dualstream.video import find_videos
from dualstream.prepare.run import prepare_dataset
from dualstream.data.ucf101 import VideoEntry
from dualstream.engine.accel import DeviceBatches

CPU = torch.device("cpu")


def fake_cache(root: Path, sizes: list[tuple[int, int]], *, frames: int = 12, kept: list[int] | None = None,
               seed: int = 0) -> list[VideoEntry]:
    """A rawframes cache of smooth random frames and flows, one video per size (``kept``: an --only-sampled cache)."""
    rng = np.random.default_rng(seed)
    entries = []
    for v, (h, w) in enumerate(sizes):
        folder = root / "C" / f"v_C_g{v + 1:02d}_c01"
        folder.mkdir(parents=True)
        numbers = kept or list(range(1, frames))
        for i in numbers:
            img = cv2.resize(rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8), (w, h))
            cv2.imwrite(str(folder / f"img_{i:05d}.jpg"), img)
            for axis in "xy":
                q = cv2.resize(rng.integers(60, 196, (h // 4, w // 4), dtype=np.uint8), (w, h))
                cv2.imwrite(str(folder / f"flow_{axis}_{i:05d}.jpg"), q)
        manifest = {"num_frames": frames, "num_flows": len(numbers), "height": h, "width": w, "flow_bound": 20.0,
                    "frames": "all" if kept is None else kept}
        (folder / MANIFEST).write_text(json.dumps(manifest))
        entries.append(VideoEntry(f"C/{folder.name}.avi", v % 3))
    return entries


def _batch(items: list) -> dict:
    return dev.collate_frames(items)


@pytest.mark.parametrize("kept", [None, [2, 5, 8, 9]])
def test_packed_store_holds_the_decoded_jpeg_pixels(tmp_path, kept):
    entries = fake_cache(tmp_path / "cache", [(24, 32)], kept=kept)
    folder = tmp_path / "cache" / entries[0].key
    want = [2, 8, 9] if kept else [1, 7, 11]
    rgb, flow = decode_frames(folder, want)
    classic = load_frames_u8(folder, want)
    available = kept
    packed = tmp_path / "packed"
    shutil.copytree(tmp_path / "cache", packed)
    summary = pack_cache(packed, drop_jpeg=True, workers=1, progress=False)
    assert (summary.packed, summary.skipped) == (1, 0) and is_packed(packed / entries[0].key)
    assert not list((packed / entries[0].key).glob("*.jpg"))
    assert json.loads((packed / entries[0].key / MANIFEST).read_text())["format"] == "packed-uint8"
    prgb, pflow = load_frames_u8(packed / entries[0].key, want, available)
    assert np.array_equal(prgb, rgb) and np.array_equal(pflow, flow)
    assert prgb.shape == (3, 24, 32, 3) and pflow.shape == (3, 24, 32, 2)
    p_classic = load_frames_u8(packed / entries[0].key, want, available)
    assert all(np.array_equal(a, b) for a, b in zip(classic, p_classic))
    assert pack_cache(packed, workers=1, progress=False).skipped == 1  # resumable: done videos are skipped


def test_pack_command_and_prepare_format_packed(tiny_dataset, tiny_cache, tmp_path, capsys):
    cache = tmp_path / "cache"
    shutil.copytree(tiny_cache, cache)
    assert main(["-q", "pack", str(cache), "--workers", "1"]) == 0
    assert capsys.readouterr().out.startswith("packed 12, skipped 0")
    assert main(["-q", "pack", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no prepared videos" in err

    videos = find_videos(tiny_dataset / "videos")[:2]
    out = tmp_path / "packed"
    s = prepare_dataset(tiny_dataset / "videos", out, PrepareOptions(short_side=0, format="packed"), workers=1,
                        videos=videos, progress=False)
    assert s.prepared == 2
    for rel in videos:
        key = rel.rsplit(".", 1)[0]
        assert not list((out / key).glob("*.jpg")) and (out / key / PACKED_FLOW).is_file()
        idx = [1, 5, 14]  # the same JPEG bytes were decoded into the store
        assert all(np.array_equal(a, b) for a, b in zip(load_frames_u8(out / key, idx), decode_frames(tiny_cache / key, idx)))
        assert json.loads((out / key / MANIFEST).read_text())["bytes"] == sum(
            p.stat().st_size for p in (out / key).iterdir() if p.name != MANIFEST)


@pytest.mark.parametrize("jpeg_bytes", [False, True])
def test_train_batches_equal_train_clips_when_nothing_is_resized(tmp_path, jpeg_bytes):
    """Crop side == input size: the device path is the classic path exactly (crop place, flip, flow-x sign,
    normalisation); with JPEG bytes decoded in the main process the same."""
    entries = fake_cache(tmp_path, [(24, 32)] * 6)
    spec = ClipSpec(frames=3, interval=2, offsets=(1,), input_size=24, crop_scale_min=1.0)
    ref = TrainClips(tmp_path, entries, spec, seed=3)
    fast = dev.TrainFrames(tmp_path, entries, spec, seed=3, jpeg_bytes=jpeg_bytes)
    rgb, flow, label = dev.to_train_input(_batch([fast[i] for i in range(6)]), CPU, size=24, flow_bound=20.0)
    assert (rgb.shape, flow.shape) == ((6, 9, 24, 24), (6, 6, 24, 24))
    flips = [fast[i]["flip"] for i in range(6)]
    assert 0 < sum(flips) < 6 and len({int(fast[i]["box"][1]) for i in range(6)}) > 1  # both flips, several places
    for i in range(6):
        r, f, lab = ref[i]
        assert int(label[i]) == lab
        torch.testing.assert_close(rgb[i], r, atol=1e-5, rtol=0)
        torch.testing.assert_close(flow[i], f, atol=1e-5, rtol=0)


def test_train_batches_resize_like_train_clips(tiny_dataset, tiny_cache):
    """With resizing (crops of 29-48 px to 40) the bilinear device resize stays close to OpenCV's."""
    entries = [VideoEntry(rel, 0) for rel in find_videos(tiny_dataset / "videos")]
    spec = ClipSpec(frames=4, interval=3, offsets=(2,), input_size=40, crop_scale_min=0.6)
    ref, fast = TrainClips(tiny_cache, entries, spec, seed=5), dev.TrainFrames(tiny_cache, entries, spec, seed=5)
    rgb, flow, _ = dev.to_train_input(_batch([fast[i] for i in range(len(entries))]), CPU, size=40, flow_bound=20.0)
    for i in range(len(entries)):
        r, f, _ = ref[i]
        other = ref[(i + 1) % len(entries)][0]
        assert float((rgb[i] - r).abs().mean()) < 0.1 < float((other - r).abs().mean())
        assert float((flow[i] - f).abs().mean()) < 0.02


def test_eval_views_on_the_device_equal_eval_views(tmp_path):
    """3 crops x 2 flips per clip cut on the device, in EvalViews' order; videos of two sizes in one batch."""
    entries = fake_cache(tmp_path, [(24, 36), (24, 30), (30, 24)])
    spec = ClipSpec(frames=3, interval=3, input_size=24)
    ref = EvalViews(tmp_path, entries, spec, offsets=[1, 3], crops=3, flip=True)
    items = dev.EvalFrames(tmp_path, entries, spec, offsets=[1, 3], crops=3, flip=True)
    assert items.views_per_video == ref.views_per_video == 12 and len(items) * 6 == len(ref)
    rgb, flow, label, video = dev.to_eval_input(_batch([items[k] for k in range(len(items))]), CPU, size=24,
                                                flow_bound=20.0)
    assert rgb.shape == (len(ref), 9, 24, 24)
    for k in range(len(ref)):
        r, f, lab, v = ref[k]
        torch.testing.assert_close(rgb[k], r, atol=1e-5, rtol=0)
        torch.testing.assert_close(flow[k], f, atol=1e-5, rtol=0)
        assert (int(label[k]), int(video[k])) == (lab, v)


def test_crop_resize_box_and_mirror():
    """A box is cut from its own image at the given place; a mirror reverses the columns."""
    x = torch.arange(2 * 1 * 6 * 8, dtype=torch.float32).view(2, 1, 6, 8)
    boxes = torch.tensor([[1, 2, 4, 4], [2, 0, 4, 4]])
    out = dev.crop_resize(x, boxes, 4, torch.tensor([False, True]))
    assert torch.allclose(out[0, 0], x[0, 0, 1:5, 2:6]) and torch.allclose(out[1, 0], x[1, 0, 2:6, 0:4].flip(-1))
    sq = torch.rand(2, 3, 6, 6)
    half = dev.crop_resize(sq, torch.tensor([[0, 0, 6, 6], [0, 0, 6, 6]]), 3)  # shrink by 2: 2x2 box filter
    torch.testing.assert_close(half, torch.nn.functional.avg_pool2d(sq, 2))
    big = torch.rand(2, 3, 12, 12)  # shrink by 3 (where bilinear alone would skip pixels): 3x3 box filter
    third = dev.crop_resize(big, torch.tensor([[0, 0, 9, 9], [3, 3, 9, 9]]), 3)
    torch.testing.assert_close(third[0], torch.nn.functional.avg_pool2d(big[0, :, 0:9, 0:9], 3))
    torch.testing.assert_close(third[1], torch.nn.functional.avg_pool2d(big[1, :, 3:12, 3:12], 3))
    # shrink by 2.5: the 2x2 box filter first, so a pattern finer than the output grid averages out
    checker = ((torch.arange(20)[:, None] + torch.arange(20)) % 2).float().view(1, 1, 20, 20)
    assert torch.equal(dev.crop_resize(checker, torch.tensor([[0, 0, 10, 10]]), 4), torch.full((1, 1, 4, 4), 0.5))
    # an odd width: the last 2x2 window holds one column (4), which the box filter keeps, not drops
    ramp = torch.arange(5.0).expand(1, 1, 4, 5)
    out = dev.crop_resize(ramp, torch.tensor([[0, 1, 4, 4]]), 2)
    torch.testing.assert_close(out, torch.tensor([[1.5, 3.25]] * 2).view(1, 1, 2, 2), atol=1e-6, rtol=0)


def test_device_batches_apply_the_transform_in_order():
    loader = [(torch.full((2, 1), float(k)),) for k in range(3)]
    batches = DeviceBatches(loader, lambda b: (b[0] * 10,), CPU)
    assert len(batches) == 3 and [float(b[0][0, 0]) for b in batches] == [0.0, 10.0, 20.0]
