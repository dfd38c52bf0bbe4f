"""The benchmark suite: the numbers users pick InternVQA by, in one run.

    ./run bench                       # = .venv/bin/python benchmarks/run_suite.py
    ./run bench --manifest /work/corpus/standard/manifest.train-2026-12-01b.csv
    ./run bench --limit 40 --speed-clips h264@360p,h264@720p --precision-videos 20  # quick

It scores with the shipped default model (`runtime.bundle.default_bundle()`, or `--bundle`)
and trains nothing. In order:

1. accuracy   (`suite_accuracy.py`) the held-out test split of `--manifest`: the default
              model hybrid and pixel-only, the bitrate model (fitted on the train split),
              BRISQUE, NIQE, the features+ridge baseline (fitted once on a stride of the
              train split and saved in `<work>/bench/`, reused after), libvmaf (the label
              itself on a VMAF corpus: timed, not scored); one evaluation (`bench.accuracy`).
              Without the manifest the suite falls back to the demo corpus
              (`<work>/corpus/demo`, built by `vqa-data synth --preset demo` when missing)
              and says so in the report.
2. precision  (`suite_precision.py`) FP32 / FP16 / INT8 graphs on ONNX Runtime CPU: engine
              latency at batch 1 and the best batch, accuracy on the first test videos.
3. speed      (`suite_speed.py`) generated H.264 / HEVC / AV1 clips at 360p-2160p (10 s) and
              1080p 60 s H.264: end to end, decode-only, inference-only, real-time factor,
              peak RSS (a process per case), libvmaf on the same clips against a lossless
              reference; the growth of time with pixel rate (exponent b) and duration, and
              the plot `benchmarks/cost_curve.png`.
4. report     `benchmarks/out/suite.json` and the suite section of `benchmarks/RESULTS.md`
              (only the text between the suite markers is replaced): date, machine,
              versions, the exact command, the tables.

A section that fails is recorded with its error and the others still run; nothing is
invented for it. Exit 0 when every section ran, 1 when one failed, 2 on a usage error.
The demo pipeline's own suite (teacher, students, ablation) is `benchmarks/suite_demo.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import os
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from internvqa.export.stages import CURRENT, StageRun, Stages, console_script
from internvqa.runtime.workspace import demo_corpus_dir, work_dir

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
RESULTS = REPO / "benchmarks" / "RESULTS.md"
PLOT = REPO / "benchmarks" / "cost_curve.png"
BEGIN, END = "<!-- suite:begin -->", "<!-- suite:end -->"
STANDARD_MANIFEST = "/work/corpus/standard/manifest.train-2026-12-01b.csv"
SECTIONS = ("accuracy", "precision", "speed")


def write_results(section: str, path: Path = RESULTS, begin: str = BEGIN, end: str = END) -> None:
    """Replace the marked section (or append it); other sections stay byte-identical."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    from internvqa.runtime.atomic import atomic_write_text

    atomic_write_text(path, text)


def log(text: str) -> None:
    print(f"[suite] {text}", file=sys.stderr, flush=True)


def resolve_manifest(wanted: str, work: Path) -> tuple[Path | None, str | None]:
    """(manifest, fallback note): `wanted` when it exists, else the demo corpus (built once)."""
    p = Path(wanted)
    if p.is_file():
        return p, None
    demo = demo_corpus_dir(work) / "manifest.csv"
    note = f"{wanted} is absent: fell back to the demo corpus {demo}"

    def report(event: str, run: StageRun) -> None:
        if event == "start":
            log(f"{note}; building it: {shlex.join(run.argv)}")

    built = Stages(report, cwd=REPO).run(
        "corpus", [*console_script("vqa-data"), "synth", "--out", str(demo.parent), "--preset", "demo"],
        current=demo.is_file())
    if built.status != CURRENT:
        note += " (built by `vqa-data synth --preset demo`)"
    return (demo if demo.is_file() else None), note


def machine() -> dict[str, Any]:
    from internvqa.bench.bench import machine_info

    info = machine_info()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                info["cpu"] = value.strip()
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("imageio-ffmpeg", "matplotlib"):
        with contextlib.suppress(PackageNotFoundError):
            info["versions"][pkg] = version(pkg)
    try:
        from internvqa.distill.corpus.vmaf import versions as vmaf_versions

        v = vmaf_versions()
        info["versions"].update({k: v[k] for k in ("ffmpeg", "libvmaf") if v.get(k)})
    except Exception:  # noqa: BLE001 - no libvmaf ffmpeg: the versions line just lacks it
        pass
    info["gpu"] = ("none: no NVIDIA GPU on this machine (CPU figures only; TensorRT and CUDA "
                   "not measured)" if not (Path("/dev/nvidiactl").exists()
                                           or shutil.which("nvidia-smi")) else "present")
    return info


