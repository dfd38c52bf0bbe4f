"""Models: registry, InternVideo2 vs an explicit reference, pos embeds, profiling, timm, ONNX."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from internvqa.distill.models import create_from_config, create_model, list_models, model_config
from internvqa.distill.models.pos_embed import resize_pos_embed, sincos_3d
from internvqa.distill.models.profile import build_on_meta, count_macs, count_params
from internvqa.runtime.errors import CheckpointError, UsageError

# REFERENCE section 2: (params, MACs of one 8x224x224 clip).
PAPER_SIZES = {
    "vit_s": (23e6, 83e9),
    "vit_b": (89e6, 255e9),
    "vit_l": (309e6, 831e9),
    "internvideo2_1b": (1.02e9, 2551e9),
    "internvideo2_6b": (5.9e9, 13421e9),
}


def _seeded(name: str, seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(name, **kw).eval()


def _scramble(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Replace every parameter by noise, so LayerScale 1e-5 and unit norms hide nothing."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            noise = torch.randn(p.shape, generator=g)
            if p.ndim >= 2:  # unit-variance outputs: weights ~ N(0, 1/fan_in)
                p.copy_(noise / math.sqrt(p[0].numel()))
            else:
                p.copy_(1.0 + 0.2 * noise)
    return model


# ---------------------------------------------------------------- registry and sizes
def test_registry_names() -> None:
    assert set(list_models()) >= {
        "internvideo2_1b",
        "internvideo2_6b",
        "internvideo2_cpu",
        "vit_tiny",
        "vit_s",
        "vit_b",
        "vit_l",
    }
    with pytest.raises(UsageError, match="unknown model"):
        create_model("vit_huge")
    with pytest.raises(UsageError, match="unknown option"):
        create_model("vit_tiny", not_a_field=3)


@pytest.mark.parametrize("name", sorted(PAPER_SIZES))
def test_params_and_macs_match_reference(name: str) -> None:
    model = build_on_meta(name)
    assert next(model.parameters()).is_meta  # no memory used for the 6B
    params, macs = PAPER_SIZES[name]
    assert count_params(model) == pytest.approx(params, rel=0.01)
    assert count_macs(model, (3, 8, 224, 224)) == pytest.approx(macs, rel=0.05)


def test_macs_count_attention_on_cpu() -> None:
    """The CPU SDPA kernel is counted (PyTorch's table lacks it): CPU == meta count."""
    cpu = _seeded("vit_tiny")
    meta = build_on_meta("vit_tiny")
    assert count_macs(cpu, (3, 2, 56, 56)) == count_macs(meta, (3, 2, 56, 56)) > 0


@pytest.mark.parametrize("name", ["internvideo2_1b", "vit_s", "vit_tiny", "internvideo2_cpu"])
def test_overrides_and_attributes(name: str) -> None:
    model = build_on_meta(name, img_size=112, num_frames=4, drop_path_rate=0.2, tubelet_size=2)
    assert model.cfg.img_size == 112 and model.cfg.num_frames == 4 and model.cfg.tubelet_size == 2
    assert model.patch_embed.proj.weight.shape[2] == 2
    assert model.blocks[-1].drop_path1.p == pytest.approx(0.2)
    assert model.pooled_dim == 768 and model.model_name == name
    assert model.pos_embed.shape[1] == 1 + 2 * 8 * 8
    config = model_config(model)
    with torch.device("meta"):
        rebuilt = create_from_config(json.loads(json.dumps(config)))
    assert rebuilt.cfg == model.cfg


def test_state_dict_names_and_shapes_are_official() -> None:
    model = create_model("vit_tiny")
    d, hidden = 192, 768
    expected = {
        "patch_embed.proj.weight": (d, 3, 1, 14, 14),
        "patch_embed.proj.bias": (d,),
        "cls_token": (1, 1, d),
        "pos_embed": (1, 1 + 2 * 16, d),
        "clip_projector.norm1_q.weight": (d,),
        "clip_projector.norm1_q.bias": (d,),
        "clip_projector.norm1_k.weight": (d,),
        "clip_projector.norm1_k.bias": (d,),
        "clip_projector.norm1_v.weight": (d,),
        "clip_projector.norm1_v.bias": (d,),
        "clip_projector.cross_attn.q.weight": (d, d),
        "clip_projector.cross_attn.k.weight": (d, d),
        "clip_projector.cross_attn.v.weight": (d, d),
        "clip_projector.cross_attn.q_bias": (d,),
        "clip_projector.cross_attn.k_bias": (d,),
        "clip_projector.cross_attn.v_bias": (d,),
        "clip_projector.cross_attn.proj.weight": (768, d),
        "clip_projector.cross_attn.proj.bias": (768,),
        "fc_norm.weight": (768,),
        "fc_norm.bias": (768,),
        "head.weight": (1, 768),
        "head.bias": (1,),
    }
    for i in range(4):
        b = f"blocks.{i}."
        expected |= {
            b + "norm1.weight": (d,),
            b + "attn.qkv.weight": (3 * d, d),
            b + "attn.proj.weight": (d, d),
            b + "attn.proj.bias": (d,),
            b + "attn.q_norm.weight": (d,),
            b + "attn.k_norm.weight": (d,),
            b + "ls1.gamma": (d,),
            b + "norm2.weight": (d,),
            b + "mlp.fc1.weight": (hidden, d),
            b + "mlp.fc1.bias": (hidden,),
            b + "mlp.fc2.weight": (d, hidden),
            b + "mlp.fc2.bias": (d,),
            b + "ls2.gamma": (d,),
        }
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected
    assert torch.all(model.blocks[0].ls1.gamma == 1e-5)
    sep = create_model("vit_tiny", sep_pos_embed=True).state_dict()
    assert "pos_embed" not in sep
    assert sep["pos_embed_spatial"].shape == (1, 16, d)
    assert sep["pos_embed_temporal"].shape == (1, 2, d)
    assert sep["pos_embed_cls"].shape == (1, 1, d)


def test_head_initialised_small() -> None:
    model = _seeded("vit_tiny")
    assert 0.02 * 1e-3 * 0.5 < model.head.weight.std() < 0.02 * 1e-3 * 1.5  # std 0.02 x 0.001
    score, feature = model(torch.randn(2, 3, 2, 56, 56))
    assert feature.shape == (2, 768) and score.shape == (2,) and feature.dtype == torch.float32


# ---------------------------------------------------------------- reference equivalence
def _ref_rmsnorm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return w * x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-6)


