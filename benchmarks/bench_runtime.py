"""Runtime benchmark: decode-only, inference-only, end-to-end, real-time factor, peak RSS.

    python benchmarks/bench_runtime.py --bundle DIR [--precision int8] [--workdir work/bench]

Generates (once, cached in --workdir) H.264 clips with PyAV: 10 s 1080p, 60 s 1080p (the
memory check: peak RSS must not grow with length) and 10 s 720p (video-to-tensor path vs a
bare PyAV decode). Every case runs in its own subprocess so its peak RSS
(VmHWM) is its own. Cases:

- bare_decode: PyAV decodes every frame, nothing else (the floor any reader pays);
- to_tensor: the runtime's video -> model-input path (decode, colour-convert the sampled
  frames, resize, crop, normalise) with the paper clip spec (8 frames, stride 8, 224);
- decode: the bundle's clip spec, video -> windows + model input (no engine), FFmpeg
  threads on every core; decode_pipe: the same with the scorer's decoder-thread share;
- infer: windows decoded beforehand (untimed), then the engine only on every core;
  infer_pipe: the same with the scorer's engine-thread share and batch;
- e2e: `Scorer.score_file` with its defaults (decoding thread overlapped with inference,
  cores split between them by `pipeline_threads`), after one untimed warm-up run;
- stages: decode_pipe then infer_pipe in one process (the inputs the decode made are the
  ones inferred), for callers that want both at the cost of one decode;
- vmaf: libvmaf against a lossless reference (`--reference`), as `label_pair` runs it.

`make_clips` and the cases are reused by the suite (`run_suite.py`, its speed section):
H.264 / HEVC / AV1 clips with an FFV1 reference, warm-ups on a short clip of the codec.

Overlap is reported two ways: e2e over the slower stage run alone on every core (the
strict reading: what a perfect overlap could not beat on a machine whose stages each use
every core) and over the slower stage at its pipeline share (the overlap efficiency).

Prints one JSON object per case and a summary table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

CLIPS = {"1080p_10s": (1920, 1080, 10), "1080p_60s": (1920, 1080, 60), "720p_10s": (1280, 720, 10)}
FPS = 25


# Encoder settings of the generated clips: fast presets at a mid quality, as a farm's
# preview encode; FFV1 is the lossless reference libvmaf compares against.
ENCODERS = {
    "libx264": {"preset": "veryfast", "crf": "23"},
    "libx265": {"preset": "ultrafast", "crf": "28", "x265-params": "log-level=error"},
    "libsvtav1": {"preset": "11", "crf": "40", "svtav1-params": "log-level=1"},
    "ffv1": {"level": "3", "slices": "4", "g": "1"},
}


def content_frames(width: int, height: int, seconds: float, fps: int = FPS):
    """Moving, textured RGB frames (panning noise texture + a moving block), deterministic."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    n = int(round(seconds * fps))
    tex = rng.integers(0, 256, (height // 8 + 2, (width + 2 * n) // 8 + 2, 3), dtype=np.uint8)
    tex = cv2.resize(tex, (tex.shape[1] * 8, tex.shape[0] * 8), interpolation=cv2.INTER_CUBIC)
    for i in range(n):
        f = np.ascontiguousarray(tex[:height, 2 * i : 2 * i + width])
        x = (7 * i) % (width - 128)
        f[64:192, x : x + 128] = (230, 40, 40)
        yield f


def make_clips(jobs: dict[Path, str], width: int, height: int, seconds: float,
               fps: int = FPS) -> dict[Path, Path]:
    """Encode one content into every missing file of `jobs` ({path: encoder}) in one pass.

    Encoders: `ENCODERS` (H.264, HEVC, AV1 via PyAV's FFmpeg, FFV1 lossless). Files are
    written under a temporary name and renamed, so an interrupted run leaves no clip."""
    import av

    todo = {p: c for p, c in jobs.items() if not Path(p).exists()}
    if todo:
        outs = []
        try:
            for path, codec in todo.items():
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(path).with_name(Path(path).stem + ".tmp" + Path(path).suffix)
                c = av.open(str(tmp), "w")
                st = c.add_stream(codec, rate=fps)
                st.width, st.height, st.pix_fmt = width, height, "yuv420p"
                st.options = dict(ENCODERS.get(codec, {}))
                outs.append((c, st, tmp, Path(path)))
            for rgb in content_frames(width, height, seconds, fps):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
                for c, st, _, _ in outs:
                    for pkt in st.encode(frame):
                        c.mux(pkt)
            for c, st, tmp, path in outs:
                for pkt in st.encode():
                    c.mux(pkt)
                c.close()
                tmp.rename(path)
        finally:
            for c, _, tmp, _ in outs:
                if tmp.exists():
                    with contextlib.suppress(Exception):
                        c.close()
                    tmp.unlink()
    return {Path(p): Path(p) for p in jobs}


def make_clip(path: Path, width: int, height: int, seconds: int, codec: str = "libx264") -> Path:
    """One generated clip (`make_clips`), H.264 by default."""
    make_clips({Path(path): codec}, width, height, seconds)
    return Path(path)


# ---- cases (each runs in a fresh subprocess) ------------------------------------------
def _bare_decode(video: Path) -> tuple[int, float]:
    import av

    t = time.perf_counter()
    n = 0
    with av.open(str(video)) as c:
        st = c.streams.video[0]
        st.thread_type = "AUTO"
        for _ in c.decode(st):
            n += 1
    return n, time.perf_counter() - t


def case_bare_decode(video: Path, args) -> dict:
    _bare_decode(video)  # warm-up, as for the path it is compared with
    n, s = _bare_decode(video)
    return {"frames": n, "seconds": s}


def _windows(video: Path, spec, to_tensor: bool, threads: bool | int = True) -> tuple[int, int, float]:
    from internvqa.runtime.clipspec import windows_to_input
    from internvqa.runtime.video import PyAVSource, iter_windows

    t = time.perf_counter()
    windows = 0
    with PyAVSource(video, threads=threads) as src:
        # crop_only: the band the crops need, as the scorer converts it
        for w in iter_windows(src, spec, crop_only=True):
            if to_tensor:
                windows_to_input(spec, [w.clip])
            windows += 1
        frames = src.info.num_frames or 0
    return windows, frames, time.perf_counter() - t


def case_to_tensor(video: Path, args) -> dict:
    from internvqa.runtime.clipspec import PRESETS

    _windows(video, PRESETS["paper"], to_tensor=True)  # warm-up (first OpenCV/numpy calls)
    windows, frames, s = _windows(video, PRESETS["paper"], to_tensor=True)
    return {"frames": frames, "windows": windows, "seconds": s, "spec": "paper"}


def _decode(video: Path, args, threads: bool | int) -> dict:
    from internvqa.runtime.bundle import load_bundle

    spec = load_bundle(args.bundle, args.precision, verify=False).clip_spec
    _windows(video, spec, to_tensor=True, threads=threads)  # warm-up
    windows, frames, s = _windows(video, spec, to_tensor=True, threads=threads)
    return {"frames": frames, "windows": windows, "seconds": s, "decoder_threads": threads}


def case_decode(video: Path, args) -> dict:
    return _decode(video, args, True)


def case_decode_pipe(video: Path, args) -> dict:
    from internvqa.runtime.scorer import available_cores, pipeline_threads

    return _decode(video, args, pipeline_threads(available_cores())[0])


def _infer(video: Path, args, threads: int | None, batch: int | None) -> dict:
    from internvqa.runtime.clipspec import windows_to_input
    from internvqa.runtime.scorer import Scorer
    from internvqa.runtime.video import read_windows

    scorer = Scorer(args.bundle, args.precision, threads=threads, batch_size=batch)
    clips = [w.clip for w in read_windows(video, scorer.spec)]
    xs = [windows_to_input(scorer.spec, clips[i : i + scorer.batch_size])
          for i in range(0, len(clips), scorer.batch_size)]
    scorer.backend.run(xs[0])  # warm-up
    t = time.perf_counter()
    for x in xs:
        scorer.backend.run(x)
    s = time.perf_counter() - t
    return {"windows": len(clips), "seconds": s, "per_window_ms": 1000 * s / max(1, len(clips)),
            "engine_threads": threads, "batch_windows": scorer.batch_size}


def case_infer(video: Path, args) -> dict:
    from internvqa.runtime.scorer import available_cores

    return _infer(video, args, args.threads or available_cores(), 4)


def case_infer_pipe(video: Path, args) -> dict:
    return _infer(video, args, args.threads, None)  # the scorer's own defaults


def case_e2e(video: Path, args) -> dict:
    from internvqa.runtime.scorer import Scorer

    t0 = time.perf_counter()
    scorer = Scorer(args.bundle, args.precision, threads=args.threads)
    load = time.perf_counter() - t0
    # warm-up: first engine call, OpenCV, FFmpeg (on a short clip of the codec when given)
    cold = scorer.score_file(args.warmup_video or video).elapsed_s
    r = scorer.score_file(video)
    return {"frames": r.frames, "windows": len(r.windows), "seconds": r.elapsed_s,
            "cold_seconds": cold, "load_seconds": load, "score": r.score,
            "decoder_threads": scorer.decode_threads, "batch_windows": scorer.batch_size}


def case_stages(video: Path, args) -> dict:
    """`decode_pipe` then `infer_pipe` in one process, on the inputs the decode made (one
    decode of the clip instead of two): each stage at the share of the cores and the batch
    `Scorer.score_file` gives it, so the two add up to what the pipeline overlaps."""
    from internvqa.runtime.clipspec import windows_to_input
    from internvqa.runtime.scorer import Scorer
    from internvqa.runtime.video import PyAVSource, iter_windows

    scorer = Scorer(args.bundle, args.precision, threads=args.threads, verify=False)
    spec, per, dec = scorer.spec, scorer.batch_size, scorer.decode_threads
    _windows(args.warmup_video or video, spec, to_tensor=True, threads=dec)  # warm-up
    t = time.perf_counter()
    xs, part, windows = [], [], 0
    with PyAVSource(video, threads=dec) as src:
        for w in iter_windows(src, spec, crop_only=True):
            part.append(w.clip)
            windows += 1
            if len(part) == per:
                xs.append(windows_to_input(spec, part))
                part = []
        if part:
            xs.append(windows_to_input(spec, part))
        frames = src.info.num_frames or 0
    decode_s = time.perf_counter() - t
    scorer.backend.run(xs[0])  # warm-up
    t = time.perf_counter()
    for x in xs:
        scorer.backend.run(x)
    infer_s = time.perf_counter() - t
    return {"frames": frames, "windows": windows, "seconds": decode_s + infer_s,
            "decode_seconds": decode_s, "infer_seconds": infer_s,
            "per_window_ms": 1000 * infer_s / max(1, windows), "batch_windows": per,
            "decoder_threads": dec,
            "engine_threads": scorer.backend.session.get_session_options().intra_op_num_threads
            if hasattr(scorer.backend, "session") else None}


def case_vmaf(video: Path, args) -> dict:
    """libvmaf VMAF of the clip against its lossless reference, as the toolkit labels a
    pair (`label_pair`: one ffmpeg run decoding both files, PyAV counting both)."""
    from internvqa.distill.corpus.vmaf import label_pair
    from internvqa.runtime.scorer import available_cores

    threads = args.threads or available_cores()
    t = time.perf_counter()
    labels = label_pair(video, args.reference, threads=threads, ms_ssim=False)
    s = time.perf_counter() - t
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"frames": labels.frames, "seconds": s, "score": labels.vmaf, "threads": threads,
            "ffmpeg_peak_rss_mib": child, "reference": str(args.reference)}


CASES = {"bare_decode": case_bare_decode, "to_tensor": case_to_tensor, "decode": case_decode,
         "decode_pipe": case_decode_pipe, "infer": case_infer, "infer_pipe": case_infer_pipe,
         "e2e": case_e2e, "stages": case_stages, "vmaf": case_vmaf}


def peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM (Linux) starts afresh at exec; ru_maxrss may carry
    the forking parent's peak, so it is only the fallback."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CaseError(RuntimeError):
    """A case's subprocess failed; the message ends with its stderr's tail."""


def case_command(name: str, video: Path, bundle: Path, workdir: Path,
                 precision: str | None = None, threads: int | None = None,
                 warmup_video: Path | None = None, reference: Path | None = None) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--case", name, "--video", str(video),
           "--bundle", str(bundle), "--workdir", str(workdir)]
    for flag, value in (("--precision", precision), ("--threads", threads),
                        ("--warmup-video", warmup_video), ("--reference", reference)):
        if value:
            cmd += [flag, str(value)]
    return cmd


