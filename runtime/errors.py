"""Typed errors. Every user-facing failure is one of these, so CLIs can print one line.

Each carries its exit code (`exit_code`, 2: a usage or input error); the map from errors
to exit codes of every `vqa-*` command is `runtime.cli_common.exit_code_for`.
"""

from __future__ import annotations


class InternVQAError(Exception):
    """Base class: a problem the user can act on (bad input, bad file, bad option)."""

    exit_code = 2


class UsageError(InternVQAError):
    """Wrong or contradictory options."""


class VideoError(InternVQAError):
    """A video cannot be opened, decoded, or has unusable geometry or content."""


class ManifestError(InternVQAError):
    """A manifest / score file is missing, malformed, or points at missing videos."""


class CheckpointError(InternVQAError):
    """A checkpoint is missing, untrusted, of another architecture, or has wrong shapes."""


class BundleError(InternVQAError):
    """An export bundle is missing files, was tampered with, or was made by other versions."""
