"""`vqa-data`: build the synthetic compressed corpus, import public datasets, inspect manifests.

Runs with the light install plus scikit-image (for `synth`); never imports torch. Every
user error is one line on stderr (`error: ...`) and exit code 2.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path

import click

from internvqa.runtime.errors import InternVQAError, UsageError


class _Group(click.Group):
    """Turns InternVQAError into `error: ...` + exit 2 instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InternVQAError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:  # disk full, permission denied...: still one line
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_Group)
def cli() -> None:
    """Corpora for InternVQA: synthetic compressed corpus, dataset importers, manifest info."""


@cli.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the clips, manifest.csv and manifest.json (a rerun resumes).")
@click.option("--preset", type=click.Choice(["demo", "demo-all", "small", "full"]), default="demo",
              show_default=True,
              help="demo: 10 sources at 224x128 (300 clips, the demo's corpus); demo-all: the "
                   "same with all 18 sources (540 clips); small: 18 sources at 320x180; full: 720p.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Encoder processes (default: min(2, CPUs)).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def synth(out_dir: Path, preset: str, seed: int, workers: int | None, as_json: bool) -> None:
    """Build the synthetic compressed corpus (sources x codecs x CRF ladders)."""
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

    try:
        res = run_build(out_dir, preset=preset, seed=seed, workers=workers, on_clip=on_clip)
    finally:
        bar.close()
    summary = {
        "manifest": str(res.manifest), "clips": res.clips, "encoded": res.encoded, "reused": res.reused,
        "sources": res.sources, "codecs": res.codecs, "splits": res.splits, "seconds": round(res.seconds, 2),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(
            f"{res.clips} clips ({res.encoded} encoded, {res.reused} reused) from {res.sources} sources, "
            f"codecs {', '.join(res.codecs)}, splits {res.splits}, {res.seconds:.1f} s\nmanifest: {res.manifest}"
        )


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


@cli.command()
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def info(manifest: Path, as_json: bool) -> None:
    """Counts per split and codec, sources, and the MOS range of a manifest."""
    from internvqa.runtime.manifest import read_manifest

    rows = read_manifest(manifest)
    mos = [r.mos for r in rows if r.mos is not None]
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
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{summary['videos']} videos, {summary['sources']} sources, {len(mos)} labelled")
    click.echo("splits: " + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    click.echo("codecs: " + ", ".join(f"{k} {v}" for k, v in summary["codecs"].items()))
    if mos:
        click.echo(f"mos: {summary['mos_min']:.2f} .. {summary['mos_max']:.2f} (mean {summary['mos_mean']:.2f})")


def main() -> None:
    cli(prog_name="vqa-data")


if __name__ == "__main__":
    main()
