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
import shutil
import sys
import time
from pathlib import Path

import click

from internvqa.runtime.cli_common import Command
from internvqa.runtime.errors import InternVQAError, UsageError
from internvqa.runtime.manifest import read_manifest
from internvqa.runtime.workspace import (
    BEST,
    BUNDLE_FILE,
    CONFIG_FILE,
    WEIGHTS_FILE,
    bundle_dir,
    demo_corpus_dir,
    run_dir,
    work_dir,
)

from .stages import CURRENT, RAN, SKIPPED, StageRun, Stages, console_script, is_current


class DemoStages(Stages):
    """The demo's stages, numbered `[n/total]` on stderr; a failing stage ends the demo."""

    def __init__(self, total: int):
        super().__init__(self._print)
        self.total = total

    def _print(self, event: str, run: StageRun) -> None:
        head = f"[{run.index}/{self.total}] {run.name}"
        if run.status == SKIPPED:
            click.echo(f"{head}: skipped ({run.reason})", err=True)
        elif run.status == CURRENT:
            click.echo(f"{head}: already built, reusing", err=True)
        elif event == "start":
            argv = [Path(run.argv[0]).name, *run.argv[1:]]
            click.echo(f"{head}: {' '.join(argv)}", err=True)
        elif run.status == RAN:
            click.echo(f"{head}: done in {run.seconds:.0f} s", err=True)

    def run(self, name: str, argv: list[str], *, current: bool = False, **kw) -> StageRun:
        done = super().run(name, argv, current=current, **kw)
        if done.returncode not in (None, 0):
            raise InternVQAError(f"stage '{name}' failed with exit code {done.returncode}")
        return done


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


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--fresh", is_flag=True, help="Delete the demo's work folder and rebuild everything.")
@click.option("--student", default=STUDENT, show_default=True, help="Student to distill and export.")
@click.option("--init", "init_name", default=STUDENT_INIT, show_default=True,
              help="`vqa-distill import` weights for the student ('none': random init).")
@click.option("--epochs", default=2, show_default=True, help="Student training epochs.")
@click.option("--calib-clips", default=32, show_default=True,
              help="INT8 calibration clips (the demo corpus is small; real use: >= 500).")
def main(fresh: bool, student: str, init_name: str, epochs: int, calib_clips: int) -> None:
    """Run the whole InternVQA pipeline on the built-in synthetic corpus (CPU, minutes)."""
    _demo(fresh, student, init_name, epochs, calib_clips)


def _demo(fresh: bool, student: str, init_name: str, epochs: int, calib_clips: int) -> None:
    work = work_dir()
    if fresh:
        for sub in ("corpus/demo", "runs", "bundles", "demo", "cache"):
            shutil.rmtree(work / sub, ignore_errors=True)
    t_start = time.perf_counter()
    st = DemoStages(7)
    from internvqa.distill.checkpoint import default_teacher
    from internvqa.runtime.bundle import default_bundle

    shipped, teacher_dir = default_bundle(), default_teacher()
    if shipped is None or teacher_dir is None:
        raise UsageError("this install has no shipped default model/teacher to distil from")
    st.run("score fresh encodes of a held-out photo with the shipped model, beside libvmaf",
           [sys.executable, "-m", "internvqa.export.showcase"])
    corpus = demo_corpus_dir(work)
    manifest = corpus / "manifest.csv"
    st.run("build the synthetic corpus (libvmaf labels)",
           [*console_script("vqa-data"), "synth", "--out", str(corpus), "--preset", "demo"],
           current=manifest.exists())

    init_dir = work / "pretrained" / init_name
    if init_name == "none":
        st.skip("import ImageNet weights for the student", "--init none")
    else:
        st.run(f"import ImageNet weights for the student ({init_name})",
               [*console_script("vqa-distill"), "import", init_name, "--out", str(init_dir)],
               current=(init_dir / "import.json").exists())

    student_run = Path(f"{run_dir('student', student, work)}-from-shipped")
    argv = [*console_script("vqa-distill"), "student", "--student", student, "--teacher", "default",
            "--mode", "frozen", "--views", "2", "--manifest", str(manifest), "--preset", "demo",
            "--epochs", str(epochs), "--out", str(student_run)]
    if init_name != "none":
        argv += ["--init", str(init_dir)]
    st.run(f"distil the student {student} from the shipped teacher (frozen-teacher mode)",
           argv, current=(student_run / BEST / CONFIG_FILE).exists())
    student_ckpt = student_run / BEST
    if not (student_ckpt / CONFIG_FILE).exists():
        raise UsageError(f"no student checkpoint in {student_run}")

    bundle = bundle_dir(student, work)
    st.run("export FP32 / FP16 / INT8 (and a TensorRT engine where possible)",
           [*console_script("vqa-export"), "--student", student, "--checkpoint", str(student_ckpt),
            "--int8", "--calib-clips", str(calib_clips), "--eval-videos", "20", "--out",
            str(bundle)],
           current=(bundle / BUNDLE_FILE).exists())

    out = work / "demo"
    out.mkdir(parents=True, exist_ok=True)
    video = _held_out_video(manifest)
    st.run(f"score a held-out video with the student ({video.name})",
           [*console_script("vqa-score"), "--bundle", str(bundle), str(video), "--json", str(out / "score.json"),
            "--no-progress"])

    bench_json = out / "bench.json"
    st.run("benchmark shipped model vs student (FP32, INT8) vs peers on the held-out split "
           "(the student's PyTorch checkpoint equals its FP32 graph: export parity above)",
           [*console_script("vqa-bench"), "--engine", str(shipped), "--engine", str(bundle),
            "--precision", "fp32,int8", "--data", str(manifest),
            "--peer", "brisque", "--batch", "1", "--duration", "1", "--min-iters", "3",
            "--quiet", "--json", str(bench_json), "--report", str(out / "report")],
           current=is_current(bench_json, bundle / BUNDLE_FILE))
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
        size = model_file if model_file.exists() else path / WEIGHTS_FILE
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
