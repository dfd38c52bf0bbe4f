"""The suite's speed section: the default model and libvmaf on clips of the real spec.

Clips (generated once with PyAV by `bench_runtime.make_clips`, cached under
`<work>/bench/clips/`): the moving noise-texture content of `bench_runtime`, 25 fps, 8-bit
4:2:0, encoded with H.264 (libx264 veryfast CRF 23), HEVC (libx265 ultrafast CRF 28) and
AV1 (libsvtav1 preset 11 CRF 40) at 640x360, 1280x720, 1920x1080 and 3840x2160, 10 s
each, plus 60 s at 1080p and 360p H.264; one lossless FFV1 reference per size and duration (the
same frames before encoding), and a 1 s 360p clip per codec for warm-ups. The grid is
`--speed-clips` (e.g. `h264@1080p,h264@1080p/60s`); libvmaf runs on `--vmaf-clips`
(`DEFAULT_VMAF`, a subset: it is the slow engine).

Cases, each in its own process (`bench_runtime.py --case ...`, so each peak RSS is its
own VmHWM), one run each:

- **end to end**: `Scorer.score_file` with its defaults (decoder thread overlapped with
  the engine, cores split by `pipeline_threads`), after a warm-up on the codec's 1 s clip;
- **decode-only / inference-only** (`stages`): decoding + preprocessing into model inputs
  with FFmpeg threads on every core, then the engine alone on every core on those inputs;
- **libvmaf**: `label_pair(clip, reference)` (one ffmpeg run that decodes both files and
  computes VMAF, VMAF NEG, PSNR and SSIM with every core; PyAV counts both files' frames
  alongside, as the toolkit labels a pair). Its peak RSS is ffmpeg's (the child's maxrss)
  plus the Python process's.

Growth: per engine, least squares on the 10 s clips of log(time) = a + b log(pixels/s)
(b = 1: cost proportional to pixels; b = 0: independent of size), and for each clip that
also exists longer (1080p and 360p H.264, 60 s) the ratio of its time to the 10 s one (6.0 = linear
in duration). `plot` draws time against
pixels per second for every engine (log-log) with the fitted lines.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CODECS = {"h264": "libx264", "hevc": "libx265", "av1": "libsvtav1"}
SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080), "2160p": (3840, 2160)}
FPS = 25
DEFAULT_GRID = ",".join([*(f"{c}@{s}" for c in CODECS for s in SIZES), "h264@1080p/60s",
                         "h264@360p/60s"])
# libvmaf by default: every 10 s clip up to 1080p, 2160p in H.264 only, and 60 s at 360p.
# On 2 cores it runs at ~3x real time at 360p and 0.14x at 2160p; the rest of the grid
# (`--vmaf-clips all`: HEVC and AV1 at 2160p, 60 s at 1080p) measured 68 + 66 + 98 s plus
# ~40 s for the 60 s reference (2026-12-01), i.e. ~4.5 more minutes.
DEFAULT_VMAF = ("h264@360p,h264@720p,h264@1080p,h264@2160p,hevc@360p,hevc@720p,hevc@1080p,"
                "av1@360p,av1@720p,av1@1080p,h264@360p/60s")
ENGINES = ("default model, end to end", "default model, decode-only",
           "default model, inference-only", "libvmaf")


@dataclass(frozen=True)
class Clip:
    codec: str  # h264 | hevc | av1
    size: str  # 360p ...
    seconds: int = 10

    @property
    def width(self) -> int:
        return SIZES[self.size][0]

    @property
    def height(self) -> int:
        return SIZES[self.size][1]

    @property
    def name(self) -> str:
        return f"{self.codec}@{self.size}/{self.seconds}s"

    @property
    def pixels_per_s(self) -> float:
        return float(self.width * self.height * FPS)

    def path(self, folder: Path) -> Path:
        return folder / f"{self.codec}_{self.width}x{self.height}_{self.seconds}s.mp4"

    def reference(self, folder: Path) -> Path:
        return folder / f"ref_{self.width}x{self.height}_{self.seconds}s.mkv"

    def warmup(self, folder: Path) -> Path:
        return folder / f"{self.codec}_640x360_1s.mp4"


def parse_grid(text: str) -> list[Clip]:
    """'h264@360p,hevc@1080p/60s' -> clips (unknown codecs or sizes: ValueError)."""
    out = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        head, _, dur = item.partition("/")
        codec, _, size = head.partition("@")
        if codec not in CODECS or size not in SIZES:
            raise ValueError(f"bad clip {item!r}: expected CODEC@SIZE[/Ns] with CODEC in "
                             f"{', '.join(CODECS)} and SIZE in {', '.join(SIZES)}")
        secs = int(dur.rstrip("s")) if dur else 10
        out.append(Clip(codec, size, secs))
    return out


def ensure_clips(clips: Sequence[Clip], vmaf: Sequence[Clip], folder: Path,
                 log: Callable[[str], None] = print) -> float:
    """Generate the missing clips, references and warm-up clips; seconds spent."""
    from internvqa.bench.bench_runtime import make_clips

    t0 = time.perf_counter()
    groups: dict[tuple[int, int, int], dict[Path, str]] = {}
    for c in clips:
        groups.setdefault((c.width, c.height, c.seconds), {})[c.path(folder)] = CODECS[c.codec]
        groups.setdefault((640, 360, 1), {})[c.warmup(folder)] = CODECS[c.codec]
    for c in vmaf:
        groups[(c.width, c.height, c.seconds)][c.reference(folder)] = "ffv1"
    for (w, h, s), jobs in groups.items():
        missing = [p for p in jobs if not p.exists()]
        if missing:
            log(f"speed: generating {len(missing)} clip(s) of {w}x{h}, {s} s")
            make_clips(jobs, w, h, s, FPS)
    return time.perf_counter() - t0


def run_clip(clip: Clip, folder: Path, bundle: Path, with_vmaf: bool,
             timeout: float = 900) -> dict[str, Any]:
    """Every case of one clip, each in its own process; errors are recorded, not raised."""
    from internvqa.bench.bench_runtime import CaseError, case_command, run_case_process

    rec: dict[str, Any] = {"clip": clip.name, "codec": clip.codec, "size": clip.size,
                           "width": clip.width, "height": clip.height, "seconds": clip.seconds,
                           "fps": FPS, "pixels_per_s": clip.pixels_per_s}
    video, warm = clip.path(folder), clip.warmup(folder)
    cases = [("e2e", warm, None), ("stages", warm, None)]
    if with_vmaf:
        cases.append(("vmaf", None, clip.reference(folder)))
    for case, warmup, ref in cases:
        cmd = case_command(case, video, bundle, folder, warmup_video=warmup, reference=ref)
        try:
            rec[case] = run_case_process(cmd, timeout)
        except CaseError as exc:
            rec[case] = {"error": str(exc)}
    return rec


def engine_times(rec: dict[str, Any]) -> dict[str, float | None]:
    """Seconds per engine of one clip record (None where the case did not run)."""
    e2e, st, vm = rec.get("e2e") or {}, rec.get("stages") or {}, rec.get("vmaf") or {}
    return {ENGINES[0]: e2e.get("seconds"), ENGINES[1]: st.get("decode_seconds"),
            ENGINES[2]: st.get("infer_seconds"), ENGINES[3]: vm.get("seconds")}


def growth_fit(pixels_per_s: Sequence[float], seconds: Sequence[float]) -> dict[str, Any]:
    """Least squares of log(time) = a + b log(pixels/s): {a, b, r2, n} (b None if < 2 sizes)."""
    pts = [(math.log(p), math.log(t)) for p, t in zip(pixels_per_s, seconds, strict=True)
           if t is not None and t > 0 and p > 0]
    if len({x for x, _ in pts}) < 2:
        return {"a": None, "b": None, "r2": None, "n": len(pts)}
    x, y = np.array(pts).T
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid ** 2)) / tot if tot > 0 else 1.0
    return {"a": float(a), "b": float(b), "r2": r2, "n": len(pts)}


def growth(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per engine: the pixel-rate exponent over the 10 s clips (all codecs together and per
    codec), and for every clip that also exists longer, the long / 10 s time ratio."""
    out: dict[str, Any] = {}
    short = [r for r in records if r["seconds"] == 10]
    for eng in ENGINES:
        times = [engine_times(r)[eng] for r in short]
        block: dict[str, Any] = {"all codecs": growth_fit([r["pixels_per_s"] for r in short], times)}
        for codec in sorted({r["codec"] for r in short}):
            rs = [r for r in short if r["codec"] == codec]
            block[codec] = growth_fit([r["pixels_per_s"] for r in rs],
                                      [engine_times(r)[eng] for r in rs])
        ratios = {}
        for r in records:
            if r["seconds"] <= 10:
                continue
            ten = next((engine_times(s)[eng] for s in short
                        if (s["codec"], s["size"]) == (r["codec"], r["size"])), None)
            long_t = engine_times(r)[eng]
            if ten and long_t:
                ratios[f"{r['codec']}@{r['size']} {r['seconds']}s/10s"] = long_t / ten
        block["duration_ratio"] = ratios
        out[eng] = block
    return out


