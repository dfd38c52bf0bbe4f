"""Teacher probe: how fast does a model learn compression quality? (research harness)

    .venv/bin/python benchmarks/teacher_probe.py --manifest work/corpus/demo/manifest.csv \
        '{"steps": 800, "lr": 1e-3, "warm": 50}'

Trains a quality regressor in a tight in-memory loop over the project's window cache
(the same clip spec, crops, normalisation and model code as `vqa-distill teacher`, but no
epochs, checkpoints or DataLoader), then prints one `RESULT {json}` line: pooled SRCC on
train/val/test and the mean *within-source* SRCC per split, which separates "grades
compression" from "recognises content". The figures in RESULTS.md ("Why the demo
teacher misses SRCC 0.85") come from it. Config keys (JSON, all optional):

- model (internvideo2_cpu; any registry name, e.g. timm:resnet18), depth, dim, heads,
  mlp, patch, tub (tubelet), ls (LayerScale init): InternVideo2 overrides;
- size (56), crop (three): the clip spec's crop; steps, bs, lr, wd, warm, seed;
- group (1): G > 1 builds each batch from bs/G sources x G clips sharing one crop,
  window and flip (content-paired batches); gw: weight of a source-centred MSE on
  those groups; rank: weight of a pairwise hinge over every pair of the batch;
- frag (0): F > 0 replaces the crop by fragments (FAST-VQA's grid mini-patches): one
  F x F patch at native scale from each cell of a (size/F)^2 grid over the whole frame;
- local (0.0): weight of a per-crop label: the corpus's pseudo-MOS formula applied to
  PSNR-Y / MS-SSIM of the crop (or fragment mosaic) itself against the lossless source (re-rendered from the
  manifest's sidecar), mixed with the clip's MOS (1.0 = crop label only);
- ema (0.0): D > 0 evaluates an exponential moving average of the weights (decay D);
- evalevery: also print val/test SRCC every N steps.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from internvqa.distill.corpus.fr_metrics import ms_ssim, psnr
from internvqa.distill.corpus.sources import SourceSpec, bt601_luma, render_source
from internvqa.distill.corpus.synth import pseudo_mos
from internvqa.distill.data import build_window_cache, split_videos
from internvqa.distill.models import create_model
from internvqa.runtime.clipspec import PRESETS, crop_clip, normalize
from internvqa.runtime.manifest import read_manifest
from internvqa.runtime.metrics import srcc, video_accuracy
from internvqa.runtime.workspace import work_dir

DEFAULTS = dict(model="internvideo2_cpu", depth=4, dim=192, heads=3, mlp=768, patch=8, tub=1,
                ls=0.1, size=56, crop="three", steps=276, bs=16, lr=5e-4, wd=0.05, warm=23,
                seed=0, group=1, gw=0.0, rank=0.0, evalevery=0, frag=0, local=0.0, ema=0.0)


def fragments(clip: np.ndarray, size: int, frag: int, rng: np.random.Generator | None,
              ref: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(T, h, w, 3) -> (T, size, size, 3): one frag x frag patch per cell of a grid over the
    whole frame (random position in training, cell centre when rng is None); `ref`, a
    (T, h, w) reference luma, is cut at the same positions."""
    _, h, w, _ = clip.shape
    g = size // frag
    out = np.empty((clip.shape[0], size, size, 3), np.uint8)
    ref_out = None if ref is None else np.empty((ref.shape[0], size, size), ref.dtype)
    for i in range(g):
        y0, y1 = (i * h) // g, ((i + 1) * h) // g - frag
        for j in range(g):
            x0, x1 = (j * w) // g, ((j + 1) * w) // g - frag
            y = int(rng.integers(y0, y1 + 1)) if rng is not None else (y0 + y1) // 2
            x = int(rng.integers(x0, x1 + 1)) if rng is not None else (x0 + x1) // 2
            out[:, i * frag:(i + 1) * frag, j * frag:(j + 1) * frag] = clip[:, y:y + frag, x:x + frag]
            if ref is not None:
                ref_out[:, i * frag:(i + 1) * frag, j * frag:(j + 1) * frag] = ref[:, y:y + frag, x:x + frag]
    return out, ref_out


def _crop_label(ref_y: np.ndarray, crop_rgb: np.ndarray) -> float:
    """The corpus's pseudo-MOS / 100 of one crop: mean per-frame PSNR-Y and MS-SSIM."""
    dist_y = bt601_luma(crop_rgb)
    p = float(np.mean([min(psnr(r, d), 60.0) for r, d in zip(ref_y, dist_y, strict=True)]))
    m = float(np.mean([min(ms_ssim(r, d), 0.99999) for r, d in zip(ref_y, dist_y, strict=True)]))
    return pseudo_mos(p, 0.0, m) / 100.0


