"""Threshold auto-tuning: thresholds that would make the decisions hit ``strategy_targets``.

From the current analyses, a coordinate descent over the six thresholds: each
in turn takes the candidate value (the midpoints between the frames' own
metric values, thinned to ``CANDIDATES`` quantiles, plus its current value)
that brings the decided mix closest to the targets, until a full sweep
improves nothing. The mix is what the real ``decision.decide`` gives,
the planner included, so the proposal is exactly what a run would do. Ties go
to the value nearest the user's, so a threshold that does not matter stays
put. Past ``SEARCH_FRAMES`` frames the search runs on an evenly spaced
sample (each evaluation decides every frame it is given); the reported mix
is then decided on all frames. The result is a complete decision-thresholds file written to a new
path; the user's file is never touched.
"""

from __future__ import annotations

import copy
from collections import Counter

import numpy as np
import yaml

from .decision import decide_all
from .registry import STRATEGIES

CANDIDATES = 24
SEARCH_FRAMES = 1000
MAX_SWEEPS = 6
# threshold -> the analysis metric it is compared with.
METRICS = {
    "simple_background": "complexity",
    "good_lighting": "lighting",
    "low_occlusion": "occlusion",
    "poor_quality": "quality",
    "low_sharpness": "sharpness",
    "multi_character": "instance_count",
}


def decided_mix(analyses: list[dict], decision_cfg: dict, enabled: list[str]) -> dict[str, float]:
    """The share of each strategy among the decisions for ``analyses`` (frames the
    frame gate excludes are no part of the mix: no threshold here brings them in)."""
    counts = Counter(decision["strategy"] for decision in decide_all(analyses, decision_cfg, enabled).values())
    counts.pop(None, None)
    decided = sum(counts.values())
    return {name: round(counts[name] / decided, 4) if decided else 0.0 for name in STRATEGIES}


def mix_distance(mix: dict[str, float], targets: dict[str, float]) -> float:
    """Total variation distance: the share of frames that would have to change strategy."""
    return round(0.5 * sum(abs(mix[name] - targets[name]) for name in STRATEGIES), 4)


def candidate_values(name: str, analyses: list[dict], current: float) -> list[float]:
    values = np.unique([a[METRICS[name]] for a in analyses])
    if name == "multi_character":
        return sorted({int(current), *range(1, int(values.max()) + 2)})
    midpoints = (values[:-1] + values[1:]) / 2 if len(values) > 1 else values
    picks = np.quantile(midpoints, np.linspace(0, 1, CANDIDATES)) if len(midpoints) > CANDIDATES else midpoints
    edges = [0.0, 1.0, current]  # everything on one side is a legitimate answer too
    return sorted({round(float(v), 4) for v in [*picks, *edges]})


def tune(analyses: list[dict], decision_cfg: dict, enabled: list[str]) -> dict:
    """{"thresholds", "mix", "distance", "start": {"mix", "distance"}, "sweeps"} for usable analyses."""
    usable = [a for a in analyses if a.get("ok", True)]
    if not usable:
        raise ValueError("no analysed frame to tune on")
    targets = decision_cfg["strategy_targets"]
    original = dict(decision_cfg["thresholds"])
    cfg = copy.deepcopy(decision_cfg)
    step = -(-len(usable) // SEARCH_FRAMES)
    search = usable[::step]

    def score(thresholds: dict) -> tuple[float, float]:
        cfg["thresholds"] = thresholds
        change = sum(abs(thresholds[k] - original[k]) / (10 if k == "multi_character" else 1) for k in METRICS)
        return mix_distance(decided_mix(search, cfg, enabled), targets), change

    best = dict(original)
    best_score = score(best)
    candidates = {name: candidate_values(name, search, original[name]) for name in METRICS}
    sweeps = 0
    while sweeps < MAX_SWEEPS:
        sweeps += 1
        improved = False
        for name in METRICS:
            for value in candidates[name]:
                trial = {**best, name: value}
                trial_score = score(trial)
                if trial_score < best_score:
                    best, best_score, improved = trial, trial_score, True
        if not improved:
            break
    cfg["thresholds"] = {**best, "multi_character": int(best["multi_character"])}
    mix = decided_mix(usable, cfg, enabled)
    start_mix = decided_mix(usable, decision_cfg, enabled)
    return {
        "thresholds": cfg["thresholds"],
        "mix": mix,
        "distance": mix_distance(mix, targets),
        "start": {"mix": start_mix, "distance": mix_distance(start_mix, targets)},
        "frames": len(usable),
        "search_frames": len(search),
        "sweeps": sweeps,
    }


def tuned_file(decision_cfg: dict, result: dict, source: str) -> str:
    """A complete decision-thresholds file with the tuned thresholds and, under ``tuning``, what they achieve."""
    document = copy.deepcopy(decision_cfg)
    document["thresholds"] = result["thresholds"]
    document["tuning"] = {
        "tuned_from": source,
        "frames": result["frames"],
        "searched_frames": result["search_frames"],
        "targets": decision_cfg["strategy_targets"],
        "achieved_mix": result["mix"],
        "distance": result["distance"],
        "previous_thresholds": decision_cfg["thresholds"],
        "previous_mix": result["start"]["mix"],
        "previous_distance": result["start"]["distance"],
    }
    header = (
        "# Proposed by `snakemake tune` from the current analyses: thresholds whose decisions come\n"
        f"# closest to strategy_targets (distance {result['start']['distance']} -> {result['distance']}, the share\n"
        "# of frames that would have to change strategy). To use it, point `decision_thresholds` in\n"
        "# config/config.yaml at this file, or copy the thresholds into your own.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False)
