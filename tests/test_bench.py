"""vqa-bench: latency statistics, engine timing, JSON fields, torch-free run, report, errors."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bench_corpus import make_ladder
from click.testing import CliRunner

from internvqa.bench import bench as b
from internvqa.runtime.errors import UsageError

REPO = Path(__file__).resolve().parents[1]


# ---- statistics on known numbers ---------------------------------------------------------
def test_latency_stats_on_1_to_100_ms():
    samples = [i / 1000 for i in range(100, 0, -1)]  # 100 ms ... 1 ms, unsorted
    s = b.latency_stats(samples)
    assert s["min"] == pytest.approx(1.0)
    assert s["mean"] == pytest.approx(50.5)
    assert s["median"] == pytest.approx(50.5)
    assert (s["p90"], s["p95"], s["p99"]) == pytest.approx((90.0, 95.0, 99.0))


def test_nearest_rank_matches_numpy_inverted_cdf():
    rng = np.random.default_rng(1)
    for n in (1, 2, 3, 7, 10, 33, 101):
        x = np.sort(rng.exponential(5.0, n))
        for p in (50, 90, 95, 99):
            assert b.nearest_rank(x, p) == pytest.approx(np.percentile(x, p, method="inverted_cdf"))
    assert b.nearest_rank([10.0, 20.0, 30.0], 50) == 20.0
    assert b.nearest_rank([10.0, 20.0, 30.0], 99) == 30.0
    with pytest.raises(ValueError):
        b.latency_stats([])


def test_throughput_counts_clips_and_frames():
    t = b.throughput(batch=8, seconds=[0.5, 0.5, 0.5, 0.5], frames_per_clip=4)
    assert t["clips_per_s"] == pytest.approx(16.0)
    assert t["frames_per_s"] == pytest.approx(64.0)


def test_parse_batches():
    assert b.parse_batches("32,1,8,8") == [1, 8, 32]
    for bad in ("", "0,1", "a,b"):
        with pytest.raises(UsageError):
            b.parse_batches(bad)


class _FakeBackend:
    def __init__(self):
        self.calls = []

    def run(self, x):
        self.calls.append(x.shape[0])
        return np.zeros(x.shape[0], np.float32), np.zeros((x.shape[0], 768), np.float32)


def test_time_backend_warms_up_then_times_until_count_and_duration():
    ticks = iter(np.arange(0, 1000, 0.25))  # every clock read advances 0.25 s
    backend = _FakeBackend()
    pool = np.zeros((3, 3, 2, 4, 4), np.float32)
    r = b.time_backend(backend, pool, batch=5, frames_per_clip=2, warmup=2, min_iters=3,
                       duration=2.0, clock=lambda: float(next(ticks)))
    assert backend.calls[:2] == [5, 5]  # warm-up calls at the asked batch (pool tiled)
    assert r["iterations"] == len(backend.calls) - 2
    # each call is timed as 0.25 s; timing stops once >= 3 calls and >= 2.0 s have passed
    assert r["latency_ms"]["min"] == r["latency_ms"]["p99"] == pytest.approx(250.0)
    assert r["iterations"] >= 3 and r["iterations"] * 0.5 >= 2.0
    assert r["clips_per_s"] == pytest.approx(5 / 0.25)


# ---- a real tiny bundle and corpus ---------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bench-corpus")
    return make_ladder(d, {"a": "train", "b": "train", "c": "test", "d": "test"})


def _scores_with_scorer(bundle: Path, manifest: Path, split: str = "test") -> dict[str, float]:
    from internvqa.runtime.manifest import read_manifest
    from internvqa.runtime.scorer import Scorer

    scorer = Scorer(bundle, precision="fp32")
    return {r.path: scorer.score_file(r.abspath).score
            for r in read_manifest(manifest) if r.split == split}


# The exported model: a tiny InternVideo2 whose head is scaled up (a fresh head is ~1e-3
# wide), so its scores spread and rank the videos; an unbounded scale, so none is clipped.
EXPORT_SPEC = {"num_frames": 4, "frame_stride": 2, "size": 56, "resize_short": 64,
               "crop": "center"}
EXPORT_SCALE = {"name": "raw", "multiplier": 1.0, "offset": 0.0, "higher_is_better": True}


@pytest.fixture(scope="module")
def bundle_with_record(corpus, tmp_path_factory) -> Path:
    """A bundle written by the real exporter (`vqa-export` on a tiny checkpoint trained on
    nothing), so the accuracy figures 'recorded at export' in its bundle.json are the
    exporter's own; its source checkpoint's provenance names a teacher run holding
    teacher_predictions.csv."""
    import torch

    from internvqa.distill.checkpoint import save_checkpoint
    from internvqa.distill.models import create_model
    from internvqa.export.cli import main as export_main
    from internvqa.runtime.manifest import read_manifest

    root = tmp_path_factory.mktemp("runs")
    teacher = root / "teacher-tiny" / "best"
    torch.manual_seed(0)
    model = create_model("vit_tiny", num_frames=4, img_size=56).eval()
    with torch.no_grad():
        model.head.weight.normal_(0.0, 0.05)
    student = save_checkpoint(root / "student-tiny" / "best", model, EXPORT_SPEC, EXPORT_SCALE,
                              {"manifest": str(corpus), "teacher_checkpoint": str(teacher)})
    res = CliRunner().invoke(export_main, [
        "--checkpoint", str(student), "--manifest", str(corpus), "--out", str(root / "bundle"),
        "--parity-clips", "2", "--latency-runs", "0", "--no-engine"],
        env={"INTERNVQA_WORK": str(root / "work")}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    bundle = root / "bundle"
    preds = _scores_with_scorer(bundle, corpus)
    rows = [r for r in read_manifest(corpus) if r.split == "test"]
    teacher.mkdir(parents=True)
    with open(teacher / "teacher_predictions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "mos", "pred", "split"])
        for r in rows:  # a teacher that agrees in rank but not in scale
            w.writerow([str(r.abspath), r.mos, 2 * preds[r.path] + 5, r.split])
    return bundle


def _run_cli(args: list[str], check_torch_free: bool = False) -> subprocess.CompletedProcess:
    code = ("import sys\nfrom internvqa.bench.bench_cli import bench\n"
            "from internvqa.runtime.cli_common import run_command\n"
            f"rc = run_command(bench, {args!r})\n")
    if check_torch_free:
        code += ("bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'timm', 'onnx'))\n"
                 "print('HEAVY_MODULES=' + ','.join(bad), file=sys.stderr)\n")
    code += "sys.exit(rc)\n"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=240, cwd=REPO, env=env)


@pytest.fixture(scope="module")
def cli_run(bundle_with_record, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-out")
    args = ["--engine", str(bundle_with_record), "--data", str(corpus), "--batch", "1,2",
            "--warmup", "1", "--min-iters", "3", "--duration", "0", "--threads", "1",
            "--json", str(out / "bench.json"), "--report", str(out / "report"), "--quiet"]
    proc = _run_cli(args, check_torch_free=True)
    return proc, out


def test_cli_runs_torch_free_on_an_onnx_bundle(cli_run):
    proc, _ = cli_run
    assert proc.returncode == 0, proc.stderr
    heavy = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY_MODULES=")]
    assert heavy == ["HEAVY_MODULES="], heavy


def test_json_fields_and_scores_match_vqa_score(cli_run, bundle_with_record, corpus):
    _, out = cli_run
    res = json.loads((out / "bench.json").read_text())
    assert res["data"] == {"manifest": str(corpus), "split": "test", "videos": 6}
    assert {"python", "cpu", "cores", "versions"} <= set(res["machine"])
    (eng,) = res["engines"]
    assert eng["precision"] == "fp32" and eng["backend"] == "onnxruntime"
    assert [t["batch"] for t in eng["timing"]] == [1, 2]
    for t in eng["timing"]:
        assert t["iterations"] >= 3
        lat = t["latency_ms"]
        assert lat["min"] <= lat["median"] <= lat["p90"] <= lat["p95"] <= lat["p99"]
        assert t["frames_per_s"] == pytest.approx(t["clips_per_s"] * 4)  # T = 4
    assert eng["memory"]["peak_rss_mb"] > 10
    # Per-video scores are exactly what the runtime's Scorer (vqa-score) gives.
    want = _scores_with_scorer(bundle_with_record, corpus)
    got = {s["path"]: s["pred"] for s in eng["scores"]}
    assert got == pytest.approx(want, abs=1e-9)
    # Measured accuracy equals the figures `vqa-export` recorded in bundle.json (its held-out
    # split, scored by the same Scorer path), shown side by side.
    recorded = json.loads((bundle_with_record / "bundle.json").read_text())["accuracy"]
    assert (recorded["split"], recorded["videos"]) == ("test", 6)
    acc, rec = eng["accuracy"], eng["recorded_accuracy"]
    assert rec == recorded["fp32"]
    assert np.ptp(list(want.values())) > 1e-3  # the scores spread: the ranks mean something
    for k in ("srcc", "plcc", "plcc_linear"):
        assert acc[k] == pytest.approx(rec[k], abs=1e-9), k
    assert acc["n"] == 6 and acc["rd_order_pairs"] == 4
    # Teacher found through the source checkpoint's provenance; rank-identical, offset known.
    ta = eng["teacher_agreement"]
    assert "provenance" in ta["source"]
    assert ta["srcc"] == pytest.approx(1.0) and ta["plcc"] == pytest.approx(1.0)
    assert ta["mae"] == pytest.approx(np.mean([abs(v + 5) for v in want.values()]))
    # The baseline is in every result, evaluated on the same videos.
    base = res["baseline"]
    assert base["accuracy"]["n"] == 6 and base["model"]["train"]["n"] == 6
    assert len(base["scores"]) == 6


def test_table_shows_measured_recorded_baseline_and_teacher(cli_run):
    proc, _ = cli_run
    out = proc.stdout
    for text in ("p99", "clips/s", "frames/s", "measured", "bundle.json",
                 "baseline: features+ridge", "Agreement with the teacher"):
        assert text in out, text


def test_report_writes_pngs(cli_run):
    _, out = cli_run
    pngs = sorted((out / "report").glob("*.png"))
    assert {p.name for p in pngs} >= {"scatter_baseline.png"}
    assert len(pngs) == 2  # one scatter per engine + the baseline's
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000


def test_frontier_plot_with_two_engines(bundle_with_record, corpus, tmp_path):
    """Two engines (the file and the dir) -> a speed vs accuracy frontier; JSON to stdout."""
    proc = _run_cli(["--engine", str(bundle_with_record), "--engine",
                     str(bundle_with_record / "model.onnx"), "--data", str(corpus), "--batch", "1",
                     "--min-iters", "1", "--duration", "0", "--no-baseline", "--quiet",
                     "--json", "--report", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)  # stdout is only the JSON; the table went to stderr
    assert len(res["engines"]) == 2 and "baseline" not in res
    assert "p99" in proc.stderr
    assert (tmp_path / "frontier.png").is_file()


def test_batches_above_the_engines_max_are_skipped(runtime_bundle, corpus, monkeypatch):
    from internvqa.runtime.manifest import read_manifest

    real_open = b.open_engine

    def capped(*a, **kw):
        scorer = real_open(*a, **kw)
        scorer.backend.max_batch = 2
        return scorer

    monkeypatch.setattr(b, "open_engine", capped)
    opts = b.BenchOptions(batches=[1, 2, 8], warmup=0, min_iters=1, duration=0,
                          accuracy=False, progress=False)
    r = b.bench_engine(b.EngineRef(Path(runtime_bundle)), read_manifest(corpus)[:1], opts)
    assert [t["batch"] for t in r["timing"]] == [1, 2]
    assert r["skipped_batches"] == [{"batch": 8, "reason": "above the engine's max batch 2"}]


@pytest.mark.parametrize("kind", ["missing", "tampered", "not_a_bundle"])
def test_bad_engine_exits_2_with_one_line(kind, runtime_bundle, corpus, tmp_path):
    if kind == "missing":
        engine = tmp_path / "nope"
    elif kind == "not_a_bundle":
        engine = tmp_path
    else:
        engine = tmp_path / "b"
        shutil.copytree(runtime_bundle, engine)
        meta = json.loads((engine / "bundle.json").read_text())
        meta["score_scale"]["multiplier"] = 1.0
        (engine / "bundle.json").write_text(json.dumps(meta))
    proc = _run_cli(["--engine", str(engine), "--data", str(corpus), "--quiet"])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr


def test_suite_replaces_only_its_own_results_section(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_suite", REPO / "benchmarks" / "run_suite.py")
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n\n## Models\nkeep me\n")
    suite.write_results(f"{suite.BEGIN}\n## Benchmark suite (CPU)\nfirst\n{suite.END}", md)
    md.write_text(md.read_text() + "\n## Later section\nkeep me too\n")
    suite.write_results(f"{suite.BEGIN}\n## Benchmark suite (CPU)\nsecond\n{suite.END}", md)
    text = md.read_text()
    assert "keep me\n" in text and "keep me too" in text
    assert "second" in text and "first" not in text and text.count(suite.BEGIN) == 1


def _load_suite():
    """The demo-pipeline suite (teacher, students, ablation): `benchmarks/suite_demo.py`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("suite_demo", REPO / "benchmarks" / "suite_demo.py")
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    return suite


