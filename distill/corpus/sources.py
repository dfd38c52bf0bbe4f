"""Lossless source clips for the synthetic corpus: still photos brought to life, and patterns.

Natural sources are the CC0 / public-domain photographs bundled with scikit-image
(`skimage.data`), animated with real motion so inter-frame coding matters: a camera pan
along a straight line, a slow zoom, mild hand-held shake, and for some sources an object
(an elliptical cut-out of another photo, or the horse silhouette) moving across the
scene. Procedural sources are rendered with numpy: a drifting colour gradient under a
soft scrolling checkerboard, a band-limited texture scrolling and rotating, anti-aliased
shapes moving over a gradient, and a slow "plasma" of summed sinusoids. All of them give
smooth rate-quality curves (white noise or cellular automata would not).

Everything is a pure function of (source name, size, frame count, seed): the motion
parameters come from a generator seeded by the seed and the source name, so a clip is
identical whichever worker renders it. scikit-image is imported lazily, only for natural
sources; it is a dev/train dependency, not a runtime one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "NATURAL_SOURCES",
    "PROCEDURAL_SOURCES",
    "SourceSpec",
    "render_source",
    "bt601_luma",
    "rgb_to_yuv420",
    "source_rng",
]

# Photo name -> (skimage.data function, photo used for the moving object or None).
NATURAL_SOURCES: dict[str, tuple[str, str | None]] = {
    "astronaut": ("astronaut", "coffee"),
    "chelsea": ("chelsea", None),
    "coffee": ("coffee", "rocket"),
    "rocket": ("rocket", None),
    "brick": ("brick", "chelsea"),
    "grass": ("grass", None),
    "horse": ("gravel", "horse"),  # the horse silhouette trotting over gravel
    "camera": ("camera", None),
    "clock": ("clock", "astronaut"),
    "hubble_deep_field": ("hubble_deep_field", None),
    "retina": ("retina", None),
    "immunohistochemistry": ("immunohistochemistry", "coins"),
    "coins": ("coins", None),
    "moon": ("moon", "rocket"),
}
PROCEDURAL_SOURCES = ("gradient_checker", "plasma", "shapes", "texture_scroll")


@dataclass(frozen=True)
class SourceSpec:
    """What to render: a source name, display size, length and frame rate."""

    name: str
    width: int
    height: int
    frames: int
    fps: int


def source_rng(name: str, seed: int) -> np.random.Generator:
    """A generator that depends only on (seed, name), never on scheduling order."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _load_photo(name: str) -> np.ndarray:
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "scikit-image is needed for the natural sources: pip install 'internvqa[dev]'"
        ) from exc
    img = np.asarray(getattr(data, name)())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3].astype(np.uint8))


def _cover(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Resize so the image covers (w, h), keeping aspect (area filter when shrinking)."""
    s = max(w / img.shape[1], h / img.shape[0])
    size = (max(w, round(img.shape[1] * s)), max(h, round(img.shape[0] * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    return cv2.resize(img, size, interpolation=interp)


def _camera_path(rng: np.random.Generator, t: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame (dx, dy, zoom): a straight pan, slow zoom and small shake within `margin`."""
    n = t.size
    u = t / max(n - 1, 1) * 2 - 1  # -1 .. 1 over the clip
    angle = rng.uniform(0, 2 * np.pi)
    amp = rng.uniform(0.35, 0.8) * margin
    zoom_rate = rng.uniform(-0.12, 0.12)
    shake = rng.uniform(0.3, 1.0)
    phase = rng.uniform(0, 2 * np.pi, 4)
    dx = amp * np.cos(angle) * u + shake * (np.sin(0.9 * t + phase[0]) + 0.5 * np.sin(2.3 * t + phase[1]))
    dy = amp * np.sin(angle) * u + shake * (np.sin(1.1 * t + phase[2]) + 0.5 * np.sin(2.9 * t + phase[3]))
    zoom = 1.0 + zoom_rate * (u + 1) / 2
    return dx, dy, zoom


def _warp(img: np.ndarray, w: int, h: int, dx: float, dy: float, zoom: float) -> np.ndarray:
    """The (w, h) view centred on the image centre + (dx, dy), magnified by `zoom`."""
    cx, cy = img.shape[1] / 2 + dx, img.shape[0] / 2 + dy
    s = 1.0 / zoom  # image pixels per display pixel
    m = np.float32([[s, 0, cx - s * w / 2], [0, s, cy - s * h / 2]])
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT_101)


