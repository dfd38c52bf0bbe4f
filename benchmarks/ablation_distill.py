"""Distillation ablation: labels-only vs paper vs frozen vs label-free, same budget and seed.

    .venv/bin/python benchmarks/ablation_distill.py [--manifest M] [--teacher DIR]
        [--student vit_s] [--work DIR] [--threads 2] [--json out.json]

Without `--manifest` it builds the demo corpus (`vqa-data synth --preset demo`); without
`--teacher` it fine-tunes the demo teacher first. Every student run uses the demo preset's
epochs, batch and lr (override with --epochs/--lr), the same seed and the same manifest.
Prints one table (held-out SRCC/PLCC per split) plus the frozen-teacher speed-up: mean
training seconds per epoch in paper mode over frozen mode, and the same ratio with the
one-time teacher caching included.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from internvqa.runtime.workspace import BEST, WORK_ENV, runs_dir, work_dir

MODES = ("labels", "paper", "frozen", "label-free")


def run_cli(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "internvqa.distill.cli", *args]
    print("$ vqa-distill " + " ".join(args), flush=True)
    res = subprocess.run(cmd, env=env)
    if res.returncode:
        sys.exit(f"error: command failed ({res.returncode}): {' '.join(args)}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path)
    ap.add_argument("--teacher", type=Path, help="Fine-tuned teacher checkpoint dir.")
    ap.add_argument("--student", default="vit_s")
    ap.add_argument("--work", type=Path, default=work_dir())
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--json", type=Path, help="Also write the results as JSON here.")
    a = ap.parse_args()
    env = {**os.environ, WORK_ENV: str(a.work)}
    common = ["--threads", str(a.threads), "--seed", str(a.seed), "--no-progress"]
    timings: dict[str, float] = {}
    if a.manifest is None:
        from internvqa.distill.corpus.synth import build_corpus

        t0 = time.perf_counter()
        a.manifest = Path(build_corpus(a.work / "corpus-demo", preset="demo", seed=a.seed))
        timings["corpus"] = time.perf_counter() - t0
    if a.teacher is None:
        out = runs_dir(a.work) / "ablation" / "teacher"
        timings["teacher"] = run_cli(["teacher", "--manifest", str(a.manifest), "--preset",
                                      "demo", "--out", str(out), *common], env)
        a.teacher = out / BEST
    budget = []
    if a.epochs:
        budget += ["--epochs", str(a.epochs)]
    if a.lr:
        budget += ["--lr", str(a.lr)]
    reports = {}
    for mode in a.modes.split(","):
        out = a.work / "runs" / "ablation" / f"student-{a.student}-{mode}"
        timings[mode] = run_cli(["student", "--student", a.student, "--teacher", str(a.teacher),
                                 "--mode", mode, "--manifest", str(a.manifest), "--out",
                                 str(out), *budget, *common], env)
        reports[mode] = json.loads((out / "report.json").read_text())
    result = summarise(reports, timings, a)
    print_result(result)
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")


def summarise(reports: dict, timings: dict, a) -> dict:
    import torch

    any_report = next(iter(reports.values()))
    rows = [{"model": "teacher", "mode": "-", **_split_metrics(any_report["teacher"])}]
    for mode, r in reports.items():
        rows.append({"model": a.student, "mode": mode, **_split_metrics(r["student"]),
                     "epoch_train_seconds": r["epoch_train_seconds"],
                     "teacher_cache_seconds": r["teacher_cache_seconds"],
                     "wall_seconds": round(timings[mode], 1)})
    out = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
           "cpus": os.cpu_count(), "torch": torch.__version__, "manifest": str(a.manifest),
           "teacher": str(a.teacher), "student": a.student, "seed": a.seed, "rows": rows,
           "timings_seconds": {k: round(v, 1) for k, v in timings.items()}}
    if "paper" in reports and "frozen" in reports:
        p, f = reports["paper"], reports["frozen"]
        epochs = p["epochs"]
        out["frozen_speedup_per_epoch"] = round(p["epoch_train_seconds"] / f["epoch_train_seconds"], 2)
        total_f = f["epoch_train_seconds"] * epochs + f["teacher_cache_seconds"]
        out["frozen_speedup_with_cache"] = round(p["epoch_train_seconds"] * epochs / total_f, 2)
    return out


def _split_metrics(by_split: dict) -> dict:
    out = {}
    for split, m in by_split.items():
        for k in ("srcc", "plcc_linear"):
            if k in m:
                out[f"{split}_{k}"] = round(m[k], 4)
    return out


def print_result(r: dict) -> None:
    cols = ["val_srcc", "test_srcc", "val_plcc_linear", "test_plcc_linear", "epoch_train_seconds"]
    print(f"\n{'model':<10}{'mode':<12}" + "".join(f"{c:>20}" for c in cols))
    for row in r["rows"]:
        cells = "".join(f"{row[c]:>20}" if c in row and row[c] is not None else f"{'-':>20}"
                        for c in cols)
        print(f"{row['model']:<10}{row['mode']:<12}{cells}")
    if "frozen_speedup_per_epoch" in r:
        print(f"\nfrozen-teacher speed-up: x{r['frozen_speedup_per_epoch']} per epoch, "
              f"x{r['frozen_speedup_with_cache']} including the one-time teacher cache")


if __name__ == "__main__":
    main()
