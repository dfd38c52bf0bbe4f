"""`vqa-score`: score videos, raw YUV or a stdin stream with a bundle; JSON/CSV logs.

    vqa-score --bundle DIR [--precision fp32|fp16|int8|plan] INPUTS... [--csv out.csv]
    vqa-score --bundle DIR --manifest corpus.csv --csv out.csv --resume
    vqa-score --bundle DIR clip.yuv --size 1920x1080 --pix-fmt yuv420p --fps 50 --json -
    ffmpeg ... -f rawvideo - | vqa-score - --size 1280x720 --fps 25 --bundle DIR

Decisions:
- Bundle: `--bundle DIR`, else `$INTERNVQA_BUNDLE`, else the default model shipped inside
  the package (`internvqa.runtime.default_bundle`), so `vqa-score video.mp4` works right
  after `pip install`. `--bundle latest` is the bundle `vqa-export` wrote last
  (`$INTERNVQA_WORK/bundles/latest`, `./work` without the variable).
- Outputs: `--csv PATH` gets one row per input, appended (fsynced) as each finishes;
  `--json PATH|-` gets the VMAF-shaped log: one object for one input, a JSON list of
  objects for several; `--log-dir DIR` gets one `<file name>.json` per input. With neither
  `--csv` nor `--json -`, the CSV rows go to stdout as inputs finish.
- An existing CSV is only continued with `--resume` (torn last line repaired; inputs with
  an ok row skipped, and error rows too unless `--retry-failed`, whose new row is appended:
  the last row of a path wins).
- A failing input is recorded (status error, one-line message) and the batch goes on;
  exit 1 if any failed. Bad options, a missing/tampered bundle, or raw files whose size
  does not fit `--size/--pix-fmt` are usage errors: one `error:` line, exit 2.
- `--workers N` decodes up to N inputs ahead of inference in threads (decoding and
  preprocessing release the GIL; each input is also decoded in a background thread while
  its batches run), with at most two batches queued per input, so memory stays bounded.
- `--max-seconds S` / `--max-frames N` bound each input of a batch (off by default): an
  input that takes longer or has more frames is recorded as an error row and the batch
  goes on. Recommended for untrusted input, e.g. a few times the expected clip duration.
- Pipe mode (`-` as the only input): raw frames are read from stdin as they arrive; one
  JSON line per window is printed (and flushed) as soon as the window is scored; at end of
  input the partial window is scored and a final `{"pooled_metrics": ...}` line follows.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time
from collections import deque
from pathlib import Path

import click

from internvqa.runtime.atomic import (
    append_line,
    atomic_write_text,
    read_complete_lines,
    repair_torn_tail,
)
from internvqa.runtime.backend import DEVICES
from internvqa.runtime.bundle import PRECISIONS, default_bundle
from internvqa.runtime.cli_common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    Command,
    SizeParam,
    error_line,
    main_entry,
)
from internvqa.runtime.errors import InternVQAError, UsageError
from internvqa.runtime.scorelog import METRIC, csv_header, csv_row, parse_csv_rows
from internvqa.runtime.video import RAW_PIX_FMTS, raw_frame_bytes
from internvqa.runtime.workspace import LATEST, latest_bundle


def resolve_bundle(bundle: str | None) -> Path:
    """--bundle (or `latest`), else $INTERNVQA_BUNDLE, else the shipped default model."""
    if bundle == LATEST:
        return latest_bundle()
    if bundle:
        return Path(bundle)
    env = os.environ.get("INTERNVQA_BUNDLE")
    if env:
        return Path(env)
    shipped = default_bundle()
    if shipped is None:
        raise UsageError("no bundle: this install has no default model; pass --bundle DIR")
    return shipped


def expand_inputs(inputs: tuple[str, ...], manifest: str | None) -> list[str]:
    """Files, globs (expanded, sorted) and manifest rows, in order, without duplicates."""
    out: list[str] = []
    for item in inputs:
        if glob.has_magic(item):
            matches = sorted(glob.glob(item))
            if not matches:
                raise UsageError(f"no files match {item!r}")
            out.extend(matches)
        else:
            out.append(item)
    if manifest:
        from internvqa.runtime.manifest import read_manifest

        out.extend(str(row.abspath) for row in read_manifest(manifest))
    seen: set[str] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def check_raw_sizes(paths: list[str], size, pix_fmt: str | None) -> None:
    """Raw inputs without --size, or whose byte size is no whole number of frames."""
    if size is None:
        raw = [p for p in paths if p.lower().endswith(".yuv")]
        if raw:
            raise UsageError(f"{raw[0]}: raw .yuv input needs --size WxH (and --pix-fmt if not yuv420p)")
        return
    fb = raw_frame_bytes(size[0], size[1], pix_fmt or "yuv420p")
    for p in paths:
        if os.path.isfile(p) and os.path.getsize(p) % fb:
            raise UsageError(
                f"{p}: size {os.path.getsize(p)} bytes is not a whole number of "
                f"{size[0]}x{size[1]} {pix_fmt or 'yuv420p'} frames ({fb} bytes each); "
                "check --size and --pix-fmt"
            )


def _done_paths(csv_path: Path, retry_failed: bool) -> set[str]:
    repair_torn_tail(csv_path)
    lines = read_complete_lines(csv_path)
    if lines and lines[0] != csv_header():
        raise UsageError(f"{csv_path}: not a vqa-score CSV (unexpected header)")
    keep = {"ok"} if retry_failed else {"ok", "error"}
    return {r["path"] for r in parse_csv_rows(lines) if r.get("status") in keep}


def _log_name(log_dir: Path, path: str, used: set[str]) -> Path:
    base = Path(path).name or "input"
    name, k = f"{base}.json", 1
    while name in used:
        k += 1
        name = f"{base}.{k}.json"
    used.add(name)
    return log_dir / name


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1)
@click.option("--bundle", help="Bundle directory, or `latest` for the last vqa-export (default: "
              "$INTERNVQA_BUNDLE, else the default model shipped with the package).")
@click.option("--precision", type=click.Choice(PRECISIONS), help="Model precision (default: the bundle's).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--manifest", type=click.Path(), help="Manifest CSV whose `path` rows are scored.")
@click.option("--size", type=SizeParam(), help="Raw input frame size WxH.")
@click.option("--display", type=SizeParam(),
              help="Size WxH the video is watched at, when not its own (a resolution-ladder "
                   "rung): frames are upscaled to it (bicubic) before scoring.")
@click.option("--pixels-only", is_flag=True,
              help="Ignore the bitstream (a hybrid model's bits-per-pixel input): score from "
                   "decoded pixels alone.")
@click.option("--pix-fmt", type=click.Choice(RAW_PIX_FMTS), help="Raw input pixel format [yuv420p].")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), help="Raw input frame rate [25].")
@click.option("--json", "json_out", help="VMAF-shaped JSON log to PATH, or - for stdout.")
@click.option("--log-dir", type=click.Path(file_okay=False), help="One JSON log per input here.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Batch CSV, appended per input.")
@click.option("--resume", is_flag=True, help="Continue an existing --csv, skipping scored inputs.")
@click.option("--retry-failed", is_flag=True, help="With --resume, score inputs that failed before.")
@click.option("--threads", type=click.IntRange(min=1),
              help="Engine intra-op threads [auto: the cores left after the decoder's].")
@click.option("--decode-threads", type=click.IntRange(min=1),
              help="FFmpeg decoder threads per input [auto: 1 up to 4 cores, else cores/4].")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Inputs decoded ahead of inference (threads).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Windows per engine call [1 on CPU, 4 on GPU].")
@click.option("--max-seconds", type=click.FloatRange(min=0, min_open=True),
              help="Give up on an input after this many seconds (recorded as an error).")
@click.option("--max-frames", type=click.IntRange(min=1),
              help="Give up on an input with more frames than this (recorded as an error).")
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
@click.option("--summary/--no-summary", default=None,
              help="One human line per input instead of CSV rows on stdout "
                   "[default: when stdout is a terminal].")
@click.option("--explain", is_flag=True,
              help="Say what the score means and how the model was trained, then exit.")
def score(inputs, bundle, precision, device, manifest, size, display, pixels_only, pix_fmt, fps,
          json_out, log_dir,
          csv_path, resume, retry_failed, threads, decode_threads, workers, batch_size,
          max_seconds, max_frames, no_progress, summary, explain) -> int:
    """Score compressed-video quality (0-100, higher is better) with an InternVQA bundle.

    With no --bundle the default model shipped with the package is used: a predicted VMAF
    (0-100) from the compressed video alone (`vqa-score --explain` says more).
    """
    from internvqa.runtime.scorer import Scorer

    if explain:
        click.echo(explain_bundle(resolve_bundle(bundle)))
        return 0
    if inputs == ("-",):
        if manifest or csv_path or resume or log_dir:
            raise UsageError("pipe mode (-) takes no --manifest, --csv, --resume or --log-dir")
        if size is None:
            raise UsageError("reading raw frames from stdin needs --size WxH")
        scorer = Scorer(resolve_bundle(bundle), precision, device, threads, batch_size,
                        decode_threads=decode_threads)
        return pipe_mode(scorer, size, pix_fmt or "yuv420p", fps or 25.0, json_out)
    if "-" in inputs:
        raise UsageError("- (stdin) must be the only input")
    paths = expand_inputs(inputs, manifest)
    if not paths:
        raise UsageError("no inputs: give files, globs, --manifest CSV, or - for stdin")
    if resume and not csv_path:
        raise UsageError("--resume needs --csv")
    check_raw_sizes(paths, size, pix_fmt)
    done: set[str] = set()
    if csv_path:
        cp = Path(csv_path)
        if cp.exists() and cp.stat().st_size and not resume:
            raise UsageError(f"{cp} exists: pass --resume to continue it, or remove it")
        if resume and cp.exists():
            done = _done_paths(cp, retry_failed)
        if not read_complete_lines(cp):
            atomic_write_text(cp, csv_header() + "\n")
    scorer = Scorer(resolve_bundle(bundle), precision, device, threads, batch_size,
                    max_seconds=max_seconds, max_frames=max_frames, decode_threads=decode_threads,
                    bitstream=not pixels_only)
    if scorer.bundle.note:
        click.echo(f"note: {scorer.bundle.note}", err=True)
    todo = [p for p in paths if p not in done]
    return run_batch(scorer, todo, size, pix_fmt, fps, json_out, log_dir, csv_path, workers,
                     no_progress, summary, display)


def explain_bundle(path: Path) -> str:
    """What a bundle's score means, which model made it and how it was trained."""
    from internvqa.runtime.bundle import load_bundle

    b = load_bundle(path)
    scale = b.score_scale
    card = b.meta.get("model_card") or {}
    lines = [f"model: {b.model_name} ({b.path}), precision {b.precision}",
             f"score: {scale.get('name')}, {scale.get('min')}-{scale.get('max')}, "
             f"{'higher' if scale.get('higher_is_better', True) else 'lower'} is better",
             f"  {scale.get('description', '')}"]
    for key in ("summary", "inputs", "training", "heldout_accuracy", "limitations"):
        value = card.get(key)
        if isinstance(value, dict):
            lines.append(f"{key.replace('_', ' ')}:")
            lines += [f"  {k}: {v}" for k, v in value.items()]
        elif isinstance(value, list):
            lines.append(f"{key.replace('_', ' ')}:")
            lines += [f"  - {v}" for v in value]
        elif value:
            lines.append(f"{key.replace('_', ' ')}: {value}")
    if not card:
        lines.append("no model card in this bundle (see its bundle.json)")
    return "\n".join(lines)