def test_suite_ablation_table_has_every_mode_and_the_speedup():
    suite = _load_suite()
    ab = {"student": "vit_s", "teacher": "w/t/best", "seed": 0,
          "rows": [{"model": "teacher", "mode": "-", "val_srcc": 0.9, "test_srcc": 0.88},
                   *({"model": "vit_s", "mode": m, "val_srcc": 0.1 * i, "test_srcc": 0.2 * i,
                      "epoch_train_seconds": 3.0 + i, "wall_seconds": 40 + i}
                     for i, m in enumerate(("labels", "paper", "frozen", "label-free")))],
          "frozen_speedup_per_epoch": 1.5, "frozen_speedup_with_cache": 1.2}
    lines = suite.render_ablation(ab)
    body = [line for line in lines if line.startswith("| vit_s")]
    assert [line.split(" | ")[1] for line in body] == ["labels", "paper", "frozen", "label-free"]
    assert "| 0.400 |" in body[2] and "x1.5 per epoch" in "\n".join(lines)


def test_suite_reuses_an_ablation_only_from_the_same_teacher(tmp_path):
    import argparse

    suite = _load_suite()
    args = argparse.Namespace(work=str(tmp_path), corpus=str(tmp_path / "c"), no_build=True,
                              train_timeout=1, step_timeout=1, verbose=False)
    s = suite.Suite(args)
    (tmp_path / "bench").mkdir()
    saved = {"teacher": str(tmp_path / "t1"), "manifest": str(s.manifest), "rows": []}
    (tmp_path / "bench" / "ablation_distill.json").write_text(json.dumps(saved))
    assert s.ensure_ablation(tmp_path / "t1") == saved
    assert s.ensure_ablation(tmp_path / "t2") is None  # another teacher: not reused
    assert s.steps[-1]["status"] == "skipped"


