"""Load: 200 small clips scored by 4 threads sharing one Scorer (documented thread-safe in
`runtime/scorer.py`) give exactly the sequential results, with flat memory."""

from __future__ import annotations

import gc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from videos import moving_frames, write_video

from internvqa.runtime import Scorer

pytestmark = pytest.mark.slow

N_CLIPS = 200
THREADS = 4
RSS_GROWTH_LIMIT = 48 << 20  # after warm-up; a per-clip leak of 250 KiB would exceed it


@pytest.fixture(scope="session")
def load_clips(tmp_path_factory) -> list[Path]:
    """200 tiny H.264 clips (64x64, 8-16 frames), written once per session."""
    d = tmp_path_factory.mktemp("load")
    return [write_video(d / f"l{i:03d}.mp4", moving_frames(8 + i % 9, 64, 64, seed=i))
            for i in range(N_CLIPS)]


def _key(result) -> tuple:
    return (result.frames, tuple((w.index, w.start_frame, w.end_frame, w.score, w.flags)
                                 for w in result.windows), tuple(result.flags))


def test_four_threads_one_scorer_match_sequential_with_flat_memory(runtime_bundle, load_clips):
    scorer = Scorer(runtime_bundle, threads=1)
    sequential = [_key(scorer.score_file(p)) for p in load_clips]

    proc = psutil.Process()
    with ThreadPoolExecutor(THREADS) as pool:
        warm = list(pool.map(lambda p: _key(scorer.score_file(p)), load_clips[:40]))
        gc.collect()
        rss_after_warmup = proc.memory_info().rss
        peak = rss_after_warmup
        concurrent = []
        for start in range(0, N_CLIPS, 40):  # sample RSS between rounds
            concurrent += pool.map(lambda p: _key(scorer.score_file(p)), load_clips[start:start + 40])
            peak = max(peak, proc.memory_info().rss)
    gc.collect()
    assert warm == sequential[:40]
    assert concurrent == sequential  # bit-identical scores, flags and windows, in order
    assert all(k[1] for k in sequential)
    growth = max(peak, proc.memory_info().rss) - rss_after_warmup
    print(f"RSS growth after warm-up: {growth / 2**20:.1f} MiB")
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew {growth >> 20} MiB over {N_CLIPS} clips"
