"""`vqa-distill models`: every registered model with its params and MACs.

Counts are measured on the `meta` device (see `profile.py`), so listing the 6B teacher
allocates no weights and takes about a second.
"""

from __future__ import annotations

import json

import click

from .profile import profile_model
from .registry import TIMM_EXAMPLES, list_models


def model_rows() -> list[dict]:
    """One profile per registered model, then the timm examples, at each default clip."""
    return [profile_model(name) for name in (*list_models(), *TIMM_EXAMPLES)]


def format_table(rows: list[dict]) -> str:
    """Markdown table: name, params (M), MACs (G) and the clip they were counted on."""
    lines = ["| model | params (M) | MACs (G) | clip (C, T, H, W) |", "|---|---:|---:|---|"]
    for r in rows:
        clip = "x".join(str(d) for d in r["clip_shape"])
        lines.append(f"| {r['name']} | {r['params'] / 1e6:.1f} | {r['macs'] / 1e9:.1f} | {clip} |")
    return "\n".join(lines)


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def models_command(as_json: bool) -> None:
    """List the models `--teacher` / `--student` accept, with params and MACs.

    MACs are for one clip at the model's default size (8x224x224 for the InternVideo2
    family and the timm examples; smaller for the CPU configs). Any timm backbone works as
    a heterogeneous student via `timm:<name>`; a few are shown.
    """
    rows = model_rows()
    click.echo(json.dumps(rows, indent=2) if as_json else format_table(rows))