def test_bench_times_an_onnx_engine_on_every_core(runtime_bundle):
    from internvqa.bench.bench import open_engine, resolve_engines
    from internvqa.runtime.scorer import available_cores

    (ref,) = resolve_engines([runtime_bundle], None)
    scorer = open_engine(ref, "cpu")
    opts = scorer.backend.session.get_session_options()
    assert opts.intra_op_num_threads == available_cores()
    assert open_engine(ref, "cpu", threads=1).backend.session.get_session_options().intra_op_num_threads == 1


def test_two_runs_of_one_architecture_get_distinct_labels(bundle_with_record, tmp_path):
    """Copies of one bundle in two places would share a label; each row must say which."""
    import shutil

    copies = [shutil.copytree(bundle_with_record, tmp_path / run / bundle_with_record.name)
              for run in ("run_a", "run_b")]
    proc = _run_cli(["--engine", str(copies[0]), "--engine", str(copies[1]), "--batch", "1",
                     "--min-iters", "1", "--duration", "0", "--quiet", "--json"])
    assert proc.returncode == 0, proc.stderr
    labels = [e["label"] for e in json.loads(proc.stdout)["engines"]]
    assert len(set(labels)) == 2, labels
    assert all(str(c) in label for c, label in zip(copies, labels, strict=True))


