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


def _copy_context(dockerfile: Path, dest: Path) -> None:
    """Lay out what the Dockerfile's COPY lines put into WORKDIR (sources from the checkout)."""
    for line in dockerfile.read_text().splitlines():
        parts = line.split()
        if not parts or parts[0] != "COPY" or any(p.startswith("--") for p in parts[1:]):
            continue
        *srcs, target = parts[1:]
        for src in srcs:
            to = dest / target
            if target.endswith("/"):
                to = to / Path(src).name
            if (ROOT / src).is_dir():
                shutil.copytree(ROOT / src, to, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / src, to)


@pytest.mark.slow
def test_runtime_image_context_builds_the_package(tmp_path):
    """`pip install .` in the runtime image sees only what its COPY lines bring: every folder
    pyproject maps must be there, and the wheel carries the runtime and vqa-bench."""
    import zipfile

    app = tmp_path / "app"
    _copy_context(ROOT / "docker" / "Dockerfile.runtime", app)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(tmp_path / "dist"), str(app)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("internvqa-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"internvqa/runtime/scorer.py", "internvqa/bench/bench_cli.py"} <= names
    assert not any(n.startswith("internvqa/distill/") and not n.endswith("__init__.py")
                   for n in names)