# ---- the three sections ----------------------------------------------------------------
def run_accuracy(args, manifest: Path, bundle: Path, state: dict) -> dict:
    from internvqa.bench.suite_accuracy import Accuracy
    from internvqa.runtime.bundle import load_bundle

    acc = Accuracy(manifest, Path(args.work), args.split, args.limit, args.baseline_train,
                   args.vmaf_videos, log=log)
    if not acc.test:
        raise RuntimeError(f"{manifest}: no labelled videos in split {args.split!r}")
    spec = load_bundle(bundle, verify=False).clip_spec
    scorer = acc.default_model(bundle)
    if scorer.bundle.precision == "fp32" and "default" in acc.preds:
        state["fp32_preds"] = acc.preds["default"]
        state["fp32_secs"] = acc.seconds["default"]
    state["test_rows"] = acc.test
    acc.bitrate()
    acc.peers(spec)
    acc.baseline(spec)
    acc.libvmaf()
    return acc.report()


def run_precision(args, manifest: Path, bundle: Path, state: dict) -> dict:
    from internvqa.bench.bench import parse_batches
    from internvqa.bench.suite_precision import run
    from internvqa.runtime.manifest import read_manifest

    rows = state.get("test_rows") or [r for r in read_manifest(manifest)
                                      if r.split == args.split and r.mos is not None]
    reuse = None
    if "fp32_preds" in state:
        reuse = (state["fp32_preds"], state["fp32_secs"])
    return run(bundle, rows, parse_batches(args.precision_batches), args.precision_videos,
               reuse, args.precision_duration, log=log)


def run_speed(args, bundle: Path, state: dict) -> dict:
    from internvqa.bench import suite_speed as sp

    clips = sp.parse_grid(args.speed_clips)
    vmaf = clips if args.vmaf_clips == "all" else (
        [] if args.vmaf_clips == "none" else sp.parse_grid(args.vmaf_clips))
    vmaf = [c for c in vmaf if c in clips]
    left = [c.name for c in clips if c not in vmaf]
    if left:
        state["cuts"].append(f"libvmaf not run on {', '.join(left)} (the slow engine: "
                             "`--vmaf-clips all` runs it on every clip)")
    folder = Path(args.work) / "bench" / "clips"
    gen_s = sp.ensure_clips(clips, vmaf, folder, log)
    records = []
    for c in clips:
        t0 = time.perf_counter()
        rec = sp.run_clip(c, folder, bundle, c in vmaf)
        e2e, vm = rec["e2e"].get("seconds"), (rec.get("vmaf") or {}).get("seconds")
        log(f"speed {c.name}: e2e {e2e if e2e is None else round(e2e, 2)} s, libvmaf "
            f"{vm if vm is None else round(vm, 2)} s ({time.perf_counter() - t0:.0f} s)")
        records.append(rec)
    fits = sp.growth(records)
    out = {"clips": records, "growth": fits, "generate_seconds": gen_s, "folder": str(folder),
           "grid": args.speed_clips, "vmaf_clips": [c.name for c in vmaf]}
    if args.plot:
        p = sp.plot(records, fits, Path(args.plot),
                    "InternVQA default model vs libvmaf: time vs pixel rate (10 s clips, CPU)")
        out["plot"] = str(p) if p else None
    return out


# ---- report ----------------------------------------------------------------------------
def _f(v: Any, d: int = 0) -> str:
    return "-" if v is None else f"{v:.{d}f}"


