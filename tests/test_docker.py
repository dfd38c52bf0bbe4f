"""The Dockerfiles are linted (no Docker engine runs here) and run what the README runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile.*"))
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")


def test_dockerfiles_exist():
    assert {p.name for p in DOCKERFILES} >= {"Dockerfile.train", "Dockerfile.runtime"}


@pytest.mark.skipif(HADOLINT is None, reason="hadolint not installed (dev extra)")
def test_hadolint_clean():
    out = subprocess.run([HADOLINT, *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_pins_and_non_root_runtime():
    for path in DOCKERFILES:
        text = path.read_text()
        for req in re.findall(r'"([A-Za-z0-9_.\-]+)[=<>]', text):
            assert f'"{req}==' in text, f"{path.name}: {req} is not pinned with =="
    runtime = (ROOT / "docker" / "Dockerfile.runtime").read_text()
    assert re.search(r"^USER (?!root|0\b)", runtime, re.M), "runtime image must not run as root"
    assert "torch" not in runtime.split("RUN", 1)[1], "runtime image must stay torch-free"


def test_entrypoints_are_real_commands():
    pyproject = (ROOT / "pyproject.toml").read_text()
    for path in DOCKERFILES:
        for cmd in re.findall(r"\b(vqa-[a-z]+)\b", path.read_text()):
            assert f"{cmd} =" in pyproject, f"{path.name} uses {cmd}, which pyproject does not define"