def plot(records: Sequence[dict[str, Any]], fits: dict[str, Any], path: Path,
         title: str = "") -> Path | None:
    """time vs pixels per second (10 s clips), one colour per engine, one marker per codec."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    markers = {"h264": "o", "hevc": "s", "av1": "^"}
    colours = dict(zip(ENGINES, ("tab:blue", "tab:green", "tab:orange", "tab:red"), strict=True))
    short = [r for r in records if r["seconds"] == 10]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for eng in ENGINES:
        xs = [r["pixels_per_s"] for r in short if engine_times(r)[eng]]
        if not xs:
            continue
        for codec, m in markers.items():
            pts = [(r["pixels_per_s"], engine_times(r)[eng]) for r in short
                   if r["codec"] == codec and engine_times(r)[eng]]
            if pts:
                ax.scatter(*zip(*pts, strict=True), marker=m, color=colours[eng], s=28)
        f = fits.get(eng, {}).get("all codecs", {})
        if f.get("b") is not None:
            line = np.geomspace(min(xs), max(xs), 20)
            ax.plot(line, np.exp(f["a"]) * line ** f["b"], color=colours[eng],
                    label=f"{eng} (b = {f['b']:.2f})")
    for codec, m in markers.items():
        if any(r["codec"] == codec for r in short):
            ax.scatter([], [], marker=m, color="grey", label=codec.upper())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("pixels per second of video (width x height x 25 fps)")
    ax.set_ylabel("seconds to score a 10 s clip")
    ax.set_title(title or "Cost vs pixel rate (10 s clips)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _f(v: Any, d: int = 2) -> str:
    return "-" if v is None else f"{v:.{d}f}"


def render(speed: dict[str, Any]) -> list[str]:
    lines = ["| clip | e2e s | x real time | decode-only s | inference-only s | windows | "
             "peak RSS MiB (e2e) | libvmaf s | libvmaf x real time | libvmaf peak RSS MiB "
             "(ffmpeg + python) |", "|" + "---|" * 10]
    for r in speed["clips"]:
        e2e, st, vm = r.get("e2e") or {}, r.get("stages") or {}, r.get("vmaf")
        rtf = r["seconds"] / e2e["seconds"] if e2e.get("seconds") else None
        if vm is None:
            vcells = ["not run", "", ""]
        elif "error" in vm:
            vcells = ["failed", "", ""]
        else:
            vcells = [_f(vm["seconds"]), _f(r["seconds"] / vm["seconds"], 1),
                      f"{vm['ffmpeg_peak_rss_mib']:.0f} + {vm['peak_rss_mib']:.0f}"]
        err = e2e.get("error") or st.get("error")
        lines.append(f"| {r['clip']} ({r['width']}x{r['height']}) | {_f(e2e.get('seconds'))} | "
                     f"{_f(rtf, 1)} | {_f(st.get('decode_seconds'))} | "
                     f"{_f(st.get('infer_seconds'))} | {e2e.get('windows', '-')} | "
                     f"{_f(e2e.get('peak_rss_mib'), 0)} | " + " | ".join(vcells) + " |"
                     + (f" failed: {err}" if err else ""))
    lines += ["", "Growth: b of log(time) = a + b log(pixels/s) over the 10 s clips (R² of the "
                  "fit), and the time of a longer clip over its 10 s twin (6.0 = linear in "
                  "duration):", "",
              "| engine | b, all codecs (R²) | b per codec | longer / 10 s |", "|---|---|---|---|"]
    for eng, block in speed["growth"].items():
        allc = block.get("all codecs", {})
        per = ", ".join(f"{k} {_f(v.get('b'))}" for k, v in block.items()
                        if k not in ("all codecs", "duration_ratio") and v.get("b") is not None)
        ratios = ", ".join(f"{k}: {v:.2f}" for k, v in block.get("duration_ratio", {}).items())
        lines.append(f"| {eng} | {_f(allc.get('b'))} ({_f(allc.get('r2'))}) | {per or '-'} | "
                     f"{ratios or '-'} |")
    return lines
