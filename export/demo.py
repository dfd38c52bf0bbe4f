"""`vqa-demo`: the shipped model at work, then the whole pipeline on the built-in corpus.

shipped model vs libvmaf on fresh encodes of a held-out photo (export/showcase.py) ->
corpus (vqa-data synth) -> teacher (vqa-distill teacher) -> student vit_s (vqa-distill
student) -> bundle FP32/FP16/INT8 (+ engine where TensorRT and a GPU exist; vqa-export)
-> score a held-out video (vqa-score) -> benchmark (vqa-bench) -> summary table.

It lives in `internvqa.export` because it is the top of the stack (it may use every
layer). Each stage runs the real CLI as a subprocess with an argument list, exactly as a
user would, and is skipped when its artefact already exists, so a second run only prints
the summary (`--fresh` rebuilds everything).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

from internvqa.runtime.errors import InternVQAError, UsageError
from internvqa.runtime.manifest import read_manifest


def _work() -> Path:
    return Path(os.environ.get("INTERNVQA_WORK", "work"))


def _bin(name: str) -> str:
    """The console script next to this interpreter (the venv's), else on PATH."""
    cand = Path(sys.executable).parent / name
    return str(cand) if cand.exists() else (shutil.which(name) or name)


class Stage:
    """Prints a numbered stage header and its wall time."""

    def __init__(self, total: int):
        self.total, self.n, self.times = total, 0, {}

    def skip(self, name: str, why: str) -> None:
        self.n += 1
        click.echo(f"[{self.n}/{self.total}] {name}: skipped ({why})", err=True)
        self.times[name] = 0.0

    def run(self, name: str, argv: list[str], done: bool, *, capture: bool = False) -> str:
        self.n += 1
        head = f"[{self.n}/{self.total}] {name}"
        if done:
            click.echo(f"{head}: already built, reusing", err=True)
            self.times[name] = 0.0
            return ""
        click.echo(f"{head}: {' '.join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv))}", err=True)
        t0 = time.perf_counter()
        proc = subprocess.run(argv, stdout=subprocess.PIPE if capture else None, text=True)
        self.times[name] = time.perf_counter() - t0
        if proc.returncode not in (0,):
            raise InternVQAError(f"stage '{name}' failed with exit code {proc.returncode}")
        click.echo(f"{head}: done in {self.times[name]:.0f} s", err=True)
        return proc.stdout or ""


def _latest(pattern: str, base: Path) -> Path | None:
    found = sorted(base.glob(pattern), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _held_out_video(manifest: Path) -> Path:
    rows = read_manifest(manifest)
    test = [r for r in rows if r.split == "test"] or rows
    mid = sorted(test, key=lambda r: (r.mos if r.mos is not None else 0.0))[len(test) // 2]
    return Path(mid.abspath)


def _size_mb(path: Path) -> float:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
    return path.stat().st_size / 1e6


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--fresh", is_flag=True, help="Delete the demo's work folder and rebuild everything.")
@click.option("--student", default="vit_s", show_default=True, help="Student to distill and export.")
@click.option("--calib-clips", default=64, show_default=True,
              help="INT8 calibration clips (the demo corpus is small; real use: >= 500).")
def main(fresh: bool, student: str, calib_clips: int) -> None:
    """Run the whole InternVQA pipeline on the built-in synthetic corpus (CPU, minutes)."""
    try:
        _demo(fresh, student, calib_clips)
    except InternVQAError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def _demo(fresh: bool, student: str, calib_clips: int) -> None:
    work = _work()
    if fresh:
        for sub in ("corpus/demo", "runs", "bundles", "demo", "cache"):
            shutil.rmtree(work / sub, ignore_errors=True)
    t_start = time.perf_counter()
    st = Stage(7)
    from internvqa.runtime.bundle import default_bundle

    showcase = "score fresh encodes of a held-out photo with the shipped model, beside libvmaf"
    if default_bundle() is not None:
        st.run(showcase, [sys.executable, "-m", "internvqa.export.showcase"], done=False)
    else:
        st.skip(showcase, "this install has no shipped default model")
    corpus = work / "corpus" / "demo"
    manifest = corpus / "manifest.csv"
    st.run("build the synthetic corpus",
           [_bin("vqa-data"), "synth", "--out", str(corpus), "--preset", "demo"],
           done=manifest.exists())

    runs = work / "runs"
    teacher = _latest("teacher-*/best/config.json", runs)
    st.run("fine-tune the teacher on MOS",
           [_bin("vqa-distill"), "teacher", "--manifest", str(manifest), "--preset", "demo"],
           done=teacher is not None)
    teacher = _latest("teacher-*/best/config.json", runs)
    if teacher is None:
        raise UsageError(f"no teacher checkpoint under {runs}")
    teacher_dir = teacher.parent

    tag = student.replace(":", "_").replace("/", "_")
    student_ckpt = _latest(f"student-{tag}*/best/config.json", runs)
    st.run(f"distill the student {student}",
           [_bin("vqa-distill"), "student", "--student", student, "--teacher", str(teacher_dir),
            "--manifest", str(manifest), "--preset", "demo"],
           done=student_ckpt is not None)
    student_ckpt = _latest(f"student-{tag}*/best/config.json", runs)
    if student_ckpt is None:
        raise UsageError(f"no {student} checkpoint under {runs}")

    bundle = work / "bundles" / tag
    st.run("export FP32 / FP16 / INT8 (and a TensorRT engine where possible)",
           [_bin("vqa-export"), "--student", student, "--checkpoint", str(student_ckpt.parent),
            "--int8", "--calib-clips", str(calib_clips), "--out", str(bundle)],
           done=(bundle / "bundle.json").exists())

    out = work / "demo"
    out.mkdir(parents=True, exist_ok=True)
    video = _held_out_video(manifest)
    st.run(f"score a held-out video ({video.name})",
           [_bin("vqa-score"), "--bundle", str(bundle), str(video), "--json", str(out / "score.json"),
            "--no-progress"],
           done=False)

    bench_json = out / "bench.json"
    st.run("benchmark teacher vs student vs INT8 on the held-out split",
           [_bin("vqa-bench"), "--engine", str(teacher_dir), "--engine", str(student_ckpt.parent),
            "--engine", str(bundle), "--precision", "fp32,int8", "--data", str(manifest),
            "--batch", "1", "--duration", "1", "--min-iters", "3", "--quiet",
            "--json", str(bench_json), "--report", str(out / "report")],
           done=False)
    _summary(work, bundle, teacher_dir, student_ckpt.parent, out, bench_json,
             time.perf_counter() - t_start)


def _summary(work: Path, bundle: Path, teacher: Path, student: Path, out: Path,
             bench_json: Path, total_s: float) -> None:
    bench = json.loads(bench_json.read_text())
    score = json.loads((out / "score.json").read_text())
    rows = []
    for eng in bench.get("engines", []):
        acc = eng.get("accuracy") or {}
        b1 = next((t for t in eng.get("timing", []) if t.get("batch") == 1), {})
        path = Path(eng.get("engine", ""))
        model_file = path / f"model{'' if eng.get('precision') == 'fp32' else '.' + str(eng.get('precision'))}.onnx"
        size = model_file if model_file.exists() else path / "model.safetensors"
        rows.append((
            eng.get("label", "?"),
            acc.get("srcc"),
            acc.get("plcc_logistic"),
            (b1.get("latency_ms") or {}).get("median"),
            _size_mb(size) if size.exists() else None,
        ))
    click.echo("")
    click.echo(f"{'model':<34} {'SRCC':>7} {'PLCC':>7} {'ms/clip':>9} {'size MB':>8}")
    for name, srcc, plcc, ms, mb in rows:
        f = lambda v, p: "-" if v is None else f"{v:.{p}f}"  # noqa: E731
        click.echo(f"{name[:34]:<34} {f(srcc, 3):>7} {f(plcc, 3):>7} {f(ms, 1):>9} {f(mb, 1):>8}")
    pooled = score.get("pooled_metrics", {}).get("internvqa", {})
    click.echo("")
    click.echo(f"held-out video scored: {score.get('input', {}).get('name', '?')} -> "
               f"mean {pooled.get('mean', float('nan')):.1f} / 100")
    click.echo(f"artefacts: corpus {work / 'corpus' / 'demo'}, teacher {teacher}, "
               f"student {student}, bundle {bundle} ({_size_mb(bundle):.0f} MB), "
               f"report {out / 'report'}")
    click.echo(f"total time: {total_s:.0f} s")


if __name__ == "__main__":  # pragma: no cover
    main()
