"""Clip windows: frames in, complete windows out (`WindowAssembler`), and `iter_windows`,
the single entry point that turns any source into windows (training caches, calibration
and the runtime all go through it). A window also sums its span's coded bits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from internvqa.runtime.clipspec import (
    ClipSpec,
    WindowPlan,
    WindowPlanner,
)
from internvqa.runtime.errors import UsageError, VideoError
from internvqa.runtime.frames import Frame
from internvqa.runtime.sources import DisplaySource, PyAVSource, VideoSource, open_video


# ---- windows ---------------------------------------------------------------------------
@dataclass
class Window:
    """T resized uint8 RGB frames (T, h, w, 3) plus where they came from."""

    index: int
    frame_indices: tuple[int, ...]
    times: tuple[float, ...]
    clip: np.ndarray
    flags: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)
    bits: float | None = None  # coded bits of every frame in the span (None: some unknown)
    span_frames: int = 0  # frames from the first to the last sampled frame, inclusive

    @property
    def start_frame(self) -> int:
        return self.frame_indices[0]

    @property
    def end_frame(self) -> int:
        return max(self.frame_indices)


class WindowAssembler:
    """Push frames one at a time, get complete windows back (the streaming core).

    Converts only frames some window samples and keeps only what open windows still
    need, plus the latest frame (a trailing partial window may repeat it).
    """

    def __init__(self, spec: ClipSpec, total_frames: int | None = None, crop_only: bool = False):
        self.spec = spec
        self.crop_only = crop_only
        if spec.sampling == "uniform":
            if not total_frames:
                raise UsageError("uniform sampling needs the frame count; use windows sampling")
            self._plans: list[WindowPlan] | None = spec.plan_windows(total_frames)
            self._needed = {i for p in self._plans for i in p.frame_indices}
            self._planner = None
        else:
            self._plans = None
            self._planner = WindowPlanner(spec)
        self._cache: dict[int, tuple[np.ndarray, float]] = {}
        self._bits: dict[int, int | None] = {}  # every frame's coded size, not just sampled ones
        self._last: Frame | None = None
        self._size: tuple[int, int] | None = None

    def _convert(self, frame: Frame) -> tuple[np.ndarray, float]:
        if frame.index not in self._cache:
            if self._size is None:
                self._size = frame.size
            elif frame.size != self._size:
                raise VideoError(
                    f"frame {frame.index} is {frame.size[0]}x{frame.size[1]}, earlier frames "
                    f"were {self._size[0]}x{self._size[1]}; resolution changes are not supported"
                )
            self._cache[frame.index] = (frame.to_rgb(self.spec, self.crop_only), frame.time)
        return self._cache[frame.index]

    def _make(self, plan: WindowPlan) -> Window:
        got = [self._cache[i] for i in plan.frame_indices]
        clip = np.stack([g[0] for g in got])
        span = range(min(plan.frame_indices), max(plan.frame_indices) + 1)
        sizes = [self._bits.get(i) for i in span]
        bits = None if any(b is None for b in sizes) else float(sum(sizes))  # type: ignore[arg-type]
        return Window(plan.index, plan.frame_indices, tuple(g[1] for g in got), clip, plan.flags,
                      bits=bits, span_frames=len(span))

    def push(self, frame: Frame) -> list[Window]:
        self._last = frame
        self._bits[frame.index] = frame.bits
        if self._planner is not None:
            if self._planner.needed(frame.index):
                self._convert(frame)
            plans = self._planner.frame_arrived(frame.index)
        else:
            if frame.index in self._needed:
                self._convert(frame)
            plans = [p for p in self._plans if p.last == frame.index]  # type: ignore[union-attr]
        out = [self._make(p) for p in plans]
        if out:
            self._evict(frame.index)
        return out

    def _evict(self, current: int) -> None:
        """Drop converted frames that no window still to come can use."""
        if self._planner is not None:
            keep_from = self._planner.next_start
            stale = [i for i in self._cache if i < keep_from]
        else:
            todo = [p for p in self._plans if p.last > current]  # type: ignore[union-attr]
            pending = {i for p in todo for i in p.frame_indices}
            stale = [i for i in self._cache if i not in pending]
            keep_from = min((p.first for p in todo), default=current + 1)
        for i in stale:
            del self._cache[i]
        for i in [i for i in self._bits if i < keep_from]:
            del self._bits[i]

    def finish(self) -> list[Window]:
        if self._last is None:
            return []
        if self._planner is not None:
            plans = self._planner.finish()
            if plans:
                self._convert(self._last)
            for p in plans:
                for i in p.frame_indices:
                    if i not in self._cache:  # pragma: no cover - planner guarantees this
                        raise RuntimeError(f"frame {i} missing for window {p.index}")
            return [self._make(p) for p in plans]
        # uniform: the video ended before the planned frame count (e.g. a short stream)
        done = self._last.index
        out = []
        for p in self._plans:  # type: ignore[union-attr]
            if p.last > done:
                idx = tuple(min(i, done) for i in p.frame_indices)
                self._convert(self._last)
                for i in idx:
                    if i not in self._cache:
                        raise VideoError(
                            f"video ended at frame {done}, before its declared frame count"
                        )
                out.append(self._make(WindowPlan(p.index, idx, (*p.flags, "truncated"))))
        return out


def iter_windows(source: VideoSource, spec: ClipSpec, crop_only: bool = False) -> Iterator[Window]:
    """All windows of a source, streamed (memory bounded by one window's frames).

    `crop_only=True`: each window holds only the band its crops cover (see
    `Frame.to_rgb`); `windows_to_input` gives the same model input either way.
    """
    total = source.info.num_frames
    if spec.sampling == "uniform" and isinstance(source, (PyAVSource, DisplaySource)) and \
            hasattr(getattr(source, "source", source), "count_frames"):
        total = source.count_frames()
    asm = WindowAssembler(spec, total, crop_only=crop_only)
    for frame in source.frames():
        yield from asm.push(frame)
    yield from asm.finish()


def read_windows(path: str | os.PathLike, spec: ClipSpec, **open_kw) -> list[Window]:
    """Convenience: open a file and return all its windows."""
    with open_video(path, **open_kw) as src:
        return list(iter_windows(src, spec))


