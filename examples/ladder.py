"""Score a folder of encodes and print each source's rate-quality ladder.

    python examples/ladder.py ENCODES_DIR [--bundle DIR] [--json]

What an encoder engineer looks at: for every source, its encodes sorted by bitrate with
the predicted quality beside each, and whether quality rises with bitrate. The source of
a file is its parent folder when the folder holds several encodes (`encodes/<source>/*.mp4`),
else the file name up to the first `_` (`<source>_crf30.mp4`). Bitrate is the file size
over the stream duration. Scoring uses the runtime's `Scorer` (the shipped default model
unless `--bundle` is given); no torch.

A file that cannot be scored is reported on stderr with its reason; the others go on;
the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

VIDEO_EXTS = {".mp4", ".mkv", ".webm", ".mov", ".ts", ".y4m", ".ivf", ".avi"}


def source_of(path: Path, siblings: int) -> str:
    return path.parent.name if siblings > 1 else path.stem.split("_")[0]


def kbps_of(path: Path) -> float | None:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        dur = float(s.duration * s.time_base) if s.duration else (c.duration or 0) / 1e6
    return path.stat().st_size * 8 / dur / 1000 if dur > 0 else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--bundle", type=Path, help="bundle directory (default: the shipped model)")
    ap.add_argument("--json", action="store_true", help="print the ladders as JSON")
    args = ap.parse_args(argv)

    from internvqa.runtime.bundle import default_bundle
    from internvqa.runtime.errors import InternVQAError
    from internvqa.runtime.scorer import Scorer

    files = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in VIDEO_EXTS)
    if not files:
        print(f"error: no video files under {args.folder}", file=sys.stderr)
        return 2
    try:
        scorer = Scorer(args.bundle or default_bundle())
    except (InternVQAError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    per_dir: dict[Path, int] = {}
    for f in files:
        per_dir[f.parent] = per_dir.get(f.parent, 0) + 1
    ladders: dict[str, list[dict]] = {}
    failed = 0
    for f in files:
        try:
            score = scorer.score_file(f).score
            kbps = kbps_of(f)
        except InternVQAError as exc:
            msg = " ".join(str(exc).split())
            print(f"error: {msg if str(f) in msg else f'{f}: {msg}'}", file=sys.stderr)
            failed += 1
            continue
        ladders.setdefault(source_of(f, per_dir[f.parent]), []).append(
            {"file": f.name, "kbps": kbps, "score": score})
    for rungs in ladders.values():
        rungs.sort(key=lambda r: r["kbps"] or 0.0)
    if args.json:
        print(json.dumps(ladders, indent=2))
        return 1 if failed else 0
    scale = scorer.bundle.score_scale.get("name", "score")
    for source, rungs in ladders.items():
        rising = all(a["score"] < b["score"] for a, b in zip(rungs, rungs[1:], strict=False))
        print(f"{source}: {len(rungs)} encodes, quality {'rises' if rising else 'does NOT rise'}"
              f" with bitrate ({scale})")
        for r in rungs:
            kbps = "-" if r["kbps"] is None else f"{r['kbps']:9.1f}"
            print(f"  {kbps:>9s} kbps  {r['score']:6.1f}  {r['file']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
