"""Scoring manifest rows with the runtime's `Scorer`: the one loop every accuracy figure runs.

`vqa-export` (the accuracy it records in bundle.json, one `Scorer` per exported graph) and
`vqa-bench` (and the suite scripts through `bench.score_rows`) score a manifest's videos
here, so a figure recorded at export and one measured by the bench come from the same
calls: `coded_input(row)` (a resolution-ladder rung is scored from its coded file at display
size, the bitstream a hybrid model reads) then `Scorer.score_file`, `vqa-score`'s path.

It sits in `distill` beside the corpus code that knows the rung layout, because both
export and the bench layer import distill and neither may import the other. Torch-free.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from internvqa.runtime.errors import InternVQAError
from internvqa.runtime.manifest import ManifestRow

if TYPE_CHECKING:
    from internvqa.runtime.scorelog import ScoreResult
    from internvqa.runtime.scorer import Scorer


def coded_input(row: ManifestRow) -> tuple[str, tuple[int, int] | None]:
    """(file to score, display size or None): `synth.coded_input` (a resolution-ladder rung
    from its coded file at display size, where `vqa-data rungs` re-created it)."""
    from internvqa.distill.corpus.synth import coded_input as corpus_coded_input

    return corpus_coded_input(row)


def score_row(scorer: Scorer, row: ManifestRow) -> ScoreResult:
    """One manifest video scored as `vqa-score` scores its file (errors propagate)."""
    path, display = coded_input(row)
    return scorer.score_file(path, display=display)


def score_rows(scorer: Scorer, rows: Sequence[ManifestRow], progress: bool = True,
               desc: str = "scoring") -> tuple[list[float | None], list[float], list[dict]]:
    """Score each video with the runtime's Scorer: (pooled means, seconds each, failures).

    A video that fails with a typed error gets `None` and a failure entry; the rest go on."""
    from tqdm import tqdm

    preds: list[float | None] = []
    seconds: list[float] = []
    failures: list[dict] = []
    for row in tqdm(rows, desc=desc, unit="video", disable=not progress, leave=False):
        t0 = time.perf_counter()
        try:
            preds.append(score_row(scorer, row).score)
        except InternVQAError as exc:
            preds.append(None)
            failures.append({"path": row.path, "error": " ".join(str(exc).split())})
        seconds.append(time.perf_counter() - t0)
    return preds, seconds, failures