def render(report: dict[str, Any]) -> str:
    from internvqa.bench import suite_accuracy, suite_precision, suite_speed

    m = report["machine"]
    lines = [BEGIN, "## Benchmark suite: the shipped model, its peers, its speed (CPU)", "",
             f"Written by `./run bench` (`benchmarks/run_suite.py`) on {report['date']}, "
             f"{_f(report['wall_seconds'])} s wall. Command: `{report['invocation']}` "
             "(what `./run bench` runs after its set-up step). Raw "
             f"figures in `{report['out']}`.", "",
             f"- Machine: {m.get('cpu')} (lscpu), {m.get('cores')} cores, {m.get('ram_gb')} GB RAM;"
             f" {m.get('platform')}. GPU: {m.get('gpu')}.",
             "- Versions: " + ", ".join(f"{k} {v}" for k, v in
                                        {"python": m.get("python"), **m.get("versions", {})}.items()),
             f"- Model: `{report['bundle']}` ({report.get('model', '')}).",
             f"- Data: `{report['manifest']}`, split `{report['split']}`"
             + (f". **{report['fallback']}**" if report.get("fallback") else "") + "."]
    acc = report.get("accuracy")
    if acc:
        lines += ["", "### Accuracy on held-out sources", "",
                  f"{acc['videos']} test videos of {acc['sources']} sources never trained on"
                  + (f" ({acc['natural_videos']} videos / {acc['natural_sources']} sources of "
                     "natural camera content)" if acc["natural_videos"] else "")
                  + ", vs the manifest's labels (libvmaf VMAF on the "
                  f"standard corpus); train split {acc['train_videos']} videos. Every row through "
                  "`bench.accuracy`; PLCC and RMSE after the VQEG logistic fit; s/video is the "
                  "whole per-video cost (reading, decoding, scoring), one video at a time.", "",
                  *suite_accuracy.render(acc)]
    prec = report.get("precision")
    if prec:
        lines += ["", "### FP32 vs FP16 vs INT8 (ONNX Runtime CPU)", "",
                  f"Accuracy of each graph on the first {prec['videos']} test videos (not the "
                  f"whole split: it scores every video once per graph); the bundle's default is "
                  f"{prec.get('default_precision')}.", "", *suite_precision.render(prec)]
    speed = report.get("speed")
    if speed:
        lines += ["", "### Speed at the real clip spec", "",
                  "Generated clips (`bench_runtime.make_clips`: moving noise texture, 25 fps, "
                  "8-bit 4:2:0; libx264 veryfast CRF 23, libx265 ultrafast CRF 28, libsvtav1 "
                  "preset 11 CRF 40; FFV1 lossless references), cached in "
                  f"`{speed['folder']}` (generated in {_f(speed['generate_seconds'])} s this run). "
                  "One run per case, each in its own process (peak RSS = its VmHWM). End to end: "
                  "`Scorer.score_file` with its defaults after a warm-up on a 1 s clip; "
                  "decode-only and inference-only: the two stages of that pipeline run one "
                  "after the other in one process, each with the threads and batch "
                  "`score_file` gives it (decoding + preprocessing into model inputs, then the "
                  "engine on those inputs); libvmaf: `label_pair(clip, reference)` (decodes both files; VMAF + "
                  "NEG + PSNR + SSIM, every core).", "", *suite_speed.render(speed)]
        if speed.get("plot"):
            rel = os.path.relpath(speed["plot"], Path(report["results"]).parent)
            lines += ["", f"![time vs pixels per second]({rel})", "",
                      f"`{rel}`: time to score a 10 s clip against its pixel rate, per engine "
                      "(markers: codecs; lines: the fits above)."]
    if report.get("cuts"):
        lines += ["", "Cut from the full grid: " + "; ".join(report["cuts"]) + "."]
    lines += ["", f"Sections (1-minute load average at start / end, on {m.get('cores')} cores; "
                  "the suite's own encoder and ffmpeg threads count too): " + ", ".join(
        f"{s['name']} {s['status']} ({_f(s.get('seconds'))} s"
        + (f", load {s['load_average'][0]} / {s['load_average'][1]}" if s.get("load_average")
           else "") + ")"
        + (f": {s['error']}" if s.get("error") else "") for s in report["steps"]) + ".", END]
    return "\n".join(lines)


def save(report: dict[str, Any], args, started: float) -> None:
    from internvqa.runtime.atomic import atomic_write_json

    report["wall_seconds"] = time.perf_counter() - started
    atomic_write_json(args.out, report)
    write_results(render(report), Path(args.results))


