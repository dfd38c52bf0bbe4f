"""The synthetic corpus: the demo preset built once per session, then checked."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections import defaultdict

import av
import numpy as np
import pytest
from click.testing import CliRunner

from internvqa.distill.corpus import synth
from internvqa.distill.corpus.sources import SourceSpec, render_source
from internvqa.distill.data_cli import cli
from internvqa.runtime.errors import UsageError
from internvqa.runtime.manifest import read_manifest
from internvqa.runtime.metrics import rd_order_accuracy


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "demo"
    t0 = time.perf_counter()
    res = synth.run_build(out, preset="demo", seed=0, workers=2)
    res.wall = time.perf_counter() - t0
    return res


# ----------------------------------------------------------------- fast unit checks


def test_pseudo_mos_is_monotone_and_bounded():
    grid = [synth.pseudo_mos(p, 0.0, m) for p in (20, 30, 40, 50) for m in (0.5, 0.9, 0.99, 0.999)]
    assert all(0.0 < v < 100.0 for v in grid)
    assert synth.pseudo_mos(30, 0, 0.95) < synth.pseudo_mos(35, 0, 0.95) < synth.pseudo_mos(35, 0, 0.99)


def test_split_is_by_source_and_seeded():
    names = synth.PRESETS["demo"].sources
    a, b = synth.split_sources(names, 0), synth.split_sources(names, 0)
    assert a == b and set(a) == set(names)
    assert {"train", "val", "test"} <= set(a.values())
    assert synth.split_sources(names, 1) != a or synth.split_sources(names, 2) != a


def test_sources_are_deterministic_and_moving():
    spec = SourceSpec("horse", 64, 48, 6, 10)
    a, b = render_source(spec, 3), render_source(spec, 3)
    assert a.shape == (6, 48, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert np.abs(a[1:].astype(int) - a[:-1]).mean() > 0.5  # real motion
    assert not np.array_equal(a, render_source(spec, 4))


def test_plan_covers_ladders():
    jobs = synth.plan_jobs(synth.PRESETS["demo"], 0)
    assert len({j.clip_id for j in jobs}) == len(jobs)
    assert all(j.relpath.endswith(".mkv") == j.upscaled for j in jobs)


def test_demo_all_is_the_demo_with_every_source():
    """`demo-all` must encode the demo's clips identically (same jobs) and add the rest."""
    demo, every = synth.PRESETS["demo"], synth.PRESETS["demo-all"]
    jobs = synth.plan_jobs(every, 0)
    assert set(synth.plan_jobs(demo, 0)) < set(jobs)
    assert len(jobs) == 30 * len(every.sources) == 540
    counts: dict[str, int] = {}
    for split in synth.split_sources(every.sources, 0).values():
        counts[split] = counts.get(split, 0) + 1
    assert counts == {"train": 11, "val": 3, "test": 4}


# ----------------------------------------------------------------- the demo build


@pytest.mark.slow
def test_demo_size_and_coverage(demo):
    rows = read_manifest(demo.manifest)
    assert len(rows) == demo.clips >= 60
    assert len({r.source for r in rows}) >= 6
    codecs = {r.codec for r in rows}
    assert {"libx264", "libx265", "libvpx-vp9", "libsvtav1"} <= codecs
    for c in codecs:
        full = [r for r in rows if r.codec == c and r.resolution == "224x128"]
        assert len({r.crf for r in full}) >= 4, c
    assert len({r.resolution for r in rows}) >= 2  # the resolution ladder is there
    assert all(r.mos is not None and 0 <= r.mos <= 100 for r in rows)
    mos = [r.mos for r in rows]
    assert max(mos) > 90 and min(mos) < 15  # excellent .. bad
    assert demo.seconds < 120, f"demo build took {demo.seconds:.0f} s"


@pytest.mark.slow
def test_demo_split_by_source(demo):
    rows = read_manifest(demo.manifest)
    splits = defaultdict(set)
    for r in rows:
        splits[r.source].add(r.split)
    assert all(len(s) == 1 for s in splits.values())
    assert {"train", "val", "test"} == {next(iter(s)) for s in splits.values()}


@pytest.mark.slow
def test_demo_rd_order(demo):
    rows = read_manifest(demo.manifest)
    acc = rd_order_accuracy([r.mos for r in rows], [(r.source, r.codec, r.resolution) for r in rows],
                            [r.crf for r in rows])
    assert acc >= 0.95


@pytest.mark.slow
def test_demo_files_decode_at_source_size(demo):
    rows = read_manifest(demo.manifest)
    for r in rows:
        with av.open(str(r.abspath)) as c:
            frames = [f for f in c.decode(video=0)]
        assert len(frames) == 40, r.path
        assert (frames[0].width, frames[0].height) == (r.width, r.height) == (224, 128), r.path


@pytest.mark.slow
def test_demo_sidecar_documents_mos(demo):
    side = json.loads((demo.manifest.parent / "manifest.json").read_text())
    assert side["labels"] == "vmaf" and side["mos_scale"] == [0, 100]
    assert side["mos_formula"].startswith("mos = pooled mean VMAF")
    assert side["libvmaf"]["vmaf_model"] == "vmaf_v0.6.1"
    assert side["seed"] == 0 and set(side["splits"].values()) == {"train", "val", "test"}


