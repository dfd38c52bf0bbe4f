"""`vqa-demo`: the shipped model at work, then the whole pipeline on the built-in corpus.

shipped model vs libvmaf on fresh encodes of a held-out photo (export/showcase.py) ->
corpus (vqa-data synth) -> ImageNet weights for the student (vqa-distill import) ->
student distilled from the shipped teacher (vqa-distill student --teacher default) ->
bundle FP32/FP16/INT8 (+ engine where TensorRT and a GPU exist; vqa-export) -> score a
held-out video (vqa-score) -> benchmark the shipped model, the student and peers (vqa-bench)
-> summary table.

The demo corpus holds out the sources the standard corpus holds out (camera and clock for
test, horse and gradient_checker for val), so neither the shipped teacher nor the student
has seen its test videos.

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


# The demo's student: ImageNet MobileNetV2 (pinned wheel), distilled from the shipped teacher.
STUDENT = "timm:mobilenetv2_100"
STUDENT_INIT = "mobilenetv2"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--fresh", is_flag=True, help="Delete the demo's work folder and rebuild everything.")
@click.option("--student", default=STUDENT, show_default=True, help="Student to distill and export.")
@click.option("--init", "init_name", default=STUDENT_INIT, show_default=True,
              help="`vqa-distill import` weights for the student ('none': random init).")
@click.option("--epochs", default=2, show_default=True, help="Student training epochs.")
@click.option("--calib-clips", default=32, show_default=True,
              help="INT8 calibration clips (the demo corpus is small; real use: >= 500).")
def main(fresh: bool, student: str, init_name: str, epochs: int, calib_clips: int) -> None:
    """Run the whole InternVQA pipeline on the built-in synthetic corpus (CPU, minutes)."""
    try:
        _demo(fresh, student, init_name, epochs, calib_clips)
    except InternVQAError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def _demo(fresh: bool, student: str, init_name: str, epochs: int, calib_clips: int) -> None:
    work = _work()
    if fresh:
        for sub in ("corpus/demo", "runs", "bundles", "demo", "cache"):
            shutil.rmtree(work / sub, ignore_errors=True)
    t_start = time.perf_counter()
    st = Stage(7)
    from internvqa.distill.checkpoint import default_teacher
    from internvqa.runtime.bundle import default_bundle

    shipped, teacher_dir = default_bundle(), default_teacher()
    if shipped is None or teacher_dir is None:
        raise UsageError("this install has no shipped default model/teacher to distil from")
    st.run("score fresh encodes of a held-out photo with the shipped model, beside libvmaf",
           [sys.executable, "-m", "internvqa.export.showcase"], done=False)
    corpus = work / "corpus" / "demo"
    manifest = corpus / "manifest.csv"
    st.run("build the synthetic corpus (libvmaf labels)",
           [_bin("vqa-data"), "synth", "--out", str(corpus), "--preset", "demo"],
           done=manifest.exists())

    init_dir = work / "pretrained" / init_name
    if init_name == "none":
        st.skip("import ImageNet weights for the student", "--init none")
    else:
        st.run(f"import ImageNet weights for the student ({init_name})",
               [_bin("vqa-distill"), "import", init_name, "--out", str(init_dir)],
               done=(init_dir / "import.json").exists())

    runs = work / "runs"
    tag = student.replace(":", "_").replace("/", "_")
    run_dir = runs / f"student-{tag}-from-shipped"
    argv = [_bin("vqa-distill"), "student", "--student", student, "--teacher", "default",
            "--mode", "frozen", "--views", "2", "--manifest", str(manifest), "--preset", "demo",
            "--epochs", str(epochs), "--out", str(run_dir)]
    if init_name != "none":
        argv += ["--init", str(init_dir)]
    st.run(f"distil the student {student} from the shipped teacher (frozen-teacher mode)",
           argv, done=(run_dir / "best" / "config.json").exists())
    student_ckpt = run_dir / "best"
    if not (student_ckpt / "config.json").exists():
        raise UsageError(f"no student checkpoint in {run_dir}")

    bundle = work / "bundles" / tag
    st.run("export FP32 / FP16 / INT8 (and a TensorRT engine where possible)",
           [_bin("vqa-export"), "--student", student, "--checkpoint", str(student_ckpt),
            "--int8", "--calib-clips", str(calib_clips), "--eval-videos", "20", "--out",
            str(bundle)],
           done=(bundle / "bundle.json").exists())

    out = work / "demo"
    out.mkdir(parents=True, exist_ok=True)
    video = _held_out_video(manifest)
    st.run(f"score a held-out video with the student ({video.name})",
           [_bin("vqa-score"), "--bundle", str(bundle), str(video), "--json", str(out / "score.json"),
            "--no-progress"],
           done=False)

    bench_json = out / "bench.json"
    st.run("benchmark shipped model vs student (FP32, INT8) vs peers on the held-out split "
           "(the student's PyTorch checkpoint equals its FP32 graph: export parity above)",
           [_bin("vqa-bench"), "--engine", str(shipped), "--engine", str(bundle),
            "--precision", "fp32,int8", "--data", str(manifest),
            "--peer", "brisque", "--batch", "1", "--duration", "1", "--min-iters", "3",
            "--quiet", "--json", str(bench_json), "--report", str(out / "report")],
           done=bench_json.exists() and bench_json.stat().st_mtime > (bundle / "bundle.json").stat().st_mtime)
    _summary(work, bundle, teacher_dir, student_ckpt, out, bench_json,
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
            acc.get("rd_order_accuracy"),
            (b1.get("latency_ms") or {}).get("median"),
            _size_mb(size) if size.exists() else None,
        ))
    for block in [*([bench["baseline"]] if bench.get("baseline") else []), *bench.get("peers", [])]:
        acc = block.get("accuracy") or {}
        label = block.get("label") or block.get("name", "?")
        rows.append((f"peer: {label}", acc.get("srcc"), acc.get("plcc_logistic"),
                     acc.get("rd_order_accuracy"), None, None))
    click.echo("")
    click.echo(f"{'model':<34} {'SRCC':>7} {'PLCC':>7} {'RD-ord':>7} {'ms/clip':>9} {'size MB':>8}")
    for name, srcc, plcc, rd, ms, mb in rows:
        f = lambda v, p: "-" if v is None else f"{v:.{p}f}"  # noqa: E731
        click.echo(f"{name[:34]:<34} {f(srcc, 3):>7} {f(plcc, 3):>7} {f(rd, 3):>7} {f(ms, 1):>9} "
                   f"{f(mb, 1):>8}")
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
