"""Teacher fine-tuning and distillation on a tiny corpus: layout, losses, modes, resume."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from distill_corpus import TINY_SPEC, build_tiny_corpus
from safetensors.torch import load_file

from internvqa.distill import losses
from internvqa.distill.cli import main
from internvqa.distill.models import create_model
from internvqa.distill.train_common import (
    TrainConfig,
    param_groups,
    rng_state,
    set_rng_state,
    warmup_cosine,
)

SPEC_JSON = TINY_SPEC.to_json()
TEACHER_ARGS = ["--model", "vit_tiny", "--clip-spec", SPEC_JSON, "--epochs", "2",
                "--batch-size", "4", "--lr", "1e-3", "--warmup-epochs", "0.5",
                "--per-video", "1", "--log-every", "1", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    manifest = build_tiny_corpus(root / "corpus")
    old = os.environ.get("INTERNVQA_WORK")
    os.environ["INTERNVQA_WORK"] = str(root / "work")
    yield root, manifest
    if old is None:
        os.environ.pop("INTERNVQA_WORK")
    else:
        os.environ["INTERNVQA_WORK"] = old


def invoke(*args: str) -> str:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def teacher_run(env):
    root, manifest = env
    invoke("teacher", "--manifest", str(manifest), "--out", str(root / "teacher"),
           *TEACHER_ARGS)
    return root / "teacher"


# ---------------------------------------------------------------------------- teacher
def test_teacher_run_layout_and_artifacts(teacher_run, env):
    _, manifest = env
    for d in ("best", "last"):
        cfg = json.loads((teacher_run / d / "config.json").read_text())
        assert cfg["clip_spec"] == TINY_SPEC.to_dict()
        assert cfg["score_scale"]["multiplier"] == 100.0 and cfg["score_scale"]["name"] == "MOS"
        prov = cfg["provenance"]
        assert prov["manifest"] == str(manifest.resolve()) and len(prov["manifest_sha256"]) == 64
        assert "srcc" in cfg["metrics"] and cfg["metrics"]["split"] == "val"
    state = torch.load(teacher_run / "resume_state.pt", weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 4  # 6 train videos / batch 4 -> 2 steps
    log = [json.loads(x) for x in (teacher_run / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log if r["event"] == "epoch"] == [1, 2]
    assert sum(r["event"] == "step" for r in log) == 4
    report = json.loads((teacher_run / "report.json").read_text())
    assert set(report["heldout"]) == {"val", "test"}
    with open(teacher_run / "best" / "teacher_predictions.csv") as fh:
        preds = list(csv.DictReader(fh))
    assert len(preds) == 6 and {p["split"] for p in preds} == {"val", "test"}
    assert all(0 <= float(p["mos"]) <= 100 and math.isfinite(float(p["pred"])) for p in preds)


def _weights(run: Path, which: str = "last") -> dict:
    return load_file(str(run / which / "model.safetensors"))


def test_resume_reproduces_an_uninterrupted_run(teacher_run, env):
    root, manifest = env
    out = root / "teacher_resumed"
    base = ["teacher", "--manifest", str(manifest), "--out", str(out), *TEACHER_ARGS]
    invoke(*base, "--stop-after-epoch", "1")
    assert not (out / "report.json").exists()
    assert torch.load(out / "resume_state.pt", weights_only=True)["epoch"] == 1
    invoke(*base, "--resume")
    ref, got = _weights(teacher_run), _weights(out)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    a = json.loads((teacher_run / "report.json").read_text())["heldout"]
    b = json.loads((out / "report.json").read_text())["heldout"]
    assert a == b


def test_resume_refuses_a_different_run(teacher_run, env):
    _, manifest = env
    args = ["teacher", "--manifest", str(manifest), "--out", str(teacher_run), *TEACHER_ARGS]
    args[args.index("--lr") + 1] = "5e-4"
    res = CliRunner().invoke(main, [*args, "--resume"])
    assert res.exit_code == 2 and "different run" in res.output


@pytest.mark.slow
def test_kill_minus_9_mid_epoch_then_resume(teacher_run, env):
    root, manifest = env
    out = root / "killed"
    cmd = [sys.executable, "-m", "internvqa.distill.cli", "teacher", "--manifest",
           str(manifest), "--out", str(out), *TEACHER_ARGS]
    cmd[cmd.index("--batch-size") + 1] = "4"
    proc = subprocess.Popen(cmd, env={**os.environ}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log = out / "train_log.jsonl"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            lines = log.read_text().splitlines() if log.exists() else []
            if any('"epoch": 2' in ln and '"event": "step"' in ln for ln in lines):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        proc.wait(timeout=60)
    if proc.returncode != -signal.SIGKILL:
        pytest.skip("the run finished before it could be killed (machine too fast)")
    state = torch.load(out / "resume_state.pt", weights_only=True)
    assert state["epoch"] == 1
    invoke("teacher", "--manifest", str(manifest), "--out", str(out), *TEACHER_ARGS, "--resume")
    ref, got = _weights(teacher_run), _weights(out)
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_cli_user_errors_are_one_line(env, tmp_path):
    res = CliRunner().invoke(main, ["teacher", "--manifest", str(tmp_path / "none.csv"),
                                    "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and res.output.startswith("error: manifest not found")
    unlabeled = build_tiny_corpus(tmp_path / "u", frames=6, labelled=False)
    res = CliRunner().invoke(main, ["student", "--teacher", str(tmp_path / "no_ckpt"),
                                    "--manifest", str(unlabeled), "--mode", "paper",
                                    "--out", str(tmp_path / "s")])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "error:" in res.output


# ---------------------------------------------------------------------------- students
@pytest.mark.parametrize("mode", ["paper", "frozen", "label-free", "labels"])
def test_student_modes(mode, teacher_run, env):
    root, manifest = env
    out = root / f"student-{mode}"
    invoke("student", "--student", "vit_tiny", "--teacher", str(teacher_run / "best"),
           "--mode", mode, "--manifest", str(manifest), "--out", str(out), "--epochs", "1",
           "--batch-size", "4", "--views", "2", "--threads", "1", "--no-progress")
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == mode and set(report["student"]) == {"val", "test"}
    assert report["teacher"]["val"] == json.loads(
        (teacher_run / "report.json").read_text())["heldout"]["val"]
    cfg = json.loads((out / "best" / "config.json").read_text())
    assert cfg["clip_spec"] == TINY_SPEC.to_dict() and cfg["provenance"]["mode"] == mode
    assert cfg["model"]["architecture"] == "vit_tiny"
    if mode == "paper":  # co-trained teacher: early blocks fixed, last block + embed moved
        t0, t1 = _weights(teacher_run, "best"), _weights(out, "best_teacher")
        assert torch.equal(t0["blocks.0.mlp.fc1.weight"], t1["blocks.0.mlp.fc1.weight"])
        assert not torch.equal(t0["blocks.3.mlp.fc1.weight"], t1["blocks.3.mlp.fc1.weight"])
        assert not torch.equal(t0["patch_embed.proj.weight"], t1["patch_embed.proj.weight"])
    if mode in ("frozen", "label-free"):
        assert report["teacher_cache_seconds"] >= 0


def test_frozen_mode_never_runs_the_teacher_after_caching(teacher_run, env, tmp_path):
    from internvqa.distill import distributed as D
    from internvqa.distill.checkpoint import load_checkpoint
    from internvqa.distill.data import build_window_cache
    from internvqa.distill.train_loop import fit
    from internvqa.distill.train_student import StudentTask
    from internvqa.runtime.manifest import read_manifest

    _, manifest = env
    rows = read_manifest(manifest)
    teacher, _ = load_checkpoint(teacher_run / "best")
    calls = []
    teacher.register_forward_hook(lambda *a: calls.append(1))
    student = create_model("vit_tiny", img_size=28, num_frames=2)
    cfg = TrainConfig(epochs=2, batch_size=4, lr=1e-3)
    task = StudentTask("frozen", student, teacher, teacher_run / "best",
                       build_window_cache(rows, TINY_SPEC), rows, cfg, D.DistInfo(), {}, 3)
    cached = len(calls)
    assert task.t_feats.shape == (6, 3, 768)
    fit(task, cfg, tmp_path / "run", D.DistInfo(), progress=False)
    assert len(calls) == cached  # training and evaluation never touched the teacher


def test_heterogeneous_timm_student_trains_through_its_projection(teacher_run, env):
    root, manifest = env
    out = root / "student-timm"
    invoke("student", "--student", "timm:test_resnet", "--teacher", str(teacher_run / "best"),
           "--mode", "label-free", "--manifest", str(manifest), "--out", str(out),
           "--epochs", "1", "--batch-size", "4", "--views", "1", "--threads", "1",
           "--no-progress")
    w = _weights(out, "best")
    assert w["proj.weight"].shape[0] == 768


def test_label_free_from_a_folder_of_videos(teacher_run, env, tmp_path):
    build_tiny_corpus(tmp_path / "v", frames=6, labelled=False)
    invoke("student", "--student", "vit_tiny", "--teacher", str(teacher_run / "best"),
           "--mode", "label-free", "--videos", str(tmp_path / "v"), "--out",
           str(tmp_path / "s"), "--epochs", "1", "--batch-size", "4", "--views", "1",
           "--threads", "1", "--no-progress")
    report = json.loads((tmp_path / "s" / "report.json").read_text())
    assert report["student"] == {}  # no held-out MOS: nothing to score against
    assert (tmp_path / "s" / "best" / "model.safetensors").is_file()


# ---------------------------------------------------------------------------- pieces
def test_paper_loss_is_the_reference_formula_and_reaches_the_teacher():
    torch.manual_seed(0)
    s_feat = torch.randn(4, 768, requires_grad=True)
    t_feat = torch.randn(4, 768, requires_grad=True)
    s_score, t_score, mos = torch.rand(4), torch.rand(4, requires_grad=True), torch.rand(4)
    total, parts = losses.distill_loss("paper", (s_score, s_feat), (t_score, t_feat), mos)

    def ln(x):
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False,
                                                              keepdim=True) + 1e-5)

    d = (ln(s_feat) - ln(t_feat)).abs()
    smooth = torch.where(d < 2.0, 0.5 * d**2 / 2.0, d - 1.0).mean()
    expect = ((t_score - mos) ** 2).mean() + ((s_score - mos) ** 2).mean() + smooth
    torch.testing.assert_close(total, expect)
    assert set(parts) == {"feature", "teacher_mos", "student_mos"}
    total.backward()
    assert t_feat.grad is not None and t_feat.grad.abs().sum() > 0  # not detached
    lf, parts = losses.distill_loss("label-free", (s_score, s_feat), (t_score, t_feat), None)
    assert set(parts) == {"feature", "student_teacher"}


def test_layer_decay_groups_and_frozen_params():
    m = create_model("vit_tiny", img_size=28, num_frames=2)
    m.blocks[0].requires_grad_(False)
    groups = param_groups({"t": m}, lr=1.0, weight_decay=0.05, layer_decay=0.5)
    by_name = {id(p): g for g in groups for p in g["params"]}
    assert id(m.blocks[0].mlp.fc1.weight) not in by_name
    assert by_name[id(m.head.weight)]["lr"] == 1.0
    assert by_name[id(m.blocks[3].mlp.fc1.weight)]["lr"] == 0.5
    assert by_name[id(m.patch_embed.proj.weight)]["lr"] == 0.5**5
    assert by_name[id(m.pos_embed)]["weight_decay"] == 0.0
    assert by_name[id(m.blocks[3].mlp.fc1.bias)]["weight_decay"] == 0.0
    assert by_name[id(m.blocks[3].mlp.fc1.weight)]["weight_decay"] == 0.05


def test_warmup_then_cosine_to_min():
    f = warmup_cosine(4, 20, 0.01)
    assert f(0) == 0.25 and f(3) == 1.0
    assert all(f(i) >= f(i + 1) for i in range(3, 19))
    assert math.isclose(f(20), 0.01)


def test_rng_state_round_trips_through_weights_only(tmp_path):
    import random

    import numpy as np

    state = rng_state()
    torch.save(state, tmp_path / "s.pt")
    a = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True))
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all() and a[2] == b[2]


def test_checkpoint_heldout_reproduces_the_runs_own_report(teacher_run, env, tmp_path):
    """benchmarks/checkpoint_heldout.py scores a checkpoint on the path the run reported."""
    from internvqa.bench.checkpoint_heldout import main as heldout_main

    _, manifest = env
    out = tmp_path / "h.json"
    res = CliRunner().invoke(heldout_main, ["--manifest", str(manifest), "--threads", "1",
                                            "--json", str(out), str(teacher_run / "best")],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    got = json.loads(out.read_text())
    report = json.loads((teacher_run / "report.json").read_text())["heldout"]
    for split in ("val", "test"):
        fig = got[f"{teacher_run / 'best'}:{split}"]
        assert fig["all"]["n"] == report[split]["n"] == 3
        assert fig["all"]["srcc"] == pytest.approx(report[split]["srcc"], abs=1e-6)
        assert "srcc" not in fig["natural"]  # the tiny corpus has no "content" column