@pytest.mark.slow
def test_demo_determinism(demo, tmp_path):
    rows = {r.path: r for r in read_manifest(demo.manifest)}
    jobs = synth.plan_jobs(synth.PRESETS["demo"], 0)
    for job in (jobs[3], jobs[-1]):  # a plain encode and a resolution-ladder clip
        rec = synth.encode_clip(job, tmp_path)
        assert rec["mos"] == rows[job.relpath].mos
        assert rec["mos_frames"] == rows[job.relpath].extra["mos_frames"]
        assert str(rec["psnr_y"]) == rows[job.relpath].extra["psnr_y"]


@pytest.mark.slow
def test_demo_resume_after_kill(demo):
    out = demo.manifest.parent
    before = demo.manifest.read_text()
    progress = out / ".progress.jsonl"
    lines = progress.read_text().splitlines(keepends=True)
    # A kill: the last records are lost (one torn in half), a clip is half written,
    # two finished clips vanish, the manifest was never written.
    progress.write_text("".join(lines[:-3]) + lines[-3][:10])
    rows = read_manifest(demo.manifest)
    for r in rows[:2]:
        r.abspath.unlink()
    shutil.copy(rows[5].abspath, rows[5].abspath.with_name(".partial.tmp123.mp4"))
    demo.manifest.unlink()
    res = synth.run_build(out, preset="demo", seed=0, workers=2)
    assert demo.manifest.read_text() == before
    assert 3 <= res.encoded <= 5 and res.reused == res.clips - res.encoded


@pytest.mark.slow
def test_demo_other_settings_refused_and_cli_reuses(demo):
    out = demo.manifest.parent
    with pytest.raises(UsageError, match="other settings"):
        synth.run_build(out, preset="demo", seed=1)
    r = CliRunner().invoke(cli, ["synth", "--out", str(out), "--preset", "demo", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output[r.output.index("{"):])
    assert summary["reused"] == demo.clips and summary["encoded"] == 0
    r = CliRunner().invoke(cli, ["synth", "--out", str(out), "--seed", "5"])
    assert r.exit_code == 2 and r.output.startswith("error: ")


def test_demo_holds_out_what_the_standard_corpus_holds_out(demo):
    """The demo's val/test sources are fixed to the built-ins the standard corpus (seed 0)
    holds out, so the shipped model, trained on its train split, never saw them."""
    splits = {r.source: r.split for r in read_manifest(demo.manifest)}
    assert {s for s, v in splits.items() if v == "test"} == {"camera", "clock"}
    assert {s for s, v in splits.items() if v == "val"} == {"horse", "gradient_checker"}
    assert synth.PRESETS["demo"].splits == {"camera": "test", "clock": "test", "horse": "val",
                                            "gradient_checker": "val"}


def test_standard_splits_stay_pinned_when_sources_are_added():
    """Sources added to the registry are drawn among themselves; every source of the first
    build keeps its split (else a retrained model's test split would hold sources the
    shipped model trained on), and a new path of a pinned scene follows its scene."""
    p = synth.PRESETS["standard"]
    pinned = dict(p.splits)
    assert len(pinned) == 189 and sum(v == "test" for v in pinned.values()) == 23
    names = sorted(pinned)
    old = [synth.SourceEntry(n, n, i % 2 == 0) for i, n in enumerate(names)]
    test_scene = next(n for n in names if pinned[n] == "test")
    new = [synth.SourceEntry(f"new_photo_{i}", f"new_scene_{i}", True) for i in range(40)]
    new.append(synth.SourceEntry("extra_path", test_scene, True))
    got = synth.preset_splits(p, old + new, 0)
    assert {n: got[n] for n in names} == pinned
    assert got["extra_path"] == "test"
    drawn = [got[e.name] for e in new[:-1]]
    assert drawn.count("test") == 6 and drawn.count("val") == 4  # 15% / 10% of 40 scenes
    # another seed is a fresh draw of everything, so the pins do not apply
    assert synth.preset_splits(p, old + new, 1) != got


def test_standard_hd_subset_keeps_its_sources_when_sources_are_added():
    p = synth.PRESETS["standard"]
    assert len(p.hd_sources) == p.hd[2] == 30

    def hd(entries):
        return {j.source for j in synth.plan_jobs(p, 0, entries) if j.tier}

    base = [synth.SourceEntry(n, n, True) for n in sorted(p.hd_sources | set(list(p.splits)[:60]))]
    extra = [synth.SourceEntry(f"added_{i}", f"added_{i}", True) for i in range(40)]
    assert hd(base) == hd(base + extra) == set(p.hd_sources)
    # without the pins the seeded order would have moved the subset
    unpinned = dataclasses.replace(p, hd_sources=frozenset())
    assert {j.source for j in synth.plan_jobs(unpinned, 0, base + extra) if j.tier} != set(p.hd_sources)