def _ref_block(x: torch.Tensor, blk, heads: int) -> torch.Tensor:
    """Straightforward block: per-token RMSNorm over full D, explicit softmax attention."""
    bsz, n, d = x.shape
    hd = d // heads
    h = _ref_rmsnorm(x, blk.norm1.weight)
    qkv = h @ blk.attn.qkv.weight.T
    q, k, v = qkv[..., :d], qkv[..., d : 2 * d], qkv[..., 2 * d :]
    q = _ref_rmsnorm(q, blk.attn.q_norm.weight)  # full width, before the head split
    k = _ref_rmsnorm(k, blk.attn.k_norm.weight)
    q, k, v = (t.reshape(bsz, n, heads, hd).permute(0, 2, 1, 3) for t in (q, k, v))
    attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
    out = (attn @ v).permute(0, 2, 1, 3).reshape(bsz, n, d)
    out = out @ blk.attn.proj.weight.T + blk.attn.proj.bias
    x = x + blk.ls1.gamma * out
    h = _ref_rmsnorm(x, blk.norm2.weight)
    h = (
        F.gelu(h @ blk.mlp.fc1.weight.T + blk.mlp.fc1.bias) @ blk.mlp.fc2.weight.T
        + blk.mlp.fc2.bias
    )
    return x + blk.ls2.gamma * h


