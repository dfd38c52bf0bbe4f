"""Real VMAF labels through libvmaf (imageio-ffmpeg's static ffmpeg), on tiny real videos."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg (the libvmaf ffmpeg) is not installed: "
                                             "pip install imageio-ffmpeg==0.8.1")

from videos import moving_frames, write_video  # noqa: E402

from internvqa.distill.corpus import vmaf  # noqa: E402
from internvqa.distill.corpus.vmaf import FRLabels, LabelError, label_pair, label_pairs  # noqa: E402
from internvqa.distill.data_cli import cli  # noqa: E402
from internvqa.runtime.errors import InternVQAError  # noqa: E402
from internvqa.runtime.manifest import read_manifest  # noqa: E402

N, W, H = 24, 128, 72


def _x264(crf: int) -> dict:
    return {"crf": str(crf), "preset": "veryfast"}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """A y4m reference (24 frames, 128x72, moving texture) and encodes of it."""
    d = tmp_path_factory.mktemp("vmaf")
    fr = moving_frames(N, W, H)
    half = np.stack([cv2.resize(f, (W // 2, H // 2), interpolation=cv2.INTER_AREA) for f in fr])
    return {
        "ref": write_video(d / "ref.y4m", fr, codec="rawvideo", pix_fmt="yuv420p"),
        "ffv1": write_video(d / "ref_ffv1.mkv", fr, codec="ffv1", pix_fmt="yuv420p"),
        "crf18": write_video(d / "crf18.mp4", fr, options=_x264(18)),
        "crf30": write_video(d / "crf30.mp4", fr, options=_x264(30)),
        "crf35": write_video(d / "crf35.mp4", fr, options=_x264(35)),
        "crf51": write_video(d / "crf51.mp4", fr, options=_x264(51)),
        "half30": write_video(d / "half_crf30.mp4", half, options=_x264(30)),
        "webm": write_video(d / "vp9.webm", fr, codec="libvpx-vp9",
                            options={"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "8"}),
        "short": write_video(d / "short.mp4", fr[:20], options=_x264(18)),
        "square": write_video(d / "square.mp4", np.ascontiguousarray(fr[:, :, :H]),
                              options=_x264(18)),
    }


# ----------------------------------------------------------------- label_pair


def test_lossless_pair_scores_near_100(clips):
    lab = label_pair(clips["ffv1"], clips["ref"])
    assert isinstance(lab, FRLabels)
    assert lab.frames == N and len(lab.vmaf_frames) == N and len(lab.vmaf_neg_frames) == N
    assert lab.vmaf >= 99.0 and lab.vmaf_neg >= 99.0
    assert lab.psnr_y >= 59.0  # libvmaf caps 8-bit PSNR at 60 dB for identical frames
    assert lab.ssim > 0.9999
    assert lab.ms_ssim is None  # 72 px < 176 px: libvmaf's MS-SSIM cannot run
    assert lab.vmaf == pytest.approx(sum(lab.vmaf_frames) / N, abs=1e-3)
    assert lab.vmaf_min == pytest.approx(min(lab.vmaf_frames), abs=1e-4)
    assert lab.vmaf_harmonic_mean <= lab.vmaf + 1e-6
    rec = json.loads(json.dumps(lab.to_record()))
    assert rec["frames"] == N and len(rec["vmaf_frames"]) == N and rec["ms_ssim"] is None


def test_vmaf_falls_monotonically_with_crf(clips):
    labs = [label_pair(clips[f"crf{c}"], clips["ref"], threads=2) for c in (18, 35, 51)]
    vm = [lab.vmaf for lab in labs]
    assert vm[0] > 95.0, vm
    assert vm[0] - vm[1] > 10.0 and vm[1] - vm[2] > 20.0, vm
    assert vm[2] < 50.0, vm
    neg = [lab.vmaf_neg for lab in labs]
    assert neg[0] > neg[1] > neg[2], neg
    assert labs[0].psnr_y > labs[1].psnr_y > labs[2].psnr_y
    assert labs[0].ssim > labs[1].ssim > labs[2].ssim
    assert all(lab.frames == N for lab in labs)
    # NEG does not reward enhancement: never above plain VMAF on plain compression.
    assert all(lab.vmaf_neg <= lab.vmaf + 1e-6 for lab in labs)


def test_ms_ssim_from_176_px(tmp_path):
    fr = moving_frames(10, 176, 176, seed=3)
    ref = write_video(tmp_path / "ref.mkv", fr, codec="ffv1", pix_fmt="yuv420p")
    good = label_pair(write_video(tmp_path / "q0.mp4", fr, options={"qp": "0"}), ref)
    bad = label_pair(write_video(tmp_path / "crf51.mp4", fr, options=_x264(51)), ref)
    assert good.ms_ssim is not None and good.ms_ssim > 0.999
    assert bad.ms_ssim is not None and bad.ms_ssim < good.ms_ssim - 0.1
    assert good.vmaf > 99.0 > bad.vmaf + 40


def test_webm_pairs_every_frame_with_a_y4m_reference(clips):
    lab = label_pair(clips["webm"], clips["ref"])
    assert lab.frames == N
    assert lab.vmaf > 95.0
    # The trap `settb` avoids, on this very pair: `setpts=N` alone misaligns the inputs.
    with_setpts_only = _naive_vmaf_frames(clips["webm"], clips["ref"])
    assert with_setpts_only != N


def _naive_vmaf_frames(dist: Path, ref: Path) -> int:
    log = dist.with_suffix(".naive.json")
    graph = (f"[0:v]setpts=N[a];[1:v]setpts=N[b];[a][b]libvmaf=log_fmt=json:"
             f"log_path={log.name}")
    subprocess.run([vmaf.ffmpeg_exe(), "-hide_banner", "-loglevel", "fatal", "-i", str(dist),
                    "-i", str(ref), "-lavfi", graph, "-f", "null", "-"],
                   cwd=log.parent, check=True, timeout=120)
    return len(json.loads(log.read_text())["frames"])


def test_lower_resolution_encode_is_upscaled(clips):
    full = label_pair(clips["crf30"], clips["ref"])
    half = label_pair(clips["half30"], clips["ref"])
    assert half.frames == full.frames == N
    assert 0.0 < half.vmaf < full.vmaf - 10.0, (half.vmaf, full.vmaf)
    assert half.psnr_y < full.psnr_y


def test_frame_count_mismatch_is_one_line(clips):
    with pytest.raises(LabelError) as info:
        label_pair(clips["short"], clips["ref"])
    assert str(info.value) == f"{clips['short']}: 20 frames, reference {clips['ref']}: 24 frames"
    assert isinstance(info.value, InternVQAError) and info.value.exit_code == 2


def test_bad_files_are_one_line_label_errors(clips, tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    cases = {
        (garbage, clips["ref"]): "not a readable video",
        (empty, clips["ref"]): "empty file",
        (tmp_path / "missing.mp4", clips["ref"]): "no such file",
        (clips["crf18"], tmp_path / "missing.y4m"): "reference",
        (clips["square"], clips["ref"]): "another aspect ratio",
    }
    for (dist, ref), needle in cases.items():
        with pytest.raises(LabelError) as info:
            label_pair(dist, ref)
        msg = str(info.value)
        assert "\n" not in msg and msg.startswith(f"{dist}: ") and needle in msg, msg


def test_label_pairs_goes_on_after_a_failure(clips, tmp_path):
    seen = []
    missing = tmp_path / "missing.mp4"
    out = label_pairs([(missing, clips["ref"]), (clips["crf18"], clips["ref"])],
                      on_result=lambda d, r, res: seen.append((d, type(res))))
    assert [type(res) for _, _, res in out] == [LabelError, FRLabels]
    assert seen == [(missing, LabelError), (clips["crf18"], FRLabels)]
    assert out[1][2].vmaf > 95.0


def test_versions_and_ffmpeg_checks(tmp_path, monkeypatch):
    v = vmaf.versions()
    assert v["ffmpeg"].startswith("n9.0.2") and v["imageio_ffmpeg"] == "0.8.1"
    assert v["libvmaf"] and v["vmaf_model"] == "vmaf_v0.6.1"
    assert v["vmaf_neg_model"] == "vmaf_v0.6.1neg"
    no_vmaf = tmp_path / "ffmpeg-no-vmaf"
    no_vmaf.write_text("#!/bin/sh\necho ' .. scale  V->V  Scale the input video size.'\n")
    no_vmaf.chmod(0o755)
    for exe, needle in ((no_vmaf, "has no libvmaf filter"), (tmp_path / "nope", "does not run")):
        monkeypatch.setenv("INTERNVQA_FFMPEG", str(exe))
        with pytest.raises(LabelError, match=needle) as info:
            vmaf.ffmpeg_exe()
        assert "\n" not in str(info.value) and "INTERNVQA_FFMPEG" in str(info.value)
    monkeypatch.delenv("INTERNVQA_FFMPEG")
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if not installed
    with pytest.raises(LabelError, match=r"pip install imageio-ffmpeg==0\.8\.1"):
        vmaf.ffmpeg_exe()


def test_module_does_not_import_torch():
    code = ("import sys, internvqa.distill.corpus.vmaf as v; v.ffmpeg_exe(); "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


# ----------------------------------------------------------------- vqa-data label


def test_cli_labels_pairs_csv(clips, tmp_path):
    pairs = tmp_path / "pairs.csv"
    rel = os.path.relpath(clips["ref"], tmp_path)
    with open(pairs, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["reference", "distorted", "source"])
        for key in ("crf18", "half30", "webm"):
            w.writerow([rel, os.path.relpath(clips[key], tmp_path), "moving"])
    out = tmp_path / "out" / "labels.csv"
    res = CliRunner().invoke(cli, ["label", "--pairs", str(pairs), "--out", str(out),
                                   "--threads", "2", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["labelled"] == 3 and summary["failed"] == 0
    rows = read_manifest(out)
    assert len(rows) == 3
    by_name = {Path(r.path).name: r for r in rows}
    assert set(by_name) == {"crf18.mp4", "half_crf30.mp4", "vp9.webm"}
    for r in rows:
        assert r.mos == pytest.approx(float(r.extra["vmaf"]), abs=1e-3)
        assert r.source == "moving" and (r.width, r.height) == (W, H)
        assert r.extra["frames"] == str(N) and float(r.extra["kbps"]) > 0
        assert Path(r.extra["reference"]).name == "ref.y4m" and r.abspath.is_file()
        for col in ("vmaf_neg", "psnr_y", "ssim"):
            assert math.isfinite(float(r.extra[col]))
        assert r.extra["ms_ssim"] == ""
    assert by_name["half_crf30.mp4"].resolution == f"{W // 2}x{H // 2}"
    assert by_name["vp9.webm"].codec == "vp9" and by_name["crf18.mp4"].codec == "h264"
    assert by_name["half_crf30.mp4"].mos < by_name["crf18.mp4"].mos - 10
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["versions"]["libvmaf"] == vmaf.versions()["libvmaf"]
    assert "pooled mean VMAF v0.6.1" in side["label"]["mos"]
    assert side["failures"] == [] and side["rows"] == 3
    assert set(side["vmaf_frames"]) == {r.path for r in rows}
    for r in rows:
        frames = side["vmaf_frames"][r.path]
        assert len(frames) == N and sum(frames) / N == pytest.approx(r.mos, abs=0.01)


def test_cli_one_broken_pair_exits_1_and_keeps_the_rest(clips, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clips["crf18"].read_bytes()[:300])  # truncated: no moov
    out = tmp_path / "m.csv"
    res = CliRunner().invoke(cli, ["label", "--reference", str(clips["ref"]), str(clips["crf18"]),
                                   str(broken), str(clips["crf35"]), "--out", str(out)])
    assert res.exit_code == 1, res.output
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {broken}: "), res.stderr
    rows = read_manifest(out)
    assert sorted(Path(r.path).name for r in rows) == ["crf18.mp4", "crf35.mp4"]
    assert all(r.source == "ref" for r in rows)
    side = json.loads(out.with_suffix(".json").read_text())
    assert len(side["failures"]) == 1 and side["failures"][0]["error"].startswith(str(broken))
    assert len(side["vmaf_frames"]) == 2


def test_cli_usage_errors_and_all_failed_exit_2(clips, tmp_path):
    runner = CliRunner()
    out = str(tmp_path / "m.csv")
    res = runner.invoke(cli, ["label", str(clips["crf18"]), "--out", out])
    assert res.exit_code == 2 and "either --reference" in res.stderr
    bad_csv = tmp_path / "pairs.csv"
    bad_csv.write_text("ref,dist\na,b\n")
    res = runner.invoke(cli, ["label", "--pairs", str(bad_csv), "--out", out])
    assert res.exit_code == 2 and "missing column(s) reference, distorted" in res.stderr
    res = runner.invoke(cli, ["label", "--reference", str(clips["ref"]),
                              str(tmp_path / "nope.mp4"), "--out", out])
    assert res.exit_code == 2 and "no such file" in res.stderr
    assert read_manifest(out) == []
