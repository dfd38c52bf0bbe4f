"""Shared CLI plumbing: the one map from errors to exit codes, and `WxH` parsing.

Exit codes of every `vqa-*` command (README, "Pipeline and commands"):

| code | meaning |
|---|---|
| 0 | success |
| 1 | a batch finished but some of its inputs failed (each one recorded) |
| 2 | a usage or input error the user can fix: bad options, a missing or malformed file, a refused checkpoint or bundle, an OS error such as a full disk (`InternVQAError.exit_code`, `OSError`, click's own usage errors) |
| 130 | interrupted (Ctrl-C) |

`exit_code_for` is the mapping. Every command is built with `cls=Command` (or
`cls=Group`), whose `invoke` turns a mapped error into one `error: ...` line on stderr and
that exit code, never a traceback; an error outside the map is a bug and keeps its
traceback. `run_command` / `main_entry` also run click's own parsing errors through the map
as one line (`vqa-score`, `vqa-bench`, whose tests call the command in-process).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from internvqa.runtime.errors import InternVQAError, UsageError

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def error_line(message: str) -> str:
    """`message` flattened to one line."""
    return " ".join(str(message).split()) or "unknown error"


def exit_code_for(exc: BaseException) -> int | None:
    """The exit code of an error reported as one line; None for anything else (a bug)."""
    if isinstance(exc, InternVQAError):
        return exc.exit_code
    if isinstance(exc, click.ClickException):
        return EXIT_USAGE
    if isinstance(exc, (KeyboardInterrupt, click.exceptions.Abort)):
        return EXIT_INTERRUPTED
    if isinstance(exc, OSError):  # disk full, permission denied, a vanished file
        return EXIT_USAGE
    return None


def error_message(exc: BaseException, interrupted: str = "interrupted") -> str:
    """The one line (without `error: `) that reports `exc`."""
    if isinstance(exc, click.exceptions.Abort):
        return "aborted"
    if isinstance(exc, KeyboardInterrupt):
        return interrupted
    if isinstance(exc, click.ClickException):
        return error_line(exc.format_message())
    return error_line(str(exc) or type(exc).__name__)


class _ReportErrors:
    """`invoke` with the project's error map. Click's own usage errors pass through (click
    prints them with the usage line, exit 2); `interrupted` is the Ctrl-C message."""

    def __init__(self, *args, interrupted: str = "interrupted", **kwargs):
        super().__init__(*args, **kwargs)
        self.interrupted = interrupted

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException):
            raise
        except (InternVQAError, OSError, KeyboardInterrupt, click.exceptions.Abort) as exc:
            click.echo(f"error: {error_message(exc, self.interrupted)}", err=True)
            ctx.exit(exit_code_for(exc))


class Command(_ReportErrors, click.Command):
    """A click command that reports errors as one line with the project's exit codes."""


class Group(_ReportErrors, click.Group):
    """A click group whose subcommands' errors are reported like `Command`'s."""


def run_command(command: click.Command, argv: Sequence[str] | None = None) -> int:
    """Run a click command; map errors to one stderr line and an exit code (returned)."""
    try:
        rv = command.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help, --version, and `Command`'s ctx.exit
        return int(exc.exit_code)
    except (InternVQAError, OSError, KeyboardInterrupt, click.ClickException,
            click.exceptions.Abort) as exc:
        click.echo(f"error: {error_message(exc)}", err=True)
        return exit_code_for(exc)
    return int(rv or 0)


def main_entry(command: click.Command):
    """Build a console-script `main(argv=None)` that exits with `run_command`'s code."""

    def main(argv: Sequence[str] | None = None) -> None:
        sys.exit(run_command(command, argv))

    return main


def parse_size(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080); anything else is a UsageError."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise UsageError(f"bad size {text!r}: expected WxH, e.g. 1920x1080") from None
    if w < 2 or h < 2:
        raise UsageError(f"bad size {text!r}: width and height must be >= 2")
    return w, h


class SizeParam(click.ParamType):
    """click type for `--size WxH`."""

    name = "WxH"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return parse_size(value)
        except UsageError as exc:
            self.fail(str(exc), param, ctx)
