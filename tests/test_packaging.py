"""The brief's layout installs as one package: editable (this checkout) and as a wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("internvqa.runtime", "internvqa.distill", "internvqa.distill.models",
               "internvqa.distill.corpus", "internvqa.export", "internvqa.bench",
               "internvqa.bench.peers")


def test_editable_install_maps_top_level_folders():
    import internvqa.bench
    import internvqa.distill
    import internvqa.export
    import internvqa.runtime

    assert Path(internvqa.runtime.__file__).parent == ROOT / "runtime"
    assert Path(internvqa.bench.__file__).parent == ROOT / "benchmarks"
    assert Path(internvqa.distill.__file__).parent == ROOT / "distill"
    assert Path(internvqa.export.__file__).parent == ROOT / "export"


@pytest.mark.slow
def test_wheel_in_a_clean_venv_imports(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = dist.glob("internvqa-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "internvqa/runtime/clipspec.py" in names and "internvqa/export/cli.py" in names
    assert "internvqa/bench/bench_cli.py" in names and "internvqa/runtime/bench.py" not in names
    assert not any(n.startswith(("tests/", "benchmarks/", "runtime/")) for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with zipfile.ZipFile(wheel) as zf:  # a wheel install is an unzip into site-packages
        zf.extractall(site)
    # third-party dependencies come from this environment, *after* the clean venv's own
    # site-packages, so internvqa itself can only be found in the wheel
    deps = sysconfig.get_paths()["purelib"]
    code = (
        "import importlib, sys\n"
        f"sys.path.append({deps!r})\n"
        f"mods = [importlib.import_module(m) for m in {SUBPACKAGES!r}]\n"
        "import internvqa.runtime.scorer, internvqa.export.cli, internvqa.distill.cli\n"
        "import internvqa.bench.bench_cli\n"
        "print('\\n'.join(m.__file__ for m in mods))\n"
    )
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    files = out.stdout.split()
    assert len(files) == len(SUBPACKAGES)
    assert all(f.startswith(site) for f in files), files


def test_run_setup_stops_with_one_line_when_the_disk_is_too_full(tmp_path):
    """`./run` checks free space before pip fills the disk with torch's CUDA wheels.

    `df` is replaced by one that reports 100 MB free, as on a nearly full machine.
    """
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "df").write_text(
        "#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n"
        "echo '/dev/vda 1000000 900000 102400 90% /'\n")
    (fake / "df").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}",
           "INTERNVQA_VENV": str(tmp_path / "venv"), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "run"), "setup"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "needs about 7 GB free" in last and "only 100 MB free" in last, last
    assert not (tmp_path / "venv" / ".internvqa-setup").exists()