def summary_line(path: str, result, err: str, scale_name: str) -> str:
    """`path: <scale> 83.2, worst 71.5 at 2.0-2.8 s, 5 windows [flags]` or the error."""
    if result is None:
        return f"{path}: error: {err}"
    scored = [w for w in result.windows if w.score is not None]
    text = f"{path}: {scale_name} {result.score:.1f}"
    if len(scored) > 1:
        worst = min(scored, key=lambda w: w.score)
        text += f", worst {worst.score:.1f} at {worst.start_time:.1f}-{worst.end_time:.1f} s"
    text += f", {len(result.windows)} window{'s' if len(result.windows) != 1 else ''}"
    if result.flags:
        text += f" [{', '.join(result.flags)}]"
    return text


def run_batch(scorer, todo, size, pix_fmt, fps, json_out, log_dir, csv_path, workers,
              no_progress, summary: bool | None = None,
              display: tuple[int, int] | None = None) -> int:
    """Score `todo` in order, decoding up to `workers` inputs ahead; record every outcome."""
    from tqdm import tqdm

    from internvqa.runtime.video import open_video

    to_stdout = not csv_path and json_out != "-"
    human = to_stdout and (sys.stdout.isatty() if summary is None else summary)
    rows_to_stdout = to_stdout and not human
    scale_name = str(scorer.bundle.score_scale.get("name", "score"))
    if rows_to_stdout:
        click.echo(csv_header())
    logs, used, failed = [], set(), 0
    ahead: deque = deque()
    queue_iter = iter(todo)

    def start_next() -> bool:
        path = next(queue_iter, None)
        if path is None:
            return False
        t0 = time.perf_counter()
        try:
            source = open_video(path, size=size, pix_fmt=pix_fmt, fps=fps,
                                decode_threads=scorer.decode_threads, display=display)
            ahead.append((path, t0, source, scorer.start(source, name=path), None))
        except Exception as exc:  # noqa: BLE001 - recorded per input, batch goes on
            ahead.append((path, t0, None, None, _describe(exc)))
        return True

    bar = tqdm(total=len(todo), unit="file", file=sys.stderr, disable=True if no_progress else None)
    while len(ahead) < workers and start_next():
        pass
    while ahead:
        path, t0, source, job, err = ahead.popleft()
        result = None
        if job is not None:
            try:
                result = scorer.finish(job)
            except Exception as exc:  # noqa: BLE001 - av/onnxruntime errors included
                err = _describe(exc)
            finally:
                source.close()
        start_next()
        elapsed = time.perf_counter() - t0
        row = csv_row(path, result, err or "", elapsed)
        if csv_path:
            append_line(csv_path, row)
        if rows_to_stdout:
            click.echo(row)
        elif human:
            bar.clear()
            click.echo(summary_line(path, result, err or "", scale_name))
        if result is not None:
            log = result.to_vmaf_json()
            if log_dir:
                atomic_write_text(_log_name(Path(log_dir), path, used), json.dumps(log, indent=2) + "\n")
            if json_out:
                logs.append(log)
        else:
            failed += 1
            if json_out:
                logs.append({"input": {"name": path}, "error": err})
        bar.update(1)
    bar.close()
    if json_out:
        doc = logs[0] if len(logs) == 1 else logs
        text = json.dumps(doc, indent=2) + "\n"
        if json_out == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            atomic_write_text(json_out, text)
    return EXIT_SOME_FAILED if failed else EXIT_OK


