"""Checkpoint IO: the safetensors project format and every official weights layout."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from internvqa.distill.checkpoint import (
    LoadReport,
    load_checkpoint,
    load_official_weights,
    save_checkpoint,
)
from internvqa.distill.models import create_model
from internvqa.distill.models.pos_embed import resize_pos_embed
from internvqa.runtime.errors import CheckpointError

CLIP_SPEC = {
    "num_frames": 2,
    "size": 56,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}
SCORE_SCALE = {"min": 0.0, "max": 100.0}
HEAD = ("fc_norm.", "head.")


def _model(name: str = "vit_tiny", seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(name, **kw).eval()


def _clip(t: int = 2, size: int = 56) -> torch.Tensor:
    return torch.randn(2, 3, t, size, size, generator=torch.Generator().manual_seed(7))


# ---------------------------------------------------------------- project format
@pytest.mark.parametrize("name", ["vit_tiny", "timm:resnet18"])
def test_round_trip_is_bitwise_exact(tmp_path: Path, name: str) -> None:
    kw = {"img_size": 32} if name.startswith("timm:") else {}
    model = _model(name, **kw)
    with torch.no_grad():
        for p in model.parameters():  # trained-looking weights, not just the init
            p.add_(torch.randn_like(p) * 0.01)
    x = _clip(size=model.cfg.img_size)
    save_checkpoint(tmp_path / "ck", model, CLIP_SPEC, SCORE_SCALE, {"run": "test"}, {"srcc": 0.5})
    loaded, config = load_checkpoint(tmp_path / "ck", expect_architecture=name)
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x), strict=True):
            assert torch.equal(a, b)
    assert config["format"] == "internvqa-checkpoint" and config["format_version"] == 1
    assert config["clip_spec"] == CLIP_SPEC and config["score_scale"] == SCORE_SCALE
    assert config["provenance"] == {"run": "test"} and config["metrics"] == {"srcc": 0.5}
    assert config["model"]["architecture"] == name
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]


def test_round_trip_bf16(tmp_path: Path) -> None:
    model = _model().to(torch.bfloat16)
    save_checkpoint(tmp_path / "ck", model, CLIP_SPEC, SCORE_SCALE)
    loaded, _ = load_checkpoint(tmp_path / "ck")
    assert loaded.pos_embed.dtype == torch.bfloat16
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True)
    )


def test_failed_save_keeps_previous_checkpoint(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "ck", _model(), CLIP_SPEC, SCORE_SCALE, metrics={"v": 1})
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "ck", _model(), CLIP_SPEC, SCORE_SCALE, metrics={"v": object()})
    assert load_checkpoint(tmp_path / "ck")[1]["metrics"] == {"v": 1}


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_load_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found") as e:
        load_checkpoint(tmp_path / "nope")
    _one_line(e)
    ck = tmp_path / "ck"
    save_checkpoint(ck, _model(), CLIP_SPEC, SCORE_SCALE)
    with pytest.raises(CheckpointError, match="expected vit_s"):
        load_checkpoint(ck, expect_architecture="vit_s")

    config = json.loads((ck / "config.json").read_text())
    (ck / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON") as e:
        load_checkpoint(ck)
    _one_line(e)

    (ck / "config.json").write_text(
        json.dumps(config | {"model": {"architecture": "vit_huge", "config": {}}})
    )
    with pytest.raises(CheckpointError, match="unknown or invalid architecture") as e:
        load_checkpoint(ck)
    _one_line(e)

    (ck / "config.json").write_text(json.dumps(config))
    state = load_file(str(ck / "model.safetensors"))
    state["blocks.1.mlp.fc1.weight"] = torch.zeros(10, 192)
    save_file(state, str(ck / "model.safetensors"))
    with pytest.raises(
        CheckpointError, match=r"blocks\.1\.mlp\.fc1\.weight has shape \(10, 192\)"
    ) as e:
        load_checkpoint(ck)
    _one_line(e)

    (ck / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_checkpoint(ck)


# ---------------------------------------------------------------- official layouts
def _save(tmp_path: Path, obj: object, name: str = "ckpt.pth") -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


def _assert_same_backbone(
    dst: torch.nn.Module,
    src: torch.nn.Module,
    report: LoadReport,
    saved_as: torch.dtype = torch.float32,
) -> None:
    assert report.missing_backbone == []
    src_state = src.state_dict()
    for k, v in dst.state_dict().items():
        if not k.startswith(HEAD) and k not in report.interpolated:
            assert torch.equal(v, src_state[k].to(saved_as).to(v.dtype)), k


@pytest.mark.parametrize("wrapper", ["model", "module", None])
def test_stage1_and_kinetics_finetune(tmp_path: Path, wrapper: str | None) -> None:
    src = _model(seed=1)
    state = src.state_dict()
    path = _save(tmp_path, {wrapper: state, "epoch": 3} if wrapper else state)
    dst = _model(seed=2)
    report = load_official_weights(dst, path)
    assert report.missing == [] and report.unexpected == [] and report.interpolated == []
    assert len(report.loaded) == len(state)
    x = _clip()
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(src(x), dst(x), strict=True))


def test_stage2_vision_encoder_bf16_four_frames(tmp_path: Path) -> None:
    src = _model(seed=1, num_frames=4)
    state = {
        f"vision_encoder.{k}": v.to(torch.bfloat16)
        for k, v in src.state_dict().items()
        if not k.startswith(HEAD)
    }
    junk = {
        "vision_encoder.clip_decoder.0.head.weight": torch.zeros(4, 4),
        "vision_encoder.final_clip_decoder.head.weight": torch.zeros(4, 4),
        "vision_encoder.clip_pos_embed": torch.zeros(1, 33, 8),
        "vision_encoder.img_pos_embed": torch.zeros(1, 17, 8),
        "vision_proj.weight": torch.zeros(8, 768),
        "text_encoder.bert.embeddings.word_embeddings.weight": torch.zeros(10, 8),
        "temp": torch.tensor(0.07),
    }
    path = _save(tmp_path, {"module": state | junk}, "InternVideo2-stage2_1b-224p-f4.pt")
    dst = _model(seed=2, num_frames=8)
    report = load_official_weights(dst, path)
    assert report.layout == "stage-2"
    assert report.interpolated == ["pos_embed"]
    assert sorted(report.missing) == ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]
    dropped = set(report.unexpected)
    assert dropped == {
        "vision_proj.weight",
        "text_encoder.bert.embeddings.word_embeddings.weight",
        "temp",
    } | {
        "clip_decoder.0.head.weight",
        "final_clip_decoder.head.weight",
        "clip_pos_embed",
        "img_pos_embed",
    }
    assert dst.pos_embed.dtype == torch.float32
    expected = resize_pos_embed(
        src.pos_embed.detach().to(torch.bfloat16).float(), (4, 4, 4), (8, 4, 4)
    )
    assert torch.allclose(dst.pos_embed.detach(), expected)
    _assert_same_backbone(dst, src, report, saved_as=torch.bfloat16)
    assert "interpolated 1 (pos_embed)" in report.summary() and "\n" not in report.summary()


def test_distilled_small_models_without_head(tmp_path: Path) -> None:
    src = _model(seed=1)
    state = {k: v for k, v in src.state_dict().items() if not k.startswith(HEAD)}
    state["clip_decoder.0.norm.weight"] = torch.ones(192)
    state["clip_decoder.0.head.weight"] = torch.zeros(1408, 192)
    path = _save(tmp_path, state, "pytorch_model.bin")
    dst = _model(seed=2)
    report = load_official_weights(dst, path)
    assert report.layout == "distilled-S/B/L"
    assert sorted(report.unexpected) == ["clip_decoder.0.head.weight", "clip_decoder.0.norm.weight"]
    assert {k.split(".")[0] for k in report.missing} == {"fc_norm", "head"}
    _assert_same_backbone(dst, src, report)


@pytest.mark.parametrize("side", ["student", "teacher"])
def test_internvqa_distillation_checkpoint(tmp_path: Path, side: str) -> None:
    student = _model(seed=1)
    teacher = _model("vit_tiny", seed=3, embed_dim=96, depth=2, num_heads=2, mlp_hidden_dim=192)
    state = {f"encoder.{k}": v for k, v in student.state_dict().items()}
    state |= {f"feature_model.{k}": v for k, v in teacher.state_dict().items()}
    path = _save(tmp_path, {"model": state, "optimizer_step": 10})
    src = student if side == "student" else teacher
    dst = (
        _model(seed=4)
        if side == "student"
        else _model("vit_tiny", seed=5, embed_dim=96, depth=2, num_heads=2, mlp_hidden_dim=192)
    )
    report = load_official_weights(dst, path, side=side)
    other = "feature_model." if side == "student" else "encoder."
    assert report.missing == []
    assert report.unexpected and all(k.startswith(other) for k in report.unexpected)
    _assert_same_backbone(dst, src, report)


@pytest.mark.parametrize("prefix", ["module.", "backbone.", "module.backbone."])
def test_wrapper_prefixes_and_safetensors(tmp_path: Path, prefix: str) -> None:
    src = _model(seed=1)
    state = {prefix + k: v.contiguous() for k, v in src.state_dict().items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    for source in (_save(tmp_path, state), tmp_path / "w.safetensors", state):
        dst = _model(seed=2)
        report = load_official_weights(dst, source)
        assert report.missing == [] and report.unexpected == []
        _assert_same_backbone(dst, src, report)


def test_separate_pos_embed_resized(tmp_path: Path) -> None:
    src = _model(seed=1, sep_pos_embed=True, num_frames=4, img_size=28)
    dst = _model(seed=2, sep_pos_embed=True)
    report = load_official_weights(dst, src.state_dict())
    assert sorted(report.interpolated) == ["pos_embed_spatial", "pos_embed_temporal"]
    assert dst.pos_embed_spatial.shape == (1, 16, 192) and dst.pos_embed_temporal.shape == (
        1,
        2,
        192,
    )


def test_shape_mismatch_names_key_and_shapes(tmp_path: Path) -> None:
    state = _model(seed=1).state_dict()
    state["blocks.2.attn.qkv.weight"] = torch.zeros(100, 192)
    path = _save(tmp_path, {"model": state})
    with pytest.raises(
        CheckpointError, match=r"blocks\.2\.attn\.qkv\.weight.*\(100, 192\).*\(576, 192\)"
    ):
        load_official_weights(_model(), path)
    dst = _model(seed=2)
    before = dst.blocks[2].attn.qkv.weight.clone()
    report = load_official_weights(dst, path, strict_shapes=False)
    assert (
        report.mismatched == ["blocks.2.attn.qkv.weight"]
        and "blocks.2.attn.qkv.weight" in report.missing
    )
    assert torch.equal(dst.blocks[2].attn.qkv.weight, before)


class _Planted:
    """A pickle payload that would write a file when unpickled."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (self.target, "pwned"))


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused(tmp_path: Path, how: str) -> None:
    marker = tmp_path / "side_effect.txt"
    payload = {"model": {"cls_token": torch.zeros(1, 1, 192)}, "extra": _Planted(marker)}
    path = tmp_path / "evil.pth"
    if how == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(payload, fh)
    with pytest.raises(
        CheckpointError, match="not a plain weights file.*will not be unpickled"
    ) as e:
        load_official_weights(_model(), path)
    _one_line(e)
    assert not marker.exists()


def test_unreadable_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_official_weights(_model(), tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a plain weights file"):
        load_official_weights(_model(), tmp_path / "junk.pth")
    whole = _save(tmp_path, _model().state_dict()).read_bytes()
    (tmp_path / "cut.pth").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match="not a readable PyTorch weights file"):
        load_official_weights(_model(), tmp_path / "cut.pth")
    (tmp_path / "cut.safetensors").write_bytes(b"{}")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_official_weights(_model(), tmp_path / "cut.safetensors")
    with pytest.raises(CheckpointError, match="no key of the checkpoint matches"):
        load_official_weights(_model(), {"conv1.weight": torch.zeros(3)})
