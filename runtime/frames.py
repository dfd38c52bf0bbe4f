"""Decoded frames: lazy colour conversion and resizing, and in-memory frame validation.

A `Frame` holds a decoded picture (PyAV frame, YUV planes or RGB) and converts only when a
clip window samples it (`to_rgb`), only the band the spec's crops cover where it can; it
also carries its coded size in bits (`bits`, from its packet) for the bitstream side input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from internvqa.runtime.clipspec import (
    MATRICES,
    RANGES,
    ClipSpec,
    check_frame_size,
    crop_offsets,
    resize_rgb,
    resolve_color,
    yuv_to_rgb,
)
from internvqa.runtime.errors import UsageError, VideoError

# (chroma x-shift, chroma y-shift, bit depth) of the planar formats converted natively.
_PLANAR = {
    "yuv420p": (1, 1, 8),
    "yuvj420p": (1, 1, 8),
    "yuv422p": (1, 0, 8),
    "yuvj422p": (1, 0, 8),
    "yuv444p": (0, 0, 8),
    "yuvj444p": (0, 0, 8),
    "yuv420p10le": (1, 1, 10),
    "yuv422p10le": (1, 0, 10),
    "yuv444p10le": (0, 0, 10),
    "yuv420p12le": (1, 1, 12),
}
RAW_PIX_FMTS = ("yuv420p", "yuv420p10le", "nv12", "yuv422p", "yuv444p")

# PyAV colour metadata codes (FFmpeg AVColorSpace / AVColorRange).
_AV_MATRIX = {1: "bt709", 5: "bt601", 6: "bt601"}
_AV_RANGE = {1: "limited", 2: "full"}



class Frame:
    """One decoded frame whose pixels are produced on demand, resized for the spec."""

    __slots__ = ("index", "time", "bits", "_planes", "_rgb", "_av", "_fmt", "_matrix", "_range")

    def __init__(
        self,
        index: int,
        time: float,
        *,
        planes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        rgb: np.ndarray | None = None,
        av_frame: object | None = None,
        pix_fmt: str = "yuv420p",
        matrix: str = "auto",
        color_range: str = "auto",
        bits: int | None = None,
    ):
        self.index = index
        self.time = time
        self.bits = bits  # coded size of this frame in bits (its packet), None if unknown
        self._planes = planes
        self._rgb = rgb
        self._av = av_frame
        self._fmt = pix_fmt
        self._matrix = matrix
        self._range = color_range

    @property
    def size(self) -> tuple[int, int]:
        if self._rgb is not None:
            return self._rgb.shape[1], self._rgb.shape[0]
        if self._planes is not None:
            return self._planes[0].shape[1], self._planes[0].shape[0]
        return self._av.width, self._av.height  # type: ignore[union-attr]

    def to_rgb(self, spec: ClipSpec, crop_only: bool = False) -> np.ndarray:
        """uint8 RGB, resized as the spec says (short side), not yet cropped.

        `crop_only=True` (scoring, calibration: callers that only need the model input)
        returns just the band of the frame the spec's crops cover, converting only that
        band when no resize is involved (native-scale specs on large frames). The crops
        taken from the band are bit-identical to those taken from the full frame.
        """
        w, h = self.size
        out = spec.resized_size(w, h)
        region = _crop_region(spec, w, h) if crop_only and out == (w, h) else None
        if self._rgb is not None:
            rgb = resize_rgb(self._rgb, out)
            return _slice(rgb, region) if region else rgb
        planes, depth, fmt = self._planes, 8, self._fmt
        if planes is None:
            planes, depth, fmt = _av_planes(self._av)
            if planes is None:  # a format we don't convert natively: let swscale do it
                rgb = resize_rgb(self._av.to_ndarray(format="rgb24"), out)  # type: ignore[union-attr]
                return _slice(rgb, region) if region else rgb
        else:
            depth = 8 if planes[0].dtype == np.uint8 else int(self._fmt_depth())
        matrix = spec.color_matrix if spec.color_matrix != "auto" else self._matrix
        rng = spec.color_range if spec.color_range != "auto" else self._range
        if rng == "auto" and fmt.startswith("yuvj"):
            rng = "full"
        matrix, rng = resolve_color(matrix, rng, h)
        y, u, v = planes
        kw = {"bit_depth": depth, "matrix": matrix, "color_range": rng}
        if region is not None:
            band = _convert_region(y, u, v, region, kw)
            if band is not None:
                return band
        rgb = yuv_to_rgb(y, u, v, out_size=out, **kw)
        return _slice(rgb, region) if region else rgb

    def renumbered(self, index: int, time: float, bits: int | None = None) -> Frame:
        """The same picture as frame `index` at `time` (a stream numbers frames itself);
        `bits` replaces its coded size when given."""
        return Frame(index, time, planes=self._planes, rgb=self._rgb, av_frame=self._av,
                     pix_fmt=self._fmt, matrix=self._matrix, color_range=self._range,
                     bits=self.bits if bits is None else int(bits))

    def upscaled(self, width: int, height: int) -> Frame:
        """This frame resized to (width, height) bicubically, plane by plane (chroma keeps
        its subsampling): how the corpus stores a resolution-ladder rung for viewing."""
        if self._rgb is not None:
            rgb = cv2.resize(self._rgb, (width, height), interpolation=cv2.INTER_CUBIC)
            return Frame(self.index, self.time, rgb=rgb, bits=self.bits)
        planes, fmt = self._planes, self._fmt
        if planes is None:
            planes, _, fmt = _av_planes(self._av)
            if planes is None:
                rgb = self._av.to_ndarray(format="rgb24")  # type: ignore[union-attr]
                rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)
                return Frame(self.index, self.time, rgb=rgb, bits=self.bits)
        y, u, v = planes
        sx = 0 if u.shape[1] == y.shape[1] else 1
        sy = 0 if u.shape[0] == y.shape[0] else 1
        cw, ch = (width + sx) >> sx, (height + sy) >> sy
        out = (cv2.resize(np.ascontiguousarray(y), (width, height), interpolation=cv2.INTER_CUBIC),
               cv2.resize(np.ascontiguousarray(u), (cw, ch), interpolation=cv2.INTER_CUBIC),
               cv2.resize(np.ascontiguousarray(v), (cw, ch), interpolation=cv2.INTER_CUBIC))
        if fmt == "nv12":
            fmt = "yuv420p"
        return Frame(self.index, self.time, planes=out, pix_fmt=fmt, matrix=self._matrix,
                     color_range=self._range, bits=self.bits)

    def _fmt_depth(self) -> int:
        if self._fmt in _PLANAR:
            return _PLANAR[self._fmt][2]
        return 10


def _crop_region(spec: ClipSpec, w: int, h: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the union of the spec's crops of a w x h frame."""
    offs = crop_offsets(spec, w, h)
    s = spec.size
    return (min(x for x, _ in offs), min(y for _, y in offs),
            max(x for x, _ in offs) + s, max(y for _, y in offs) + s)


