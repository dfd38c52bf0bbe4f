"""The demo-pipeline suite: every model and engine the demo pipeline trains, one table.

    python benchmarks/suite_demo.py --duration 3 --students timm:resnet18,timm:mobilenetv3_large_100

This was `./run bench` until the suite of the shipped model (`run_suite.py`) replaced it; it
trains what is missing (teacher, students, ablation) and so belongs to the demo, not to the
numbers users pick the toolkit by. It writes its own marked section of RESULTS.md.

What it does, in order (each step reuses what exists and builds only what is missing, by
calling the project's CLIs as subprocesses with argument lists):

1. corpus      `vqa-data synth --preset demo`            -> <work>/corpus/demo/manifest.csv
2. teacher     `vqa-distill teacher --preset demo`       -> <work>/runs/teacher-*/best
3. students    `vqa-distill student --student S`         -> <work>/runs/student-S/best
               vit_s (homologous) and the heterogeneous timm students, same preset budget
4. bundle      `vqa-export --student vit_s --int8`       -> <work>/bundles/latest
5. benches     `vqa-bench` once per engine, each in its own process (so peak RSS is its
               own): teacher PyTorch, every student PyTorch FP32, ONNX FP32/FP16/INT8 on
               the CPU; TensorRT plan and PyTorch CUDA only where a GPU exists (else
               skipped with the reason). The feature baseline is fitted once on the train
               split (saved to <work>/bench/baseline.json) and appears in every bench.
6. ablation    `benchmarks/ablation_distill.py --teacher <the teacher of step 2>`: labels,
               paper, frozen, label-free students of vit_s, same budget; its JSON is
               reused only if it was made from this teacher and manifest
7. report      `benchmarks/out/suite_demo.json` and the `## Demo-pipeline suite (CPU)`
               section of `benchmarks/RESULTS.md` (only the text between its markers is
               replaced, by `run_suite.write_results`): date, machine, versions, commands.

A step that cannot run (a CLI missing, a build that fails) is recorded as failed with its
error and the suite goes on; nothing is invented for it. Exit 0 when every step ran or was
skipped for a stated reason, 1 when a step failed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from internvqa.export.stages import FAILED, StageRun, Stages
from internvqa.export.stages import console_script as _tool  # the one console-script lookup
from internvqa.runtime.workspace import (
    BEST,
    BUNDLE_FILE,
    bundle_dir,
    latest_bundle_link,
    run_dir,
    teacher_checkpoints,
    work_dir,
)

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
RESULTS = REPO / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- suite-demo:begin -->", "<!-- suite-demo:end -->"
HETERO_DEFAULT = "timm:resnet18,timm:mobilenetv3_large_100"


class Suite:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.work = Path(args.work)
        self.steps: list[dict[str, Any]] = []
        self.commands: list[str] = []
        self.stages = Stages(self._report, cwd=REPO, timeout=args.step_timeout, ok_codes=(0, 1))

    # ---- plumbing ------------------------------------------------------------------
    def log(self, text: str) -> None:
        print(f"[suite] {text}", file=sys.stderr, flush=True)

    @staticmethod
    def _command(argv: list[str]) -> str:
        return shlex.join(argv).replace(f"{REPO}/", "")

    def _report(self, event: str, run: StageRun) -> None:
        if event == "start":
            self.log(f"{run.name}: {self._command(run.argv)}")
        elif run.status == FAILED:
            self.log(f"{run.name}: FAILED ({run.reason})")

    def run(self, name: str, argv: list[str], timeout: int | None = None) -> dict[str, Any]:
        """Run one command; record it (exact argv), its status and the tail of its output."""
        cmd = self._command(argv)
        self.commands.append(cmd)
        done = self.stages.run(name, argv, capture=True, capture_stderr=not self.args.verbose,
                               timeout=timeout)
        step = {"name": name, "command": cmd, "rc": done.returncode,
                "seconds": round(done.seconds, 1), "status": done.status}
        if done.status == FAILED:
            step["error"] = done.reason
        self.steps.append(step)
        return step

    def skip(self, name: str, reason: str) -> None:
        self.log(f"{name}: skipped: {reason}")
        self.steps.append({"name": name, "status": "skipped", "reason": reason})

    def reuse(self, name: str, path: Path) -> None:
        self.log(f"{name}: reusing {path}")
        self.steps.append({"name": name, "status": "reused", "path": str(path)})

    # ---- artefacts ---------------------------------------------------------------------
    @property
    def manifest(self) -> Path:
        return Path(self.args.corpus) / "manifest.csv"

    def ensure_corpus(self) -> bool:
        if self.manifest.is_file():
            self.reuse("corpus", self.manifest)
            return True
        self.run("corpus", [*_tool("vqa-data"), "synth", "--out", str(self.args.corpus),
                            "--preset", "demo"])
        return self.manifest.is_file()

    def teacher_dir(self) -> Path | None:
        hits = teacher_checkpoints(self.work)
        return hits[0] if hits else None

    def ensure_teacher(self) -> Path | None:
        if (t := self.teacher_dir()) is not None:
            self.reuse("teacher", t)
            return t
        self.run("teacher", [*_tool("vqa-distill"), "teacher", "--manifest", str(self.manifest),
                             "--preset", "demo"], timeout=self.args.train_timeout)
        return self.teacher_dir()

    def student_dir(self, student: str) -> Path:
        return run_dir("student", student, self.work) / BEST

    def ensure_student(self, student: str, teacher: Path | None) -> Path | None:
        d = self.student_dir(student)
        if (d / "config.json").is_file():
            self.reuse(f"student {student}", d)
            return d
        if teacher is None:
            self.skip(f"student {student}", "no teacher checkpoint to distil from")
            return None
        self.run(f"student {student}", [*_tool("vqa-distill"), "student", "--student", student,
                                        "--teacher", str(teacher), "--manifest",
                                        str(self.manifest), "--preset", "demo"],
                 timeout=self.args.train_timeout)
        return d if (d / "config.json").is_file() else None

    def ensure_ablation(self, teacher: Path | None) -> dict | None:
        """The four distillation modes, each from the suite's own teacher, same budget.

        A saved ablation JSON is reused only when it was made from this teacher and this
        manifest; anything else would pair the table with another run's models.
        """
        out = Path(self.args.work) / "bench" / "ablation_distill.json"
        if out.is_file():
            old = json.loads(out.read_text())
            if teacher is not None and old.get("teacher") == str(teacher) and \
                    old.get("manifest") == str(self.manifest):
                self.reuse("ablation", out)
                return old
        if teacher is None:
            self.skip("ablation", "no teacher checkpoint to distil from")
            return None
        if self.args.no_build:
            self.skip("ablation", "--no-build and no ablation JSON for this teacher")
            return None
        script = REPO / "benchmarks" / "ablation_distill.py"
        self.run("ablation", [sys.executable, str(script), "--manifest", str(self.manifest),
                              "--teacher", str(teacher), "--work", str(self.args.work),
                              "--json", str(out)], timeout=self.args.train_timeout)
        return json.loads(out.read_text()) if out.is_file() else None

    def bundle_dir(self) -> Path | None:
        for d in (latest_bundle_link(self.work), bundle_dir("vit_s", self.work)):
            if (d / BUNDLE_FILE).is_file():
                return d
        return None

    def ensure_bundle(self, student: Path | None) -> Path | None:
        if (b := self.bundle_dir()) is not None:
            self.reuse("bundle", b)
            return b
        if student is None:
            self.skip("bundle", "no vit_s student checkpoint to export")
            return None
        self.run("bundle", [*_tool("vqa-export"), "--student", "vit_s", "--int8"],
                 timeout=self.args.train_timeout)
        return self.bundle_dir()

    # ---- benches -----------------------------------------------------------------------
    def bench(self, key: str, engine: Path, precision: str | None = None,
              batches: str | None = None) -> dict[str, Any] | None:
        out = self.work / "bench" / f"{key}.json"
        argv = [sys.executable, "-m", "internvqa.bench.bench_cli", "--engine", str(engine),
                "--data", str(self.manifest), "--split", self.args.split,
                "--batch", batches or self.args.batch, "--duration", str(self.args.duration),
                "--baseline", str(self.work / "bench" / "baseline.json"),
                "--json", str(out), "--report", str(self.work / "bench" / "report" / key),
                "--quiet"]
        if precision:
            argv[5:5] = ["--precision", precision]
        if self.args.threads:
            argv += ["--threads", str(self.args.threads)]
        step = self.run(f"bench {key}", argv)
        if step["status"] != "ok" or not out.is_file():
            return None
        return json.loads(out.read_text())

    def baseline_only(self, bundle: Path | None, student: Path | None) -> dict | None:
        """No engine ran: evaluate the baseline alone, with the clip spec the model would use."""
        from internvqa.bench.baseline import evaluate_baseline
        from internvqa.runtime.clipspec import PRESETS, ClipSpec
        from internvqa.runtime.manifest import read_manifest

        spec, where = PRESETS["demo"], "the demo preset's clip spec"
        for meta_file in ([bundle / "bundle.json"] if bundle else []) + (
                [student / "config.json"] if student else []):
            spec = ClipSpec.from_dict(json.loads(meta_file.read_text())["clip_spec"])
            where = f"the clip spec of {meta_file}"
            break
        rows = read_manifest(self.manifest)
        test = [r for r in rows if r.split == self.args.split]
        self.commands.append(f"# baseline alone (no engine ran), sampling with {where}")
        t0 = time.perf_counter()
        block = evaluate_baseline(self.work / "bench" / "baseline.json", rows, test, spec,
                                  str(self.manifest), progress=True)
        self.steps.append({"name": "baseline", "status": "ok", "spec": where,
                           "seconds": round(time.perf_counter() - t0, 1)})
        return block

    def gpu_reason(self) -> str | None:
        """None when a CUDA GPU is usable, else why not."""
        if not (Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi")):
            return "no NVIDIA GPU on this machine"
        return None


# ---- summarising ---------------------------------------------------------------------------
def _timing(e: dict, batch: int) -> dict | None:
    return next((t for t in e.get("timing", []) if t["batch"] == batch), None)


def summarise(key: str, kind: str, res: dict) -> dict[str, Any]:
    (e,) = res["engines"]
    t1 = _timing(e, 1)
    best = max(e.get("timing", []), key=lambda t: t["clips_per_s"], default=None)
    acc = e.get("accuracy", {})
    rec = e.get("recorded_accuracy") or {}
    ta = e.get("teacher_agreement") or {}
    return {
        "key": key, "kind": kind, "model": e["model"], "precision": e["precision"],
        "backend": e["backend"],
        "b1_median_ms": t1["latency_ms"]["median"] if t1 else None,
        "b1_p99_ms": t1["latency_ms"]["p99"] if t1 else None,
        "best_clips_per_s": best["clips_per_s"] if best else None,
        "best_batch": best["batch"] if best else None,
        "e2e_s_per_video": e.get("e2e_s_per_video"),
        "srcc": acc.get("srcc"), "plcc_logistic": acc.get("plcc_logistic"),
        "rmse_logistic": acc.get("rmse_logistic"), "rd_order": acc.get("rd_order_accuracy"),
        "n": acc.get("n"), "recorded_srcc": rec.get("srcc"),
        "teacher_srcc": ta.get("srcc"), "teacher_mae": ta.get("mae"),
        "peak_rss_mb": e["memory"]["peak_rss_mb"],
        "skipped_batches": e.get("skipped_batches", []),
    }


def _f(v: Any, d: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{d}f}"
    return str(v)


def render_ablation(ab: dict[str, Any]) -> list[str]:
    """The ablation JSON as a markdown table (held-out SRCC/PLCC per mode) + speed-up."""
    lines = [f"Distillation ablation (`benchmarks/ablation_distill.py`, student {ab.get('student')}, "
             f"teacher `{ab.get('teacher')}`, seed {ab.get('seed')}; same epochs, batch and lr "
             "for every mode):", "",
             "| model | mode | val SRCC | test SRCC | val PLCC | test PLCC | s/epoch | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in ab.get("rows", []):
        lines.append(f"| {r.get('model')} | {r.get('mode')} | {_f(r.get('val_srcc'))} | "
                     f"{_f(r.get('test_srcc'))} | {_f(r.get('val_plcc_linear'))} | "
                     f"{_f(r.get('test_plcc_linear'))} | {_f(r.get('epoch_train_seconds'), 1)} | "
                     f"{_f(r.get('wall_seconds'), 0)} |")
    if "frozen_speedup_per_epoch" in ab:
        lines += ["", f"Frozen-teacher speed-up: x{ab['frozen_speedup_per_epoch']} per epoch, "
                      f"x{ab['frozen_speedup_with_cache']} including the one-time teacher cache."]
    return lines


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [BEGIN, "## Demo-pipeline suite (CPU)", "",
             f"Written by `benchmarks/suite_demo.py` on {report['date']} "
             f"(`{report.get('invocation', 'python benchmarks/suite_demo.py')}`, "
             f"{_f(report.get('wall_seconds'), 0)} s); raw figures in "
             f"`{report['out']}`, per-engine JSON and plots in `{report['work']}/bench/`.", "",
             f"- Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('ram_gb')} GB RAM; "
             f"{m.get('platform')}",
             "- Versions: " + ", ".join(f"{k} {v}" for k, v in
                                        {"python": m.get("python"), **m.get("versions", {})}.items()),
             f"- Data: `{report['manifest']}`, split `{report['split']}`", ""]
    rows = report["engines"]
    if rows:
        lines += ["| engine | backend | precision | b1 median ms | b1 p99 ms | best clips/s (batch) "
                  "| s/video e2e | SRCC | PLCC-log | RMSE-log | RD-order | SRCC in bundle.json "
                  "| vs teacher SRCC / MAE | peak RSS MB |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(
                f"| {r['key']} ({r['model']}) | {r['backend']} | {r['precision']} | "
                f"{_f(r['b1_median_ms'], 1)} | {_f(r['b1_p99_ms'], 1)} | "
                f"{_f(r['best_clips_per_s'], 1)} ({_f(r['best_batch'])}) | {_f(r['e2e_s_per_video'])} | "
                f"{_f(r['srcc'])} | {_f(r['plcc_logistic'])} | {_f(r['rmse_logistic'], 2)} | "
                f"{_f(r['rd_order'])} | {_f(r['recorded_srcc'])} | "
                f"{_f(r['teacher_srcc'])} / {_f(r['teacher_mae'], 2)} | {_f(r['peak_rss_mb'], 0)} |")
    base = report.get("baseline")
    if base:
        a = base.get("accuracy", {})
        lines += ["", f"Peer baseline (hand-crafted features + ridge, {base.get('note', '')}): "
                      f"SRCC {_f(a.get('srcc'))}, PLCC-log {_f(a.get('plcc_logistic'))}, "
                      f"RMSE-log {_f(a.get('rmse_logistic'), 2)}, RD-order "
                      f"{_f(a.get('rd_order_accuracy'))}, {_f(base.get('e2e_s_per_video'))} s/video."]
    if report.get("students"):
        lines += ["", "Homologous vs heterogeneous students (PyTorch FP32, same demo budget):", "",
                  "| student | kind | SRCC | PLCC-log | RD-order | b1 median ms |", "|---|---|---|---|---|---|"]
        for s in report["students"]:
            lines.append(f"| {s['student']} | {s['family']} | {_f(s['srcc'])} | "
                         f"{_f(s['plcc_logistic'])} | {_f(s['rd_order'])} | {_f(s['b1_median_ms'], 1)} |")
    for text in report.get("ratios", []):
        lines += ["", text]
    if report.get("ablation") is not None:
        lines += ["", *render_ablation(report["ablation"])]
    skipped = [s for s in report["steps"] if s["status"] in ("skipped", "failed")]
    if skipped:
        lines += ["", "Not run:"]
        lines += [f"- {s['name']}: {s['status']}: {s.get('reason') or s.get('error')}" for s in skipped]
    lines += ["", "Exact commands:", "", "```", *report["commands"], "```", END]
    return "\n".join(lines)


def write_results(section: str, path: Path = RESULTS) -> None:
    """Replace this suite's marked section of RESULTS.md (`run_suite.write_results`)."""
    from internvqa.bench.run_suite import write_results as write_marked

    write_marked(section, path, BEGIN, END)