def _ref_pool(x: torch.Tensor, pool, heads: int = 16) -> torch.Tensor:
    ca = pool.cross_attn
    d = x.shape[-1]
    hd = d // heads
    q_in = F.layer_norm(x.mean(1, keepdim=True), (d,), pool.norm1_q.weight, pool.norm1_q.bias, 1e-5)
    k_in = F.layer_norm(x, (d,), pool.norm1_k.weight, pool.norm1_k.bias, 1e-5)
    v_in = F.layer_norm(x, (d,), pool.norm1_v.weight, pool.norm1_v.bias, 1e-5)
    q = (q_in @ ca.q.weight.T + ca.q_bias).reshape(x.shape[0], 1, heads, hd).transpose(1, 2)
    k = (k_in @ ca.k.weight.T + ca.k_bias).reshape(x.shape[0], -1, heads, hd).transpose(1, 2)
    v = (v_in @ ca.v.weight.T + ca.v_bias).reshape(x.shape[0], -1, heads, hd).transpose(1, 2)
    attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
    out = (attn @ v).transpose(1, 2).reshape(x.shape[0], d)
    return out @ ca.proj.weight.T + ca.proj.bias


@torch.no_grad()
def test_block_and_pooling_match_explicit_reference() -> None:
    model = _scramble(_seeded("vit_tiny"))
    x = torch.randn(2, 33, 192)
    assert torch.allclose(model.blocks[0](x), _ref_block(x, model.blocks[0], 3), atol=1e-5)
    pooled = _ref_pool(x, model.clip_projector)
    assert torch.allclose(model.clip_projector(x), pooled, atol=1e-5)

    clip = torch.randn(2, 3, 2, 56, 56)
    tokens = F.conv3d(
        clip, model.patch_embed.proj.weight, model.patch_embed.proj.bias, stride=(1, 14, 14)
    )
    tokens = tokens.flatten(2).transpose(1, 2)
    tokens = torch.cat([model.cls_token.expand(2, -1, -1), tokens], 1) + model.pos_embed
    for blk in model.blocks:
        tokens = _ref_block(tokens, blk, 3)
    feature = F.layer_norm(
        _ref_pool(tokens, model.clip_projector), (768,), model.fc_norm.weight, model.fc_norm.bias
    )
    score = (feature @ model.head.weight.T + model.head.bias)[:, 0]
    got_score, got_feature = model(clip)
    assert torch.allclose(got_feature, feature, atol=1e-4)
    assert torch.allclose(got_score, score, atol=1e-4)


# ---------------------------------------------------------------- position embeddings
def test_sincos_3d_layout() -> None:
    table = sincos_3d(64, (3, 2, 2))
    assert table.shape == (1 + 12, 64)
    assert torch.all(table[0] == 0)
    frames = table[1:].reshape(3, 4, 64)
    assert torch.allclose(frames[:, :1, :16].expand(-1, 4, -1), frames[:, :, :16])  # time part
    assert torch.allclose(frames[:1, :, 16:].expand(3, -1, -1), frames[:, :, 16:])  # space part
    assert not torch.allclose(frames[0, :, :16], frames[1, :, :16])
    model = create_model("vit_tiny")
    assert torch.equal(model.pos_embed.detach()[0], sincos_3d(192, (2, 4, 4)))


def test_pos_embed_resize_identity_and_shapes() -> None:
    pe = torch.randn(1, 1 + 4 * 16 * 16, 32)
    assert resize_pos_embed(pe, (4, 16, 16), (4, 16, 16)) is pe
    assert resize_pos_embed(pe, (4, 16, 16), (8, 16, 16)).shape == (1, 1 + 8 * 256, 32)
    out = resize_pos_embed(pe, (4, 16, 16), (2, 8, 10))
    assert out.shape == (1, 1 + 2 * 80, 32) and torch.equal(out[:, 0], pe[:, 0])
    # linear in time: a ramp over frames stays a ramp at the new frame count
    ramp = torch.arange(4.0).reshape(1, 4, 1, 1).expand(1, 4, 4, 8).reshape(1, 16, 8)
    ramp = torch.cat([torch.zeros(1, 1, 8), ramp], 1)
    up = resize_pos_embed(ramp, (4, 2, 2), (8, 2, 2))[0, 1:].reshape(8, 4, 8)[:, 0, 0]
    assert torch.all(up[1:] >= up[:-1]) and up[0] == 0 and up[-1] == 3


