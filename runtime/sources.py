"""Video sources: files (anything PyAV decodes, `.y4m` included), raw YUV, in-memory frames,
and a display-size wrapper; `open_video` picks one. Every source yields lazy `Frame`s.
"""

from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from internvqa.runtime.clipspec import check_frame_size
from internvqa.runtime.errors import UsageError, VideoError
from internvqa.runtime.frames import (
    _AV_MATRIX,
    _AV_RANGE,
    RAW_PIX_FMTS,
    Frame,
    check_fps,
    frame_from_array,
)


@dataclass
class VideoInfo:
    """What is known about a source before decoding it."""

    width: int
    height: int
    fps: float
    num_frames: int | None
    pix_fmt: str
    codec: str = ""
    name: str = ""
    coded_width: int = 0  # the file's frame size when frames are upscaled for display
    coded_height: int = 0  # (`DisplaySource`); 0: same as width x height

    @property
    def coded_size(self) -> tuple[int, int]:
        return (self.coded_width or self.width, self.coded_height or self.height)


# ---- sources ---------------------------------------------------------------------------
class VideoSource(ABC):
    """Base class: `info` plus a lazy, single-pass `frames()` iterator."""

    info: VideoInfo
    decode_errors: int = 0

    @abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Yield the decoded frames in display order, once."""

    def close(self) -> None:  # noqa: B027 - optional hook: sources holding nothing skip it
        """Release the file or stream; sources that hold none keep this no-op."""

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PyAVSource(VideoSource):
    """Any container/codec PyAV (FFmpeg) decodes, `.y4m` included."""

    def __init__(self, path: str | os.PathLike, threads: bool | int = True):
        """`threads`: True lets FFmpeg pick (frame + slice threads on every core), False
        keeps FFmpeg's defaults, an int n >= 1 caps the decoder at n threads (1: decode in
        the calling thread only)."""
        import av

        self.path = Path(path)
        if not self.path.exists():
            raise VideoError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise VideoError(f"{self.path}: is a directory, not a video")
        if self.path.stat().st_size == 0:
            raise VideoError(f"{self.path}: empty file")
        try:
            self._container = av.open(str(self.path), mode="r")
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise VideoError(f"{self.path}: not a readable video ({_short(exc)})") from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoError(f"{self.path}: has no video stream")
        self._stream = self._container.streams.video[0]
        cc = self._stream.codec_context
        if cc is None:  # a codec id FFmpeg has no decoder for (e.g. a corrupted codec tag)
            self._container.close()
            raise VideoError(f"{self.path}: video stream has an unknown or unsupported codec")
        if threads is True:
            self._stream.thread_type = "AUTO"
        elif threads is not False:
            n = int(threads)
            if n < 1:
                self._container.close()
                raise UsageError(f"decoder threads must be >= 1, got {threads!r}")
            cc.thread_count = n
            if n > 1:
                self._stream.thread_type = "AUTO"
        w, h = int(cc.width or 0), int(cc.height or 0)
        try:
            check_frame_size(w, h)
        except VideoError as exc:
            self._container.close()
            raise VideoError(f"{self.path}: {exc}") from None
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        fps = float(rate) if rate else 25.0
        n = int(self._stream.frames or 0) or None
        if n is None and self._stream.duration and self._stream.time_base:
            n = max(1, round(float(self._stream.duration * self._stream.time_base) * fps)) or None
        self.info = VideoInfo(
            width=w,
            height=h,
            fps=fps,
            num_frames=n,
            pix_fmt=cc.pix_fmt or "",
            codec=cc.name or "",
            name=self.path.name,
        )
        self.decode_errors = 0

    def count_frames(self) -> int:
        """Exact frame count by demuxing packets (no decoding); rewinds the container."""
        import av

        n = 0
        try:
            for packet in self._container.demux(self._stream):
                if packet.size:
                    n += 1
            self._container.seek(0, stream=self._stream)
        except av.error.FFmpegError as exc:
            raise VideoError(f"{self.path}: cannot read ({_short(exc)})") from None
        return n

    def frames(self) -> Iterator[Frame]:
        import av

        stream = self._stream
        tb = float(stream.time_base) if stream.time_base else 0.0
        start = stream.start_time or 0
        index = 0
        sizes = _PacketSizes()
        packets = self._container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError:
                self.decode_errors += 1
                if self.decode_errors > 50:
                    break
                continue
            if packet.size:
                sizes.add(packet.pts, packet.size)
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                self.decode_errors += 1
                if self.decode_errors > 50 and index == 0:
                    break
                continue
            for f in decoded:
                frame = self._wrap(f, index, tb, start)
                frame.bits = sizes.take(f.pts)
                yield frame
                index += 1
        if index == 0:
            raise VideoError(f"{self.path}: no decodable video frames")

    def _wrap(self, f, index: int, tb: float, start: int) -> Frame:
        if f.width != self.info.width or f.height != self.info.height:
            check_frame_size(f.width, f.height)
        t = (f.pts - start) * tb if (f.pts is not None and tb) else index / self.info.fps
        return Frame(
            index,
            float(t),
            av_frame=f,
            pix_fmt=f.format.name,
            matrix=_AV_MATRIX.get(int(getattr(f, "colorspace", 2) or 2), "auto"),
            color_range=_AV_RANGE.get(int(getattr(f, "color_range", 0) or 0), "auto"),
        )

    def close(self) -> None:
        self._container.close()


class _PacketSizes:
    """Demuxed packet sizes waiting for the frame each one decodes to.

    Matched by presentation timestamp (decoders reorder B-frames; frame threading delays
    output), in arrival order where a container has no timestamps. Bounded: a packet that
    never yields a frame (a decoder that drops it) is forgotten after `limit` packets.
    """

    def __init__(self, limit: int = 512):
        self._by_pts: dict[int, int] = {}
        self._untimed: list[int] = []
        self._limit = limit

    def add(self, pts: int | None, size: int) -> None:
        if pts is None:
            self._untimed.append(int(size))
            del self._untimed[: max(0, len(self._untimed) - self._limit)]
            return
        self._by_pts[int(pts)] = self._by_pts.get(int(pts), 0) + int(size)
        if len(self._by_pts) > self._limit:
            del self._by_pts[min(self._by_pts)]

    def take(self, pts: int | None) -> int | None:
        """Bits of the packet that produced the frame at `pts` (None when unknown)."""
        if pts is not None and int(pts) in self._by_pts:
            return 8 * self._by_pts.pop(int(pts))
        if self._untimed:
            return 8 * self._untimed.pop(0)
        return None


class DisplaySource(VideoSource):
    """A source watched at another size: every frame upscaled (bicubic) to `display`.

    For a resolution-ladder rung (e.g. a 320x180 encode of a 640x360 title): the model
    then sees what a viewer sees and what libvmaf compared, while each frame keeps its
    coded size in bits and `info.coded_size` stays the file's (the bitstream side input
    counts bits per *coded* pixel)."""

    def __init__(self, source: VideoSource, display: tuple[int, int]):
        w, h = (int(display[0]), int(display[1]))
        check_frame_size(w, h)
        self.source = source
        i = source.info
        self.info = VideoInfo(w, h, i.fps, i.num_frames, i.pix_fmt, i.codec, i.name,
                              coded_width=i.width, coded_height=i.height)

    def frames(self) -> Iterator[Frame]:
        w, h = self.info.width, self.info.height
        for f in self.source.frames():
            yield f if f.size == (w, h) else f.upscaled(w, h)

    @property
    def decode_errors(self) -> int:
        return int(getattr(self.source, "decode_errors", 0))

    def count_frames(self) -> int:
        return self.source.count_frames()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.source.close()


def raw_frame_bytes(width: int, height: int, pix_fmt: str) -> int:
    """Bytes of one raw frame of the given size and pixel format."""
    cw, ch = (width + 1) // 2, (height + 1) // 2
    if pix_fmt in ("yuv420p", "nv12"):
        return width * height + 2 * cw * ch
    if pix_fmt == "yuv420p10le":
        return 2 * (width * height + 2 * cw * ch)
    if pix_fmt == "yuv422p":
        return width * height + 2 * cw * height
    if pix_fmt == "yuv444p":
        return 3 * width * height
    raise UsageError(f"unsupported raw pixel format {pix_fmt!r} (use one of {RAW_PIX_FMTS})")


class RawYUVSource(VideoSource):
    """Headerless planar YUV from a file or a binary stream (stdin for pipe mode)."""

    def __init__(
        self,
        path_or_stream: str | os.PathLike | BinaryIO,
        width: int,
        height: int,
        pix_fmt: str = "yuv420p",
        fps: float = 25.0,
        color_matrix: str = "auto",
        color_range: str = "auto",
    ):
        check_frame_size(width, height)
        self.frame_bytes = raw_frame_bytes(width, height, pix_fmt)
        fps = check_fps(fps)
        self._own = False
        n = None
        name = "<stdin>"
        if isinstance(path_or_stream, (str, os.PathLike)):
            p = Path(path_or_stream)
            if not p.exists():
                raise VideoError(f"{p}: no such file")
            size = p.stat().st_size
            if size == 0:
                raise VideoError(f"{p}: empty file")
            if size % self.frame_bytes:
                raise VideoError(
                    f"{p}: size {size} is not a whole number of {width}x{height} {pix_fmt} frames "
                    f"({self.frame_bytes} bytes each); check --size and --pix-fmt"
                )
            n = size // self.frame_bytes
            self._fh: BinaryIO = open(p, "rb")  # noqa: SIM115 - closed in close()
            self._own = True
            name = p.name
        else:
            self._fh = path_or_stream
        self.pix_fmt = pix_fmt
        self._matrix, self._range = color_matrix, color_range
        self.info = VideoInfo(width, height, float(fps), n, pix_fmt, "rawvideo", name)
        self.truncated = False

    def _read_exact(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            b = self._fh.read(n - got)
            if not b:
                break
            chunks.append(b)
            got += len(b)
        return b"".join(chunks)

    def frames(self) -> Iterator[Frame]:
        w, h = self.info.width, self.info.height
        cw, ch = (w + 1) // 2, (h + 1) // 2
        index = 0
        while True:
            buf = self._read_exact(self.frame_bytes)
            if not buf:
                break
            if len(buf) < self.frame_bytes:
                self.truncated = True
                break
            yield Frame(
                index,
                index / self.info.fps,
                planes=_split_raw(buf, w, h, cw, ch, self.pix_fmt),
                pix_fmt=self.pix_fmt,
                matrix=self._matrix,
                color_range=self._range,
            )
            index += 1
        if index == 0:
            raise VideoError(f"{self.info.name}: no complete {w}x{h} {self.pix_fmt} frame in input")

    def close(self) -> None:
        if self._own:
            self._fh.close()


def _split_raw(buf: bytes, w: int, h: int, cw: int, ch: int, fmt: str):
    if fmt == "yuv420p10le":
        a = np.frombuffer(buf, dtype="<u2")
        y = a[: w * h].reshape(h, w)
        u = a[w * h : w * h + cw * ch].reshape(ch, cw)
        v = a[w * h + cw * ch :].reshape(ch, cw)
        return y, u, v
    a = np.frombuffer(buf, dtype=np.uint8)
    y = a[: w * h].reshape(h, w)
    if fmt == "nv12":
        uv = a[w * h :].reshape(ch, 2 * cw)
        return y, uv[:, 0::2], uv[:, 1::2]
    if fmt == "yuv422p":
        u = a[w * h : w * h + cw * h].reshape(h, cw)
        return y, u, a[w * h + cw * h :].reshape(h, cw)
    if fmt == "yuv444p":
        return y, a[w * h : 2 * w * h].reshape(h, w), a[2 * w * h :].reshape(h, w)
    u = a[w * h : w * h + cw * ch].reshape(ch, cw)
    return y, u, a[w * h + cw * ch :].reshape(ch, cw)


class ArraySource(VideoSource):
    """Frames already in memory: an (N, H, W, 3) uint8 array or a sequence of frames."""

    def __init__(self, frames: np.ndarray | Sequence | Iterable, fps: float = 25.0, name: str = "<frames>"):
        fps = check_fps(fps)
        if (isinstance(frames, (str, bytes)) or not isinstance(frames, (np.ndarray, Iterable))
                or (isinstance(frames, np.ndarray) and frames.ndim == 0)):
            raise VideoError(
                f"{name}: expected frames (an (N, H, W, 3) uint8 array or a sequence of frames), "
                f"got {type(frames).__name__}"
            )
        self._frames = frames
        n = len(frames) if hasattr(frames, "__len__") else None  # type: ignore[arg-type]
        first = None
        if n == 0:
            raise VideoError(f"{name}: no frames given")
        if n:
            first = frame_from_array(0, frames[0], fps)  # type: ignore[index]
        w, h = first.size if first else (0, 0)
        self.info = VideoInfo(w, h, float(fps), n, "rgb24", "memory", name)

    def frames(self) -> Iterator[Frame]:
        index = -1
        for index, data in enumerate(self._frames):
            yield frame_from_array(index, data, self.info.fps)
        if index < 0:
            raise VideoError(f"{self.info.name}: no frames given")


def open_video(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    pix_fmt: str | None = None,
    fps: float | None = None,
    decode_threads: int | None = None,
    display: tuple[int, int] | None = None,
) -> VideoSource:
    """Open a video file; `.yuv` (or `size` given) means headerless raw frames.

    `decode_threads` caps FFmpeg's decoder threads (None: FFmpeg picks); `display`
    upscales every frame to that size (`DisplaySource`)."""
    src = _open_video(path, size=size, pix_fmt=pix_fmt, fps=fps, decode_threads=decode_threads)
    if display is None or tuple(display) == (src.info.width, src.info.height):
        return src
    try:
        return DisplaySource(src, display)
    except BaseException:
        src.close()
        raise


def _open_video(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] | None,
    pix_fmt: str | None,
    fps: float | None,
    decode_threads: int | None,
) -> VideoSource:
    p = str(path)
    if p == "-":
        if size is None:
            raise UsageError("reading raw frames from stdin needs --size WxH")
        return RawYUVSource(sys.stdin.buffer, size[0], size[1], pix_fmt or "yuv420p", 25.0 if fps is None else fps)
    if size is not None or p.lower().endswith(".yuv"):
        if size is None:
            raise UsageError(f"{p}: raw .yuv input needs --size WxH (and --pix-fmt if not yuv420p)")
        return RawYUVSource(p, size[0], size[1], pix_fmt or "yuv420p", 25.0 if fps is None else fps)
    return PyAVSource(p, threads=True if decode_threads is None else decode_threads)



def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]

