"""Label-free adaptation to a content family held out from training, over several seeds.

    .venv/bin/python benchmarks/adapt_family.py --manifest M --teacher DIR \
        [--family art] [--seeds 0,1,2] [--out DIR] [--threads 1] [--json out.json]

The question a farm asks: "my content is unlike the model's training data; does running
label-free distillation from the shipped teacher on my own unlabelled encodes help?"
For every seed the script picks sources (seeded, by scene so a picture never sits on two
sides), writes three manifests and trains three label-free students from one teacher with
the same number of optimiser steps:

- base:    N train sources not of the family;
- adapt:   base + K train sources of the family (their MOS columns blanked: unlabelled);
- control: base + K other train sources not of the family (also blanked), so "adapt minus
  control" is the family's effect, not the effect of more data.

Checkpoint choice uses V non-family val sources; the family test is every family source of
the val and test splits, which no run trains on. Every train row's labels are blanked, so
the students learn from the teacher's scores only. The table gives each seed, the mean and
the paired differences. Runs resume: a finished run (report.json) is not trained again,
an interrupted one goes on from its resume state.
Set INTERNVQA_WORK to a folder of its own when another job shares the window cache.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from internvqa.runtime.atomic import atomic_write_json
from internvqa.runtime.manifest import ManifestRow, read_manifest, write_manifest

ARMS = ("base", "adapt", "control")
LABEL_COLUMNS = ("vmaf", "vmaf_neg", "mos_frames", "psnr_y", "ssim")  # beside `mos`
BUILTIN = "builtin"  # the built-in sources (procedural, scikit-image) have no media kind


def media_kinds() -> dict[str, str]:
    """Media name -> kind ("photo", "art", "texture", "video") from the pinned registry."""
    from internvqa.distill.corpus.media import PACKAGES

    return {m.name: m.kind for pkg in PACKAGES for m in pkg.media}


def kind_of(source: str, kinds: dict[str, str]) -> str:
    """A corpus source ("name" or "name~pK", one path of a picture) -> its media kind."""
    return kinds.get(source.split("~", 1)[0], BUILTIN)


@dataclass(frozen=True)
class Plan:
    """One seed's source picks; `arms` maps an arm to its train sources."""

    seed: int
    arms: dict[str, tuple[str, ...]]
    val: tuple[str, ...]
    family_test: tuple[str, ...]


def _by_scene(rows: Sequence[ManifestRow], split: str, keep) -> dict[str, list[str]]:
    scenes: dict[str, set[str]] = {}
    for r in rows:
        if r.split == split and keep(r):
            scenes.setdefault(r.extra.get("scene") or r.source, set()).add(r.source)
    return {s: sorted(v) for s, v in sorted(scenes.items())}


def _pick(scenes: dict[str, list[str]], n: int, rng: np.random.Generator, what: str) -> list[str]:
    """n sources from n distinct scenes (one path per scene), seeded."""
    if len(scenes) < n:
        raise SystemExit(f"error: only {len(scenes)} scenes for {what}, {n} asked for")
    keys = list(scenes)
    order = rng.permutation(len(keys))[:n]
    return [scenes[keys[i]][int(rng.integers(len(scenes[keys[i]])))] for i in order]


def plan_sources(rows: Sequence[ManifestRow], family: str, seed: int, *, n_base: int, n_add: int,
                 n_val: int, kinds: dict[str, str]) -> Plan:
    """Seeded source picks for the three arms (see the module docstring)."""
    rng = np.random.default_rng(seed)
    fam = lambda r: kind_of(r.source, kinds) == family  # noqa: E731
    other = _by_scene(rows, "train", lambda r: not fam(r))
    picks = _pick(other, n_base + n_add, rng, f"non-{family} train sources")
    base, extra = picks[:n_base], picks[n_base:]
    added = _pick(_by_scene(rows, "train", fam), n_add, rng, f"{family} train sources")
    val = _pick(_by_scene(rows, "val", lambda r: not fam(r)), n_val, rng,
                f"non-{family} val sources")
    test = sorted({r.source for r in rows if r.split in ("val", "test") and fam(r)})
    if not test:
        raise SystemExit(f"error: no {family} sources in the val/test splits")
    return Plan(seed, {"base": tuple(base), "adapt": tuple(base + added),
                       "control": tuple(base + extra)}, tuple(val), tuple(test))


def arm_rows(rows: Sequence[ManifestRow], plan: Plan, arm: str) -> list[ManifestRow]:
    """The arm's manifest rows: its train sources unlabelled, val, family test as "test"."""
    train, val, test = set(plan.arms[arm]), set(plan.val), set(plan.family_test)
    out = []
    for r in rows:
        if r.split == "train" and r.source in train:
            blank = {c: "" for c in LABEL_COLUMNS if c in r.extra}
            out.append(replace(r, mos=None, extra={**r.extra, **blank}))
        elif r.split == "val" and r.source in val:
            out.append(r)
        elif r.split in ("val", "test") and r.source in test:
            out.append(replace(r, split="test"))
    return out


def arm_epochs(plan: Plan, epochs_added: int) -> dict[str, int]:
    """Epochs per arm so every arm takes about the same number of optimiser steps."""
    n_base, n_more = len(plan.arms["base"]), len(plan.arms["adapt"])
    return {"base": round(epochs_added * n_more / n_base), "adapt": epochs_added,
            "control": epochs_added}


def load_rows(manifest: Path, resolution: str) -> list[ManifestRow]:
    """The manifest's rows of one resolution tier (rows without one count as in it)."""
    return [r for r in read_manifest(manifest) if (r.resolution or resolution) == resolution]


