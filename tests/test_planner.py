"""The whole-set planner: the mix approaches strategy_targets where the frames allow,
needs decide which frames go where, the plan is deterministic and stable, and
plan_constraints says what binds."""

from __future__ import annotations

import copy
import random

import pytest
import yaml
from analysis_records import PICTURE

from frameloom.decision import decide_all
from frameloom.planner import plan_constraints
from frameloom.registry import STRATEGIES

with open("config/decision_thresholds.yaml") as handle:
    DEFAULTS = yaml.safe_load(handle)

CLEAN = {"complexity": 0.1, "lighting": 0.9, "occlusion": 0.05}  # keep_full or create_occlusion
BUSY = {"complexity": 0.6, "lighting": 0.9, "occlusion": 0.5}  # segment only
BLURRED = {"sharpness": 0.35}  # enhance_segment only


def frame(frame_id, **metrics):
    record = {**PICTURE, "frame": frame_id, "ok": True, "complexity": 0.18, "lighting": 0.85, "occlusion": 0.05,
              "quality": 0.8, "sharpness": 0.7, "instance_count": 1, "shot_type": "medium"}
    return {**record, **metrics}


def random_frame(rng: random.Random, frame_id: str) -> dict:
    return frame(frame_id, complexity=rng.random() * 0.6, lighting=0.5 + rng.random() * 0.5,
                 occlusion=rng.random() * 0.4, quality=0.4 + rng.random() * 0.6, sharpness=0.35 + rng.random() * 0.6,
                 instance_count=rng.choice([1, 1, 1, 2, 3]))


def mix_set(clean=500, busy=400, blurred=100, **clean_metrics):
    return ([frame(f"clean_{i}", **CLEAN, **clean_metrics) for i in range(clean)]
            + [frame(f"busy_{i}", **BUSY) for i in range(busy)]
            + [frame(f"blurred_{i}", **BLURRED) for i in range(blurred)])


def counts(decisions):
    return {name: sum(d["strategy"] == name for d in decisions.values()) for name in STRATEGIES}


def test_the_plan_splits_flexible_frames_to_come_closest_to_the_targets():
    # Targets of 1,000 frames: keep 300, segment 400, occlusion 150, enhance 150. Segment (400) and
    # enhance (100) are fixed; the 500 clean frames split to minimise the squared misses:
    # k + o = 500 and k - 300 = o - 150, so 325 / 175.
    planned = counts(decide_all(mix_set(), DEFAULTS, list(STRATEGIES)))
    assert planned["segment"] == 400 and planned["enhance_segment"] == 100
    assert planned["keep_full"] == 325 and planned["create_occlusion"] == 175
    # The seed's first match alone (steering off) keeps every clean frame whole.
    seed = counts(decide_all(mix_set(), {**DEFAULTS, "steering": False}, list(STRATEGIES)))
    assert seed["keep_full"] == 500 and seed["create_occlusion"] == 0


def test_targets_move_the_plan():
    cfg = copy.deepcopy(DEFAULTS)
    cfg["strategy_targets"] = {"keep_full": 0.2, "segment": 0.4, "create_occlusion": 0.25, "enhance_segment": 0.15}
    planned = counts(decide_all(mix_set(), cfg, list(STRATEGIES)))
    # k + o = 500, k - 200 = o - 250: 225 / 275.
    assert planned["keep_full"] == 225 and planned["create_occlusion"] == 275


def test_needs_decide_which_frames_go_where():
    """Clean far shots serve dataset_needs.far_shot when kept whole: they are kept whole
    more often than clean medium shots."""
    frames = (mix_set(clean=300) + [frame(f"far_{i}", **CLEAN, shot_type="far") for i in range(300)])
    decisions = decide_all(frames, DEFAULTS, list(STRATEGIES))

    def kept(prefix):
        chosen = [d["strategy"] for f, d in decisions.items() if f.startswith(prefix)]
        return sum(s == "keep_full" for s in chosen) / len(chosen)

    assert kept("far_") > kept("clean_") + 0.1


def test_the_plan_is_deterministic_and_says_why():
    frames = mix_set(clean=60, busy=20, blurred=5)
    first, again = decide_all(frames, DEFAULTS, list(STRATEGIES)), decide_all(frames[::-1], DEFAULTS, list(STRATEGIES))
    assert first == again
    planned = first["clean_0"]
    assert planned["strategy"] in planned["eligible"] and "Planned: " in planned["reasoning"]
    assert planned["confidence"] == planned["confidences"][planned["strategy"]]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_frame_more_or_changed_moves_at_most_a_few_others(seed):
    rng = random.Random(seed)
    frames = [random_frame(rng, f"f{i:04d}") for i in range(400)]
    before = decide_all(frames, DEFAULTS, list(STRATEGIES))
    for trial in range(10):
        added = decide_all(frames + [random_frame(rng, f"new_{trial}")], DEFAULTS, list(STRATEGIES))
        assert sum(before[f]["strategy"] != added[f]["strategy"] for f in before) <= 3
        changed = copy.deepcopy(frames)
        target = rng.randrange(len(changed))
        changed[target].update(complexity=rng.random() * 0.6, occlusion=rng.random() * 0.4)
        after = decide_all(changed, DEFAULTS, list(STRATEGIES))
        assert sum(before[f]["strategy"] != after[f]["strategy"] for f in before
                   if f != changed[target]["frame"]) <= 3


def test_overridden_and_excluded_frames_count_as_they_stand():
    frames = mix_set(clean=100, busy=0, blurred=0) + [frame("dark", exposure={"p1": 0.0, "p99": 0.02})]
    overrides = {f"clean_{i}": {"strategy": "create_occlusion", "note": ""} for i in range(50)}
    decisions = decide_all(frames, DEFAULTS, list(STRATEGIES), overrides)
    assert decisions["dark"]["excluded"]
    assert all(decisions[f]["strategy"] == "create_occlusion" for f in overrides)
    # 50 occlusion frames by hand already exceed that target (15 of 100): the rest are kept whole.
    assert counts(decisions)["keep_full"] == 50


def test_constraints_name_what_binds():
    decisions = decide_all(mix_set(clean=50, busy=400, blurred=300), DEFAULTS, list(STRATEGIES))
    rows = plan_constraints(decisions, DEFAULTS, list(STRATEGIES))
    assert rows["keep_full"]["qualifying"] == 50 and rows["keep_full"]["achieved"] < rows["keep_full"]["target"]
    assert rows["keep_full"]["binding"].startswith("only 50 of the 750 frames qualify for keep_full: a simple "
                                                   "background (complexity < 0.3)")
    assert rows["enhance_segment"]["binding"] == "300 frames qualify for nothing but enhance_segment"
    assert rows["enhance_segment"]["achieved"] == pytest.approx(300 / 750, abs=1e-4)
    on_target = plan_constraints(decide_all(mix_set(), DEFAULTS, list(STRATEGIES)), DEFAULTS, list(STRATEGIES))
    assert on_target["segment"]["binding"] == "on target"
    disabled = plan_constraints(decisions, DEFAULTS, ["keep_full", "segment", "enhance_segment"])
    assert disabled["create_occlusion"]["binding"] == "disabled in strategy_configs"
