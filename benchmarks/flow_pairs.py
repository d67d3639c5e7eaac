"""Frame pairs with exact known optical flow for the flow benchmarks (docs/design.md): a real (or procedural) texture
warped by ``smooth`` (low-frequency sines plus an affine part) or ``layers`` motion (an affine background and a
foreground patch translating on its own: a motion boundary with occlusion), sampled bicubically."""

from __future__ import annotations

import cv2
import numpy as np

KINDS = ("smooth", "layers")


def procedural_texture(height: int, width: int, seed: int) -> np.ndarray:
    """A gray uint8 texture with structure at several scales (summed upsampled noise, a few edges)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width), np.float32)
    for cells, weight in ((4, 1.0), (12, 0.6), (40, 0.35), (120, 0.2)):
        coarse = rng.random((max(2, height * cells // width), cells)).astype(np.float32)
        image += weight * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(6):  # a few sharp-edged shapes
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        cv2.circle(image, (x, y), int(rng.integers(5, max(6, height // 5))), float(rng.uniform(0, 2)), -1)
    image = (image - image.min()) / max(float(np.ptp(image)), 1e-6)
    return np.round(image * 235 + 10).astype(np.uint8)


def _smooth_field(height: int, width: int, rng: np.random.Generator, magnitude: float) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    flow = np.zeros((2, height, width), np.float32)
    for c in range(2):
        for _ in range(3):
            fx, fy = rng.uniform(0.5, 2.5, 2) * 2 * np.pi / np.array([width, height])
            phase = rng.uniform(0, 2 * np.pi)
            flow[c] += rng.uniform(-1, 1) * np.sin(fx * xs + fy * ys + phase)
    flow *= magnitude / max(float(np.abs(flow).max()), 1e-6)
    return flow + _affine_flow(_affine_matrix(height, width, rng, magnitude * 0.5), height, width).astype(np.float32)


def _affine_matrix(height: int, width: int, rng: np.random.Generator, magnitude: float) -> np.ndarray:
    """2x3 affine map x -> A x + t (pixel coordinates) moving pixels by at most ~magnitude."""
    scale = magnitude / max(height, width)
    lin = np.eye(2) + rng.uniform(-1, 1, (2, 2)) * scale
    centre = np.array([width / 2, height / 2])
    shift = rng.uniform(-1, 1, 2) * magnitude * 0.7
    return np.hstack([lin, (centre - lin @ centre + shift)[:, None]]).astype(np.float64)


def _affine_flow(m: np.ndarray, height: int, width: int) -> np.ndarray:
    """Displacements (2, H, W) float64 of the affine map ``m`` (2x3) at every pixel."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack((m[0, 0] * xs + m[0, 1] * ys + m[0, 2] - xs, m[1, 0] * xs + m[1, 1] * ys + m[1, 2] - ys))


def _sample(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    return cv2.remap(image, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REFLECT101)


def _invert_smooth(flow: np.ndarray, iterations: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Source positions q with q + flow(q) = y for every pixel y (fixed point q = y - flow(q))."""
    h, w = flow.shape[1:]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    qx, qy = xs.copy(), ys.copy()
    for _ in range(iterations):
        fx = cv2.remap(flow[0], qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        fy = cv2.remap(flow[1], qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        qx, qy = xs - fx, ys - fy
    return qx, qy


def make_pair(texture: np.ndarray, kind: str, *, seed: int, magnitude: float = 4.0, noise: float = 1.0
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame0, frame1, flow) from a gray uint8 ``texture`` (H, W): frames uint8 (H, W), flow float32 (H, W, 2)
    in pixels (x, y) from frame0 to frame1, known at every pixel (as Middlebury's .flo, channels last)."""
    if kind not in KINDS:
        raise ValueError(f"unknown motion kind {kind!r}; choose one of {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    tex = texture.astype(np.float32)
    h, w = tex.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    if kind == "smooth":
        flow = _smooth_field(h, w, rng, magnitude)
        frame0, frame1 = tex, _sample(tex, *_invert_smooth(flow))
    else:
        m = _affine_matrix(h, w, rng, magnitude * 0.6)
        inv = cv2.invertAffineTransform(m)
        # the foreground: an ellipse of texture taken from another place, translating by d
        fh, fw = int(h * rng.uniform(0.25, 0.4)), int(w * rng.uniform(0.25, 0.4))
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        oy, ox = rng.uniform(-0.3, 0.3) * h, rng.uniform(-0.3, 0.3) * w  # where its texture comes from
        d = rng.uniform(-1, 1, 2) * magnitude
        d = d / max(np.linalg.norm(d), 1e-6) * magnitude  # full magnitude, a clear boundary
        inside0 = ((xs - cx) / (fw / 2)) ** 2 + ((ys - cy) / (fh / 2)) ** 2 <= 1.0
        inside1 = ((xs - d[0] - cx) / (fw / 2)) ** 2 + ((ys - d[1] - cy) / (fh / 2)) ** 2 <= 1.0
        bg1 = _sample(tex, inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2], inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2])
        frame0 = np.where(inside0, _sample(tex, xs + ox, ys + oy), tex)
        frame1 = np.where(inside1, _sample(tex, xs - d[0] + ox, ys - d[1] + oy), bg1)
        flow = np.where(inside0[None], d[:, None, None], _affine_flow(m, h, w)).astype(np.float32)
    frames = [np.clip(np.round(f + rng.normal(0, noise, f.shape)), 0, 255).astype(np.uint8) for f in (frame0, frame1)]
    return frames[0], frames[1], np.ascontiguousarray(flow.transpose(1, 2, 0), dtype=np.float32)
