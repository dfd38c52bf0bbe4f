"""The shared CLI plumbing: the work folder, the error -> exit code map, the stage runner."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from internvqa.export.stages import CURRENT, FAILED, RAN, SKIPPED, Stages, is_current
from internvqa.runtime import workspace
from internvqa.runtime.cli_common import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Command,
    exit_code_for,
    run_command,
)
from internvqa.runtime.errors import InternVQAError, ManifestError, UsageError
from internvqa.runtime.score_cli import score


# ---- workspace ---------------------------------------------------------------------------
def test_work_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(workspace.WORK_ENV, raising=False)
    assert workspace.work_dir() == Path("work")
    monkeypatch.setenv(workspace.WORK_ENV, str(tmp_path))
    assert workspace.work_dir() == tmp_path
    assert workspace.run_dir("student", "timm:resnet18") == tmp_path / "runs" / "student-timm_resnet18"
    assert workspace.bundle_dir("timm:resnet18") == tmp_path / "bundles" / "timm_resnet18"


def test_latest_checkpoint_is_the_newest_run_of_that_student(monkeypatch, tmp_path):
    monkeypatch.setenv(workspace.WORK_ENV, str(tmp_path))
    with pytest.raises(InternVQAError, match="no distilled vit_s checkpoint"):
        workspace.latest_checkpoint("vit_s")
    old, new = (tmp_path / "runs" / n / "best" for n in ("student-vit_s", "student-vit_s-b"))
    other = tmp_path / "runs" / "student-vit_sx" / "best"  # another model's run
    for i, d in enumerate((old, new, other)):
        d.mkdir(parents=True)
        os.utime(d, (time.time() + i, time.time() + i))
    assert workspace.latest_checkpoint("vit_s") == new


def test_vqa_score_finds_the_latest_bundle_under_the_work_dir(monkeypatch, tmp_path,
                                                              runtime_bundle, capsys):
    monkeypatch.setenv(workspace.WORK_ENV, str(tmp_path / "w"))
    monkeypatch.chdir(tmp_path)  # a ./work here must not be looked at
    (tmp_path / "work" / "bundles").mkdir(parents=True)
    assert run_command(score, ["--bundle", "latest", "--explain"]) == EXIT_USAGE
    assert str(tmp_path / "w" / "bundles" / "latest") in capsys.readouterr().err
    (tmp_path / "w" / "bundles").mkdir(parents=True)
    link = workspace.point_latest(runtime_bundle, tmp_path / "w")
    assert link.resolve() == runtime_bundle.resolve()
    assert run_command(score, ["--bundle", "latest", "--explain"]) == 0
    assert "tiny-test" in capsys.readouterr().out


def test_teacher_predictions_round_trip(tmp_path):
    path = tmp_path / workspace.TEACHER_PREDICTIONS
    video = tmp_path / "libx264" / "a_crf20.mp4"
    workspace.write_teacher_predictions(path, [(str(video), 80.0, 71.23456, "test"),
                                               ("rel/b.mp4", None, 50.0, "val")])
    assert path.read_text().splitlines()[0] == ",".join(workspace.TEACHER_PREDICTION_COLUMNS)
    table = workspace.read_teacher_predictions(path)
    assert table[str(video)] == table["libx264/a_crf20.mp4"] == pytest.approx(71.2346)
    assert table[str((tmp_path / "rel" / "b.mp4").resolve())] == 50.0


# ---- error -> exit code ------------------------------------------------------------------
class _Custom(InternVQAError):
    exit_code = 3


@pytest.mark.parametrize("exc, code, line", [
    (ManifestError("bad\nmanifest"), 2, "error: bad manifest"),
    (_Custom("custom"), 3, "error: custom"),
    (PermissionError(13, "Permission denied"), 2, "error: [Errno 13] Permission denied"),
    (KeyboardInterrupt(), EXIT_INTERRUPTED, "error: interrupted"),
])
def test_a_real_command_maps_each_error_to_its_exit_code(monkeypatch, capsys, exc, code, line):
    import internvqa.runtime.score_cli as score_cli

    def boom(*a, **k):
        raise exc

    monkeypatch.setattr(score_cli, "expand_inputs", boom)
    assert run_command(score, ["clip.mp4"]) == code
    assert capsys.readouterr().err == line + "\n"


def test_group_commands_report_typed_errors_in_one_line(tmp_path):
    from internvqa.distill.data_cli import cli

    res = CliRunner().invoke(cli, ["info", str(tmp_path / "none.csv")])
    assert res.exit_code == 2 and res.stderr == f"error: manifest not found: {tmp_path / 'none.csv'}\n"
    res = CliRunner().invoke(cli, ["info"])  # click's own usage error: click's usage text, 2
    assert res.exit_code == 2 and "Usage:" in res.stderr


def test_an_error_outside_the_map_keeps_its_traceback():
    @click.command(cls=Command)
    def bug() -> None:
        raise RuntimeError("a bug")

    assert exit_code_for(RuntimeError()) is None and exit_code_for(UsageError()) == 2
    with pytest.raises(RuntimeError, match="a bug"):
        run_command(bug, [])


# ---- stages ------------------------------------------------------------------------------
def _writer(path: Path) -> list[str]:
    return [sys.executable, "-c", f"open({str(path)!r}, 'a').write('x')"]


def test_stages_skip_a_current_output_and_rerun_a_stale_one(tmp_path):
    source, out = tmp_path / "source.txt", tmp_path / "out.txt"
    source.write_text("v1")
    events: list[tuple[str, str]] = []
    st = Stages(lambda event, run: events.append((event, run.status)))
    first = st.run("build", _writer(out), current=is_current(out, source))
    assert first.status == RAN and first.returncode == 0 and out.read_text() == "x"
    again = st.run("build", _writer(out), current=is_current(out, source))
    assert again.status == CURRENT and out.read_text() == "x"  # not run
    os.utime(source, (time.time() + 10, time.time() + 10))  # the source changed after out
    stale = st.run("build", _writer(out), current=is_current(out, source))
    assert stale.status == RAN and out.read_text() == "xx"
    assert st.skip("extra", "not asked for").status == SKIPPED
    assert [r.index for r in st.runs] == [1, 2, 3, 4]
    assert events == [("start", "ok"), ("end", "ok"), ("end", "current"), ("start", "ok"),
                      ("end", "ok"), ("end", "skipped")]


def test_a_failing_stage_is_recorded_not_raised(tmp_path):
    st = Stages(ok_codes=(0, 1))
    bad = st.run("bad", [sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"],
                 capture_stderr=True)
    assert bad.status == FAILED and bad.returncode == 3 and bad.reason == "boom"
    assert st.run("partial", [sys.executable, "-c", "raise SystemExit(1)"]).status == RAN
    missing = st.run("missing", [str(tmp_path / "no-such-tool")])
    assert missing.status == FAILED and missing.returncode == 127
