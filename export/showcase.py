"""The demo's first minute: the shipped default model against libvmaf on fresh encodes.

A licensed photo the model never trained on (the Kodak "tulips" of the `sporco` wheel,
a test-split scene of the standard corpus) becomes a 1 s camera-pan clip; the corpus
machinery (`synth.run_build`, one encode + libvmaf path) encodes it over CRF ladders in
three codecs plus a half-resolution pair; the shipped bundle scores every encode (the
half-resolution ones from their coded files, upscaled to display size as a player
would: a hybrid model reads their bits too). The
table shows predicted score beside VMAF per clip, the SRCC, and whether every ladder is
ordered (quality falls as CRF rises, and the half-resolution encode scores below the
full-resolution one at the same CRF).

Where the photo cannot be fetched (offline), it falls back to scikit-image's `chelsea`,
which *is* a training source, and says so.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import click

from internvqa.runtime.cli_common import Command
from internvqa.runtime.errors import InternVQAError

PHOTO = "sporco_tulips"
FALLBACK = "chelsea"


@dataclass
class ShowcaseRow:
    clip: str
    codec: str
    resolution: str
    crf: float
    vmaf: float
    score: float


def _photo(work: Path, log: Callable[[str], None]) -> tuple[Path | None, str]:
    """The held-out photo as a one-file folder for `synth --sources`, or None (fallback)."""
    from internvqa.distill.corpus.media import fetch_sources, load_catalog

    cache = work / "sources"
    try:
        items = {i.name: i for i in load_catalog(cache, on_event=lambda m: None)} \
            if (cache / "licences.json").is_file() else {}
        if PHOTO not in items:
            from internvqa.distill.corpus.media import PACKAGES

            fetch_sources(cache, skip={p.name for p in PACKAGES if p.name != "sporco"},
                          on_event=lambda m: None)
            items = {i.name: i for i in load_catalog(cache, on_event=lambda m: None)}
    except (InternVQAError, OSError) as exc:
        log(f"cannot fetch the held-out photo ({exc}); using scikit-image's {FALLBACK}")
        return None, f"{FALLBACK} (scikit-image; a training source)"
    if PHOTO not in items:
        log(f"{PHOTO} not in {cache}; using scikit-image's {FALLBACK}")
        return None, f"{FALLBACK} (scikit-image; a training source)"
    folder = work / "showcase" / "photo"
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / items[PHOTO].path.name
    if not dst.exists():
        shutil.copyfile(items[PHOTO].path, dst)
    return folder, f"{PHOTO} ({items[PHOTO].package}, {items[PHOTO].licence}; held out)"


def run_showcase(work: Path, bundle: Path | None = None,
                 log: Callable[[str], None] = lambda m: click.echo(m, err=True)) -> dict:
    """Encode, label and score the showcase clips; returns the table and its figures."""
    from internvqa.distill.corpus import synth
    from internvqa.runtime.bundle import default_bundle
    from internvqa.runtime.manifest import read_manifest
    from internvqa.runtime.metrics import rd_order_pairs, srcc
    from internvqa.runtime.scorer import Scorer

    bundle = bundle or default_bundle()
    if bundle is None:
        raise InternVQAError("this install has no default model to show")
    folder, content = _photo(work, log)
    preset = replace(
        synth.PRESETS["standard"], name="showcase", frames=24, hd=None,
        sources=() if folder else (FALLBACK,), media=folder is not None,
        ladders={"libx264": (22, 32, 41, 51), "libvpx-vp9": (36, 50, 58, 63),
                 "libsvtav1": (45, 55, 60, 63)},
        res_ladder=((2, "libx264", (22, 32)),), max_paths={"photo": 1},
    )
    out = work / "showcase" / ("corpus" if folder else "corpus-fallback")
    res = synth.run_build(out, preset=preset, sources_dir=folder, workers=2,
                          on_note=lambda m: None)
    rows = read_manifest(res.manifest)
    scorer = Scorer(bundle)
    table = []
    fps = preset.fps
    for r in rows:
        if r.resolution != f"{r.width}x{r.height}":  # score a rung from its coded file
            cw, ch = (int(v) for v in r.resolution.split("x"))
            synth.write_rung(out, r.path, r.source, r.codec, int(r.crf or 0), (cw, ch),
                             (int(r.width), int(r.height)), fps)
        path, display = synth.coded_input(r)
        result = scorer.score_file(path, display=display)
        table.append(ShowcaseRow(Path(r.path).name, r.codec, r.resolution, r.crf or 0.0,
                                 float(r.mos), float(result.score)))
    full = f"{preset.width}x{preset.height}"
    pred = [t.score for t in table]
    correct, pairs = rd_order_pairs(pred, [(t.codec, t.resolution) for t in table],
                                    [t.crf for t in table])
    res_pairs = [(a, b) for a in table for b in table
                 if a.codec == b.codec and a.crf == b.crf and a.resolution == full
                 and b.resolution != full]
    res_ok = sum(a.score > b.score for a, b in res_pairs)
    return {"content": content, "bundle": str(bundle), "model": scorer.bundle.model_name,
            "precision": scorer.bundle.precision, "rows": table,
            "srcc": srcc(pred, [t.vmaf for t in table]),
            "ladder_pairs_ordered": correct, "ladder_pairs": pairs,
            "resolution_pairs_ordered": res_ok, "resolution_pairs": len(res_pairs)}


def print_showcase(report: dict) -> None:
    click.echo(f"shipped model {report['model']} ({report['precision']}) on {report['content']}:")
    click.echo(f"  {'clip':34s} {'VMAF':>6s} {'score':>6s}")
    for t in report["rows"]:
        click.echo(f"  {t.clip:34s} {t.vmaf:6.1f} {t.score:6.1f}")
    click.echo(f"  SRCC vs VMAF {report['srcc']:.3f}; CRF ladders ordered in "
               f"{report['ladder_pairs_ordered']}/{report['ladder_pairs']} adjacent pairs; "
               f"half resolution below full in {report['resolution_pairs_ordered']}/"
               f"{report['resolution_pairs']}")


@click.command(cls=Command)
@click.option("--bundle", type=click.Path(path_type=Path, file_okay=False),
              help="Bundle to show (default: the shipped default model).")
def main(bundle: Path | None) -> None:
    """Score fresh encodes of a held-out photo with the default model, beside libvmaf."""
    from internvqa.runtime.workspace import work_dir

    print_showcase(run_showcase(work_dir(), bundle))


if __name__ == "__main__":  # pragma: no cover
    main()
