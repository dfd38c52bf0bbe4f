"""Held-out accuracy of a bundle on a corpus split, beside the bitrate model a farm gets free.

    python benchmarks/heldout.py --manifest work/corpus/standard/manifest.csv \\
        [--bundle DIR] [--split test] [--json out.json]

Every video of the split is scored by the runtime's `Scorer` (the path `vqa-score` runs;
resolution-ladder rungs from their coded files where `vqa-data rungs` re-created them, at
display size); a hybrid bundle is scored twice, with its bitstream input and pixels-only,
and compared with the manifest's labels (libvmaf VMAF on the standard corpus) by
`bench.accuracy` (`runtime.metrics.evaluate`): SRCC, KRCC, PLCC and RMSE after the VQEG logistic fit, RD-order
accuracy over (source, codec, coded resolution) ladders, and the mean within-source SRCC.
Rows: all held-out videos, natural camera content only (`content` column), and the
1280x720 tier when present.

The bitrate model is the peer every encoder farm already has: ridge regression of the
label on log bits-per-pixel (from the manifest's `kbps`, coded size and frame rate),
log coded pixels and codec, fitted on the train split. It needs no pixels at all.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import click
import numpy as np

from internvqa.runtime.manifest import ManifestRow, read_manifest

CODECS = ("libx264", "libx265", "libvpx-vp9", "libsvtav1")


def figures(pred: Sequence[float], rows: Sequence[ManifestRow]) -> dict:
    """The accuracy row of one engine on some videos: `bench.accuracy` (the evaluation
    `vqa-bench` reports, the mean within-source SRCC included)."""
    from internvqa.bench.bench import accuracy

    keep = [(p, r) for p, r in zip(pred, rows, strict=True)
            if p is not None and math.isfinite(p) and r.mos is not None]
    if len(keep) < 3:
        return {"n": len(keep)}
    p, rs = [k[0] for k in keep], [k[1] for k in keep]
    m = accuracy(p, rs)
    keys = ("n", "srcc", "krcc", "plcc_logistic", "rmse_logistic", "plcc_linear",
            "rd_order_accuracy", "rd_order_pairs", "within_source_srcc")
    return {k: m.get(k, float("nan")) for k in keys}


def _coded(row: ManifestRow) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in row.resolution.split("x"))
        return w, h
    except (AttributeError, ValueError):
        return int(row.width or 0), int(row.height or 0)


def bitrate_features(rows: Sequence[ManifestRow], fps: float) -> np.ndarray:
    """log bpp, log coded pixels and codec one-hot, per row (kbps column required)."""
    out = []
    for r in rows:
        w, h = _coded(r)
        kbps = float(r.extra.get("kbps") or "nan")
        bpp = kbps * 1000.0 / (fps * max(1, w * h))
        out.append([math.log(max(bpp, 1e-6)), math.log(max(1, w * h)),
                    *[float(r.codec == c) for c in CODECS]])
    return np.asarray(out, dtype=np.float64)


def bitrate_model(train: Sequence[ManifestRow], test: Sequence[ManifestRow], fps: float,
                  lam: float = 1.0) -> list[float]:
    """Ridge on `bitrate_features` (with squared log bpp), fitted on `train`."""
    def design(rows):
        x = bitrate_features(rows, fps)
        return np.column_stack([x, x[:, :1] ** 2, x[:, :1] * x[:, 1:2]])

    from internvqa.bench.baseline import ridge_fit

    xtr, xte = design(train), design(test)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-9
    w, b = ridge_fit((xtr - mu) / sd, np.array([r.mos for r in train]), lam)
    return list(((xte - mu) / sd) @ w + b)


def subsets(rows: Sequence[ManifestRow]) -> dict[str, list[int]]:
    out = {"all": list(range(len(rows)))}
    nat = [i for i, r in enumerate(rows) if r.natural]
    if nat:
        out["natural"] = nat
    tiers = sorted({f"{r.width}x{r.height}" for r in rows})
    if len(tiers) > 1:
        for t in tiers:
            out[t] = [i for i, r in enumerate(rows) if f"{r.width}x{r.height}" == t]
    return out


@click.command()
@click.option("--manifest", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--bundle", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Bundle to score with (default: the shipped default model).")
@click.option("--precision", help="Bundle precision (default: the bundle's).")
@click.option("--split", default="test", show_default=True)
@click.option("--limit", type=int, default=0, help="Score only the first N videos (0: all).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
def main(manifest: Path, bundle: Path | None, precision: str | None, split: str, limit: int,
         json_out: Path | None) -> None:
    """Score the held-out split with a bundle; print our figures beside the bitrate model's."""
    print_report(run(manifest, bundle, precision, split, limit, json_out))


def run(manifest: Path, bundle: Path | None = None, precision: str | None = None,
        split: str = "test", limit: int = 0, json_out: Path | None = None) -> dict:
    """The report `main` prints: figures per engine and subset."""
    from internvqa.bench.bench import score_rows
    from internvqa.runtime.bundle import default_bundle
    from internvqa.runtime.scorer import Scorer

    rows = read_manifest(manifest)
    side = manifest.parent / "manifest.json"
    fps = float(json.loads(side.read_text()).get("fps", 24)) if side.is_file() else 24.0
    test = [r for r in rows if r.split == split and r.mos is not None]
    if limit:
        test = test[:limit]
    train = [r for r in rows if (r.split or "train") == "train" and r.mos is not None]
    if not test:
        raise click.UsageError(f"{manifest}: no labelled videos in split {split!r}")
    bundle = bundle or default_bundle()
    scorer = Scorer(bundle, precision)
    preds, seconds, failures = score_rows(scorer, test, progress=sys.stderr.isatty())
    name = f"{scorer.bundle.model_name}:{scorer.bundle.precision}"
    engines = {name + (" hybrid" if scorer.uses_bitstream else ""): preds}
    if scorer.uses_bitstream:  # the same model on pixels alone (raw frames, no bitstream)
        pixels = Scorer(scorer.bundle, backend=scorer.backend, bitstream=False)
        engines[name + " pixels-only"] = score_rows(pixels, test, progress=sys.stderr.isatty(),
                                                    desc="pixels-only")[0]
    if all(r.extra.get("kbps") for r in train + test):
        engines["bitrate model (ridge, train split)"] = bitrate_model(train, test, fps)
    report = {"manifest": str(manifest), "bundle": str(bundle), "split": split,
              "videos": len(test), "failures": failures,
              "seconds_per_video": float(np.mean(seconds)), "figures": {}}
    for name, pred in engines.items():
        report["figures"][name] = {
            sub: figures([pred[i] for i in idx], [test[i] for i in idx])
            for sub, idx in subsets(test).items()}
    if json_out:
        json_out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def print_report(report: dict) -> None:
    cols = ("n", "srcc", "plcc_logistic", "rmse_logistic", "rd_order_accuracy",
            "within_source_srcc")
    head = f"{'engine':40s} {'subset':10s}" + "".join(f"{c[:14]:>15s}" for c in cols)
    click.echo(head)
    for name, subs in report["figures"].items():
        for sub, m in subs.items():
            vals = "".join(f"{m.get(c, float('nan')):15.4f}" if c != "n" else f"{m.get('n', 0):15d}"
                           for c in cols)
            click.echo(f"{name[:40]:40s} {sub:10s}{vals}")
    click.echo(f"{report['videos']} {report['split']} videos of {report['manifest']}; "
               f"{report['seconds_per_video']:.2f} s per video; {len(report['failures'])} failed")


if __name__ == "__main__":
    main()
