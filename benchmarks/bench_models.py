"""CPU forward latency, params and MACs: the vit_s student against the 1B teacher.

    .venv/bin/python benchmarks/bench_models.py            # markdown table
    .venv/bin/python benchmarks/bench_models.py --json     # machine-readable

One 8x224x224 clip, batch 1, fp32, `torch.inference_mode`, one warm-up, then the median
of `--runs` timed forwards (the 1B takes tens of seconds per forward on 2 cores, so it
gets `--teacher-runs`, default 1). Weights are random: latency does not depend on them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time

import torch

from internvqa.distill.models import create_model
from internvqa.distill.models.profile import profile_model

CLIP = (3, 8, 224, 224)


def time_forward(name: str, runs: int) -> list[float]:
    """Seconds per forward of one clip, after one untimed warm-up."""
    model = create_model(name).eval()
    x = torch.randn(1, *CLIP)
    with torch.inference_mode():
        model(x)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    del model
    return times


def bench(student_runs: int, teacher_runs: int) -> dict:
    rows = []
    for name, runs in (("vit_s", student_runs), ("internvideo2_1b", teacher_runs)):
        prof = profile_model(name, CLIP)
        times = time_forward(name, runs)
        rows.append(
            {
                "model": name,
                "params": prof["params"],
                "macs": prof["macs"],
                "latency_s_median": statistics.median(times),
                "latency_s_runs": times,
            }
        )
    return {
        "clip": list(CLIP),
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
    }


def to_markdown(result: dict) -> str:
    lines = [
        "| model | params (M) | MACs / clip (G) | CPU latency / clip (s, median) | runs |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['model']} | {r['params'] / 1e6:.1f} | {r['macs'] / 1e9:.1f} "
            f"| {r['latency_s_median']:.2f} | {len(r['latency_s_runs'])} |"
        )
    s, t = result["rows"]
    lines.append("")
    lines.append(
        f"vit_s is {t['latency_s_median'] / s['latency_s_median']:.0f}x faster than the 1B teacher "
        f"with {t['params'] / s['params']:.0f}x fewer parameters and {t['macs'] / s['macs']:.0f}x fewer MACs "
        f"(clip {'x'.join(map(str, result['clip'][1:]))}, batch 1, fp32, {result['threads']} threads, "
        f"torch {result['torch']})."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    parser.add_argument("--runs", type=int, default=5, help="timed forwards of vit_s")
    parser.add_argument("--teacher-runs", type=int, default=1, help="timed forwards of the 1B")
    parser.add_argument("--save", help="also write the JSON result to this file")
    args = parser.parse_args()
    result = bench(args.runs, args.teacher_runs)
    if args.save:
        with open(args.save, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    print(json.dumps(result, indent=2) if args.json else to_markdown(result))


if __name__ == "__main__":
    main()
