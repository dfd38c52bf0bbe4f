"""INT8 vs FP32 ONNX Runtime CPU latency of a bundle across session options (batch 1).

    .venv/bin/python benchmarks/bench_export.py work/bundles/vit_s --runs 30

Times fp32 and int8 interleaved for each (graph optimization level, intra-op threads)
pair and prints one JSON object per setting with the medians and the INT8 speed-up.
"""

from __future__ import annotations

import argparse
import json
import os

from internvqa.export.latency import ort_latency
from internvqa.runtime.bundle import load_bundle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", default=f"1,{os.cpu_count()}")
    ap.add_argument("--levels", default="basic,extended,all")
    args = ap.parse_args()
    b = load_bundle(args.bundle, precision="fp32")
    s = b.clip_spec
    paths = {"fp32": str(b.model_file("fp32")), "int8": str(b.model_file("int8"))}
    for level in args.levels.split(","):
        for threads in (int(t) for t in args.threads.split(",")):
            r = ort_latency(paths, (3, s.num_frames, s.size, s.size), runs=args.runs,
                            threads=threads, opt_level=level)
            print(json.dumps({"graph_optimization": level, "threads": threads,
                              "fp32_ms": round(r["fp32"]["median_ms"], 2),
                              "int8_ms": round(r["int8"]["median_ms"], 2),
                              "int8_speedup": round(r["int8_speedup_vs_fp32"], 3)}), flush=True)


if __name__ == "__main__":
    main()
