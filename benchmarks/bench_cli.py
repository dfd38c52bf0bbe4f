"""`vqa-bench`: latency, throughput, memory and accuracy of engines, with the baseline.

    vqa-bench --engine work/bundles/latest --precision fp32,int8 --data corpus/manifest.csv
    vqa-bench --engine bundle/model.plan --data m.csv --batch 1,8,32 --json out.json --report rep/
    vqa-bench --engine bundle --data m.csv --teacher-preds runs/teacher-x/best/teacher_predictions.csv
    vqa-bench --engine bundle --data m.csv --peer brisque --peer niqe --peer libvmaf

Decisions:
- `--engine` may repeat; each value is a bundle directory (with `--precision a,b` one engine
  per precision, else the bundle's default), a `.onnx`/`.plan` file inside a bundle, or a
  project checkpoint directory (PyTorch; needs torch, imported only then).
- Output: the table goes to stdout, or to stderr when `--json -` takes stdout. Progress
  bars go to stderr. `--report DIR` writes PNGs (and `bench.json`).
- The peer baseline (`internvqa.bench.baseline`) is in every table: `--baseline PATH` loads a saved
  model, or fits one on the manifest's train split and saves it there; without the option
  it is fitted in memory. `--no-baseline` drops it.
- `--peer brisque|niqe|libvmaf` (repeatable) adds classic metrics as engines of their own
  (`internvqa.bench.peers`): scored on the same videos, reported with the same accuracy
  figures and their speed. With peers, `--engine` may be left out (then the frames are
  sampled with the shipped default model's clip spec). Their parameter files are fetched
  and checked before any engine runs.
- Exit 0; 1 when some videos failed to score (listed); 2 on bad options or engines.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import click

from internvqa.bench.peers.engines import PEER_NAMES
from internvqa.runtime.backend import DEVICES
from internvqa.runtime.cli_common import Command, main_entry
from internvqa.runtime.errors import UsageError
from internvqa.runtime.workspace import read_teacher_predictions


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf: write null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _load_rows(data: Path | None, split: str, limit: int | None):
    from internvqa.runtime.manifest import read_manifest, split_rows

    if data is None:
        return [], []
    rows = read_manifest(data)
    chosen = split_rows(rows, split) if split != "all" else rows
    if not chosen:
        have = sorted({r.split for r in rows})
        raise UsageError(f"{data}: no videos in split {split!r} (splits: {', '.join(have) or 'none'}"
                         "; use --split all)")
    return rows, chosen[:limit] if limit else chosen


def _teacher_table(teacher_preds: Path | None, teacher: Path | None, rows, opts):
    """(table, source note) from a CSV or by running the PyTorch teacher; (None, '') if neither."""
    from internvqa.bench import bench

    if teacher_preds is not None:
        return read_teacher_predictions(teacher_preds), str(teacher_preds)
    if teacher is not None:
        backend, pseudo = bench.open_backend(bench.EngineRef(teacher, "pytorch", "checkpoint"),
                                             opts.device, opts.threads)
        from internvqa.runtime.scorer import Scorer

        preds, _, _ = bench.score_rows(Scorer(pseudo, backend=backend), rows, opts.progress,
                                       "teacher (pytorch)")
        table = {str(r.abspath): p for r, p in zip(rows, preds, strict=True) if p is not None}
        return table, f"ran {teacher} (pytorch)"
    return None, ""


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--engine", "engines", multiple=True, metavar="PATH",
              help="Bundle dir, .onnx/.plan inside a bundle, or checkpoint dir. Repeatable.")
@click.option("--precision", default=None, metavar="P[,P]",
              help="For bundle dirs: fp32, fp16, int8, plan (comma list = one engine each).")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Manifest CSV (path, mos, source, codec, crf, split). Without it: timing only.")
@click.option("--split", default="test", show_default=True, help="Split to score ('all' for every row).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Score only the first N videos.")
@click.option("--batch", "batch_text", default="1,8,32", show_default=True,
              help="Engine batch sizes to time (clips per call).")
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True,
              help="Untimed calls before timing each batch size.")
@click.option("--min-iters", type=click.IntRange(min=1), default=5, show_default=True,
              help="At least this many timed calls per batch size.")
@click.option("--duration", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="...and keep timing until this many seconds have passed.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Intra-op threads (ONNX Runtime / torch) [ONNX: every core; torch: its default].")
@click.option("--teacher-preds", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="teacher_predictions.csv (else found from the bundle provenance).")
@click.option("--teacher", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=None, help="Teacher checkpoint dir: run it with PyTorch for agreement.")
@click.option("--baseline", "baseline_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Baseline model JSON: loaded if it exists, else fitted and saved.")
@click.option("--no-baseline", is_flag=True, help="Leave the feature baseline out.")
@click.option("--no-accuracy", is_flag=True, help="Timing only; do not score the split.")
@click.option("--peer", "peer_names", multiple=True, type=click.Choice(PEER_NAMES),
              help="Classic peer scored as an engine: brisque, niqe (NR), libvmaf (full "
                   "reference, rows with a 'reference' column). Repeatable.")
@click.option("--json", "json_out", is_flag=False, flag_value="-", default=None, metavar="[PATH|-]",
              help="Write all results as JSON to PATH, or stdout when no PATH.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Directory for PNG plots and bench.json.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def bench(engines, precision, data, split, limit, batch_text, warmup, min_iters, duration,
          device, threads, teacher_preds, teacher, baseline_path, no_baseline, no_accuracy,
          peer_names, json_out, report_dir, quiet) -> int:
    """Benchmark engines: latency percentiles, throughput, memory, accuracy vs MOS and teacher."""
    from internvqa.bench import bench as b

    if not engines and not peer_names:
        raise UsageError("nothing to benchmark: give --engine PATH and/or --peer NAME")
    if peer_names and (data is None or no_accuracy):
        raise UsageError("--peer scores the manifest's videos: give --data (and no --no-accuracy)")
    opts = b.BenchOptions(batches=b.parse_batches(batch_text), warmup=warmup,
                          min_iters=min_iters, duration=duration, device=device,
                          threads=threads, accuracy=not no_accuracy and data is not None,
                          progress=not quiet)
    refs = b.resolve_engines(engines, precision)
    b.preflight(refs, verify=opts.verify)  # every engine loads before any work starts
    peers = _load_peers(peer_names)  # and every peer's parameter files
    all_rows, rows = _load_rows(data, split, limit)
    out = sys.stderr if json_out == "-" else sys.stdout
    table, source = (None, "")
    if opts.accuracy and refs:
        table, source = _teacher_table(teacher_preds, teacher, rows, opts)

    results: list[dict[str, Any]] = []
    for ref in refs:
        t_table, t_source, t_note = table, source, ""
        if opts.accuracy and t_table is None:
            meta = _engine_meta(ref)
            path, how = b.find_teacher_predictions(meta, ref.path if ref.path.is_dir() else ref.path.parent)
            if path is not None:
                t_table, t_source = read_teacher_predictions(path), f"{path} ({how})"
            else:
                t_note = how
        if opts.progress:
            click.echo(f"benchmarking {ref.label} ...", err=True)
        r = b.bench_engine(ref, rows, opts, t_table, t_source)
        if t_note:
            r["teacher_note"] = t_note
        results.append(r)
    b.distinct_labels(results)

    result: dict[str, Any] = {
        "tool": "vqa-bench",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": ["vqa-bench", *sys.argv[1:]],
        "machine": b.machine_info(),
        "data": {"manifest": str(data) if data else None, "split": split, "videos": len(rows)},
        "options": {"batches": opts.batches, "warmup": warmup, "min_iters": min_iters,
                    "duration_s": duration, "device": device, "threads": threads},
        "engines": results,
    }
    spec = _spec_of(results[0]) if results else _default_spec()
    if opts.accuracy and not no_baseline:
        t0 = time.perf_counter()
        from internvqa.bench.baseline import evaluate_baseline

        result["baseline"] = evaluate_baseline(baseline_path, all_rows, rows, spec, str(data),
                                               opts.progress)
        result["baseline"]["total_s"] = time.perf_counter() - t0
    if peers:
        from internvqa.bench.peers.engines import evaluate_peer

        result["peers"] = []
        for peer in peers:
            if opts.progress:
                click.echo(f"scoring with peer {peer.name} ...", err=True)
            result["peers"].append(evaluate_peer(peer, rows, spec, opts.progress, threads))
    result = _clean(result)

    click.echo(_format(result), file=out)
    if json_out:
        text = json.dumps(result, indent=2, allow_nan=False)
        if json_out == "-":
            click.echo(text)
        else:
            from internvqa.runtime.atomic import atomic_write_text

            atomic_write_text(json_out, text + "\n")
    if report_dir is not None:
        from internvqa.bench.bench_report import write_report
        from internvqa.runtime.atomic import atomic_write_text

        pngs = write_report(result, report_dir)
        atomic_write_text(Path(report_dir) / "bench.json", json.dumps(result, indent=2) + "\n")
        click.echo(f"report: {len(pngs)} plots in {report_dir}", err=True)
    failed = sum(len(e.get("failures", [])) for e in [*results, *result.get("peers", [])])
    return 1 if failed else 0


def _load_peers(names):
    from internvqa.bench.peers.engines import load_peer

    return [load_peer(n) for n in dict.fromkeys(names)]


def _default_spec():
    """The shipped default model's clip spec (frames for the peers when no engine is given)."""
    from internvqa.runtime.bundle import default_bundle, load_bundle
    from internvqa.runtime.clipspec import ClipSpec

    path = default_bundle()
    return load_bundle(path, verify=False).clip_spec if path is not None else ClipSpec()


def _format(result: dict[str, Any]) -> str:
    from internvqa.bench.bench_report import format_table

    return format_table(result)


def _spec_of(engine_result: dict[str, Any]):
    from internvqa.runtime.clipspec import ClipSpec

    return ClipSpec.from_dict(engine_result["clip_spec"])


def _engine_meta(ref) -> dict[str, Any]:
    """bundle.json (or checkpoint config.json) of an engine, for provenance lookups."""
    d = ref.path if ref.path.is_dir() else ref.path.parent
    for name in ("bundle.json", "config.json"):
        p = d / name
        if p.is_file():
            try:
                meta = json.loads(p.read_text(encoding="utf-8"))
            except ValueError:
                return {}
            if name == "config.json":
                meta = {**meta, "source_checkpoint": str(d)}
            return meta if isinstance(meta, dict) else {}
    return {}


main = main_entry(bench)

if __name__ == "__main__":
    main()
