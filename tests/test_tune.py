"""Threshold auto-tuning: closer to the targets, through the real decisions, into a new file only."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from analysis_records import PICTURE

from frameloom import stages
from frameloom.imageio import write_json
from frameloom.registry import STRATEGIES
from frameloom.schema import validate
from frameloom.tune import decided_mix, mix_distance, tune, tuned_file

ALL = list(STRATEGIES)


def decision_cfg(steering=True):
    return validate({"steering": steering}, "decision_thresholds", "test")


def frame(i, **metrics):
    base = {**PICTURE, "frame": f"f{i:04d}", "ok": True, "complexity": 0.1,
            "lighting": 0.9, "occlusion": 0.05, "quality": 0.9,
            "sharpness": 0.9, "instance_count": 1, "shot_type": "medium"}
    return {**base, **metrics}


def close_up_heavy(n=400, seed=3):
    """Mostly clean close-ups, like the datasets frameloom is for: the default thresholds keep too many whole."""
    rng = np.random.default_rng(seed)
    return [frame(i, complexity=float(rng.beta(2, 6)), lighting=float(rng.beta(6, 2)),
                  occlusion=float(rng.beta(2, 8)), quality=float(rng.beta(6, 2)), sharpness=float(rng.beta(5, 2)),
                  instance_count=int(rng.choice([0, 1, 1, 1, 2, 3])))
            for i in range(n)]


def test_tuning_moves_the_mix_to_the_targets():
    analyses = close_up_heavy()
    cfg = decision_cfg()
    result = tune(analyses, cfg, ALL)
    assert result["start"]["distance"] > 0.1  # the planner alone cannot place frames no rule admits
    assert result["distance"] < 0.05 and result["distance"] < result["start"]["distance"]
    # The reported mix is what the real decisions give with the proposed thresholds.
    assert decided_mix(analyses, {**cfg, "thresholds": result["thresholds"]}, ALL) == result["mix"]
    assert mix_distance(result["mix"], cfg["strategy_targets"]) == result["distance"]
    assert isinstance(result["thresholds"]["multi_character"], int)
    assert cfg["thresholds"]["simple_background"] == 0.3  # the input config is not modified


def test_thresholds_already_on_target_stay_put():
    cfg = decision_cfg(steering=False)
    analyses = ([frame(i) for i in range(6)]  # keep_full
                + [frame(10 + i, complexity=0.8) for i in range(8)]  # segment
                + [frame(20 + i, lighting=0.5, quality=0.3) for i in range(3)]  # enhance_segment
                + [frame(30 + i, lighting=0.5) for i in range(3)])  # create_occlusion
    result = tune(analyses, cfg, ALL)
    assert result["start"]["distance"] == result["distance"] == 0
    assert result["thresholds"] == cfg["thresholds"]


def test_failed_analyses_are_left_out_and_none_is_an_error():
    analyses = close_up_heavy(50) + [{"frame": "bad", "ok": False, "error": "FrameDecodeError: x"}]
    assert tune(analyses, decision_cfg(), ALL)["frames"] == 50
    with pytest.raises(ValueError, match="no analysed frame"):
        tune(analyses[-1:], decision_cfg(), ALL)


def test_tuned_file_is_a_valid_decision_file_and_never_the_users(tmp_path):
    analyses = close_up_heavy(120)
    paths = []
    for analysis in analyses:
        paths.append(str(tmp_path / "analysis" / f"{analysis['frame']}.json"))
        write_json(paths[-1], analysis)
    users = tmp_path / "decision_thresholds.yaml"
    users.write_text("thresholds: {simple_background: 0.3}\n")
    with pytest.raises(ValueError, match="only ever writes a new file"):
        stages.tune(paths, str(users), decision_cfg(), ALL, str(users), str(tmp_path / "tune.log"))
    assert users.read_text() == "thresholds: {simple_background: 0.3}\n"

    out = tmp_path / "tuning" / "decision_thresholds.yaml"
    stages.tune(paths, str(out), decision_cfg(), ALL, str(users), str(tmp_path / "tune.log"))
    document = yaml.safe_load(out.read_text())
    validate(document, "decision_thresholds", str(out))
    assert document["tuning"]["distance"] < document["tuning"]["previous_distance"]
    assert set(document["tuning"]["achieved_mix"]) == set(STRATEGIES)
    assert "distance" in (tmp_path / "tune.log").read_text()


def test_tuned_file_header_says_how_to_use_it():
    cfg = decision_cfg()
    text = tuned_file(cfg, tune(close_up_heavy(60), cfg, ALL), "config/decision_thresholds.yaml")
    assert text.startswith("# Proposed by `snakemake tune`")
    assert yaml.safe_load(text)["tuning"]["tuned_from"] == "config/decision_thresholds.yaml"