def run_case_process(cmd: list[str], timeout: float | None = None) -> dict:
    """Run one case in a fresh process (its own VmHWM); its last stdout line is the JSON."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CaseError(f"timed out after {timeout:g} s") from None
    if out.returncode:
        tail = " | ".join(ln for ln in out.stderr.strip().splitlines()[-3:] if ln.strip())
        raise CaseError(f"exit {out.returncode}: {tail[-600:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_case(name: str, video: Path, args) -> dict:
    cmd = case_command(name, video, args.bundle, args.workdir, args.precision, args.threads)
    try:
        return run_case_process(cmd)
    except CaseError as exc:
        raise SystemExit(f"case {name} failed: {exc}") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True, type=Path)
    ap.add_argument("--precision", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--workdir", type=Path, default=Path("work/bench"))
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs per case on the 10 s clips, each in a fresh process (best kept)")
    ap.add_argument("--skip-long", action="store_true", help="skip the 60 s memory check")
    ap.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    ap.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--warmup-video", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--reference", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.case:  # child process: one measurement
        res = CASES[args.case](args.video, args)
        res["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(res))
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    clips = {k: make_clip(args.workdir / f"{k}.mp4", *v) for k, v in CLIPS.items()
             if not (args.skip_long and k == "1080p_60s")}
    import av
    import onnxruntime

    report: dict = {"machine": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "av": av.__version__,
                    "onnxruntime": onnxruntime.__version__, "bundle": str(args.bundle),
                    "precision": args.precision, "results": {}}
    plan = [("720p_10s", "bare_decode"), ("720p_10s", "to_tensor"), ("1080p_10s", "bare_decode"),
            ("1080p_10s", "decode"), ("1080p_10s", "decode_pipe"), ("1080p_10s", "infer"),
            ("1080p_10s", "infer_pipe"), ("1080p_10s", "e2e"), ("1080p_60s", "e2e")]
    for clip, case in plan:
        if clip not in clips:
            continue
        reps = args.repeats if clip != "1080p_60s" else 1
        runs = [run_case(case, clips[clip], args) for _ in range(reps)]
        best = min(runs, key=lambda r: r["seconds"])
        best["duration_s"] = CLIPS[clip][2]
        best["realtime_factor"] = CLIPS[clip][2] / best["seconds"]
        report["results"][f"{clip}/{case}"] = best
        print(json.dumps({f"{clip}/{case}": best}), file=sys.stderr)
    r = report["results"]
    if "720p_10s/bare_decode" in r:
        ratio = r["720p_10s/bare_decode"]["seconds"] / r["720p_10s/to_tensor"]["seconds"]
        report["to_tensor_vs_bare_decode_speed"] = ratio
    if "1080p_10s/e2e" in r:
        e2e = r["1080p_10s/e2e"]["seconds"]
        for tag, a, b in (("every core", "decode", "infer"), ("pipeline share", "decode_pipe",
                                                               "infer_pipe")):
            slower = max(r[f"1080p_10s/{a}"]["seconds"], r[f"1080p_10s/{b}"]["seconds"])
            report[f"overlap_e2e_over_slower_stage ({tag})"] = e2e / slower
    print(json.dumps(report, indent=2))
    print(f"\n{'case':24s} {'seconds':>8s} {'x realtime':>10s} {'peak RSS MiB':>12s}", file=sys.stderr)
    for k, v in r.items():
        print(f"{k:24s} {v['seconds']:8.2f} {v['realtime_factor']:10.1f} {v['peak_rss_mib']:12.0f}",
              file=sys.stderr)
    for k, v in report.items():
        if k.startswith("overlap_"):
            print(f"{k}: {v:.2f}x", file=sys.stderr)
    if "to_tensor_vs_bare_decode_speed" in report:
        print(f"video-to-tensor speed / bare decode speed (720p): "
              f"{report['to_tensor_vs_bare_decode_speed']:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