def pipe_mode(scorer, size, pix_fmt: str, fps: float, json_out: str | None) -> int:
    """Score raw frames from stdin, one JSON line per window as soon as it is scored."""
    from internvqa.runtime.scorer import ScoreStream
    from internvqa.runtime.video import RawYUVSource

    source = RawYUVSource(sys.stdin.buffer, size[0], size[1], pix_fmt, fps)
    stream = ScoreStream(scorer, fps=fps, name="<stdin>")
    out = sys.stdout

    def emit(obj) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    emitted = 0
    for frame in source.frames():
        for ws in stream.push(frame):
            emit(ws.to_dict())
            emitted += 1
    result = stream.flush()
    for ws in result.windows[emitted:]:
        emit(ws.to_dict())
    flags = [*result.flags, *(["truncated"] if source.truncated else [])]
    pooled = {METRIC: result.to_vmaf_json()["pooled_metrics"][METRIC]}
    emit({"pooled_metrics": pooled, "windows": len(result.windows), "frames": result.frames,
          "flags": flags})
    if json_out and json_out != "-":
        atomic_write_text(json_out, result.to_json() + "\n")
    return 0


def _describe(exc: BaseException) -> str:
    """One line for the CSV: our errors as they are, others with their type."""
    if isinstance(exc, InternVQAError):
        return error_line(str(exc))
    return error_line(f"{type(exc).__name__}: {exc}")


main = main_entry(score)

if __name__ == "__main__":
    main()