def run_student(manifest: Path, out: Path, a, epochs: int, seed: int) -> dict:
    report = out / "report.json"
    if report.is_file():
        print(f"resume: {out} is done", flush=True)
        return json.loads(report.read_text())
    args = ["student", "--student", a.student, "--init", str(a.init), "--teacher", str(a.teacher),
            "--mode", "label-free", "--views", str(a.views), "--preset", "demo",
            "--manifest", str(manifest), "--epochs", str(epochs), "--seed", str(seed),
            "--threads", str(a.threads), "--out", str(out), "--no-progress"]
    if (out / "resume_state.pt").is_file():  # an interrupted run goes on where it stopped
        args.append("--resume")
    print("$ vqa-distill " + " ".join(args), flush=True)
    with open(out.with_suffix(".log"), "w") as log:
        res = subprocess.run([sys.executable, "-m", "internvqa.distill.cli", *args],
                             stdout=log, stderr=subprocess.STDOUT)
    if res.returncode:
        raise SystemExit(f"error: student run failed ({res.returncode}); see {out}.log")
    return json.loads(report.read_text())


def _metrics(report: dict) -> dict:
    s = report["student"]
    return {"val_srcc": s["val"]["srcc"], "family_srcc": s["test"]["srcc"],
            "family_plcc": s["test"].get("plcc_logistic", s["test"]["plcc_linear"]),
            "teacher_family_srcc": report["teacher"]["test"]["srcc"],
            "best_epoch": report["best_epoch"], "epochs": report["epochs"],
            "train_seconds": report["train_seconds"]}


def summarise(per_seed: dict[int, dict[str, dict]]) -> dict:
    """Mean and sample sd per arm, and the paired family-SRCC differences per seed."""
    out: dict = {"arms": {}, "paired": {}}
    for arm in ARMS:
        vals = [per_seed[s][arm]["family_srcc"] for s in per_seed]
        out["arms"][arm] = {"family_srcc_mean": statistics.fmean(vals),
                            "family_srcc_sd": statistics.stdev(vals) if len(vals) > 1 else 0.0}
    for a, b in (("adapt", "control"), ("adapt", "base"), ("control", "base")):
        d = [per_seed[s][a]["family_srcc"] - per_seed[s][b]["family_srcc"] for s in per_seed]
        out["paired"][f"{a}-{b}"] = {"per_seed": d, "mean": statistics.fmean(d),
                                     "positive": sum(x > 0 for x in d), "seeds": len(d)}
    return out


def print_table(per_seed: dict[int, dict[str, dict]], summary: dict) -> None:
    print(f"\n{'seed':<6}{'arm':<9}{'val SRCC':>10}{'family SRCC':>13}{'family PLCC':>13}"
          f"{'epochs':>8}{'train s':>9}")
    for s, arms in per_seed.items():
        for arm in ARMS:
            m = arms[arm]
            print(f"{s:<6}{arm:<9}{m['val_srcc']:>10.3f}{m['family_srcc']:>13.3f}"
                  f"{m['family_plcc']:>13.3f}{m['epochs']:>8}{m['train_seconds']:>9.0f}")
    for arm, m in summary["arms"].items():
        print(f"mean {arm:<8} family SRCC {m['family_srcc_mean']:.3f} "
              f"(sd {m['family_srcc_sd']:.3f})")
    for k, m in summary["paired"].items():
        print(f"paired {k:<15} mean {m['mean']:+.3f}, positive in {m['positive']} of "
              f"{m['seeds']} seeds: " + " ".join(f"{x:+.3f}" for x in m["per_seed"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--teacher", type=Path, required=True, help="Teacher checkpoint dir.")
    ap.add_argument("--family", default="art", help="Media kind held out (art, photo, ...).")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--resolution", default="640x360")
    ap.add_argument("--base-sources", type=int, default=20)
    ap.add_argument("--added-sources", type=int, default=10)
    ap.add_argument("--val-sources", type=int, default=4)
    ap.add_argument("--epochs-added", type=int, default=2,
                    help="Epochs of the adapt/control arms; base gets the same step count.")
    ap.add_argument("--student", default="timm:mobilenetv2_100")
    ap.add_argument("--init", type=Path, default=Path("work/pretrained/mobilenetv2"))
    ap.add_argument("--views", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("work/runs/adapt_family"))
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    rows = load_rows(a.manifest, a.resolution)
    kinds = media_kinds()
    a.out.mkdir(parents=True, exist_ok=True)
    per_seed: dict[int, dict[str, dict]] = {}
    for seed in (int(s) for s in a.seeds.split(",")):
        plan = plan_sources(rows, a.family, seed, n_base=a.base_sources,
                            n_add=a.added_sources, n_val=a.val_sources, kinds=kinds)
        epochs = arm_epochs(plan, a.epochs_added)
        per_seed[seed] = {}
        for arm in ARMS:
            manifest = a.out / f"seed{seed}-{arm}.csv"
            if not manifest.is_file():
                write_manifest(arm_rows(rows, plan, arm), manifest)
            report = run_student(manifest, a.out / f"seed{seed}-{arm}", a, epochs[arm], seed)
            per_seed[seed][arm] = _metrics(report)
        if a.json:  # after every seed, so an interrupted job keeps what it measured
            _write(a, per_seed)
    summary = summarise(per_seed)
    print_table(per_seed, summary)
    if a.json:
        _write(a, per_seed)


def _write(a, per_seed: dict) -> None:
    import torch

    atomic_write_json(a.json, {
        "date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "torch": torch.__version__, "manifest": str(a.manifest),
        "teacher": str(a.teacher), "family": a.family, "student": a.student,
        "sources": {"base": a.base_sources, "added": a.added_sources, "val": a.val_sources},
        "per_seed": {str(k): v for k, v in per_seed.items()},
        "summary": summarise(per_seed) if per_seed else {}})


if __name__ == "__main__":
    main()