@torch.no_grad()
@pytest.mark.parametrize("sep", [False, True])
def test_any_clip_size(sep: bool) -> None:
    model = _seeded("vit_tiny", sep_pos_embed=sep)
    grid = model.cfg.grid
    native = model.pos_embed_for(grid)
    if not sep:
        assert native is model.pos_embed
    assert model.pos_embed_for((3, 5, 6)).shape == (1, 1 + 90, 192)
    score, feature = model(torch.randn(1, 3, 3, 70, 84))
    assert feature.shape == (1, 768) and score.shape == (1,)


def test_gradient_checkpointing_same_gradients() -> None:
    model = _scramble(_seeded("vit_tiny")).train()
    x = torch.randn(2, 3, 2, 56, 56)
    grads = []
    for k in (0, 2):
        model.zero_grad()
        model.set_grad_checkpointing(k > 0, num_blocks=k)
        score, feature = model(x)
        (feature.square().mean() + score.sum()).backward()
        grads.append(model.blocks[0].attn.qkv.weight.grad.clone())
    assert model.grad_checkpointing_blocks == 2
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


# ---------------------------------------------------------------- timm students
TIMM_STUDENTS = [
    "timm:convnext_tiny",
    "timm:vit_small_patch16_224",
    "timm:mobilenetv3_large_100",
    "timm:resnet18",
]


@torch.no_grad()
@pytest.mark.parametrize("name", TIMM_STUDENTS)
def test_timm_student_forward(name: str) -> None:
    model = _seeded(name, img_size=64, num_frames=2)
    assert model.pooled_dim == 768 and model.model_name == name
    score, feature = model(torch.randn(2, 3, 3, 64, 64))
    assert feature.shape == (2, 768) and score.shape == (2,)
    assert create_from_config(json.loads(json.dumps(model_config(model)))).cfg == model.cfg


def test_timm_backbone_weights_file(tmp_path) -> None:
    from safetensors.torch import save_file

    donor = _seeded("timm:resnet18", seed=3, img_size=64)
    state = {k: v.contiguous() for k, v in donor.backbone.state_dict().items()}
    save_file(state, str(tmp_path / "r18.safetensors"))
    torch.save({"state_dict": state}, tmp_path / "r18.pth")
    x = torch.randn(1, 3, 2, 64, 64)
    for path in (tmp_path / "r18.safetensors", tmp_path / "r18.pth"):
        model = create_model("timm:resnet18", img_size=64, backbone_weights=str(path)).eval()
        with torch.no_grad():
            assert torch.equal(model.forward_features(x), donor.forward_features(x))
    state.pop("conv1.weight")
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="lacks"):
        create_model("timm:resnet18", backbone_weights=str(tmp_path / "partial.pth"))


# ---------------------------------------------------------------- ONNX export
@pytest.mark.parametrize(
    "name,kw,clip",
    [
        ("vit_tiny", {}, (3, 2, 56, 56)),
        ("vit_s", {"img_size": 28, "num_frames": 2}, (3, 2, 28, 28)),
        ("timm:resnet18", {"img_size": 32, "num_frames": 2}, (3, 2, 32, 32)),
        ("timm:mobilenetv3_large_100", {"img_size": 32, "num_frames": 2}, (3, 2, 32, 32)),
    ],
)
def test_onnx_export_matches_torch(tmp_path, name: str, kw: dict, clip: tuple) -> None:
    import onnxruntime as ort

    model = _seeded(name, **kw)
    path = tmp_path / "m.onnx"
    torch.onnx.export(
        model,
        (torch.randn(1, *clip),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["clip"],
        output_names=["score", "feature"],
        dynamic_axes={"clip": {0: "batch"}, "feature": {0: "batch"}, "score": {0: "batch"}},
    )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = torch.randn(batch, *clip)
        with torch.no_grad():
            score, feature = model(x)
        got_score, got_feature = sess.run(None, {"clip": x.numpy()})
        np.testing.assert_allclose(got_feature, feature.numpy(), atol=1e-4)
        np.testing.assert_allclose(got_score, score.numpy(), atol=1e-4)
