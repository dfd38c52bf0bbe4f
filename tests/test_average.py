"""`vqa-distill average`: the uniform weight average of checkpoints of one model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from internvqa.distill.average import average_checkpoints
from internvqa.distill.checkpoint import load_checkpoint, save_checkpoint
from internvqa.distill.cli import main
from internvqa.distill.models import create_model
from internvqa.runtime.errors import UsageError

SPEC = {"num_frames": 2, "size": 32, "mean": [0.5] * 3, "std": [0.25] * 3}
SCALE = {"min": 0.0, "max": 100.0}


def _ckpt(path: Path, seed: int, spec: dict = SPEC, name: str = "vit_tiny") -> Path:
    torch.manual_seed(seed)
    model = create_model(name).eval()
    return save_checkpoint(path, model, spec, SCALE, {"run": f"seed{seed}"}, {"srcc": 0.1})


def test_average_is_the_mean_of_every_tensor(tmp_path: Path) -> None:
    a, b = _ckpt(tmp_path / "a", 0), _ckpt(tmp_path / "b", 1)
    out = CliRunner().invoke(main, ["average", str(a), str(b), "--out", str(tmp_path / "s")])
    assert out.exit_code == 0, out.output
    soup, cfg = load_checkpoint(tmp_path / "s")
    sa, sb = load_checkpoint(a)[0].state_dict(), load_checkpoint(b)[0].state_dict()
    for k, v in soup.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, (sa[k] + sb[k]) / 2)
    assert not torch.equal(sa["head.weight"], sb["head.weight"])  # the inputs do differ
    assert cfg["clip_spec"] == SPEC and cfg["provenance"]["kind"] == "average"
    assert len(cfg["provenance"]["averaged"]) == 2


def test_average_refuses_mismatched_checkpoints(tmp_path: Path) -> None:
    a = _ckpt(tmp_path / "a", 0)
    other_spec = _ckpt(tmp_path / "b", 1, spec={**SPEC, "size": 64})
    with pytest.raises(UsageError, match="clip spec"):
        average_checkpoints([a, other_spec], tmp_path / "s")
    with pytest.raises(UsageError, match="at least two"):
        average_checkpoints([a], tmp_path / "s")
    assert not (tmp_path / "s").exists()
    out = CliRunner().invoke(main, ["average", str(a), str(other_spec), "--out",
                                    str(tmp_path / "s")])
    assert out.exit_code == 2 and "clip spec" in out.output
