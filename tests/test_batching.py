"""frameloom.batching: which frames each model-step job takes and what it reads, from the plan alone."""

from __future__ import annotations

import pytest

from frameloom.batching import BatchPlan

FRAME_STEPS = {
    "segment": {"masks": None, "inpaint": "masks"},
    "enhance_segment": {"upscale": None, "restore_faces": "upscale", "masks": "restore_faces"},
}


def plan_of(counts: dict[str, int]) -> dict[str, str]:
    return {f"{strategy}_{i:03d}": strategy for strategy, count in counts.items() for i in range(count)}


def test_a_step_takes_the_frames_of_every_strategy_that_uses_it():
    plan = {**plan_of({"segment": 20, "enhance_segment": 10, "keep_full": 7}), "gone": "excluded"}
    batches = BatchPlan(plan, FRAME_STEPS, 8, "OUT")
    masks = batches.step_batches("masks")[1]
    assert set(masks) == {f for f, s in plan.items() if s in ("segment", "enhance_segment")}
    assert set(batches.step_batches("inpaint")[1]) == {f for f, s in plan.items() if s == "segment"}
    assert set(batches.step_batches("upscale")[1]) == {f for f, s in plan.items() if s == "enhance_segment"}
    assert all(len(members) <= 4 * 8 for members in batches.step_batches("masks")[0].values())


def test_each_frame_continues_the_entry_of_its_previous_step():
    plan = plan_of({"segment": 5, "enhance_segment": 5})
    batches = BatchPlan(plan, FRAME_STEPS, 4, "OUT")
    masks = batches.step_sources("masks")
    for frame, strategy in plan.items():
        if strategy == "segment":
            assert masks[frame] is None  # masks start from the frame
        else:
            batch = batches.step_batches("restore_faces")[1][frame]
            assert masks[frame] == f"OUT/steps/restore_faces/{batch}.json"
    assert set(batches.step_sources("inpaint").values()) == {
        f"OUT/steps/masks/{batch}.json" for frame, batch in batches.step_batches("masks")[1].items()
        if plan[frame] == "segment"}


def test_members_name_frame_analysis_and_source():
    plan = plan_of({"segment": 3})
    batches = BatchPlan(plan, FRAME_STEPS, 8, "OUT")
    (batch, frames), = batches.step_batches("inpaint")[0].items()
    members = batches.step_members("inpaint", batch, lambda frame: f"in/{frame}.png")
    assert list(members) == frames
    masks_batch = batches.step_batches("masks")[1][frames[0]]
    assert members[frames[0]] == {"frame": f"in/{frames[0]}.png", "analysis": f"OUT/analysis/{frames[0]}.json",
                                  "source": f"OUT/steps/masks/{masks_batch}.json"}


def test_a_frame_outside_the_step_is_named():
    batches = BatchPlan(plan_of({"keep_full": 2}), FRAME_STEPS, 8, "OUT")
    with pytest.raises(ValueError, match="keep_full_000 is not planned for the masks step"):
        batches.step_manifest("masks", "keep_full_000")


def test_re_planning_one_frame_moves_few_batches():
    plan = plan_of({"segment": 200})
    before = BatchPlan(plan, FRAME_STEPS, 8, "OUT").step_batches("masks")[0]
    after = BatchPlan({**plan, "segment_100": "keep_full"}, FRAME_STEPS, 8, "OUT").step_batches("masks")[0]
    changed = {batch for batch in set(before) | set(after) if before.get(batch) != after.get(batch)}
    assert 1 <= len(changed) <= 3
