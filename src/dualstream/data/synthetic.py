"""A synthetic action dataset in the UCF-101 layout, where only motion tells the classes apart.

Every video shows one textured object over a textured background. Classes differ by how the
object moves (up, down, growing, shrinking, spinning, oscillating along one axis, ...); the
object's shape, colours, texture, start position and size and the background are random, so a
single still frame cannot tell the class. No class hinges on left versus right (a horizontal
flip keeps every class), so flip augmentation is safe on this set.

Appearance is drawn per video, not per group: if the clips of a group shared a look, a network
could learn "this look -> this class" from the training groups and fail on the unseen test
groups. Groups (``gGG``) still structure the split as in UCF-101: groups 1..k are the test side
and never appear in training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..video import write_video

# name -> motion: (t in [0, 1], strength a in [0.3, 0.45]) -> (dx, dy, scale, angle), with dx, dy
# as fractions of the frame size and angle in degrees.
MOTIONS = {
    "MoveUp": lambda t, a: (0.0, -a * t, 1.0, 0.0),
    "MoveDown": lambda t, a: (0.0, a * t, 1.0, 0.0),
    "Grow": lambda t, a: (0.0, 0.0, 1.0 + 3.0 * a * t, 0.0),
    "Shrink": lambda t, a: (0.0, 0.0, 1.0 / (1.0 + 3.0 * a * t), 0.0),
    "Spin": lambda t, a: (0.0, 0.0, 1.0, 1080.0 * a * t),
    "SwayHorizontal": lambda t, a: (0.5 * a * math.sin(4 * math.pi * t), 0.0, 1.0, 0.0),
    "SwayVertical": lambda t, a: (0.0, 0.5 * a * math.sin(4 * math.pi * t), 1.0, 0.0),
    "Pulse": lambda t, a: (0.0, 0.0, 1.0 + 0.35 * math.sin(6 * math.pi * t), 0.0),
    "Bounce": lambda t, a: (0.0, a * (0.5 - abs(math.sin(3 * math.pi * t))), 1.0, 0.0),
    "Still": lambda t, a: (0.0, 0.0, 1.0, 0.0),
}
CLASS_NAMES = tuple(MOTIONS)
CLIPS_PER_GROUP = 5
TEST_GROUP_FRACTION = 0.3


@dataclass(frozen=True)
class SyntheticSpec:
    classes: int = 6
    videos_per_class: int = 30
    frames: int = 48
    size: int = 96
    seed: int = 0
    fps: float = 25.0

    def __post_init__(self) -> None:
        if not 2 <= self.classes <= len(MOTIONS):
            raise ValueError(f"--classes must be between 2 and {len(MOTIONS)}, got {self.classes}")
        if self.videos_per_class < 2:
            raise ValueError(f"--videos-per-class must be at least 2 (one train, one test), got {self.videos_per_class}")
        if self.frames < 12:
            raise ValueError(f"--frames must be at least 12, got {self.frames}")
        if self.size < 32:
            raise ValueError(f"--size must be at least 32, got {self.size}")

    @property
    def groups(self) -> int:
        return max(2, math.ceil(self.videos_per_class / CLIPS_PER_GROUP))

    @property
    def test_groups(self) -> int:
        """Groups 1..test_groups are the test side, as in UCF-101 split 1 (groups 1-7 test)."""
        return max(1, round(self.groups * TEST_GROUP_FRACTION))


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Colour texture (size, size, 3) float32 in [0, 1]: random low-res noise, upsampled."""
    low = rng.random((cells, cells, 3), dtype=np.float32)
    return cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _appearance(rng: np.random.Generator, size: int) -> dict:
    """Background, object sprite and mask of one video."""
    background = 0.25 + 0.5 * _smooth_noise(rng, size, int(rng.integers(3, 8)))
    sprite_size = size  # drawn large, scaled down when composed
    colour = rng.uniform(0.1, 1.0, size=3).astype(np.float32)
    texture = 0.6 * colour + 0.4 * _smooth_noise(rng, sprite_size, int(rng.integers(4, 10)))
    mask = np.zeros((sprite_size, sprite_size), np.uint8)
    c, r = sprite_size // 2, int(sprite_size * 0.45)
    shape = int(rng.integers(0, 3))
    if shape == 0:
        cv2.rectangle(mask, (c - r, c - int(r * rng.uniform(0.5, 1.0))), (c + r, c + int(r * rng.uniform(0.5, 1.0))), 255, -1)
    elif shape == 1:
        cv2.ellipse(mask, (c, c), (r, int(r * rng.uniform(0.45, 0.9))), 0, 0, 360, 255, -1)
    else:
        pts = np.array([[c, c - r], [c + r, c + r], [c - r, c + r]], np.int32)
        cv2.fillPoly(mask, [pts], 255)
    return {"background": background, "texture": texture.clip(0, 1), "mask": mask.astype(np.float32) / 255.0}


