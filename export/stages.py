"""Stages: run a pipeline step's command unless its output is current.

`vqa-demo` (export/demo.py) and the benchmark suites (benchmarks/run_suite.py,
benchmarks/suite_demo.py) are sequences of the project's own CLIs run as subprocesses with
argument lists, exactly as a user would run them. Each step is skipped when what it
builds is already there and up to date, so a second run only does what is missing. This
module is that one loop: `Stages.run` decides (current -> reuse, else run and time the
command), `Stages.skip` records a step left out for a reason, and every outcome is a
`StageRun` handed to the caller's `report` function, which alone decides what is printed
(the demo numbers its stages, the suites prefix `[suite]`).

It lives in `internvqa.export` (the demo's layer) so that the bench layer may import it
too; it imports nothing but the standard library.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# what a StageRun's status means
RAN, FAILED, CURRENT, SKIPPED = "ok", "failed", "current", "skipped"


def console_script(name: str) -> list[str]:
    """The console script `name` next to this interpreter (the venv's), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return [str(here)]
    found = shutil.which(name)
    return [found] if found else [name]


def is_current(output: Path, *sources: Path) -> bool:
    """`output` exists and is newer than every source that exists."""
    output = Path(output)
    if not output.exists():
        return False
    mtime = output.stat().st_mtime
    return all(mtime > Path(s).stat().st_mtime for s in sources if Path(s).exists())


@dataclass
class StageRun:
    """One step's outcome: status is RAN, FAILED, CURRENT (output reused) or SKIPPED."""

    name: str
    index: int
    status: str
    argv: list[str] = field(default_factory=list)
    seconds: float = 0.0
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    reason: str = ""  # SKIPPED: why; FAILED: what went wrong


Report = Callable[[str, StageRun], None]  # (event: "start" | "end", run)


class Stages:
    """Run steps in order; `report(event, run)` is told at the start and end of each."""

    def __init__(self, report: Report | None = None, *, cwd: Path | None = None,
                 timeout: float | None = None, ok_codes: Sequence[int] = (0,)):
        self.report = report or (lambda event, run: None)
        self.cwd, self.timeout, self.ok_codes = cwd, timeout, tuple(ok_codes)
        self.runs: list[StageRun] = []

    def _new(self, name: str, status: str, argv: Sequence[str] = (), reason: str = "") -> StageRun:
        run = StageRun(name, len(self.runs) + 1, status, list(argv), reason=reason)
        self.runs.append(run)
        return run

    def skip(self, name: str, reason: str) -> StageRun:
        run = self._new(name, SKIPPED, reason=reason)
        self.report("end", run)
        return run

    def run(self, name: str, argv: Sequence[str], *, current: bool = False,
            capture: bool = False, capture_stderr: bool = False,
            timeout: float | None = None) -> StageRun:
        """Run `argv` unless `current` (its output exists and is up to date).

        The command's failure (an exit code outside `ok_codes`, a missing executable:
        127, a timeout: 124) is a FAILED run, never an exception: the caller decides.
        """
        if current:
            run = self._new(name, CURRENT, argv)
            self.report("end", run)
            return run
        run = self._new(name, RAN, argv)
        self.report("start", run)
        limit = timeout or self.timeout
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(list(argv), cwd=self.cwd, text=True,
                                  stdout=subprocess.PIPE if capture else None,
                                  stderr=subprocess.PIPE if capture_stderr else None,
                                  timeout=limit)
            run.returncode, run.stdout, run.stderr = proc.returncode, proc.stdout or "", proc.stderr or ""
        except FileNotFoundError as exc:
            run.returncode, run.stderr = 127, str(exc)
        except subprocess.TimeoutExpired:
            run.returncode, run.stderr = 124, f"timed out after {limit} s"
        run.seconds = time.perf_counter() - t0
        if run.returncode not in self.ok_codes:
            run.status = FAILED
            lines = [ln for ln in run.stderr.strip().splitlines() if ln.strip()]
            run.reason = " | ".join(lines[-3:])[:600] if lines else f"exit {run.returncode}"
        self.report("end", run)
        return run
