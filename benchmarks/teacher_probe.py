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
from scipy.stats import spearmanr

from internvqa.distill.data import build_window_cache, split_videos, work_dir
from internvqa.distill.models import create_model
from internvqa.runtime.clipspec import PRESETS, crop_clip, normalize
from internvqa.runtime.manifest import read_manifest

DEFAULTS = dict(model="internvideo2_cpu", depth=4, dim=192, heads=3, mlp=768, patch=8, tub=1,
                ls=0.1, size=56, crop="three", steps=276, bs=16, lr=5e-4, wd=0.05, warm=23,
                seed=0, group=1, gw=0.0, rank=0.0, evalevery=0)


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
        for i, w in enumerate(cache.windows):
            self.windows.setdefault(w.video, []).append(np.asarray(cache.clip(i)))
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
        xs, s = [], cfg["size"]
        for v, (wi, fy, fx, flip) in zip(vids, keys, strict=True):
            clip = self.windows[v][wi % len(self.windows[v])]
            _, h, w, _ = clip.shape
            y0, x0 = int(fy * (h - s + 1)), int(fx * (w - s + 1))
            crop = clip[:, y0 : y0 + s, x0 : x0 + s]
            if flip:
                crop = crop[:, :, ::-1]
            xs.append(normalize(self.spec, np.ascontiguousarray(crop)[None])[0])
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(self.labels[np.array(vids)])

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

    @torch.no_grad()
    def evaluate(self, split: str) -> tuple[float, float, float]:
        """(pooled SRCC, mean within-source SRCC, prediction range) on a split."""
        self.model.eval()
        vids = self.splits[split]
        pred = np.array([
            self.model(torch.from_numpy(np.concatenate(
                [normalize(self.spec, crop_clip(self.spec, c)) for c in self.windows[v]])))[1]
            .mean().item() for v in vids])
        self.model.train()
        y = self.labels[vids]
        src = np.array([self.rows[v].source for v in vids])
        within = np.mean([spearmanr(pred[src == u], y[src == u])[0] for u in sorted(set(src))])
        return float(spearmanr(pred, y)[0]), float(within), float(pred.max() - pred.min())

    def run(self) -> dict:
        cfg = self.cfg
        opt = torch.optim.AdamW(self.model.parameters(), lr=cfg["lr"], weight_decay=cfg["wd"])
        t0, mses = time.perf_counter(), []
        for step in range(cfg["steps"]):
            warm = min(1.0, (step + 1) / cfg["warm"])
            for grp in opt.param_groups:
                grp["lr"] = cfg["lr"] * warm * 0.5 * (1 + np.cos(np.pi * step / cfg["steps"]))
            x, y = self.batch()
            s = self.model(x)[1].view(-1)
            loss = self.loss(s, y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            opt.step()
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
