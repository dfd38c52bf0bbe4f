"""Ship a bundle as the package's default model: `python -m internvqa.export.ship BUNDLE`.

The default model is an ordinary bundle (same files, same `bundle.json`, same hashes)
re-written into `runtime/default_bundle/` with a `model_card` field that says what it is:
training corpus and its manifest hash, the exact commands, seed, held-out metrics,
speed, and the licences of the foundation weights and of the training content. The card
is part of `bundle.json`, so it is covered by `meta_sha256` like every other field, and
`MODEL_CARD.md` beside it renders the same facts for people.

Only ONNX graphs ship (the runtime needs nothing else); a TensorRT plan is tied to one
GPU and TensorRT version and is never shipped.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import click

from internvqa.runtime.bundle import DEFAULT_BUNDLE_DIR, load_bundle, write_bundle
from internvqa.runtime.cli_common import Command
from internvqa.runtime.errors import InternVQAError, UsageError

RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtime"
CARD_NAME = "MODEL_CARD.md"


def ship(bundle: Path, card: dict[str, Any], out: Path | None = None,
         precisions: tuple[str, ...] = ("fp32", "fp16", "int8")) -> Path:
    """Copy `bundle`'s ONNX graphs + meta (plus `card`) into the default-bundle folder."""
    src = load_bundle(bundle)
    meta = copy.deepcopy(src.meta)
    files = {}
    extra = {}
    for name, entry in meta["files"].items():
        if entry.get("precision") in precisions and name.endswith(".onnx"):
            files[name] = Path(bundle) / name
            extra[name] = {k: v for k, v in entry.items() if k not in ("sha256", "bytes")}
    if not files:
        raise InternVQAError(f"{bundle}: no ONNX graph of {precisions}")
    keep = {k: v for k, v in meta.items()
            if k not in ("files", "meta_sha256", "format", "format_version", "engine")}
    keep["files"] = extra
    if keep.get("default_precision") not in {extra[n]["precision"] for n in extra}:
        keep["default_precision"] = src.precision
    keep["model_card"] = card
    keep["shipped_from"] = str(Path(bundle).resolve())
    out = out or RUNTIME_DIR / DEFAULT_BUNDLE_DIR
    written = write_bundle(out, files, keep)
    (written / CARD_NAME).write_text(render_card(card, keep), encoding="utf-8")
    load_bundle(written)  # the shipped copy verifies
    return written


def render_card(card: dict[str, Any], meta: dict[str, Any]) -> str:
    """MODEL_CARD.md: the card's fields as Markdown (sections in the card's order)."""
    lines = [f"# {card.get('title', 'InternVQA default model')}", ""]
    for key, value in card.items():
        if key == "title":
            continue
        lines += [f"## {key.replace('_', ' ').capitalize()}", ""]
        if isinstance(value, dict):
            lines += [f"- **{k}**: {v}" for k, v in value.items()]
        elif isinstance(value, list):
            lines += [f"- {v}" for v in value]
        else:
            lines.append(str(value))
        lines.append("")
    lines += ["## Files", ""]
    lines += [f"- `{n}` ({e.get('precision')})" for n, e in meta["files"].items()]
    lines += ["", f"Default precision: {meta.get('default_precision')}. Clip spec: "
              f"`{json.dumps(meta['clip_spec'], sort_keys=True)}`.", ""]
    return "\n".join(lines)


@click.command(cls=Command)
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--card", "card_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON file with the model card's fields.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Target folder (default: runtime/default_bundle of this checkout).")
def main(bundle: Path, card_path: Path, out: Path | None) -> None:
    """Ship BUNDLE as the package's default model, with its model card."""
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        written = ship(bundle, card, out)
    except ValueError as exc:  # a malformed card; our errors and OSError: `Command`
        raise UsageError(str(exc)) from None
    click.echo(f"shipped {bundle} -> {written}")


if __name__ == "__main__":
    main()
