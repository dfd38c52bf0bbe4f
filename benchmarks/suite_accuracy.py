"""The suite's accuracy table: every engine on one held-out split, one evaluation function.

Engines, all on the same test videos of one manifest (`run_suite.py --manifest`):

- the shipped default model (`runtime.bundle.default_bundle()`), hybrid (pixels + the
  file's bitstream) and pixel-only (`Scorer(..., bitstream=False)`, one engine shared);
- the bitrate model (`heldout.bitrate_model`: ridge on log bits per pixel, coded pixels
  and codec from the manifest's `kbps`, fitted on the train split; no pixels at all);
- BRISQUE and NIQE (`internvqa.bench.peers`), every frame the clip spec samples;
- the features+ridge baseline (`baseline.py`), loaded from `<work>/bench/` when a model
  fitted on this manifest's train split is there, else fitted once on a stride of the
  train split (`--baseline-train`) and saved for the next run;
- libvmaf (full reference): it *is* the label of a VMAF-labelled corpus, so only its speed
  is measured here (`label_pair` on the first test videos against their lossless
  references) and the largest difference to the label is shown as the check.

Scoring: `bench.score_rows` for our model (resolution-ladder rungs from their coded files
at display size where `vqa-data rungs` re-created them); peers and the baseline read the
listed file (for a rung, its upscaled copy: the pixels a viewer sees). Figures:
`bench.accuracy` for every engine (SRCC, KRCC, PLCC and RMSE after the logistic fit,
RD-order accuracy, mean within-source SRCC), on all test videos and on natural content.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from internvqa.runtime.manifest import ManifestRow, read_manifest

FIGURES = ("n", "srcc", "krcc", "plcc_logistic", "rmse_logistic", "rd_order_accuracy",
           "within_source_srcc")


def figures(pred: Sequence[float | None], rows: Sequence[ManifestRow]) -> dict[str, Any]:
    """`bench.accuracy` on the videos with a finite prediction, trimmed to FIGURES."""
    from internvqa.bench.bench import accuracy

    m = accuracy(list(pred), list(rows))
    return {k: m.get(k) for k in FIGURES}


def subsets(rows: Sequence[ManifestRow]) -> dict[str, list[int]]:
    """'all', and 'natural' (camera content, the manifest's `content` column) when present."""
    out = {"all": list(range(len(rows)))}
    nat = [i for i, r in enumerate(rows) if r.natural]
    if nat and len(nat) < len(rows):
        out["natural"] = nat
    return out


def manifest_fps(manifest: Path) -> float:
    side = manifest.with_suffix(".json")
    for cand in (side, manifest.parent / "manifest.json"):
        if cand.is_file():
            return float(json.loads(cand.read_text()).get("fps", 24))
    return 24.0


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Accuracy:
    """Runs the engines on the split and keeps each one's predictions and speed."""

    def __init__(self, manifest: Path, work: Path, split: str = "test", limit: int = 0,
                 baseline_train: int = 750, vmaf_videos: int = 20,
                 log: Callable[[str], None] = print, progress: bool | None = None):
        self.manifest, self.work, self.split = Path(manifest), Path(work), split
        self.rows = read_manifest(self.manifest)
        self.test = [r for r in self.rows if r.split == split and r.mos is not None]
        if limit:
            self.test = self.test[:limit]
        self.train = [r for r in self.rows if (r.split or "train") == "train" and r.mos is not None]
        self.baseline_train, self.vmaf_videos = baseline_train, vmaf_videos
        self.log = log
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.engines: list[dict[str, Any]] = []
        self.preds: dict[str, list[float | None]] = {}
        self.seconds: dict[str, list[float]] = {}

    def add(self, key: str, label: str, preds: Sequence[float | None] | None, **info) -> dict:
        row: dict[str, Any] = {"key": key, "label": label, **info}
        if preds is not None:
            self.preds[key] = list(preds)
            row["figures"] = {sub: figures([preds[i] for i in idx], [self.test[i] for i in idx])
                              for sub, idx in subsets(self.test).items()}
        self.engines.append(row)
        srcc = (row.get("figures") or {}).get("all", {}).get("srcc")
        speed = info.get("s_per_video")
        self.log(f"accuracy {key}: SRCC {srcc if srcc is None else round(srcc, 4)}, "
                 f"{speed if speed is None else round(speed, 3)} s/video")
        return row

    # ---- engines -------------------------------------------------------------------------
    def default_model(self, bundle: Path) -> Any:
        """Hybrid and pixel-only rows; returns the hybrid Scorer (for the precision table)."""
        from internvqa.bench.bench import score_rows
        from internvqa.runtime.scorer import Scorer

        scorer = Scorer(bundle)
        name = f"{scorer.bundle.model_name}:{scorer.bundle.precision}"
        preds, secs, fails = score_rows(scorer, self.test, self.progress, "default hybrid")
        self.seconds["default"] = secs
        mode = "hybrid (pixels + bitstream)" if scorer.uses_bitstream else "pixels"
        self.add("default", f"default model {name}, {mode}", preds,
                 s_per_video=float(np.mean(secs)), failures=fails,
                 precision=scorer.bundle.precision, hybrid=scorer.uses_bitstream)
        if scorer.uses_bitstream:
            pixels = Scorer(scorer.bundle, backend=scorer.backend, bitstream=False)
            p2, s2, f2 = score_rows(pixels, self.test, self.progress, "default pixels-only")
            self.add("default-pixels", f"default model {name}, pixel-only mode", p2,
                     s_per_video=float(np.mean(s2)), failures=f2)
        return scorer

    def bitrate(self) -> None:
        from internvqa.bench.heldout import bitrate_model

        if not self.train or not all(r.extra.get("kbps") for r in self.train + self.test):
            self.add("bitrate", "bitrate model", None, note="manifest has no kbps column")
            return
        t0 = time.perf_counter()
        preds = bitrate_model(self.train, self.test, manifest_fps(self.manifest))
        self.add("bitrate", "bitrate model (ridge on log bpp, pixels, codec; train split)", preds,
                 s_per_video=(time.perf_counter() - t0) / len(self.test),
                 note=f"fitted on {len(self.train)} train videos; reads only the manifest's kbps")

    def peers(self, spec, names: Sequence[str] = ("brisque", "niqe")) -> None:
        from internvqa.bench.peers.engines import evaluate_peer, load_peer
        from internvqa.runtime.errors import InternVQAError

        for name in names:
            try:
                peer = load_peer(name, self.work / "peers")
            except InternVQAError as exc:
                self.add(name, name.upper(), None, note=f"not run: {' '.join(str(exc).split())}")
                continue
            block = evaluate_peer(peer, self.test, spec, progress=self.progress)
            preds = [s["pred"] for s in block["scores"]]
            self.add(name, f"{peer.label} ({peer.source.split(' ')[0]})", preds,
                     s_per_video=block["e2e_s_per_video"], ms_per_frame=block["ms_per_frame"],
                     failures=block["failures"], note=block.get("note"))

    def baseline_model_path(self) -> Path:
        tag = f"{self.manifest.stem}-{file_digest(self.manifest)[:12]}-n{self.baseline_train}"
        return self.work / "bench" / f"baseline-{tag}.json"

    def baseline(self, spec) -> None:
        """Load the saved features+ridge model of this manifest, or fit it once and save it."""
        from internvqa.bench.baseline import BaselineModel, features_for_rows, fit_rows

        path = self.baseline_model_path()
        if path.is_file():
            model = BaselineModel.load(path)
            note = f"loaded {path} ({model.train.get('n')} train videos)"
        else:
            train = self.train
            if self.baseline_train and len(train) > self.baseline_train:
                step = len(train) / self.baseline_train
                train = [train[int(i * step)] for i in range(self.baseline_train)]
            t0 = time.perf_counter()
            model = fit_rows(train, spec, self.progress, manifest=str(self.manifest))
            path.parent.mkdir(parents=True, exist_ok=True)
            model.save(path)
            note = (f"fitted on {model.train['n']} train videos (every "
                    f"{len(self.train) / len(train):.1f}th of {len(self.train)}), ridge lambda "
                    f"{model.ridge_lambda:g}, {time.perf_counter() - t0:.0f} s, saved to {path}")
        feats, secs, fails = features_for_rows(self.test, model.clip_spec, self.progress, "baseline")
        ok = np.all(np.isfinite(feats), axis=1)
        preds = [float(model.predict_features(f)[0]) if k else None
                 for f, k in zip(feats, ok, strict=True)]
        self.add("baseline", "features+ridge baseline (7 compression features)", preds,
                 s_per_video=float(np.mean(secs)), failures=fails, note=note)

    def libvmaf(self) -> None:
        """libvmaf is the label: time it on the first test videos vs their references."""
        from internvqa.bench.bench import coded_input
        from internvqa.runtime.errors import InternVQAError
        from internvqa.runtime.scorer import available_cores

        try:
            from internvqa.distill.corpus.vmaf import ffmpeg_exe, label_pair

            ffmpeg_exe()
        except (ImportError, InternVQAError) as exc:
            self.add("libvmaf", "libvmaf VMAF (full reference)", None, accuracy="the label",
                     note=f"not timed: {' '.join(str(exc).split())}")
            return
        corpus = self.manifest.parent
        # |VMAF - label| is kept apart for full-size encodes and resolution-ladder rungs: a
        # rung's coded file is upscaled here by ffmpeg's swscale bicubic, while its label
        # scored the corpus's stored copy, upscaled by OpenCV's bicubic (different kernels;
        # measured up to 1.47 VMAF on a 214x120 rung). Full-size encodes match exactly.
        secs, diffs, rung_diffs, frames = [], [], [], 0
        for row in self.test[: self.vmaf_videos]:
            ref = corpus / "refs" / f"{row.source}_{row.width}x{row.height}.mkv"
            if not ref.is_file():
                continue
            path, display = coded_input(row)
            t0 = time.perf_counter()
            try:
                labels = label_pair(path, ref, threads=available_cores(), ms_ssim=False)
            except InternVQAError:
                continue
            secs.append(time.perf_counter() - t0)
            frames += labels.frames
            (rung_diffs if display else diffs).append(abs(labels.vmaf - row.mos))
        info: dict[str, Any] = {"accuracy": "the label"}
        if secs:
            info.update(s_per_video=float(np.mean(secs)), timed_videos=len(secs),
                        ms_per_frame=1000 * sum(secs) / max(1, frames),
                        label_max_abs_diff=float(max(diffs)) if diffs else None,
                        rung_label_max_abs_diff=float(max(rung_diffs)) if rung_diffs else None)
            parts = []
            if diffs:
                parts.append(f"largest |VMAF - label| {max(diffs):.3f} on {len(diffs)} "
                             "full-size encodes")
            if rung_diffs:
                parts.append(f"{max(rung_diffs):.3f} on {len(rung_diffs)} resolution rungs "
                             "(coded file upscaled by ffmpeg's bicubic here, by OpenCV's "
                             "bicubic in the corpus label)")
            info["note"] = (f"label_pair (VMAF + NEG + PSNR + SSIM, {available_cores()} threads) "
                            f"on the first {len(secs)} test videos vs their FFV1 references; "
                            + "; ".join(parts))
        else:
            info["note"] = "no test video has its reference (refs/<source>_<W>x<H>.mkv)"
        self.add("libvmaf", "libvmaf VMAF v0.6.1 (full reference)", None, **info)

    def report(self) -> dict[str, Any]:
        natural = sum(1 for r in self.test if r.natural)
        return {"manifest": str(self.manifest), "split": self.split, "videos": len(self.test),
                "sources": len({r.source for r in self.test}), "natural_videos": natural,
                "natural_sources": len({r.source for r in self.test if r.natural}),
                "train_videos": len(self.train), "engines": self.engines}


def _fmt(v: Any, d: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{d}f}" if isinstance(v, float) else str(v)


def render(acc: dict[str, Any]) -> list[str]:
    """The accuracy table: all test videos, plus the natural-content SRCC where present."""
    has_nat = any("natural" in (e.get("figures") or {}) for e in acc["engines"])
    head = ["engine", "n", "SRCC", "KRCC", "PLCC-log", "RMSE-log", "RD-order",
            "within-source SRCC", *(["natural: SRCC / within-source"] if has_nat else []),
            "s/video", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in acc["engines"]:
        figs = e.get("figures") or {}
        f = figs.get("all")
        if f is None:
            cells = [e.get("accuracy", "not run"), *[""] * 6]
        else:
            cells = [_fmt(f["n"]), _fmt(f["srcc"]), _fmt(f["krcc"]), _fmt(f["plcc_logistic"]),
                     _fmt(f["rmse_logistic"], 2), _fmt(f["rd_order_accuracy"]),
                     _fmt(f["within_source_srcc"])]
        if has_nat:
            nat = figs.get("natural")
            cells.append(f"{_fmt(nat['srcc'])} / {_fmt(nat['within_source_srcc'])}" if nat else "")
        speed = _fmt(e.get("s_per_video"))
        if e.get("ms_per_frame") is not None:
            speed += f" ({e['ms_per_frame']:.1f} ms/frame)"
        note = e.get("note") or ""
        if e.get("failures"):
            note = (note + "; " if note else "") + f"{len(e['failures'])} failed"
        lines.append("| " + " | ".join([e["label"], *cells, speed, note]) + " |")
    return lines
