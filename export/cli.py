"""`vqa-export`: a distilled checkpoint -> ONNX (FP32/FP16/INT8), TensorRT engine, bundle.

    vqa-export --student vit_s --int8          # latest vit_s run, its training manifest
    vqa-export --checkpoint DIR --manifest corpus.csv --out bundles/x --triton triton_repo
    vqa-export --engine-only work/bundles/vit_s   # on a GPU host: add the TensorRT plan

Defaults: the work dir is `$INTERNVQA_WORK` or `./work`; the checkpoint is the most
recently modified `<work>/runs/student-<name>*/best`; calibration and parity clips come
from the manifest recorded in the checkpoint's provenance; the bundle goes to
`<work>/bundles/<name>/` and `<work>/bundles/latest` points at it. Errors a user can fix
print one `error: ...` line and exit 2, leaving nothing half-written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from internvqa.runtime.cli_common import Command
from internvqa.runtime.errors import UsageError
from internvqa.runtime.workspace import (
    bundle_dir,
    bundles_dir,
    latest_checkpoint,
    point_latest,
    work_dir,
)


@click.command(cls=Command, interrupted="interrupted (nothing was written)",
               context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--student", help="Model name (vit_s, vit_b, timm:resnet18 ...): finds its latest "
              "checkpoint and checks that --checkpoint holds this architecture.")
@click.option("--checkpoint", type=click.Path(path_type=Path), help="Checkpoint directory.")
@click.option("--manifest", type=click.Path(path_type=Path),
              help="Manifest for calibration, parity and accuracy clips (default: the "
              "checkpoint's training manifest).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Bundle directory (default <work>/bundles/<model>).")
@click.option("--int8", is_flag=True, help="Add the INT8 Q/DQ graph; it becomes the default precision.")
@click.option("--fp16/--no-fp16", default=True, show_default=True, help="Add the FP16 graph.")
@click.option("--engine/--no-engine", default=None,
              help="Build a TensorRT engine (default: where tensorrt imports and a GPU exists).")
@click.option("--engine-only", "engine_only", type=click.Path(path_type=Path),
              help="Only add a TensorRT engine to an existing bundle (on a GPU host).")
@click.option("--calib-clips", default=512, show_default=True, type=click.IntRange(1),
              help="INT8 calibration clips (NVIDIA recommends >= 500 for ViTs).")
@click.option("--calib-method", type=click.Choice(["minmax", "entropy"]), default="minmax",
              show_default=True, help="entropy keeps every clip's activations in memory on ORT.")
@click.option("--quantizer", type=click.Choice(["auto", "ort", "modelopt"]), default="auto",
              show_default=True, help="auto: NVIDIA ModelOpt where importable, else ONNX Runtime.")
@click.option("--parity-clips", default=8, show_default=True, type=click.IntRange(1))
@click.option("--eval-videos", default=0, show_default=True, type=click.IntRange(0),
              help="Held-out videos for the INT8 accuracy report (0: all).")
@click.option("--latency-runs", default=20, show_default=True, type=click.IntRange(0),
              help="Timed batch-1 runs per precision for the CPU latency report (0: skip).")
@click.option("--max-batch", default=8, show_default=True, type=click.IntRange(1),
              help="Largest batch of the TensorRT profile and Triton config.")
@click.option("--triton", type=click.Path(path_type=Path),
              help="Also write a Triton Inference Server model repository here.")
@click.option("--json", "as_json", is_flag=True, help="Print the bundle summary as JSON.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def main(student, checkpoint, manifest, out, int8, fp16, engine, engine_only, calib_clips,
         calib_method, quantizer, parity_clips, eval_videos, latency_runs, max_batch, triton,
         as_json, no_progress) -> None:
    """Export a distilled InternVQA model to ONNX/TensorRT and write a bundle."""
    def log(msg: str) -> None:
        click.echo(f"[vqa-export] {msg}", err=True)

    if engine_only is not None:
        from .engine_only import add_engine

        result = add_engine(engine_only, max_batch, work_dir(), log)
        _report(result, as_json)
        return
    from .pipeline import ExportOptions, run_export

    if student is None and checkpoint is None:
        raise UsageError("give --student NAME (latest checkpoint) or --checkpoint DIR")
    work = work_dir()
    ckpt = checkpoint or latest_checkpoint(student, work)
    if out is None:
        from internvqa.distill.checkpoint import read_checkpoint_config

        arch = student or read_checkpoint_config(ckpt)["model"]["architecture"]
        out = bundle_dir(arch, work)
    opts = ExportOptions(
        checkpoint=Path(ckpt), out=Path(out), work=work, manifest=manifest,
        expect_architecture=student, int8=int8, fp16=fp16, engine=engine,
        calib_clips=calib_clips, calib_method=calib_method, quantizer=quantizer,
        parity_clips=parity_clips, eval_videos=eval_videos, latency_runs=latency_runs,
        max_batch=max_batch, triton=triton, progress=not no_progress and sys.stderr.isatty(),
    )
    result = run_export(opts, log)
    if Path(out).resolve().parent == bundles_dir(work).resolve():
        point_latest(result.bundle, work)
    _report(result, as_json)


def _report(result, as_json: bool) -> None:
    meta = result.meta
    summary = {
        "bundle": str(result.bundle),
        "default_precision": meta.get("default_precision"),
        "files": {k: {"bytes": v["bytes"], "precision": v.get("precision")}
                  for k, v in meta["files"].items()},
        "parity": meta.get("parity", {}),
        "accuracy": meta.get("accuracy", {}),
        "latency_cpu": meta.get("latency_cpu", {}),
        "engine": result.engine_note,
        "triton": [str(p) for p in result.triton],
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"bundle: {result.bundle} (default precision {summary['default_precision']})")
    for name, f in summary["files"].items():
        click.echo(f"  {name:28s} {f['precision']:5s} {f['bytes'] / 1e6:8.1f} MB")
    if result.engine_note:
        click.echo(result.engine_note)
    for p in result.triton:
        click.echo(f"triton model: {p}")


if __name__ == "__main__":
    main()
