"""`vqa-distill average`: the uniform weight average of fine-tuned checkpoints (a "model soup").

Two fine-tunes of the same pretrained init on the same data drift apart in content-specific
ways (on the standard corpus a 3-epoch and a 6-epoch run moved single test sources by up to
12 VMAF points in opposite directions). Averaging their weights keeps one model's cost and
averages out part of that drift. Only checkpoints of one architecture and one clip spec
can be averaged; anything else is refused, not silently mixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
import torch

from internvqa.runtime.cli_common import Command
from internvqa.runtime.errors import UsageError

from .checkpoint import load_checkpoint, read_checkpoint_config, save_checkpoint


def average_checkpoints(sources: Sequence[Path], out: Path) -> Path:
    """Write the uniform average of `sources` (>= 2 checkpoint dirs) to `out`."""
    if len(sources) < 2:
        raise UsageError("average: give at least two checkpoints")
    configs = [read_checkpoint_config(Path(s)) for s in sources]
    first = configs[0]
    for src, cfg in zip(sources[1:], configs[1:], strict=True):
        if cfg["model"] != first["model"]:
            raise UsageError(f"average: {src} is a different model from {sources[0]} "
                             f"({cfg['model'].get('architecture')} vs "
                             f"{first['model'].get('architecture')}, or other settings)")
        if cfg["clip_spec"] != first["clip_spec"]:
            raise UsageError(f"average: {src} has another clip spec than {sources[0]}")
        if cfg.get("score_scale") != first.get("score_scale"):
            raise UsageError(f"average: {src} has another score scale than {sources[0]}")
    model, _ = load_checkpoint(sources[0])
    model = model.float()
    total = {k: v.detach().clone().float() if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    for src in sources[1:]:
        other = load_checkpoint(src)[0].float().state_dict()
        for k, v in total.items():
            if v.is_floating_point():
                v.add_(other[k])
    n = float(len(sources))
    model.load_state_dict({k: v / n if v.is_floating_point() else v for k, v in total.items()})
    provenance = {**first.get("provenance", {}), "kind": "average",
                  "averaged": [str(Path(s).resolve()) for s in sources]}
    return save_checkpoint(out, model, first["clip_spec"], first.get("score_scale", {}),
                           provenance, {})


@click.command("average", cls=Command)
@click.argument("checkpoints", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Checkpoint dir to write (atomically).")
def average_command(checkpoints: tuple[Path, ...], out: Path) -> None:
    """Average the weights of fine-tuned checkpoints of one model (a model soup).

    \b
    Example: vqa-distill average runs/a/best runs/b/best --out runs/soup
    The result is a checkpoint like any other: `vqa-distill hybrid --from`, `vqa-export`.
    """
    with torch.no_grad():
        path = average_checkpoints(list(checkpoints), out)
    click.echo(f"averaged {len(checkpoints)} checkpoints -> {path}")
