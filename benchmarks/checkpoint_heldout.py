"""Held-out SRCC of PyTorch checkpoints on the training evaluation path (no export needed).

    python benchmarks/checkpoint_heldout.py --manifest M.csv CKPT [CKPT ...] [--json out.json]

Every window of every val/test video, three crops, mean per video: the figures
`vqa-distill teacher` reports at the end of a run, for checkpoints made without a run
(`vqa-distill average`) or to compare runs on the same videos. Per split, all sources and
the natural ones. Pixel scores only: a hybrid checkpoint is scored with its pixel input.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import torch

from internvqa.distill.checkpoint import load_checkpoint
from internvqa.distill.data import EvalWindows, build_window_cache, split_videos
from internvqa.distill.distributed import DistInfo
from internvqa.distill.models.registry import TIMM_PREFIX
from internvqa.distill.train_eval import predict_videos, video_metrics
from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.manifest import read_manifest


@click.command()
@click.option("--manifest", required=True, type=click.Path(exists=True, path_type=Path))
@click.argument("checkpoints", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", "splits", multiple=True, default=("val", "test"), show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--threads", type=int, default=2, show_default=True)
def main(manifest: Path, checkpoints: tuple[Path, ...], splits: tuple[str, ...],
         json_out: Path | None, threads: int) -> None:
    torch.set_num_threads(threads)
    rows = [r for r in read_manifest(manifest) if r.split in splits and r.mos is not None]
    models = [load_checkpoint(c) for c in checkpoints]
    specs = {json.dumps(cfg["clip_spec"], sort_keys=True) for _, cfg in models}
    if len(specs) != 1:
        raise click.UsageError("the checkpoints have different clip specs")
    cache = build_window_cache(rows, ClipSpec.from_dict(models[0][1]["clip_spec"]))
    by_split = split_videos(rows)
    out: dict = {}
    for path, (model, cfg) in zip(checkpoints, models, strict=True):
        model = model.eval()
        if cfg["model"]["architecture"].startswith(TIMM_PREFIX):  # NHWC, as in training
            model = model.to(memory_format=torch.channels_last)
        for split in splits:
            with torch.no_grad():
                preds = predict_videos(lambda x, m=model: m(x)[0],
                                       EvalWindows(cache, rows, by_split[split]), 32, DistInfo())
            natural = {v: p for v, p in preds.items() if rows[v].natural}
            fig = {"all": video_metrics(preds, rows), "natural": video_metrics(natural, rows)}
            out[f"{path}:{split}"] = fig
            click.echo(f"{str(path):50s} {split:5s} SRCC {_srcc(fig['all'])} "
                       f"(n {len(preds)}), natural {_srcc(fig['natural'])} "
                       f"(n {len(natural)})")
    if json_out:
        json_out.write_text(json.dumps(out, indent=1) + "\n")


def _srcc(fig: dict) -> str:
    """SRCC to 4 digits, or "-" where the subset has too few videos (e.g. no natural ones)."""
    return f"{fig['srcc']:.4f}" if "srcc" in fig else "-"


if __name__ == "__main__":
    main()