class Probe:
    def __init__(self, manifest: Path, cfg: dict):
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg["seed"])
        torch.manual_seed(cfg["seed"])
        self.rows = read_manifest(manifest)
        self.spec = PRESETS["demo"].replace(size=cfg["size"], crop=cfg["crop"])
        cache = build_window_cache(self.rows, self.spec, root=work_dir())
        self.splits = split_videos(self.rows)
        self.windows: dict[int, list[np.ndarray]] = {}
        self.frames: dict[int, list[tuple[int, ...]]] = {}
        for i, w in enumerate(cache.windows):
            self.windows.setdefault(w.video, []).append(np.asarray(cache.clip(i)))
            self.frames.setdefault(w.video, []).append(w.frame_indices)
        self.ema: dict[str, torch.Tensor] | None = None
        self.sources: dict[str, list[float]] = {}
        self.ref_luma: dict[str, np.ndarray] = {}
        if cfg["local"]:
            try:
                side = json.loads(manifest.with_suffix(".json").read_text())
            except (OSError, ValueError):
                side = {}
            if "display_size" not in side:
                raise SystemExit(f"error: 'local' labels need the synthetic corpus's sidecar "
                                 f"{manifest.with_suffix('.json')} (vqa-data synth writes it)")
            (width, height), n, fps = side["display_size"], side["frames"], side["fps"]
            for name in {self.rows[v].source for v in self.splits["train"]}:
                spec = SourceSpec(name, width, height, n, fps)
                self.ref_luma[name] = bt601_luma(render_source(spec, side["seed"]))
        self.labels = np.array([r.mos / 100.0 for r in self.rows], dtype=np.float32)
        self.by_source: dict[str, list[int]] = {}
        for v in self.splits["train"]:
            self.by_source.setdefault(self.rows[v].source, []).append(v)
        over = {}
        if cfg["model"] == "internvideo2_cpu":
            over = dict(init_values=cfg["ls"], depth=cfg["depth"], embed_dim=cfg["dim"],
                        num_heads=cfg["heads"], mlp_hidden_dim=cfg["mlp"],
                        patch_size=cfg["patch"], tubelet_size=cfg["tub"])
        self.model = create_model(cfg["model"], img_size=self.spec.size,
                                  num_frames=self.spec.num_frames, **over)

    def _view_key(self) -> tuple:
        r = self.rng
        return int(r.integers(1 << 30)), float(r.random()), float(r.random()), bool(r.random() < 0.5)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, g = self.cfg, self.cfg["group"]
        if g > 1:
            vids, keys = [], []
            for name in self.rng.choice(sorted(self.by_source), cfg["bs"] // g, replace=False):
                vids += list(self.rng.choice(self.by_source[name], g, replace=False))
                keys += [self._view_key()] * g
        else:
            vids = list(self.rng.choice(self.splits["train"], cfg["bs"]))
            keys = [self._view_key() for _ in vids]
        xs, ys, s = [], [], cfg["size"]
        for v, (wi, fy, fx, flip) in zip(vids, keys, strict=True):
            k = wi % len(self.windows[v])
            clip = self.windows[v][k]
            ref = self.ref_luma[self.rows[v].source][list(self.frames[v][k])] if cfg["local"] else None
            if cfg["frag"]:
                crop, ref = fragments(clip, s, cfg["frag"], np.random.default_rng(wi), ref)
            else:
                _, h, w, _ = clip.shape
                y0, x0 = int(fy * (h - s + 1)), int(fx * (w - s + 1))
                crop = clip[:, y0 : y0 + s, x0 : x0 + s]
                if ref is not None:
                    ref = ref[:, y0 : y0 + s, x0 : x0 + s]
            if ref is not None:
                ys.append(cfg["local"] * _crop_label(ref, crop) + (1 - cfg["local"]) * self.labels[v])
            if flip:
                crop = crop[:, :, ::-1]
            xs.append(normalize(self.spec, np.ascontiguousarray(crop)[None])[0])
        y = np.array(ys, np.float32) if ys else self.labels[np.array(vids)]
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(y)

    def loss(self, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        loss = F.mse_loss(s, y)
        if cfg["gw"] and cfg["group"] > 1:
            sc, yc = s.view(-1, cfg["group"]), y.view(-1, cfg["group"])
            loss = loss + cfg["gw"] * F.mse_loss(sc - sc.mean(1, keepdim=True),
                                                 yc - yc.mean(1, keepdim=True))
        if cfg["rank"]:
            d, dy = s[:, None] - s[None], y[:, None] - y[None]
            loss = loss + cfg["rank"] * F.relu(-d * torch.sign(dy)).mean()
        return loss

    def _eval_crops(self, clip: np.ndarray) -> np.ndarray:
        if self.cfg["frag"]:
            return fragments(clip, self.cfg["size"], self.cfg["frag"], None)[0][None]
        return crop_clip(self.spec, clip)

    @torch.no_grad()
    def evaluate(self, split: str) -> tuple[float, float, float]:
        """(pooled SRCC, mean within-source SRCC, prediction range) on a split."""
        if self.ema is not None:
            live = {k: v.clone() for k, v in self.model.state_dict().items()}
            self.model.load_state_dict(self.ema)
        try:
            return self._evaluate(split)
        finally:
            if self.ema is not None:
                self.model.load_state_dict(live)

    @torch.no_grad()
    def _evaluate(self, split: str) -> tuple[float, float, float]:
        self.model.eval()
        vids = self.splits[split]
        pred = np.array([
            self.model(torch.from_numpy(np.concatenate(
                [normalize(self.spec, self._eval_crops(c)) for c in self.windows[v]])))[0]
            .mean().item() for v in vids])
        self.model.train()
        y = self.labels[vids]
        src = np.array([self.rows[v].source for v in vids])
        per = {u: srcc(pred[src == u], y[src == u]) for u in sorted(set(src))}
        for u in per:  # within SRCC, mean prediction, mean MOS, prediction range (MOS points)
            p = pred[src == u]
            self.sources[u] = [round(float(per[u]), 3), round(100 * float(p.mean()), 1),
                               round(100 * float(y[src == u].mean()), 1),
                               round(100 * float(p.max() - p.min()), 1)]
        # pooled and within-source SRCC by the one evaluation (runtime.metrics.video_accuracy)
        m = video_accuracy(list(100.0 * pred), [self.rows[v] for v in vids])
        return float(m["srcc"]), float(m["within_source_srcc"]), float(pred.max() - pred.min())

    def run(self) -> dict:
        cfg = self.cfg
        opt = torch.optim.AdamW(self.model.parameters(), lr=cfg["lr"], weight_decay=cfg["wd"])
        t0, mses = time.perf_counter(), []
        self.ema = None
        if cfg["ema"]:
            self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        for step in range(cfg["steps"]):
            warm = min(1.0, (step + 1) / cfg["warm"])
            for grp in opt.param_groups:
                grp["lr"] = cfg["lr"] * warm * 0.5 * (1 + np.cos(np.pi * step / cfg["steps"]))
            x, y = self.batch()
            s = self.model(x)[0].view(-1)
            loss = self.loss(s, y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            opt.step()
            if self.ema is not None:
                with torch.no_grad():
                    for k, v in self.model.state_dict().items():
                        if v.dtype.is_floating_point:
                            self.ema[k].lerp_(v, 1.0 - cfg["ema"])
            mses.append(F.mse_loss(s.detach(), y).item())
            if cfg["evalevery"] and (step + 1) % cfg["evalevery"] == 0:
                print(step + 1, "mse", round(float(np.mean(mses[-cfg["evalevery"]:])), 4),
                      "val", round(self.evaluate("val")[0], 3),
                      "test", round(self.evaluate("test")[0], 3), flush=True)
        seconds = time.perf_counter() - t0
        out = {"cfg": cfg, "mse_last": round(float(np.mean(mses[-30:])), 4),
               "train_s": round(seconds, 1), "within": {}}
        for split in ("train", "val", "test"):
            pooled, within, spread = self.evaluate(split)
            out[split] = round(pooled, 3)
            out["within"][split] = round(within, 3)
            out[f"{split}_pred_range"] = round(spread, 3)
        out["sources"] = self.sources
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default="{}", help="JSON overrides of DEFAULTS")
    ap.add_argument("--manifest", type=Path, default=Path("work/corpus/demo/manifest.csv"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = {**DEFAULTS, **json.loads(a.config)}
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise SystemExit(f"error: unknown config keys {sorted(unknown)}")
    print("RESULT", json.dumps(Probe(a.manifest, cfg).run()), flush=True)


if __name__ == "__main__":
    main()
