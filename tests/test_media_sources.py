"""The licensed-media registry: reserved refusal, catalog integrity, rendering, fetching.

No network: packages are tiny zips built here and the downloader is replaced.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from internvqa.distill.corpus import media
from internvqa.distill.corpus.media import FetchError, Media, MediaItem, Package
from internvqa.runtime.errors import UsageError


def _png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def _noise(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (h, w, 3)).astype(np.float32), (0, 0), 2.0)
    return np.clip(img, 0, 255).astype(np.uint8)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _two_halves(path: Path) -> Path:
    """400x140 PNG: red-only left half, blue-only right half, textured green everywhere."""
    img = np.zeros((140, 400, 3), np.uint8)
    img[..., 1] = _noise(140, 400, 1)[..., 1]
    img[:, :200, 0] = 200
    img[:, 200:, 2] = 200
    return _png(path, img)


def _item(path: Path, name: str = "halves", kind: str = "photo") -> MediaItem:
    img = cv2.imread(str(path))
    h, w = img.shape[:2]
    return MediaItem(name, path, kind, name, "test", "CC0-1.0", w, h, _sha(path))


def _fake_cache(root: Path) -> Path:
    """A cache dir with two PNGs and a hand-written licences.json."""
    entries = []
    for i, name in enumerate(("alpha", "beta")):
        p = _png(root / "media" / "fakepkg" / f"{name}.png", _noise(120, 200, i))
        entries.append({"name": name, "file": f"media/fakepkg/{name}.png", "sha256": _sha(p),
                        "package": "fakepkg", "version": "1", "licence": "CC0-1.0",
                        "author": "tester", "kind": "photo", "scene": name,
                        "width": 200, "height": 120})
    catalog = {"format": media.CATALOG_FORMAT, "media": entries}
    (root / "licences.json").write_text(json.dumps(catalog))
    return root


# ---- reserved media ----------------------------------------------------------------------
def test_shipped_reserved_list_is_complete():
    hashes = media.reserved_hashes()
    assert len(hashes) == 2362
    assert "0000489e606ded76dbbb039a0cec9d388a74975726e27f7ac22e3e218cafd74b" in hashes
    assert all(len(h) == 64 for h in hashes)


def test_reserved_file_is_refused_everywhere(tmp_path, monkeypatch):
    cache = _fake_cache(tmp_path / "cache")
    beta = cache / "media" / "fakepkg" / "beta.png"
    alpha = cache / "media" / "fakepkg" / "alpha.png"
    assert not media.is_reserved(beta)
    media.check_not_reserved(beta)  # not reserved yet: no error
    monkeypatch.setattr(media, "_reserved_hashes", lambda: frozenset({_sha(beta)}))
    assert media.is_reserved(beta) and not media.is_reserved(alpha)
    with pytest.raises(UsageError) as err:
        media.check_not_reserved(beta)
    msg = str(err.value)
    assert "\n" not in msg and "beta.png" in msg and "reserved for independent evaluation" in msg
    lines: list[str] = []
    assert [it.name for it in media.load_catalog(cache, on_event=lines.append)] == ["alpha"]
    assert len(lines) == 1 and "beta.png" in lines[0] and "reserved" in lines[0]
    lines.clear()
    users = media.user_catalog(cache / "media", on_event=lines.append)
    assert [it.path.name for it in users] == ["alpha.png"]
    assert len(lines) == 1 and "beta.png" in lines[0]


def test_opencv_packages_are_never_downloaded(tmp_path, monkeypatch):
    assert not any(media._FORBIDDEN.match(p.name) for p in media.PACKAGES)
    for name in ("opencv-doc", "opencv-python", "opencv-contrib-python-headless"):
        pkg = Package(name, "4.6.0", "pypi", "0" * 64, "table", ())
        with pytest.raises(UsageError, match="never fetched"):
            media._download(pkg, tmp_path)
    calls: list[str] = []
    doc = Package("opencv-doc", "4.6.0", "deb", "0" * 64, "dep5", ())
    monkeypatch.setattr(media, "PACKAGES", (doc,))
    monkeypatch.setattr(media, "_download", lambda pkg, dest: calls.append(pkg.name))
    with pytest.raises(UsageError, match="never fetched"):
        media.fetch_sources(tmp_path / "cache", on_event=lambda line: None)
    assert calls == []


# ---- catalog -----------------------------------------------------------------------------
def test_tampered_file_is_refused(tmp_path):
    cache = _fake_cache(tmp_path)
    lines: list[str] = []
    assert [it.name for it in media.load_catalog(cache, on_event=lines.append)] == ["alpha", "beta"]
    assert lines == []
    target = cache / "media" / "fakepkg" / "alpha.png"
    data = bytearray(target.read_bytes())
    data[-20] ^= 0xFF
    target.write_bytes(bytes(data))
    items = media.load_catalog(cache, on_event=lines.append)
    assert [it.name for it in items] == ["beta"]
    assert len(lines) == 1 and "alpha.png" in lines[0] and "altered" in lines[0]
    assert items[0].path == cache / "media" / "fakepkg" / "beta.png" and items[0].width == 200


def test_user_catalog_skips_unreadable_file_with_one_line(tmp_path):
    _png(tmp_path / "good.png", _noise(90, 160, 3))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg" * 10)
    (tmp_path / "notes.txt").write_text("not media")
    lines: list[str] = []
    items = media.user_catalog(tmp_path, on_event=lines.append)
    assert [(it.name, it.kind, it.scene, it.licence) for it in items] == [
        ("user_good", "photo", "good", "user-supplied")]
    assert (items[0].width, items[0].height) == (160, 90)
    assert len(lines) == 1 and "broken.jpg" in lines[0]


def test_dep5_last_matching_stanza_wins_and_matches_by_tail():
    text = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: *\nCopyright: 2014 Everyone\nLicense: GPL-2+\n\n"
            "Files: nature/Aqua.jpg\n       nature/Garden.jpg\nCopyright: 2008, Charles\n"
            " 2009, Other\nLicense: CC-BY-SA-4.0\n\n"
            "Files: 16.04/Sunset.jpg\nCopyright: Aitzol\nLicense: CC0-1.0\n\n"
            "Files: debian/*\nCopyright: packagers\nLicense: GPL-2+\n")
    stanzas = media._dep5(text)
    look = media._dep5_lookup
    assert look(stanzas, "usr/share/backgrounds/mate/nature/Garden.jpg") == (
        "CC-BY-SA-4.0", "2008, Charles; 2009, Other")
    assert look(stanzas, "usr/share/backgrounds/Sunset.jpg") == ("CC0-1.0", "Aitzol")
    storm = look(stanzas, "usr/share/backgrounds/mate/nature/Storm.jpg")
    assert storm == ("GPL-2+", "2014 Everyone")


# ---- rendering ---------------------------------------------------------------------------
def test_render_is_deterministic_with_the_right_shape(tmp_path):
    item = _item(_two_halves(tmp_path / "halves.png"))
    a = media.render_media_clip(item, 64, 36, 6, seed=3, path_index=1)
    b = media.render_media_clip(item, 64, 36, 6, seed=3, path_index=1)
    assert a.shape == (6, 36, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, media.render_media_clip(item, 64, 36, 6, seed=4, path_index=1))
    assert np.abs(a[0].astype(int) - a[-1]).mean() > 1.0  # the camera moves


def test_render_is_identical_in_another_process(tmp_path):
    path = _two_halves(tmp_path / "halves.png")
    item = _item(path)
    here = hashlib.sha256(media.render_media_clip(item, 64, 36, 5, seed=7).tobytes()).hexdigest()
    code = (
        "import hashlib, sys; from pathlib import Path\n"
        "from internvqa.distill.corpus.media import MediaItem, render_media_clip\n"
        f"it = MediaItem('halves', Path(sys.argv[1]), 'photo', 'halves', 'test', 'CC0-1.0', "
        f"{item.width}, {item.height}, '{item.sha256}')\n"
        "print(hashlib.sha256(render_media_clip(it, 64, 36, 5, seed=7).tobytes()).hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == here


def test_paths_do_not_overlap(tmp_path):
    item = _item(_two_halves(tmp_path / "halves.png"))
    # 400x140 -> 200x70 after the 2x downscale; a 64x36 view needs 91x63 regions: 2 side by side.
    assert media.paths_for(item, 64, 36) == 2
    r0, r1 = sorted([media.photo_region(item, 64, 36, 0), media.photo_region(item, 64, 36, 1)])
    assert r0[2] <= r1[0]  # disjoint columns
    clips = [media.render_media_clip(item, 64, 36, 8, seed=0, path_index=k) for k in (0, 1)]
    red = [c for c in clips if c[..., 2].max() == 0 and c[..., 0].min() > 150]
    blue = [c for c in clips if c[..., 0].max() == 0 and c[..., 2].min() > 150]
    assert len(red) == 1 and len(blue) == 1  # each path sees its own half only, in every frame
    with pytest.raises(UsageError, match="out of range"):
        media.render_media_clip(item, 64, 36, 8, seed=0, path_index=2)


def test_first_path_is_the_most_detailed_region(tmp_path):
    img = np.full((140, 400, 3), 120, np.uint8)
    img[:, 200:] = _noise(140, 200, 9)  # flat left half, textured right half
    item = _item(_png(tmp_path / "flat_left.png", img), "flat_left")
    assert media.photo_region(item, 64, 36, 0)[0] >= 100  # the textured (right) cell first
    assert media.photo_region(item, 64, 36, 1)[2] <= 100
    mirrored = np.ascontiguousarray(img[:, ::-1])
    flipped = _item(_png(tmp_path / "flat_right.png", mirrored), "flat_right")
    assert media.photo_region(flipped, 64, 36, 0)[2] <= 100


def test_paths_for_follows_the_downscale_rule(tmp_path):
    png = _item(_png(tmp_path / "small.png", _noise(80, 120, 5)), "small")
    jpg_path = tmp_path / "small.jpg"
    assert cv2.imwrite(str(jpg_path), cv2.imread(str(png.path)))
    jpg = _item(jpg_path, "small_jpg")
    assert media.paths_for(png, 100, 60) == 1  # lossless: usable at 1x
    assert media.paths_for(jpg, 100, 60) == 0  # JPEG needs a >= 2x downscale
    assert media.paths_for(jpg, 60, 40) == 1
    assert media.paths_for(png, 130, 60) == 0  # does not cover the view at all


def _y4m(path: Path, frames: int, w: int = 128, h: int = 72) -> Path:
    """A lossless y4m whose frame i is flat grey with luma 20 + 8 i (the index is readable)."""
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            fh.write(b"FRAME\n")
            fh.write(bytes([20 + 8 * i]) * (w * h) + bytes([128]) * (2 * (w // 2) * (h // 2)))
    return path


def test_video_paths_are_consecutive_disjoint_stretches(tmp_path):
    _y4m(tmp_path / "ramp.y4m", 20)
    (item,) = media.user_catalog(tmp_path, on_event=lambda line: None)
    assert (item.kind, item.frames, item.width, item.height) == ("video", 20, 128, 72)
    assert media.paths_for(item, 64, 36) == 1 and media.paths_for(item, 64, 36, frames=6) == 3
    clips = [media.render_media_clip(item, 64, 36, 6, seed=1, path_index=k) for k in range(2)]
    assert clips[0].shape == (6, 36, 64, 3)
    assert np.array_equal(clips[0], media.render_media_clip(item, 64, 36, 6, seed=1, path_index=0))
    # Frame i is the i-th darkest grey of the video: read indices back from the levels.
    every = media.render_media_clip(item, 64, 36, 20, seed=1)
    ranks = {v: i for i, v in enumerate(sorted({int(f[..., 1].mean().round()) for f in every}))}
    assert len(ranks) == 20
    idx = [[ranks[int(f[..., 1].mean().round())] for f in c] for c in clips]
    for seq in idx:  # consecutive frames, wrapping at the end
        assert all((b - a) % 20 == 1 for a, b in zip(seq, seq[1:], strict=False))
    assert not set(idx[0]) & set(idx[1])
    assert (idx[1][0] - idx[0][0]) % 20 == 6


# ---- fetching ----------------------------------------------------------------------------
def _fake_package(tmp_path: Path, name: str, n: int = 2) -> tuple[Package, Path]:
    """A pypi-style package: a wheel-like zip holding n PNGs, with its pinned sha256."""
    archive = tmp_path / "archives" / f"{name}-1.0-py3-none-any.whl"
    archive.parent.mkdir(parents=True, exist_ok=True)
    items = []
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(n):
            ok, buf = cv2.imencode(".png", _noise(60, 100, hash((name, i)) % 1000))
            assert ok
            src = f"{name}/data/img{i}.png"
            zf.writestr(src, buf.tobytes())
            items.append(Media(src=src, name=f"{name}_img{i}".replace("-", "_"), kind="photo"))
    pkg = Package(name, "1.0", "pypi", _sha(archive), "table", tuple(items), licence="CC0-1.0",
                  author="tester")
    return pkg, archive


def _fake_downloader(archives: dict[str, Path], calls: list[str], failing: set[str]):
    def download(pkg: Package, dest: Path) -> Path:
        calls.append(pkg.name)
        if pkg.name in failing:
            raise FetchError("offline: no route to host")
        return Path(shutil.copy(archives[pkg.name], dest))
    return download


def test_missing_package_is_one_line_and_the_rest_still_fetch(tmp_path, monkeypatch):
    a, arch_a = _fake_package(tmp_path, "fake-a")
    b, arch_b = _fake_package(tmp_path, "fake-b", n=3)
    monkeypatch.setattr(media, "PACKAGES", (a, b))
    calls: list[str] = []
    monkeypatch.setattr(media, "_download",
                        _fake_downloader({"fake-a": arch_a, "fake-b": arch_b}, calls, {"fake-a"}))
    cache = tmp_path / "cache"
    lines: list[str] = []
    rep = media.fetch_sources(cache, on_event=lines.append)
    missing = [ln for ln in lines if ln.startswith("missing:")]
    assert missing == ["missing: fake-a (offline: no route to host)"]
    assert (rep.missing, rep.fetched, rep.refused) == (1, 3, 0)
    data = json.loads((cache / "licences.json").read_text())
    assert {e["package"] for e in data["media"]} == {"fake-b"}
    e = data["media"][0]
    assert (e["licence"], e["author"], e["width"], e["height"]) == ("CC0-1.0", "tester", 100, 60)
    assert _sha(cache / e["file"]) == e["sha256"]
    items = media.load_catalog(cache, on_event=lines.append)
    assert [it.name for it in items] == ["fake_b_img0", "fake_b_img1", "fake_b_img2"]
    # Resumable: fake-b is complete and is not downloaded again; fake-a is retried.
    calls.clear()
    monkeypatch.setattr(media, "_download",
                        _fake_downloader({"fake-a": arch_a, "fake-b": arch_b}, calls, set()))
    rep2 = media.fetch_sources(cache, on_event=lines.append)
    assert calls == ["fake-a"]
    assert [p.status for p in rep2.packages] == ["fetched", "cached"] and rep2.fetched == 5
    assert not list((cache / "media").glob(".*.tmp")) and not list((cache / "downloads").iterdir())


def test_fetch_refuses_reserved_files_and_rejects_unpinned_archives(tmp_path, monkeypatch):
    a, arch_a = _fake_package(tmp_path, "fake-a", n=2)
    with zipfile.ZipFile(arch_a) as zf:
        reserved = hashlib.sha256(zf.read(a.media[1].src)).hexdigest()
    b, arch_b = _fake_package(tmp_path, "fake-b", n=1)
    b = Package(b.name, b.version, b.source, "f" * 64, b.licence_reader, b.media, licence="CC0-1.0")
    monkeypatch.setattr(media, "PACKAGES", (a, b))
    monkeypatch.setattr(media, "_reserved_hashes", lambda: frozenset({reserved}))
    monkeypatch.setattr(media, "_download",
                        _fake_downloader({"fake-a": arch_a, "fake-b": arch_b}, [], set()))
    lines: list[str] = []
    rep = media.fetch_sources(tmp_path / "cache", on_event=lines.append)
    assert (rep.fetched, rep.refused, rep.missing) == (1, 1, 1)
    assert any(ln.startswith("refused: fake-a/img1.png") for ln in lines)
    assert any(ln.startswith("missing: fake-b (") and "pinned" in ln for ln in lines)
    assert not (tmp_path / "cache" / "media" / "fake-a" / "fake_a_img1.png").exists()
    assert not (tmp_path / "cache" / "media" / "fake-b").exists()


def test_cli_fetch_exit_codes_and_list(tmp_path, monkeypatch):
    from internvqa.distill.data_cli import cli

    a, arch_a = _fake_package(tmp_path, "fake-a")
    b, arch_b = _fake_package(tmp_path, "fake-b")
    monkeypatch.setattr(media, "PACKAGES", (a, b))
    archives = {"fake-a": arch_a, "fake-b": arch_b}
    monkeypatch.setattr(media, "_download", _fake_downloader(archives, [], {"fake-a"}))
    cache = tmp_path / "cache"
    res = CliRunner().invoke(cli, ["sources", "fetch", "--cache", str(cache)])
    assert res.exit_code == 1, res.output
    assert "missing: fake-a (offline: no route to host)" in res.output
    assert "fetched: fake-b 1.0 (2 files)" in res.output
    res = CliRunner().invoke(cli, ["sources", "fetch", "--cache", str(cache), "--skip", "nope"])
    assert res.exit_code == 2 and "unknown package" in res.output
    res = CliRunner().invoke(cli, ["sources", "list", "--cache", str(cache), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["kinds"]["photo"] == 2 and summary["scenes"] == 2
    assert summary["packages"] == {"fake-b": {"photo": 2}}
    res = CliRunner().invoke(cli, ["sources", "list", "--cache", str(tmp_path / "none")])
    assert res.exit_code == 2 and "vqa-data sources fetch" in res.output
    monkeypatch.setattr(media, "_download", _fake_downloader(archives, [], {"fake-a", "fake-b"}))
    res = CliRunner().invoke(cli, ["sources", "fetch", "--cache", str(tmp_path / "c2")])
    assert res.exit_code == 2 and "no package could be fetched" in res.output
