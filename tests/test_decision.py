"""The decision engine: the seed's rule table, disabled strategies, the frame gate (the planner: test_planner.py)."""

from __future__ import annotations

import copy

import pytest
import yaml
from analysis_records import PICTURE

from frameloom.decision import GATE_REASONS, decide, decide_all
from frameloom.registry import STRATEGIES

with open("config/decision_thresholds.yaml") as handle:
    DEFAULTS = yaml.safe_load(handle)


def config(steering=False, **needs):
    cfg = copy.deepcopy(DEFAULTS)
    cfg["steering"] = steering
    cfg["dataset_needs"].update(needs)
    return cfg


def frame(frame_id="f", **metrics):
    record = {**PICTURE, "frame": frame_id, "ok": True, "complexity": 0.18, "lighting": 0.85, "occlusion": 0.05,
              "quality": 0.8, "sharpness": 0.7, "instance_count": 1, "shot_type": "medium"}
    record.update(metrics)
    return record


# (metrics, dataset_needs.occlusion, strategy): the seed's pseudo-code, rule by rule and at its edges.
SEED_TABLE = [
    ({}, 0.8, "keep_full"),                                             # perfect conditions
    ({"instance_count": 3}, 0.8, "keep_full"),                          # rule 1 wins over multi-character
    ({"lighting": 0.5, "instance_count": 2}, 0.8, "segment"),           # multi-character
    ({"complexity": 0.45}, 0.8, "segment"),                             # complex background
    ({"complexity": 0.45, "quality": 0.2}, 0.8, "enhance_segment"),     # a poor frame is enhanced first
    ({"lighting": 0.5, "quality": 0.3}, 0.8, "enhance_segment"),        # poor quality
    ({"occlusion": 0.4, "sharpness": 0.35}, 0.8, "enhance_segment"),    # low sharpness (above the gate's 0.32)
    ({"lighting": 0.5}, 0.8, "create_occlusion"),                       # needs occlusion
    ({"occlusion": 0.3}, 0.8, "create_occlusion"),
    ({"lighting": 0.5}, 0.4, "segment"),                                # safe default
    ({"lighting": 0.5}, 0.5, "segment"),                                # need must be > 0.5
    ({"lighting": 0.7}, 0.4, "segment"),                                # lighting must be > 0.7
    ({"occlusion": 0.2}, 0.4, "segment"),                               # occlusion must be < 0.2
    ({"complexity": 0.3}, 0.4, "segment"),                              # 0.3 is neither simple nor complex
    ({"complexity": 0.3, "quality": 0.49}, 0.4, "enhance_segment"),
    ({"complexity": 0.3, "quality": 0.5, "sharpness": 0.4}, 0.4, "segment"),  # thresholds are strict
]


@pytest.mark.parametrize("metrics,need,expected", SEED_TABLE)
def test_seed_rule_table(metrics, need, expected):
    decision = decide(frame(**metrics), config(occlusion=need), list(STRATEGIES))
    assert decision["seed_rule"] == expected
    assert decision["strategy"] == expected  # steering off: the seed's choice stands
    assert 0.5 <= decision["confidence"] <= 1.0


def test_reasoning_in_the_seed_style():
    decision = decide(frame(), config(), list(STRATEGIES))
    assert decision["reasoning"] == (
        "Simple background (complexity=0.18) | Good lighting (quality=0.85) | Low occlusion (level=0.05)"
        " | Qualifies for keep_full, create_occlusion (create_occlusion serves dataset_needs.occlusion=0.80)"
    )
    segment = decide(frame(lighting=0.5, instance_count=3, complexity=0.6), config(), list(STRATEGIES))
    assert segment["reasoning"].startswith("Multi-character (instances=3) | Complex background (complexity=0.60) | ")


def test_disabled_strategies_are_never_chosen():
    enabled = ["segment", "create_occlusion", "enhance_segment"]
    assert decide(frame(), config(), enabled)["strategy"] == "create_occlusion"
    assert decide(frame(), config(occlusion=0.1), enabled)["strategy"] == "segment"
    only_keep = ["keep_full"]
    decision = decide(frame(complexity=0.9), config(), only_keep)
    assert decision["strategy"] == "keep_full"
    assert "disabled: segment, create_occlusion, enhance_segment" in decision["reasoning"]
    planned = decide_all([frame(str(i)) for i in range(200)], config(steering=True), enabled)
    assert {decision["strategy"] for decision in planned.values()} <= set(enabled)


def test_confidence_grows_with_the_margin():
    near = decide(frame(complexity=0.29, lighting=0.71, occlusion=0.19), config(), list(STRATEGIES))
    far = decide(frame(complexity=0.02, lighting=0.98, occlusion=0.01), config(), list(STRATEGIES))
    assert near["strategy"] == far["strategy"] == "keep_full"
    assert near["confidence"] < 0.6 < 0.85 <= far["confidence"]


def test_failed_analysis_gives_no_strategy():
    decision = decide({"frame": "bad", "ok": False, "error": "FrameDecodeError: empty file"}, config(),
                      list(STRATEGIES))
    assert decision["strategy"] is None and not decision["ok"]
    assert decision["error"] == "FrameDecodeError: empty file"


def test_alternatives_carry_their_preference_target_times_one_plus_need():
    decision = decide(frame(instance_count=2), config(), list(STRATEGIES))
    assert decision["strategy"] == decision["seed_rule"] == "keep_full"  # decide alone never plans
    assert decision["eligible"] == ["keep_full", "segment", "create_occlusion"]
    assert decision["preferences"] == {"keep_full": round(0.30 * 1.9, 4), "segment": 0.40,
                                       "create_occlusion": round(0.15 * 1.8, 4)}
    assert set(decision["confidences"]) == set(decision["eligible"])


