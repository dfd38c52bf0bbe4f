"""Check the corpus's libvmaf labels: against vmaf-torch, and against its own PSNR/SSIM.

    pip download --no-deps -d /tmp/vt vmaf-torch==1.1.0 && unzip -o /tmp/vt/*.whl -d /tmp/vt
    python benchmarks/vmaf_crosscheck.py --manifest work/corpus/standard/manifest.csv \\
        --vmaf-torch /tmp/vt --encodes 24

1. vmaf-torch (an independent PyTorch re-implementation of VMAF v0.6.1) on a seeded sample
   of encodes: the distorted clip (bicubic-upscaled to the reference size, as libvmaf saw
   it) and its lossless reference, luma only; reports the mean absolute difference of the
   pooled scores and the largest one. vmaf-torch is only read from the folder given (its
   `yuvio` and `pandas` imports, used for file IO and a feature table only, are stubbed), never installed.
2. Per-encode SRCC of VMAF against the corpus's PSNR-Y and SSIM (all labelled encodes, and
   the mean within-source SRCC): how far VMAF's ranking agrees with the simpler metrics.
"""

from __future__ import annotations

import json
import sys
import time
import types
from pathlib import Path

import click
import numpy as np

from internvqa.runtime.manifest import ManifestRow, read_manifest
from internvqa.runtime.metrics import srcc


def _luma_frames(path: Path, size: tuple[int, int] | None = None, limit: int = 0) -> np.ndarray:
    """(T, H, W) float32 luma of the first `limit` frames (0: all), resized to `size`."""
    import av
    import cv2

    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            y = f.reformat(format="yuv420p").to_ndarray()[: f.height]
            if size and (f.width, f.height) != size:
                y = cv2.resize(y, size, interpolation=cv2.INTER_CUBIC)
            out.append(y.astype(np.float32))
            if limit and len(out) >= limit:
                break
    return np.stack(out)


def _vmaf_torch(folder: Path):
    for name in ("yuvio", "pandas"):  # file IO and a table helper only; not on the score path
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.path.insert(0, str(folder))
    from vmaf_torch import VMAF  # type: ignore[import-not-found]

    return VMAF(temporal_pooling=True)


def reference_of(row: ManifestRow) -> Path:
    """The lossless reference: the corpus's refs/ file, or `vqa-data label`'s column."""
    if row.extra.get("reference"):
        ref = Path(row.extra["reference"])
        return ref if ref.is_absolute() else Path(row.root or ".") / ref
    return Path(row.root or ".") / "refs" / f"{row.source}_{row.width}x{row.height}.mkv"


def crosscheck(rows: list[ManifestRow], folder: Path, n: int, seed: int, frames: int = 0) -> dict:
    """vmaf-torch vs libvmaf on `n` encodes; with `frames`, on their first frames only
    (compared with the mean of libvmaf's per-frame scores of the same frames)."""
    import torch

    vmaf = _vmaf_torch(folder).eval()
    rng = np.random.default_rng(seed)
    pick = [rows[i] for i in rng.choice(len(rows), size=min(n, len(rows)), replace=False)]
    diffs, out = [], []
    t0 = time.perf_counter()
    for r in pick:
        ref_path = reference_of(r)
        ref = _luma_frames(ref_path, limit=frames)
        dist = _luma_frames(r.abspath, (ref.shape[2], ref.shape[1]), limit=frames)
        with torch.no_grad():
            score = float(vmaf(torch.from_numpy(ref)[:, None], torch.from_numpy(dist)[:, None]))
        per_frame = [float(v) for v in r.extra.get("mos_frames", "").split()]
        lib = float(np.mean(per_frame[: len(ref)])) if frames and per_frame \
            else float(r.extra["vmaf"])
        d = abs(score - lib)
        diffs.append(d)
        out.append({"path": r.path, "frames": len(ref), "libvmaf": lib, "vmaf_torch": score,
                    "abs_diff": d})
    return {"encodes": len(pick), "mean_abs_diff": float(np.mean(diffs)),
            "max_abs_diff": float(np.max(diffs)), "seconds": time.perf_counter() - t0,
            "rows": out}


def agreement(rows: list[ManifestRow]) -> dict:
    labelled = [r for r in rows if r.extra.get("vmaf") and r.extra.get("psnr_y")]
    v = [float(r.extra["vmaf"]) for r in labelled]
    out = {"encodes": len(labelled), "srcc_vmaf_psnr_y": srcc(v, [float(r.extra["psnr_y"])
                                                                 for r in labelled])}
    if all(r.extra.get("ssim") for r in labelled):
        out["srcc_vmaf_ssim"] = srcc(v, [float(r.extra["ssim"]) for r in labelled])
    within = []
    by: dict[str, list[ManifestRow]] = {}
    for r in labelled:
        by.setdefault(r.source, []).append(r)
    for group in by.values():
        if len(group) >= 3:
            within.append(srcc([float(r.extra["vmaf"]) for r in group],
                               [float(r.extra["psnr_y"]) for r in group]))
    out["within_source_srcc_vmaf_psnr_y"] = float(np.nanmean(within)) if within else None
    return out


@click.command()
@click.option("--manifest", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--vmaf-torch", "folder", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder holding the extracted vmaf-torch wheel (skip the cross-check if unset).")
@click.option("--encodes", default=24, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--frames", default=0, show_default=True,
              help="Compare on the first N frames of each encode only (0: all; vmaf-torch "
                   "runs at ~1.5 fps at 720p on 2 cores).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
def main(manifest: Path, folder: Path | None, encodes: int, seed: int, frames: int,
         json_out: Path | None) -> None:
    """libvmaf labels vs vmaf-torch on a sample, and vs PSNR-Y/SSIM on every encode."""
    rows = read_manifest(manifest)
    report = {"manifest": str(manifest), "agreement": agreement(rows)}
    if folder is not None:
        report["vmaf_torch"] = crosscheck([r for r in rows if r.extra.get("vmaf")], folder,
                                          encodes, seed, frames)
    text = json.dumps(report, indent=2)
    if json_out:
        json_out.write_text(text + "\n")
    click.echo(json.dumps({k: ({kk: vv for kk, vv in v.items() if kk != "rows"}
                               if isinstance(v, dict) else v) for k, v in report.items()},
                          indent=2))


if __name__ == "__main__":
    main()