# ---- main ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    work = work_dir()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=str(work), help="work folder (default $INTERNVQA_WORK or ./work)")
    p.add_argument("--corpus", default=None, help="corpus folder (default <work>/corpus/demo)")
    p.add_argument("--split", default="test")
    p.add_argument("--batch", default="1,8,32", help="engine batch sizes (ONNX engines)")
    p.add_argument("--duration", type=float, default=3.0, help="seconds of timing per batch size")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--students", default=HETERO_DEFAULT, help="heterogeneous students")
    p.add_argument("--no-build", action="store_true", help="only reuse artefacts; never train")
    p.add_argument("--step-timeout", type=int, default=3600)
    p.add_argument("--train-timeout", type=int, default=4 * 3600)
    p.add_argument("--verbose", action="store_true", help="show the child commands' stderr")
    p.add_argument("--results", default=str(RESULTS), help="markdown file to update")
    p.add_argument("--out", default=str(OUT / "suite_demo.json"), help="suite JSON to write")
    args = p.parse_args(argv)
    args.corpus = args.corpus or str(Path(args.work) / "corpus" / "demo")
    started = time.perf_counter()
    os.chdir(REPO)
    s = Suite(args)

    from internvqa.bench.bench import machine_info

    have_corpus = s.ensure_corpus()
    teacher = bundle = None
    hetero = [x.strip() for x in args.students.split(",") if x.strip()]
    students: dict[str, Path | None] = {}
    if have_corpus:
        if args.no_build:
            teacher, bundle = s.teacher_dir(), s.bundle_dir()
            students = {st: (s.student_dir(st) if (s.student_dir(st) / "config.json").is_file()
                             else None) for st in ["vit_s", *hetero]}
        else:
            teacher = s.ensure_teacher()
            students = {st: s.ensure_student(st, teacher) for st in ["vit_s", *hetero]}
            bundle = s.ensure_bundle(students["vit_s"])

    engines: list[dict] = []
    baseline = None
    gpu = s.gpu_reason()

    def add(key, kind, res):
        nonlocal baseline
        if res:
            engines.append(summarise(key, kind, res))
            baseline = baseline or res.get("baseline")

    if have_corpus and teacher is not None:
        add("teacher", "pytorch", s.bench("teacher-pytorch", teacher, batches="1"))
    elif have_corpus:
        s.skip("bench teacher-pytorch", "no teacher checkpoint")
    student_rows = []
    for st, d in students.items():
        if d is None:
            s.skip(f"bench student-{st}", "no checkpoint")
            continue
        key = f"student-{st.replace(':', '_')}-pytorch"
        res = s.bench(key, d, batches="1,8")
        add(key, "pytorch", res)
        if res:
            r = summarise(key, "pytorch", res)
            student_rows.append({"student": st, "family": "homologous" if st.startswith("vit_")
                                 else "heterogeneous", **r})
    if bundle is not None:
        have = json.loads((bundle / "bundle.json").read_text()).get("files", {})
        for prec, fname in (("fp32", "model.onnx"), ("fp16", "model.fp16.onnx"),
                            ("int8", "model.int8.onnx")):
            if fname in have:
                add(f"onnx-{prec}", "onnx", s.bench(f"onnx-{prec}", bundle, prec))
            else:
                s.skip(f"bench onnx-{prec}", f"bundle has no {fname}")
    else:
        s.skip("bench onnx", "no bundle")
    if gpu:
        s.skip("bench tensorrt fp16/int8", gpu)
        s.skip("bench pytorch cuda", gpu)
    elif bundle is not None:
        plans = [n for n in json.loads((bundle / "bundle.json").read_text()).get("files", {})
                 if n.endswith(".plan")]
        for n in plans:
            add(f"tensorrt-{Path(n).stem}", "tensorrt", s.bench(f"tensorrt-{Path(n).stem}", bundle / n))
        if not plans:
            s.skip("bench tensorrt", "bundle has no .plan (export on a GPU host with TensorRT)")

    if baseline is None and have_corpus:
        baseline = s.baseline_only(bundle, students.get("vit_s"))

    ablation = s.ensure_ablation(teacher) if have_corpus else None
    ratios = []
    by_key = {e["key"]: e for e in engines}
    t = by_key.get("teacher")
    for k in ("student-vit_s-pytorch", "onnx-fp32", "onnx-int8"):
        if t and k in by_key and t["b1_median_ms"] and by_key[k]["b1_median_ms"]:
            ratios.append(f"Teacher / {k} batch-1 latency: "
                          f"{t['b1_median_ms'] / by_key[k]['b1_median_ms']:.1f}x "
                          f"({t['b1_median_ms']:.1f} ms vs {by_key[k]['b1_median_ms']:.1f} ms).")

    report = {"date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
              "invocation": " ".join(["python benchmarks/suite_demo.py",
                                      *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
              "wall_seconds": time.perf_counter() - started,
              "machine": machine_info(), "manifest": str(s.manifest), "split": args.split,
              "engines": engines, "students": student_rows, "baseline": baseline,
              "ratios": ratios, "ablation": ablation, "steps": s.steps, "commands": s.commands,
              "gpu": gpu or "available", "work": str(args.work),
              "out": os.path.relpath(args.out, REPO)}
    if baseline:
        report["baseline"] = {k: baseline[k] for k in ("note", "accuracy", "e2e_s_per_video")
                              if k in baseline}
    from internvqa.runtime.atomic import atomic_write_json

    atomic_write_json(args.out, report)
    write_results(render(report), Path(args.results))
    s.log(f"wrote {args.out} and the suite section of {args.results}")
    return 1 if any(x["status"] == "failed" for x in s.steps) else 0


if __name__ == "__main__":
    sys.exit(main())
