"""The model card is built from the artefacts that measured the model, never typed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from internvqa.bench.model_card import build_card

HELDOUT = {"figures": {"shipped hybrid": {"all": {"n": 10, "srcc": 0.9}, "natural": {"n": 4}},
                       "shipped pixels-only": {"all": {"n": 10, "srcc": 0.8}},
                       "bitrate model": {"all": {"n": 10, "srcc": 0.7}}}}


def _run(root: Path, name: str, epochs: int, best: int, seconds: float) -> Path:
    run = root / name
    (run / "best").mkdir(parents=True)
    prov = {"manifest": str(root / "manifest.csv"), "manifest_sha256": "ab" * 32,
            "train": {"lr": 5e-4, "weight_decay": 0.01, "batch_size": 8, "epochs": epochs,
                      "seed": 0}}
    (run / "best" / "config.json").write_text(json.dumps({"provenance": prov}))
    (run / "report.json").write_text(json.dumps({"best_epoch": best, "train_seconds": seconds}))
    return run


def test_card_of_one_run_names_its_recipe_and_commands(tmp_path: Path) -> None:
    run = _run(tmp_path, "a", 3, 3, 100.0)
    card = build_card(run, None, HELDOUT, {}, {})
    assert "3 epochs (best by val SRCC: epoch 3)" in card["training"]["pixel recipe"]
    assert any(c.endswith(f"--out {run} --epochs 3 --threads 2") for c in card["commands"])
    assert not any("average" in c for c in card["commands"])
    assert card["heldout_accuracy"]["test, all sources, pixels (10 encodes)"]["srcc"] == 0.9


def test_card_of_an_averaged_backbone_lists_every_member_and_the_average(tmp_path: Path) -> None:
    a, b = _run(tmp_path, "a", 3, 3, 100.0), _run(tmp_path, "b", 6, 6, 200.0)
    soup = tmp_path / "soup"
    card = build_card([a, b], None, HELDOUT, {}, {}, average=soup)
    recipe = card["training"]["pixel recipe"]
    assert recipe.startswith("uniform weight average")
    assert "run 1:" in recipe and "3 epochs" in recipe and "run 2:" in recipe and "6 epochs" in recipe
    cmds = card["commands"]
    assert f"vqa-distill average {a}/best {b}/best --out {soup}" in cmds
    assert cmds.index(f"vqa-distill average {a}/best {b}/best --out {soup}") > max(
        i for i, c in enumerate(cmds) if c.startswith("vqa-distill teacher"))
    assert any(c.startswith(f"vqa-export --checkpoint {soup} ") for c in cmds)
    with pytest.raises(click.UsageError, match="--average"):
        build_card([a, b], None, HELDOUT, {}, {})
