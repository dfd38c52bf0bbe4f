"""The benchmark suite's new pieces on tiny inputs: cost-growth fit, clip grid, the speed
case runner on one 1 s clip, the accuracy/precision/speed tables and the suite section."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from internvqa.bench import run_suite, suite_accuracy, suite_precision, suite_speed

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus_manifest(tmp_path_factory) -> Path:
    from bench_corpus import make_ladder

    d = tmp_path_factory.mktemp("suite-corpus")
    return make_ladder(d, {"a": "train", "b": "train", "c": "test", "d": "test"})


def _record(codec: str, size: str, seconds: int, e2e: float, vmaf: float | None = None) -> dict:
    w, h = suite_speed.SIZES[size]
    rec = {"clip": f"{codec}@{size}/{seconds}s", "codec": codec, "size": size, "width": w,
           "height": h, "seconds": seconds, "fps": 25, "pixels_per_s": float(w * h * 25),
           "e2e": {"seconds": e2e, "windows": 11, "peak_rss_mib": 300.0},
           "stages": {"decode_seconds": e2e / 2, "infer_seconds": 0.5}}
    if vmaf is not None:
        rec["vmaf"] = {"seconds": vmaf, "ffmpeg_peak_rss_mib": 100.0, "peak_rss_mib": 90.0}
    return rec


def test_growth_fit_recovers_a_known_exponent():
    pps = [640 * 360 * 25.0, 1280 * 720 * 25.0, 1920 * 1080 * 25.0, 3840 * 2160 * 25.0]
    times = [3e-7 * p ** 0.8 for p in pps]
    f = suite_speed.growth_fit(pps, times)
    assert f["b"] == pytest.approx(0.8, abs=1e-9)
    assert math.exp(f["a"]) == pytest.approx(3e-7, rel=1e-6)
    assert f["r2"] == pytest.approx(1.0) and f["n"] == 4
    # one size only, or no times: no exponent, not a made-up one
    assert suite_speed.growth_fit(pps[:1] * 3, [1.0, 1.1, 0.9])["b"] is None
    assert suite_speed.growth_fit(pps, [None] * 4)["b"] is None


def test_growth_per_engine_and_duration_ratio():
    recs = [_record(c, s, 10, 0.1 * k, vmaf=1.0 * k ** 1.0)
            for c in ("h264", "hevc") for k, s in ((1, "360p"), (4, "720p"), (9, "1080p"))]
    recs.append(_record("h264", "1080p", 60, 0.9 * 5.5, vmaf=9.0 * 6))
    g = suite_speed.growth(recs)
    e2e, vmaf = g["default model, end to end"], g["libvmaf"]
    assert e2e["all codecs"]["n"] == 6 and e2e["hevc"]["b"] == pytest.approx(e2e["h264"]["b"])
    assert vmaf["all codecs"]["b"] == pytest.approx(1.0, abs=0.02)  # time ~ pixels
    assert e2e["duration_ratio"] == {"h264@1080p 60s/10s": pytest.approx(5.5)}
    assert vmaf["duration_ratio"]["h264@1080p 60s/10s"] == pytest.approx(6.0)
    assert g["default model, inference-only"]["all codecs"]["b"] == pytest.approx(0.0, abs=1e-9)
    text = "\n".join(suite_speed.render({"clips": recs, "growth": g}))
    assert "| h264@1080p/60s (1920x1080) | 4.95 | 12.1 |" in text
    assert "h264@1080p 60s/10s: 6.00" in text


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    recs = [_record("h264", s, 10, t, vmaf=10 * t) for s, t in (("360p", 0.5), ("720p", 1.0))]
    out = suite_speed.plot(recs, suite_speed.growth(recs), tmp_path / "c.png")
    assert out is not None and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_clip_grid_parses_and_refuses_unknown_names():
    clips = suite_speed.parse_grid("h264@360p, av1@2160p,h264@1080p/60s")
    assert [c.name for c in clips] == ["h264@360p/10s", "av1@2160p/10s", "h264@1080p/60s"]
    assert clips[1].pixels_per_s == 3840 * 2160 * 25
    assert len(suite_speed.parse_grid(suite_speed.DEFAULT_GRID)) == 14
    assert set(suite_speed.parse_grid(suite_speed.DEFAULT_VMAF)) <= set(suite_speed.parse_grid(
        suite_speed.DEFAULT_GRID))
    for bad in ("vp9@360p", "h264@480p", "h264"):
        with pytest.raises(ValueError, match="bad clip"):
            suite_speed.parse_grid(bad)


def test_speed_cases_run_on_one_tiny_clip(tmp_path, runtime_bundle):
    """A 1 s 360p H.264 clip with its FFV1 reference: every case in its own process."""
    from internvqa.bench import bench_runtime

    clip = suite_speed.Clip("h264", "360p", 1)
    bench_runtime.make_clips({clip.path(tmp_path): "libx264", clip.reference(tmp_path): "ffv1"},
                             640, 360, 1)
    try:
        from internvqa.distill.corpus.vmaf import ffmpeg_exe

        ffmpeg_exe()
        with_vmaf = True
    except Exception:  # noqa: BLE001 - no libvmaf ffmpeg here: the model's cases only
        with_vmaf = False
    rec = suite_speed.run_clip(clip, tmp_path, runtime_bundle, with_vmaf, timeout=240)
    assert rec["e2e"]["frames"] == 25 and rec["e2e"]["seconds"] > 0, rec
    assert rec["e2e"]["peak_rss_mib"] > 10
    st = rec["stages"]
    assert st["decode_seconds"] > 0 and st["infer_seconds"] > 0 and st["windows"] >= 1, st
    if with_vmaf:
        assert rec["vmaf"]["frames"] == 25 and rec["vmaf"]["score"] > 50, rec["vmaf"]
    times = suite_speed.engine_times(rec)
    assert times["default model, end to end"] == rec["e2e"]["seconds"]


def test_make_clips_writes_every_missing_file_once(tmp_path):
    from internvqa.bench import bench_runtime

    a, b = tmp_path / "a.mp4", tmp_path / "b.mkv"
    bench_runtime.make_clips({a: "libx264", b: "ffv1"}, 320, 192, 0.4)
    assert a.stat().st_size > 0 and b.stat().st_size > a.stat().st_size
    before = a.stat().st_mtime_ns
    bench_runtime.make_clips({a: "libx264", b: "ffv1"}, 320, 192, 0.4)
    assert a.stat().st_mtime_ns == before and not list(tmp_path.glob("*.tmp.*"))


def _acc_report() -> dict:
    figs = {"n": 10, "srcc": 0.8, "krcc": 0.6, "plcc_logistic": 0.85, "rmse_logistic": 12.3,
            "rd_order_accuracy": 1.0, "within_source_srcc": 0.9}
    return {"videos": 10, "sources": 2, "natural_videos": 0, "natural_sources": 0,
            "train_videos": 30, "manifest": "m.csv", "split": "test",
            "engines": [{"key": "default", "label": "default model", "figures": {"all": figs},
                         "s_per_video": 0.2},
                        {"key": "libvmaf", "label": "libvmaf", "accuracy": "the label",
                         "s_per_video": 1.0, "ms_per_frame": 20.0, "note": "timed on 2"}]}


def test_accuracy_table_has_every_figure_and_the_label_row():
    lines = suite_accuracy.render(_acc_report())
    assert lines[0].startswith("| engine | n | SRCC | KRCC | PLCC-log | RMSE-log | RD-order")
    assert "| default model | 10 | 0.800 | 0.600 | 0.850 | 12.30 | 1.000 | 0.900 | 0.200 |" \
        in "\n".join(lines)
    assert "| libvmaf | the label |" in lines[-1] and "(20.0 ms/frame)" in lines[-1]


def test_accuracy_engines_on_a_tiny_corpus(corpus_manifest, tmp_path):
    """The bitrate-free corpus: peers and baseline run, the bitrate model says why not."""
    acc = suite_accuracy.Accuracy(corpus_manifest, tmp_path, baseline_train=4, vmaf_videos=0,
                                  log=lambda s: None, progress=False)
    from internvqa.runtime.clipspec import PRESETS

    acc.bitrate()
    acc.baseline(PRESETS["demo"])
    rows = {e["key"]: e for e in acc.report()["engines"]}
    assert "figures" in rows["baseline"] and rows["baseline"]["figures"]["all"]["n"] >= 2
    assert acc.baseline_model_path().is_file()  # fitted once, saved, reused next time
    acc.baseline(PRESETS["demo"])
    assert acc.engines[-1]["note"].startswith("loaded ")
    assert "figures" in rows["bitrate"] or "kbps" in rows["bitrate"]["note"]


def test_precision_table_on_a_tiny_bundle(runtime_bundle, corpus_manifest):
    from internvqa.runtime.manifest import read_manifest

    rows = [r for r in read_manifest(corpus_manifest) if r.mos is not None][:3]
    prec = suite_precision.run(runtime_bundle, rows, [1, 2], videos=3, duration=0.05,
                               log=lambda s: None)
    (fp32, *others) = prec["precisions"]
    assert fp32["precision"] == "fp32" and fp32["best_batch"] in (1, 2)
    assert fp32["ort"]["intra_op_num_threads"] >= 1 and fp32["accuracy"]["n"] == 3
    assert all("bundle has no" in p["note"] for p in others)
    text = "\n".join(suite_precision.render(prec))
    assert "| fp32 (`model.onnx`) |" in text and "intra-op threads" in text


def test_suite_section_names_machine_command_and_fallback(tmp_path):
    report = {"date": "2026-12-01T14:40:00+00:00", "wall_seconds": 1234.0,
              "invocation": "./run bench", "out": "benchmarks/out/suite.json",
              "results": str(tmp_path / "RESULTS.md"), "bundle": "runtime/default_bundle",
              "model": "m, fp32", "manifest": "demo.csv", "split": "test",
              "fallback": "x.csv is absent: fell back to the demo corpus demo.csv",
              "machine": {"cpu": "AMD EPYC", "cores": 2, "ram_gb": 23.5, "platform": "Linux",
                          "python": "3.11", "versions": {"onnxruntime": "1.32.0"},
                          "gpu": "none: no NVIDIA GPU"},
              "accuracy": _acc_report(), "cuts": ["libvmaf only on h264@360p"],
              "steps": [{"name": "accuracy", "status": "ok", "seconds": 3.0,
                         "load_average": [1.0, 1.2]}]}
    text = run_suite.render(report)
    assert text.startswith(run_suite.BEGIN) and text.endswith(run_suite.END)
    for want in ("AMD EPYC (lscpu), 2 cores, 23.5 GB RAM", "GPU: none", "`./run bench`",
                 "fell back to the demo corpus", "| default model | 10 |",
                 "Cut from the full grid: libvmaf only on h264@360p", "1234 s wall"):
        assert want in text, want


def test_missing_manifest_falls_back_to_the_demo_corpus(tmp_path):
    demo = tmp_path / "corpus" / "demo"
    demo.mkdir(parents=True)
    (demo / "manifest.csv").write_text("path,mos\n")
    got, note = run_suite.resolve_manifest(str(tmp_path / "absent.csv"), tmp_path)
    assert got == demo / "manifest.csv" and "fell back to the demo corpus" in note
    real = tmp_path / "m.csv"
    real.write_text("path,mos\n")
    assert run_suite.resolve_manifest(str(real), tmp_path) == (real, None)