def main(argv: list[str] | None = None) -> int:
    from internvqa.bench.suite_speed import DEFAULT_GRID, DEFAULT_VMAF

    work = work_dir()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=str(work), help="work folder (default $INTERNVQA_WORK or ./work)")
    p.add_argument("--manifest", default=STANDARD_MANIFEST,
                   help="corpus manifest with train/test splits (default: the standard corpus's "
                        "training manifest, %(default)s; falls back to the demo corpus when absent)")
    p.add_argument("--bundle", default=None, help="bundle to measure (default: the shipped model)")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=0, help="score only the first N test videos (0: all)")
    p.add_argument("--baseline-train", type=int, default=750,
                   help="train videos (a stride of the split) the features+ridge baseline is "
                        "fitted on when no saved fit exists (0: all)")
    p.add_argument("--vmaf-videos", type=int, default=20,
                   help="test videos libvmaf is timed on in the accuracy table")
    p.add_argument("--precision-videos", type=int, default=160)
    p.add_argument("--precision-batches", default="1,4,8,16", help="engine batches (crops)")
    p.add_argument("--precision-duration", type=float, default=1.5,
                   help="seconds of timing per batch size")
    p.add_argument("--speed-clips", default=DEFAULT_GRID,
                   help="clips CODEC@SIZE[/Ns], comma-separated (default: %(default)s)")
    p.add_argument("--vmaf-clips", default=DEFAULT_VMAF,
                   help="clips libvmaf also scores: 'all', 'none' or a list like --speed-clips "
                        "(default: %(default)s)")
    p.add_argument("--skip", default="", help=f"sections to leave out: {', '.join(SECTIONS)}")
    p.add_argument("--plot", default=str(PLOT), help="cost-curve PNG ('' for none)")
    p.add_argument("--results", default=str(RESULTS), help="markdown file to update")
    p.add_argument("--out", default=str(OUT / "suite.json"), help="suite JSON to write")
    args = p.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - set(SECTIONS):
        p.error(f"--skip: unknown section(s) {', '.join(sorted(skip - set(SECTIONS)))}")
    started = time.perf_counter()
    os.chdir(REPO)
    from internvqa.runtime.bundle import default_bundle, load_bundle

    bundle = Path(args.bundle) if args.bundle else default_bundle()
    if bundle is None or not (bundle / "bundle.json").is_file():
        p.error(f"no bundle to measure ({bundle}); give --bundle DIR")
    b = load_bundle(bundle)
    manifest, fallback = resolve_manifest(args.manifest, Path(args.work))
    invocation = " ".join([os.path.relpath(sys.executable, REPO) if sys.executable.startswith(
        str(REPO)) else "python", "benchmarks/run_suite.py",
        *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    report: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "invocation": invocation, "machine": machine(), "bundle": os.path.relpath(bundle, REPO),
        "model": f"{b.model_name}, {b.precision}, hybrid input" if b.meta.get("inputs") and
        len(b.meta["inputs"]) > 1 else f"{b.model_name}, {b.precision}",
        "manifest": str(manifest), "split": args.split, "fallback": fallback, "steps": [],
        "out": os.path.relpath(args.out, REPO), "results": str(args.results), "cuts": []}
    if args.limit:
        report["cuts"].append(f"accuracy on the first {args.limit} test videos only")
    if args.speed_clips != DEFAULT_GRID:
        report["cuts"].append(f"speed clips {args.speed_clips} instead of {DEFAULT_GRID}")
    state: dict[str, Any] = {"cuts": report["cuts"]}
    plan = [("accuracy", lambda: run_accuracy(args, manifest, bundle, state), manifest),
            ("precision", lambda: run_precision(args, manifest, bundle, state), manifest),
            ("speed", lambda: run_speed(args, bundle, state), True)]
    for name, fn, needs in plan:
        if name in skip:
            report["steps"].append({"name": name, "status": "skipped (--skip)"})
            continue
        if not needs:
            report["steps"].append({"name": name, "status": "skipped",
                                    "error": f"no manifest ({fallback})"})
            continue
        t0, load0 = time.perf_counter(), os.getloadavg()[0]
        log(f"{name}: start")
        try:
            report[name] = fn()
            step = {"name": name, "status": "ok"}
        except Exception as exc:  # noqa: BLE001 - recorded; the other sections still run
            traceback.print_exc()
            step = {"name": name, "status": "failed",
                    "error": " ".join(f"{type(exc).__name__}: {exc}".split())[:400]}
        step["seconds"] = round(time.perf_counter() - t0, 1)
        step["load_average"] = [round(load0, 1), round(os.getloadavg()[0], 1)]
        log(f"{name}: {step['status']} in {step['seconds']} s")
        report["steps"].append(step)
        save(report, args, started)  # after every section: an interrupted run keeps its figures
    save(report, args, started)
    log(f"wrote {args.out} and the suite section of {args.results} "
        f"({report['wall_seconds']:.0f} s)")
    return 1 if any(s["status"] == "failed" for s in report["steps"]) else 0


if __name__ == "__main__":
    sys.exit(main())