def test_teacher_row_is_shown_once_per_teacher_not_per_engine():
    from internvqa.bench.bench_report import format_table

    acc = {"srcc": 0.5, "krcc": 0.4, "plcc": 0.5, "n": 60}
    agree = {"source": "t.csv", "srcc": 0.9, "teacher_vs_mos": acc}
    engines = [{"label": name, "timing": [], "accuracy": acc, "teacher_agreement": agree}
               for name in ("vit_s:fp32", "vit_s:int8")]
    table = format_table({"engines": engines, "data": {"split": "test"}})
    assert table.count("teacher (same videos)") == 1
    other = {**agree, "source": "other.csv", "teacher_vs_mos": {**acc, "srcc": 0.6}}
    engines[1]["teacher_agreement"] = other
    assert format_table({"engines": engines, "data": {"split": "test"}}).count(
        "teacher (same videos)") == 2


def test_a_checkpoint_is_an_engine_through_the_bench_factory(corpus, tmp_path):
    """A PyTorch checkpoint dir -> `open_backend` -> distill's TorchBackend (the one torch
    engine, shared with export's parity check), scored by the runtime's Scorer with the
    checkpoint's clip spec (the runtime has no torch backend)."""
    import torch

    from internvqa.distill.checkpoint import save_checkpoint
    from internvqa.distill.models import create_model
    from internvqa.runtime.manifest import read_manifest

    torch.manual_seed(0)
    spec = {"num_frames": 2, "frame_stride": 4, "size": 56, "resize_short": 56, "crop": "center"}
    ckpt = save_checkpoint(tmp_path / "student" / "best", create_model("vit_tiny").eval(), spec,
                           {"multiplier": 100.0, "offset": 0.0, "min": 0.0, "max": 100.0})
    (ref,) = b.resolve_engines([ckpt], None)
    assert (ref.kind, ref.precision) == ("checkpoint", "pytorch")
    backend, bundle = b.open_backend(ref, "cpu", threads=1)
    assert type(backend).__module__ == "internvqa.distill.torch_backend"
    assert backend.side_dim is None and bundle.clip_spec.num_frames == 2
    rows = [r for r in read_manifest(corpus) if r.split == "test"]
    opts = b.BenchOptions(batches=[1, 2], warmup=0, min_iters=1, duration=0, progress=False,
                          device="cpu", threads=1)
    r = b.bench_engine(ref, rows, opts)
    assert r["backend"] == "pytorch" and [t["batch"] for t in r["timing"]] == [1, 2]
    assert r["accuracy"]["n"] == 6 and not r["failures"]
    assert all(s["pred"] is not None and np.isfinite(s["pred"]) for s in r["scores"])
