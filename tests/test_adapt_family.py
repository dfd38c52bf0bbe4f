"""The label-free adaptation benchmark compares like with like: same base, same step budget,
no labels in training, and a family test set no arm ever trains on."""

from __future__ import annotations

import pytest

from internvqa.bench.adapt_family import (
    BUILTIN,
    arm_epochs,
    arm_rows,
    kind_of,
    plan_sources,
    summarise,
)
from internvqa.runtime.manifest import ManifestRow

KINDS = {f"art{i}": "art" for i in range(8)} | {f"pic{i}": "photo" for i in range(40)}


def _records() -> list[ManifestRow]:
    """Two encodes per source; art sources have two paths ("~p1") of one scene."""
    rows = []

    def add(source: str, split: str, scene: str) -> None:
        for crf in (22, 32):
            rows.append(ManifestRow(path=f"/c/{source}/{crf}.mp4", mos=80.0, source=source,
                                    crf=float(crf), split=split,
                                    extra={"vmaf": "80", "mos_frames": "80 80", "scene": scene}))

    for i in range(8):
        split = "train" if i < 5 else ("val" if i == 5 else "test")
        add(f"art{i}", split, f"art{i}")
        add(f"art{i}~p1", split, f"art{i}")
    for i in range(40):
        add(f"pic{i}", "train" if i < 30 else ("val" if i < 36 else "test"), f"pic{i}")
    add("plasma", "train", "plasma")
    return rows


def _plan(seed: int = 0):
    return plan_sources(_records(), "art", seed, n_base=10, n_add=4, n_val=3, kinds=KINDS)


def test_kind_of_reads_the_registry_for_every_path_of_a_picture() -> None:
    assert kind_of("art3~p1", KINDS) == kind_of("art3", KINDS) == "art"
    assert kind_of("plasma", KINDS) == BUILTIN


def test_arms_share_the_base_and_add_only_what_they_say() -> None:
    p = _plan()
    base = set(p.arms["base"])
    adapt_extra = set(p.arms["adapt"]) - base
    control_extra = set(p.arms["control"]) - base
    assert len(base) == 10 and len(adapt_extra) == 4 and len(control_extra) == 4
    assert all(kind_of(s, KINDS) == "art" for s in adapt_extra)
    assert all(kind_of(s, KINDS) != "art" for s in base | control_extra | set(p.val))
    # one path per scene: the two paths of one artwork never both train
    scenes = [s.split("~")[0] for s in adapt_extra]
    assert len(scenes) == len(set(scenes))


def test_family_test_is_every_heldout_family_source_and_never_trained_on() -> None:
    p = _plan()
    assert set(p.family_test) == {"art5", "art5~p1", "art6", "art6~p1", "art7", "art7~p1"}
    for arm in ("base", "adapt", "control"):
        rows = arm_rows(_records(), p, arm)
        train = {r.source for r in rows if r.split == "train"}
        test = {r.source for r in rows if r.split == "test"}
        assert train == set(p.arms[arm])
        assert test == set(p.family_test) and not train & test
        assert {r.source for r in rows if r.split == "val"} == set(p.val)


def test_training_rows_carry_no_labels_and_heldout_rows_keep_theirs() -> None:
    rows = arm_rows(_records(), _plan(), "adapt")
    train = [r for r in rows if r.split == "train"]
    assert train and all(r.mos is None and r.extra["vmaf"] == r.extra["mos_frames"] == ""
                         for r in train)
    assert all(r.mos == 80.0 for r in rows if r.split != "train")


def test_every_arm_gets_the_same_step_budget() -> None:
    p = _plan()
    ep = arm_epochs(p, 2)
    steps = {arm: ep[arm] * len(p.arms[arm]) for arm in ep}
    assert ep == {"base": 3, "adapt": 2, "control": 2}
    assert max(steps.values()) - min(steps.values()) <= 2  # 10 x 3 vs 14 x 2


def test_picks_are_seeded() -> None:
    assert _plan(1) == _plan(1)
    assert _plan(1).arms != _plan(2).arms


def test_too_few_family_sources_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="art train sources"):
        plan_sources(_records(), "art", 0, n_base=10, n_add=9, n_val=3, kinds=KINDS)


def test_summary_pairs_the_arms_per_seed() -> None:
    per_seed = {s: {"base": {"family_srcc": 0.5}, "adapt": {"family_srcc": 0.6 + s / 100},
                    "control": {"family_srcc": 0.55}} for s in (0, 1)}
    out = summarise(per_seed)
    d = out["paired"]["adapt-control"]
    assert d["per_seed"] == pytest.approx([0.05, 0.06]) and d["positive"] == 2
    assert out["arms"]["adapt"]["family_srcc_mean"] == pytest.approx(0.605)