def render_video(spec: SyntheticSpec, motion: str, look: dict, rng: np.random.Generator) -> np.ndarray:
    """Render one clip (T, H, W, 3) uint8 of ``motion`` with appearance ``look``."""
    s, frames = spec.size, spec.frames
    move = MOTIONS[motion]
    obj = rng.uniform(0.3, 0.42) * s  # object diameter in px
    strength = rng.uniform(0.3, 0.45)
    cx, cy = s * rng.uniform(0.4, 0.6), s * rng.uniform(0.4, 0.6)
    if motion == "MoveUp":
        cy += strength * s / 2
    elif motion == "MoveDown":
        cy -= strength * s / 2
    angle0 = rng.uniform(0, 360)
    spin_sign = rng.choice([-1.0, 1.0])  # either direction: spinning must not hinge on left/right
    sprite = look["texture"]
    alpha = look["mask"][..., None]
    out = np.empty((frames, s, s, 3), np.uint8)
    for t in range(frames):
        dx, dy, scale, angle = move(t / (frames - 1), strength)
        k = obj * scale / sprite.shape[0]
        m = cv2.getRotationMatrix2D((sprite.shape[1] / 2, sprite.shape[0] / 2), angle0 + spin_sign * angle, k)
        m[0, 2] += cx + dx * s - sprite.shape[1] / 2
        m[1, 2] += cy + dy * s - sprite.shape[0] / 2
        layer = cv2.warpAffine(sprite, m, (s, s), flags=cv2.INTER_LINEAR)
        a = cv2.warpAffine(alpha, m, (s, s), flags=cv2.INTER_LINEAR)[..., None]
        frame = look["background"] * (1 - a) + layer * a
        frame += rng.normal(0, 0.01, frame.shape).astype(np.float32)  # sensor noise
        out[t] = np.clip(frame * 255, 0, 255).astype(np.uint8)
    return out


def generate(out: str | Path, spec: SyntheticSpec = SyntheticSpec(), *, progress: bool = True) -> Path:
    """Write ``out/videos/<Class>/v_<Class>_gGG_cCC.avi`` and ``out/ucfTrainTestlist/`` (split 1)."""
    out = Path(out)
    classes = CLASS_NAMES[: spec.classes]
    train_lines, test_lines = [], []
    jobs = [(ci, n) for ci in range(len(classes)) for n in range(spec.videos_per_class)]
    for ci, n in tqdm(jobs, desc="generate", unit="video", disable=not progress):
        name = classes[ci]
        group = n * spec.groups // spec.videos_per_class + 1  # videos spread evenly over groups
        clip = n - min(m for m in range(spec.videos_per_class) if m * spec.groups // spec.videos_per_class + 1 == group) + 1
        rng = np.random.default_rng([spec.seed, ci, group, clip])
        frames = render_video(spec, name, _appearance(rng, spec.size), rng)
        rel = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi"
        path = out / "videos" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, frames, fps=spec.fps)
        if group <= spec.test_groups:
            test_lines.append(rel)
        else:
            train_lines.append(f"{rel} {ci + 1}")
    lists = out / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\r\n" for i, c in enumerate(classes)))
    (lists / "trainlist01.txt").write_text("".join(f"{line}\r\n" for line in train_lines))
    (lists / "testlist01.txt").write_text("".join(f"{line}\r\n" for line in test_lines))
    return out
