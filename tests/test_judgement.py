"""bench/judgement.py's checks, and the scores the README states, held on the shared labelled frames."""

from __future__ import annotations

import re
import sys

import pytest
from conftest import REPO_ROOT, shared_dir

from frameloom.judgement import READING, SAFETY, Judged, judge, score

sys.path.insert(0, str(REPO_ROOT / "bench"))
import judgement as bench  # noqa: E402

LABELLED = ("calibration", "frames")
FLOORS = re.compile(r"Floors the test holds: safety >= (\d+(?:\.\d+)?)%, reading >= (\d+(?:\.\d+)?)%")


def label(**fields) -> dict:
    base = {"characters": "1", "character_present": "yes", "shot_type": "medium", "lighting": "normal",
            "blur": "sharp", "usable_for_training": "yes"}
    return {**base, **fields}


def analysis(**fields) -> dict:
    return {"sharpness": 0.8, "instance_count": 1, "shot_type": "medium", **fields}


def check(checks, name_start):
    return next(c for c in checks if c.name.startswith(name_start))


def test_each_check_passes_and_fails_on_the_frames_it_is_about():
    frames = [
        Judged("a_clean_frame_0001", label(), analysis(sharpness=0.9), {"strategy": "keep_full", "ok": True}),
        Judged("a_final_frame_0001", label(blur="soft"), analysis(sharpness=0.95), {"strategy": "segment", "ok": True}),
        Judged("dark", label(lighting="dark"), analysis(), {"strategy": "keep_full", "ok": True}),
        Judged("smear", label(blur="unusable"), analysis(), {"strategy": "enhance_segment", "ok": True}),
        Judged("empty", label(characters="0", character_present="no", shot_type="none"),
               analysis(instance_count=0, shot_type="none"),
               {"strategy": None, "ok": True, "excluded": True, "exclusion_reason": "no_character"}),
        Judged("crowd", label(characters="5", shot_type="far"), analysis(instance_count=3, shot_type="far"),
               {"strategy": "create_occlusion", "ok": True}),
    ]
    checks = judge(frames)
    assert check(checks, "clean pass").failures == ["a_clean_frame_0001 (clean 0.900 vs final 0.950)"]
    assert check(checks, "dark frame").failures == ["dark (keep_full)"]
    blurred = check(checks, "motion-blurred")
    assert (blurred.passed, len(blurred.failures)) == (1, 0)  # enhance_segment is right for it ...
    assert check(checks, "unusable blur").failures == ["smear (enhance_segment)"]  # ... but unusable is excluded
    assert (check(checks, "no character").passed, check(checks, "no character").total) == (1, 1)
    whole = check(checks, "keep_full/create_occlusion")
    assert whole.passed == 3 and whole.total == 3  # both keep_full frames and the crowd have a readable character
    count = check(checks, "instance_count")
    assert count.passed == 6  # 3 or more counts as right for a crowd of 5
    assert score(checks, SAFETY)[1] == 1 + 1 + 1 + 1 + 1 + 3
    assert score(checks, READING) == (12, 12)


def _stated_floors() -> tuple[float, float]:
    match = FLOORS.search((REPO_ROOT / "README.md").read_text())
    assert match, "README.md states the judgement floors the test holds"
    return float(match[1]), float(match[2])


@pytest.mark.slow
def test_the_real_frames_score_at_least_what_the_readme_states(real_models_dir, capsys):
    folders = [shared_dir() / "data" / name for name in LABELLED]
    if not all((folder / "labels.csv").is_file() for folder in folders):
        pytest.skip(f"labelled real frames not present under {shared_dir() / 'data'}")
    assert bench.main([*map(str, folders), "--models-dir", str(real_models_dir), "--failures", "0"]) == 0
    printed = capsys.readouterr().out
    scores = {kind: float(value) for kind, value in re.findall(r"^(safety|reading) score: \d+/\d+ = ([\d.]+)%",
                                                              printed, re.M)}
    safety_floor, reading_floor = _stated_floors()
    assert scores[SAFETY] >= safety_floor and scores[READING] >= reading_floor, printed
