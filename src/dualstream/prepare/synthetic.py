"""``dualstream generate``: a synthetic action dataset in the UCF-101 layout (split 1); its presets and why they
look as they do: README "The synthetic set", docs/design.md."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..video import write_video
from .common import PrepareError

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
CLIPS_PER_GROUP = 5
TEST_GROUP_FRACTION = 0.3

# The hard preset: name -> (frame index i, amplitude a as a fraction of the frame size) -> (dx, dy, scale,
# angle): 0, +a, 0, -a with period VIBRATION_PERIOD, so that every frame-to-next-frame displacement is +-a.
VIBRATION_PERIOD = 4
VIBRATION_AMPLITUDE = 0.06
VIBRATIONS = {
    "Still": lambda i, a: (0.0, 0.0, 1.0, 0.0),
    "VibrateVertical": lambda i, a: (0.0, a * math.sin(0.5 * math.pi * i), 1.0, 0.0),
    "VibrateHorizontal": lambda i, a: (a * math.sin(0.5 * math.pi * i), 0.0, 1.0, 0.0),
}
# (name, hue family, motion); the order mixes both cues in any prefix.
HUES = {"Warm": (0.0, 40.0), "Cool": (180.0, 250.0)}  # hue ranges in degrees (0-360)
HARD_CLASSES = tuple((f"{hue}{motion}", hue, motion) for motion in VIBRATIONS for hue in HUES)
PRESETS = ("default", "hard")
SHAKE_PX = 1.5  # camera shake: the frame's offset per frame, uniform in +-SHAKE_PX * size / 96


@dataclass(frozen=True)
class SyntheticSpec:
    classes: int = 6
    videos_per_class: int = 30
    frames: int = 48
    size: int = 96
    seed: int = 0
    fps: float = 25.0
    preset: str = "default"
    """default: motion-only classes; hard: colour x motion classes with a distractor and camera shake."""

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise PrepareError(f"--preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        most = len(MOTIONS) if self.preset == "default" else len(HARD_CLASSES)
        if not 2 <= self.classes <= most:
            raise PrepareError(f"--classes must be between 2 and {most} (preset {self.preset}), got {self.classes}")
        if self.videos_per_class < 2:
            raise PrepareError(f"--videos-per-class must be at least 2 (one train, one test), "
                               f"got {self.videos_per_class}")
        if self.frames < 12:
            raise PrepareError(f"--frames must be at least 12, got {self.frames}")
        if self.size < 32:
            raise PrepareError(f"--size must be at least 32, got {self.size}")

    @property
    def class_names(self) -> tuple[str, ...]:
        names = tuple(MOTIONS) if self.preset == "default" else tuple(c[0] for c in HARD_CLASSES)
        return names[: self.classes]

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
    colour = rng.uniform(0.1, 1.0, size=3).astype(np.float32)
    texture = 0.6 * colour + 0.4 * _smooth_noise(rng, size, int(rng.integers(4, 10)))  # sprite: scaled down later
    mask = np.zeros((size, size), np.uint8)
    c, r = size // 2, int(size * 0.45)
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
    if spec.preset == "hard":  # vibrations, in frames from a random phase (a whole number of frames)
        shift, vibrate = int(rng.integers(VIBRATION_PERIOD)), VIBRATIONS[motion]
        move = lambda t, a: vibrate(round(t * (frames - 1)) + shift, VIBRATION_AMPLITUDE)  # noqa: E731
    else:
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
        background = look["background"]
        frame = (background[t] if background.ndim == 4 else background) * (1 - a) + layer * a
        frame += rng.normal(0, 0.01, frame.shape).astype(np.float32)  # sensor noise
        out[t] = np.clip(frame * 255, 0, 255).astype(np.uint8)
    return out


def _hue_colour(rng: np.random.Generator, family: str) -> np.ndarray:
    """A saturated RGB colour (3,) float32 in [0, 1] with a hue drawn from ``family``'s range."""
    lo, hi = HUES[family]
    hsv = np.array([[[rng.uniform(lo, hi) / 2, rng.uniform(170, 255), rng.uniform(170, 255)]]], np.uint8)  # OpenCV H: 0..180
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def _hard_look(rng: np.random.Generator, size: int, family: str) -> dict:
    """The default look, with the object's colour from a hue family and a grey textured distractor."""
    look = _appearance(rng, size)
    colour = _hue_colour(rng, family)
    grey = _smooth_noise(rng, size, int(rng.integers(4, 10))).mean(axis=2, keepdims=True)
    look["texture"] = (0.75 * colour + 0.25 * grey).clip(0, 1)  # the hue stays readable under the texture
    shade = rng.uniform(0.3, 0.8)
    look["distractor"] = (shade + 0.4 * (_smooth_noise(rng, size, 6).mean(axis=2, keepdims=True) - 0.5)).clip(0, 1)
    return look


def render_hard_video(spec: SyntheticSpec, motion: str, look: dict, rng: np.random.Generator) -> np.ndarray:
    """One clip (T, H, W, 3) uint8 of the hard preset: the object of ``look`` moving by ``motion``, a
    grey distractor disc drifting in a random direction behind it, and the whole frame shaken."""
    s, frames = spec.size, spec.frames
    clean = render_video(spec, motion, {**look, "background": _with_distractor(spec, look, rng)}, rng)
    shake = SHAKE_PX * s / 96
    out = np.empty_like(clean)
    for t in range(frames):
        m = np.float32([[1, 0, rng.uniform(-shake, shake)], [0, 1, rng.uniform(-shake, shake)]])
        out[t] = cv2.warpAffine(clean[t], m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out


def _with_distractor(spec: SyntheticSpec, look: dict, rng: np.random.Generator) -> np.ndarray:
    """The background as a (T, H, W, 3) stack, with a grey disc drifting across it at a random angle."""
    s, frames = spec.size, spec.frames
    radius = rng.uniform(0.08, 0.12) * s
    angle = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(0.2, 0.4) * s  # px over the clip
    x0, y0 = rng.uniform(0.25, 0.75, size=2) * s
    stack = np.repeat(look["background"][None], frames, axis=0)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    for t in range(frames):
        u = t / (frames - 1) - 0.5
        cx, cy = x0 + speed * u * np.cos(angle), y0 + speed * u * np.sin(angle)
        a = np.clip(radius - np.hypot(xx - cx, yy - cy), 0, 1)[..., None]  # anti-aliased disc
        stack[t] = stack[t] * (1 - a) + look["distractor"] * a
    return stack


def generate(out: str | Path, spec: SyntheticSpec = SyntheticSpec(), *, progress: bool = True) -> Path:
    """Write ``out/videos/<Class>/v_<Class>_gGG_cCC.avi`` and ``out/ucfTrainTestlist/`` (split 1)."""
    out = Path(out)
    classes = spec.class_names
    hard = {c[0]: c for c in HARD_CLASSES}
    train_lines, test_lines = [], []
    jobs = [(ci, n) for ci in range(len(classes)) for n in range(spec.videos_per_class)]
    for ci, n in tqdm(jobs, desc="generate", unit="video", disable=not progress):
        name = classes[ci]
        group = n * spec.groups // spec.videos_per_class + 1  # videos spread evenly over groups
        clip = n - min(m for m in range(spec.videos_per_class) if m * spec.groups // spec.videos_per_class + 1 == group) + 1
        rng = np.random.default_rng([spec.seed, ci, group, clip])
        if spec.preset == "hard":
            _, family, motion = hard[name]
            frames = render_hard_video(spec, motion, _hard_look(rng, spec.size, family), rng)
        else:
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