def test_occluded_frames_are_not_offered_synthetic_occlusion():
    cfg = config(steering=True)
    for i in range(200):
        decision = decide(frame(str(i), complexity=0.5, occlusion=0.5), cfg, list(STRATEGIES))
        assert "create_occlusion" not in decision["eligible"]


def test_the_decide_stage_writes_every_decision_and_the_plan_in_one_pass(tmp_path):
    from frameloom.imageio import read_json, write_json
    from frameloom.plan import read_plan
    from frameloom.stages import decide as decide_stage

    analyses = []
    for frame_id, metrics in [("clean", {}), ("busy", {"complexity": 0.9})]:
        analyses.append(tmp_path / "analysis" / f"{frame_id}.json")
        write_json(analyses[-1], frame(frame_id, **metrics))
    analyses.append(tmp_path / "analysis" / "damaged.json")
    analyses[-1].write_text('{"frame": "damaged", "ok": tr')
    decisions = tmp_path / "decisions"
    decisions.mkdir()
    (decisions / "stale.json").write_text("{}")  # a folder from a run outside Snakemake is replaced whole

    overrides = {"busy": {"exclude": True, "note": ""}, "gone": {"strategy": "segment", "note": ""}}
    decide_stage([str(p) for p in analyses], str(tmp_path / "plan.tsv"), str(decisions), config(), list(STRATEGIES),
                 overrides, str(tmp_path / "decide.log"))
    assert sorted(p.name for p in decisions.iterdir()) == ["busy.json", "clean.json", "damaged.json"]
    assert read_json(decisions / "clean.json") == decide(frame("clean"), config(), list(STRATEGIES))
    damaged = read_json(decisions / "damaged.json")
    assert not damaged["ok"] and damaged["error"].startswith("AnalysisReadError:")
    assert read_plan(str(tmp_path / "plan.tsv")) == {"busy": "excluded", "clean": "keep_full", "damaged": "failed"}
    assert read_json(decisions / "busy.json")["override"]["automatic"] == "segment"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no staging folders left behind"
    log = (tmp_path / "decide.log").read_text()
    assert "3 frames planned" in log and "overrides for frames not in the input (ignored): gone" in log



# --- the frame gate ----------------------------------------------------------------------------
GATED = [
    ({"exposure": {"p1": 0.0, "p99": 0.04}, "instance_count": 0}, "near_black"),
    ({"exposure": {"p1": 0.95, "p99": 1.0}}, "blown_out"),
    ({"plain_ground": {"flat_share": 0.99, "text_lines": 0, "title_card": False}, "instance_count": 0}, "blank"),
    ({"plain_ground": {"flat_share": 0.85, "text_lines": 6, "title_card": True}}, "title_card"),
    ({"sharpness": 0.2, "quality": 0.2}, "unusable_blur"),
    ({"instance_count": 0, "shot_type": "none"}, "no_character"),
]


@pytest.mark.parametrize("metrics,reason", GATED, ids=[reason for _, reason in GATED])
def test_the_frame_gate_excludes_with_a_named_reason(metrics, reason):
    decision = decide(frame(**metrics), config(), list(STRATEGIES))
    assert decision["ok"] and decision["excluded"] and decision["strategy"] is None
    assert decision["exclusion_reason"] == reason
    assert decision["reasoning"].startswith("Excluded by the frame gate: ")
    # The gate's sentence for that reason (the first that holds: a black frame
    # without a character is near_black, not no_character).
    assert GATE_REASONS[reason].split(" (")[0].split("{")[0] in decision["reasoning"]


def test_a_readable_frame_with_a_character_passes_the_gate():
    decision = decide(frame(), config(), list(STRATEGIES))
    assert not decision.get("excluded") and decision["strategy"] in STRATEGIES


@pytest.mark.parametrize("switch", ["no_character", "title_card"])
def test_gate_checks_can_be_switched_off(switch):
    metrics = dict(GATED[[reason for _, reason in GATED].index(switch)][0])
    cfg = config()
    cfg["gate"][switch] = False
    assert not decide(frame(**metrics), cfg, list(STRATEGIES)).get("excluded")
    cfg = config()
    cfg["gate"]["enabled"] = False
    assert not decide(frame(**metrics), cfg, list(STRATEGIES)).get("excluded")


def test_blurred_frames_are_enhanced_before_anything_else():
    # Busy, multi-character and blurred: the seed's rule order says segment; a cut-out
    # of a blurred character would teach the blur, so it is enhanced first.
    decision = decide(frame(complexity=0.6, instance_count=2, sharpness=0.35), config(steering=True),
                      list(STRATEGIES))
    assert decision["strategy"] == "enhance_segment" and decision["eligible"] == ["enhance_segment"]
    assert "enhanced first" in decision["reasoning"] and "segment" in decision["reasoning"]


def test_an_override_lifts_the_gate_for_that_frame_only():
    from frameloom.overrides import apply_override

    gated = decide(frame("dark", exposure={"p1": 0.0, "p99": 0.05}), config(), list(STRATEGIES))
    assert gated["excluded"]
    kept = apply_override(gated, {"strategy": "keep_full", "note": "a silhouette we want"}, list(STRATEGIES))
    assert kept["strategy"] == "keep_full" and not kept["excluded"] and kept["exclusion_reason"] is None
    assert kept["override"]["automatic"] is None and "Excluded by the frame gate" in kept["reasoning"]