def _slice(rgb: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = region
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


_MARGIN = 4  # luma pixels of context around a region, so chroma interpolation sees real neighbours


def _convert_region(y, u, v, region, kw) -> np.ndarray | None:
    """Convert only `region` of planar YUV, exactly as the full-frame conversion would.

    Exact when chroma is an integer subsampling of luma (even sizes for 4:2:0): the
    sub-planes start on chroma-aligned offsets, so bilinear upsampling maps every pixel as
    it does on the full plane, and a margin gives edge pixels their true neighbours.
    Returns None when that does not hold (odd sizes): the caller converts the full frame.
    """
    h, w = y.shape
    ch, cw = u.shape
    if w % cw or h % ch:
        return None
    fx, fy = w // cw, h // ch
    if fx not in (1, 2) or fy not in (1, 2):
        return None
    x0, y0, x1, y1 = region
    rx0 = max(0, x0 - _MARGIN) // fx * fx
    ry0 = max(0, y0 - _MARGIN) // fy * fy
    rx1 = min(w, -(-(x1 + _MARGIN) // fx) * fx)
    ry1 = min(h, -(-(y1 + _MARGIN) // fy) * fy)
    sub = [y[ry0:ry1, rx0:rx1], u[ry0 // fy : ry1 // fy, rx0 // fx : rx1 // fx],
           v[ry0 // fy : ry1 // fy, rx0 // fx : rx1 // fx]]
    rgb = yuv_to_rgb(*sub, out_size=(rx1 - rx0, ry1 - ry0), **kw)
    return np.ascontiguousarray(rgb[y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0])


def _plane_array(plane, width: int, height: int, dtype) -> np.ndarray:
    itemsize = np.dtype(dtype).itemsize
    buf = np.frombuffer(plane, dtype=dtype)
    stride = plane.line_size // itemsize
    return buf[: stride * height].reshape(height, stride)[:, :width]


def _av_planes(frame) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray] | None, int, str]:
    """Zero-copy views of a PyAV frame's Y, U, V planes (None for other formats)."""
    fmt = frame.format.name
    w, h = frame.width, frame.height
    if fmt in _PLANAR:
        sx, sy, depth = _PLANAR[fmt]
        dtype = np.uint8 if depth == 8 else np.dtype("<u2")
        cw, ch = (w + sx) >> sx, (h + sy) >> sy
        p = frame.planes
        planes = (
            _plane_array(p[0], w, h, dtype),
            _plane_array(p[1], cw, ch, dtype),
            _plane_array(p[2], cw, ch, dtype),
        )
        return planes, depth, fmt
    if fmt == "nv12":
        p = frame.planes
        y = _plane_array(p[0], w, h, np.uint8)
        uv = _plane_array(p[1], 2 * ((w + 1) // 2), (h + 1) // 2, np.uint8)
        return (y, uv[:, 0::2], uv[:, 1::2]), 8, fmt
    if fmt == "gray":
        y = _plane_array(frame.planes[0], w, h, np.uint8)
        c = np.full((1, 1), 128, np.uint8)
        return (y, np.broadcast_to(c, y.shape), np.broadcast_to(c, y.shape)), 8, fmt
    return None, 8, fmt


def check_fps(fps: float) -> float:
    """A frame rate every source and stream accepts: finite and > 0 (else UsageError)."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise UsageError(f"fps must be a number, got {fps!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"fps must be finite and > 0, got {fps!r}")
    return value


@dataclass
class YUVPlanes:
    """An in-memory YUV frame (planes at their own resolution) for the Python API."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    bit_depth: int = 8
    matrix: str = "auto"
    color_range: str = "auto"


def frame_from_array(index: int, data: np.ndarray | YUVPlanes, fps: float = 25.0) -> Frame:
    """Validate one in-memory frame (uint8 RGB (H, W, 3) or `YUVPlanes`) into a `Frame`."""
    t = index / fps
    if isinstance(data, YUVPlanes):
        if data.bit_depth not in (8, 10):
            raise VideoError(f"frame {index}: YUVPlanes bit_depth must be 8 or 10, got {data.bit_depth!r}")
        planes = (np.asarray(data.y), np.asarray(data.u), np.asarray(data.v))
        want = np.uint8 if data.bit_depth == 8 else np.uint16
        for p in planes:
            if p.ndim != 2 or p.dtype != want:
                raise VideoError(
                    f"frame {index}: YUV planes must be 2-D {np.dtype(want).name} arrays"
                )
        h, w = planes[0].shape
        check_frame_size(w, h)
        cw, ch = (w + 1) // 2, (h + 1) // 2
        if planes[1].shape != planes[2].shape or planes[1].shape not in ((ch, cw), (h, cw), (h, w)):
            raise VideoError(
                f"frame {index}: chroma planes {planes[1].shape} and {planes[2].shape} do not fit "
                f"a {w}x{h} luma plane as 4:2:0 {(ch, cw)}, 4:2:2 {(h, cw)} or 4:4:4 {(h, w)}"
            )
        if data.matrix not in MATRICES or data.color_range not in RANGES:
            raise VideoError(
                f"frame {index}: matrix must be one of {MATRICES} and color_range one of {RANGES}"
            )
        fmt = "yuv420p" if data.bit_depth == 8 else "yuv420p10le"
        return Frame(index, t, planes=planes, pix_fmt=fmt, matrix=data.matrix,
                     color_range=data.color_range)
    arr = np.asarray(data)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise VideoError(f"frame {index}: expected an (H, W, 3) RGB array, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise VideoError(f"frame {index}: expected uint8 RGB, got {arr.dtype} (scale to 0-255)")
    check_frame_size(arr.shape[1], arr.shape[0])
    return Frame(index, t, rgb=np.ascontiguousarray(arr))


