"""Shared CLI plumbing: one-line errors with the project's exit codes, and `WxH` parsing.

Every `vqa-*` command runs its click command through `run_command`, so a user error is
printed as a single `error: ...` line on stderr with exit code 2 (never a traceback), a
batch with failed inputs exits 1, and Ctrl-C exits 130.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from internvqa.runtime.errors import InternVQAError, UsageError


def error_line(message: str) -> str:
    """`message` flattened to one line."""
    return " ".join(str(message).split()) or "unknown error"


def run_command(command: click.Command, argv: Sequence[str] | None = None) -> int:
    """Run a click command; map errors to one stderr line and an exit code (returned)."""
    try:
        rv = command.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help, --version
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"error: {error_line(exc.format_message())}", err=True)
        return 2
    except InternVQAError as exc:
        click.echo(f"error: {error_line(str(exc))}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        return 130
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