def _sprite(name: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB patch, alpha in 0..1) of the moving object, `size` px tall."""
    img = _load_photo(name)
    if name == "horse":
        mask = (img[..., 0] < 128).astype(np.float32)  # the horse is the dark shape
        hgt, wid = mask.shape
        scale = size / hgt
        mask = cv2.resize(mask, (max(2, round(wid * scale)), size), interpolation=cv2.INTER_AREA)
        ramp = np.linspace(0.7, 1.0, mask.shape[0], dtype=np.float32)[:, None, None]
        rgb = (np.array([120, 72, 40], np.float32) * ramp * np.ones((*mask.shape, 3), np.float32))
        return rgb.clip(0, 255).astype(np.uint8), mask
    side = min(img.shape[:2])
    y0, x0 = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
    patch = cv2.resize(img[y0 : y0 + side, x0 : x0 + side], (size, size), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot((xx - size / 2 + 0.5) / (size / 2), (yy - size / 2 + 0.5) / (size / 2))
    alpha = np.clip((1.0 - r) * size / 4, 0, 1)  # soft anti-aliased edge
    return patch, alpha


def _paste(frame: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, x: float, y: float) -> None:
    """Alpha-blend the sprite with its top-left corner at sub-pixel (x, y), in place."""
    h, w = alpha.shape
    ix, iy = int(np.floor(x)), int(np.floor(y))
    m = np.float32([[1, 0, x - ix], [0, 1, y - iy]])
    rgb = cv2.warpAffine(rgb.astype(np.float32), m, (w + 1, h + 1))
    alpha = cv2.warpAffine(alpha, m, (w + 1, h + 1))
    fh, fw = frame.shape[:2]
    x0, y0, x1, y1 = max(ix, 0), max(iy, 0), min(ix + w + 1, fw), min(iy + h + 1, fh)
    if x0 >= x1 or y0 >= y1:
        return
    a = alpha[y0 - iy : y1 - iy, x0 - ix : x1 - ix, None]
    src = rgb[y0 - iy : y1 - iy, x0 - ix : x1 - ix]
    dst = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = np.clip(a * src + (1 - a) * dst + 0.5, 0, 255).astype(np.uint8)


def _natural(spec: SourceSpec, rng: np.random.Generator) -> np.ndarray:
    photo, sprite_name = NATURAL_SOURCES[spec.name]
    w, h = spec.width, spec.height
    margin = 0.25 * min(w, h)
    base = _cover(_load_photo(photo), round(w + 3 * margin), round(h + 3 * margin))
    t = np.arange(spec.frames, dtype=np.float64)
    dx, dy, zoom = _camera_path(rng, t, margin)
    frames = np.stack([_warp(base, w, h, dx[i], dy[i], zoom[i]) for i in range(spec.frames)])
    if sprite_name is not None:
        rgb, alpha = _sprite(sprite_name, max(8, round(h * rng.uniform(0.3, 0.45))))
        sh, sw = alpha.shape
        start = np.array([rng.uniform(-0.2, 0.2) * w, rng.uniform(0.1, 0.9) * (h - sh)])
        end = np.array([w - sw + rng.uniform(-0.2, 0.2) * w, rng.uniform(0.1, 0.9) * (h - sh)])
        if rng.random() < 0.5:
            start, end = end, start
        for i in range(spec.frames):
            x, y = start + (end - start) * (i / max(spec.frames - 1, 1))
            _paste(frames[i], rgb, alpha, x, y)
    return frames


def _gradient_checker(spec: SourceSpec, rng: np.random.Generator) -> np.ndarray:
    w, h = spec.width, spec.height
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cols = rng.uniform(30, 225, (3, 3)).astype(np.float32)
    cell = rng.uniform(0.12, 0.2) * h
    vx, vy = rng.uniform(0.5, 1.5, 2) * rng.choice([-1, 1], 2)
    out = []
    for i in range(spec.frames):
        g = (xx / w + 0.3 * np.sin(2 * np.pi * (yy / h + i / spec.frames)))[..., None]
        bg = cols[0] * (1 - g) + cols[1] * g
        cx = np.sin(np.pi * (xx + vx * i) / cell)
        cy = np.sin(np.pi * (yy + vy * i) / cell)
        check = np.clip(cx * cy * 3, -1, 1)[..., None] * 0.5 + 0.5  # soft-edged squares
        out.append(np.clip(bg * (1 - 0.5 * check) + cols[2] * 0.5 * check, 0, 255))
    return np.stack(out).astype(np.uint8)


def _band_limited(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    noise = rng.standard_normal((h, w, 3)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    tex -= tex.mean(axis=(0, 1))
    tex /= tex.std(axis=(0, 1)) + 1e-6
    return tex


def _texture_scroll(spec: SourceSpec, rng: np.random.Generator) -> np.ndarray:
    w, h = spec.width, spec.height
    size = 2 * max(w, h)
    tex = _band_limited(rng, size, size, sigma=max(1.0, h / 60)) * 0.6
    tex += _band_limited(rng, size, size, sigma=max(2.0, h / 12)) * 1.0
    img = np.clip(128 + 40 * tex, 0, 255).astype(np.uint8)
    t = np.arange(spec.frames, dtype=np.float64)
    dx, dy, _ = _camera_path(rng, t, 0.25 * min(w, h))
    rot = rng.uniform(-0.4, 0.4)  # degrees per frame
    frames = []
    for i in range(spec.frames):
        m = cv2.getRotationMatrix2D((size / 2 + dx[i], size / 2 + dy[i]), rot * i, 1.0)
        m[:, 2] += [w / 2 - size / 2 - dx[i], h / 2 - size / 2 - dy[i]]
        frames.append(cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101))
    return np.stack(frames)


def _shapes(spec: SourceSpec, rng: np.random.Generator) -> np.ndarray:
    w, h = spec.width, spec.height
    ss = 4  # supersampling for anti-aliased edges
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(20, 235, (2, 3)).astype(np.float32)
    n = 5
    pos = rng.uniform([0, 0], [w, h], (n, 2))
    vel = rng.uniform(-2.0, 2.0, (n, 2)) * (h / 128)
    rad = rng.uniform(0.08, 0.2, n) * h
    col = rng.uniform(0, 255, (n, 3))
    square = rng.random(n) < 0.5
    frames = []
    for i in range(spec.frames):
        g = ((xx + yy * 0.5 + 2 * i) / (w + h * 0.5))[..., None] % 1.0
        big = cv2.resize((c0 * (1 - g) + c1 * g).astype(np.float32), (w * ss, h * ss), interpolation=cv2.INTER_LINEAR)
        for k in range(n):
            p = pos[k] + vel[k] * i
            p = np.abs((p + [w, h]) % (2 * np.array([w, h])) - [w, h])  # bounce off the borders
            center = (round(p[0] * ss), round(p[1] * ss))
            r = round(rad[k] * ss)
            color = tuple(float(c) for c in col[k])
            if square[k]:
                cv2.rectangle(big, (center[0] - r, center[1] - r), (center[0] + r, center[1] + r), color, -1)
            else:
                cv2.circle(big, center, r, color, -1)
        frames.append(cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA))
    return np.clip(np.stack(frames) + 0.5, 0, 255).astype(np.uint8)


def _plasma(spec: SourceSpec, rng: np.random.Generator) -> np.ndarray:
    w, h = spec.width, spec.height
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / h
    k = rng.uniform(2, 6, (4, 2)).astype(np.float32)
    om = rng.uniform(0.01, 0.03, 4).astype(np.float32)
    ph = rng.uniform(0, 2 * np.pi, (4, 3)).astype(np.float32)
    out = []
    for i in range(spec.frames):
        v = sum(np.sin(k[j, 0] * xx + k[j, 1] * yy + om[j] * i * 2 * np.pi) for j in range(4)) / 4
        rgb = np.stack([np.sin(np.pi * v * 2 + ph[0, c]) for c in range(3)], axis=-1)
        out.append(128 + 100 * rgb)
    return np.clip(np.stack(out) + 0.5, 0, 255).astype(np.uint8)


_PROCEDURAL = {
    "gradient_checker": _gradient_checker,
    "plasma": _plasma,
    "shapes": _shapes,
    "texture_scroll": _texture_scroll,
}


def render_source(spec: SourceSpec, seed: int) -> np.ndarray:
    """The lossless clip as uint8 RGB frames, shape (T, H, W, 3)."""
    rng = source_rng(spec.name, seed)
    if spec.name in NATURAL_SOURCES:
        frames = _natural(spec, rng)
    elif spec.name in _PROCEDURAL:
        frames = _PROCEDURAL[spec.name](spec, rng)
    else:
        raise KeyError(f"unknown source {spec.name!r}")
    return np.ascontiguousarray(frames)


def bt601_luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range Y' of uint8 RGB, float32 and unrounded (the corpus's luma)."""
    f = rgb.astype(np.float32)
    return 16 + (65.481 * f[..., 0] + 128.553 * f[..., 1] + 24.966 * f[..., 2]) / 255


def rgb_to_yuv420(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 limited-range Y'CbCr 4:2:0 planes of one RGB frame (even dims).

    Done here in numpy rather than by swscale: PyAV frames converted by `reformat` gave
    x264 occasionally different bitstreams for identical input, which broke determinism.
    Chroma is the 2x2 mean of full-resolution chroma (centre siting).
    """
    f = rgb.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = bt601_luma(rgb)
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255

    def pool(c: np.ndarray) -> np.ndarray:
        return 0.25 * (c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2])

    def q(c: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(c), 0, 255).astype(np.uint8)

    return q(y), q(pool(cb)), q(pool(cr))
