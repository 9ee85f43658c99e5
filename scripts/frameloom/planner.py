"""The whole-set plan: which strategy each frame gets, so that the mix of frames
comes as close to ``strategy_targets`` as the frames allow.

``decision.decide`` gives every frame its seed rule and the strategies it
qualifies for (``eligible``, each with a preference ``target x (1 + need)``,
the dataset need that strategy would serve for that frame). A frame that
qualifies for one strategy keeps it; the others are planned together:
frame f takes, among its eligible strategies s,

    argmax  log(preference[f, s]) + gumbel(f, s) + price[s]

where ``gumbel`` is Gumbel noise drawn from a hash of the frame id and the
strategy. With every price 0 this is a draw with odds proportional to the
preferences (the Gumbel-max trick): needs decide which frames go where. The
prices then move frames between strategies they qualify for until the
counts are as close to the targets as possible (least squares): a
coordinate descent, each price in turn set to its best value between two
frames' switch points, ties to the price nearest 0. Everything is a
function of the frames' analyses and the configuration, so the plan is
deterministic; adding or changing one frame moves the counts by one, so the
prices move past a few frames' switch points at most and the plan stays
put elsewhere (tests/test_planner.py holds it to that).

``plan_constraints`` explains the outcome per strategy: target, achieved,
how many frames qualify, and what binds when a strategy is off target.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from .registry import STRATEGIES

MAX_ROUNDS = 25  # coordinate sweeps; a plan of thousands of frames settles in a handful
# A price never sits on a frame's switch point: the half-width of the step taken
# past the last switch point when the best interval is open on that side.
OPEN_STEP = 0.5


def _gumbel(frame: str, strategy: str) -> float:
    digest = hashlib.sha256(f"frameloom-plan:{frame}:{strategy}".encode()).digest()
    unit = (int.from_bytes(digest[:8], "big") + 0.5) / 2**64
    return -math.log(-math.log(unit))


def target_counts(targets: dict[str, float], enabled: list[str], frames: int) -> dict[str, float]:
    """Frames each enabled strategy should get: its target share of ``frames``
    (shares renormalised over the enabled strategies)."""
    total = sum(targets[name] for name in enabled) or 1.0
    return {name: frames * targets[name] / total if name in enabled else 0.0 for name in STRATEGIES}


def _plannable(decision: dict) -> bool:
    return (decision.get("ok") and not decision.get("excluded") and "override" not in decision
            and len(decision.get("eligible", [])) > 1)


def _counted(decision: dict) -> bool:
    return bool(decision.get("ok")) and not decision.get("excluded") and decision.get("strategy") in STRATEGIES


def plan(decisions: dict[str, dict], targets: dict[str, float], enabled: list[str]) -> dict[str, dict]:
    """The decisions with ``strategy`` planned for every frame that qualifies for
    more than one strategy (see the module docstring); others are returned as
    they are. Frames excluded, failed or overridden count as they stand."""
    planned = sorted(frame for frame, decision in decisions.items() if _plannable(decision))
    if not planned:
        return dict(decisions)
    index = {name: i for i, name in enumerate(STRATEGIES)}
    fixed = np.zeros(len(STRATEGIES))
    for frame, decision in decisions.items():
        if _counted(decision) and frame not in planned:
            fixed[index[decision["strategy"]]] += 1
    goal = target_counts(targets, enabled, int(fixed.sum()) + len(planned))
    goal = np.array([goal[name] for name in STRATEGIES])
    # Base scores; -inf where a frame does not qualify.
    base = np.full((len(planned), len(STRATEGIES)), -np.inf)
    for row, frame in enumerate(planned):
        for name, preference in decisions[frame]["preferences"].items():
            base[row, index[name]] = math.log(max(preference, 1e-9)) + _gumbel(frame, name)
    prices = _settle_prices(base, fixed, goal)
    choice = np.argmax(base + prices, axis=1)
    result = dict(decisions)
    for row, frame in enumerate(planned):
        result[frame] = _planned_record(decisions[frame], STRATEGIES[int(choice[row])])
    return result


def _counts(choice: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    return fixed + np.bincount(choice, minlength=fixed.size)


def _settle_prices(base: np.ndarray, fixed: np.ndarray, goal: np.ndarray) -> np.ndarray:
    prices = np.zeros(base.shape[1])
    for _ in range(MAX_ROUNDS):
        moved = False
        for column in range(base.shape[1]):
            best = _best_price(base, prices, column, fixed, goal)
            if best != prices[column]:
                prices[column] = best
                moved = True
        if not moved:
            break
    return prices


def _best_price(base: np.ndarray, prices: np.ndarray, column: int, fixed: np.ndarray, goal: np.ndarray) -> float:
    """The price of one strategy that brings the counts closest to the goal,
    the others held: frames qualifying for it switch to it one by one as the
    price passes their switch points."""
    scores = base + prices
    rows = np.flatnonzero(np.isfinite(base[:, column]))
    if rows.size == 0:
        return prices[column]
    others = scores[rows].copy()
    others[:, column] = -np.inf
    alternative = np.argmax(others, axis=1)
    switch = others[np.arange(rows.size), alternative] - base[rows, column]
    order = np.argsort(switch, kind="stable")
    switch, alternative = switch[order], alternative[order]
    # Counts with none of these frames on `column`, then k of them moved over.
    rest = np.ones(base.shape[0], bool)
    rest[rows] = False
    start = _counts(np.argmax(scores[rest], axis=1), fixed) + np.bincount(alternative, minlength=fixed.size)
    moved_from = np.zeros((rows.size + 1, fixed.size))
    moved_from[1:] = np.cumsum(np.eye(fixed.size)[alternative], axis=0)
    counts = start - moved_from
    counts[:, column] += np.arange(rows.size + 1)
    error = ((counts - goal) ** 2).sum(axis=1)
    # Interval k (k frames switched over) is (switch[k-1], switch[k]); its price
    # is the point in it nearest 0 (never on a switch point).
    lows = np.concatenate([[-np.inf], switch])
    highs = np.concatenate([switch, [np.inf]])
    candidates = [_inside(low, high) for low, high in zip(lows, highs)]
    best = min(range(rows.size + 1), key=lambda k: (round(float(error[k]), 9), abs(candidates[k]), k))
    return candidates[best]


def _inside(low: float, high: float) -> float:
    """The price in the open interval (low, high) nearest 0."""
    if low < 0.0 < high:
        return 0.0
    if high <= 0.0:
        return high - OPEN_STEP if low == -np.inf else (low + high) / 2
    return low + OPEN_STEP if high == np.inf else (low + high) / 2


def _planned_record(decision: dict, strategy: str) -> dict:
    alternatives = ", ".join(name for name in decision["eligible"] if name != strategy)
    return {**decision, "strategy": strategy, "confidence": decision["confidences"][strategy],
            "reasoning": f"{decision['reasoning']} | Planned: {strategy} (also qualifies for {alternatives}; "
                         f"the plan brings the mix towards strategy_targets)"}


# What a frame needs to qualify for each strategy (the seed's rules, decision.RULE_ORDER).
QUALIFIES = {
    "keep_full": "a simple background (complexity < {simple_background}), good lighting (> {good_lighting}) "
                 "and low occlusion (< {low_occlusion})",
    "segment": "several characters (>= {multi_character}) or a complex background (complexity > "
               "{simple_background}); it also takes frames no rule matches",
    "create_occlusion": "a clean frame (occlusion < {low_occlusion}, quality >= {poor_quality}, sharpness >= "
                        "{low_sharpness}) while dataset_needs.occlusion > 0.5",
    "enhance_segment": "poor quality (< {poor_quality}) or low sharpness (< {low_sharpness})",
}


def plan_constraints(decisions: dict[str, dict], decision_cfg: dict, enabled: list[str]) -> dict[str, dict]:
    """Per strategy: {target, achieved (shares of the planned frames), frames, qualifying, only_choice,
    binding}: ``binding`` is a plain sentence saying what keeps it off target, or that it is on target."""
    counted = [d for d in decisions.values() if _counted(d)]
    total = len(counted)
    goal = target_counts(decision_cfg["strategy_targets"], enabled, total)
    thresholds = decision_cfg["thresholds"]
    result = {}
    for name in STRATEGIES:
        achieved = sum(d["strategy"] == name for d in counted)
        qualifying = sum(name in d.get("eligible", []) or d["strategy"] == name for d in counted)
        only = sum(d["strategy"] == name and ("override" in d or d.get("eligible", [name]) == [name])
                   for d in counted)
        rule = QUALIFIES[name].format(**thresholds)
        if name not in enabled:
            binding = "disabled in strategy_configs"
        elif achieved + 0.5 < goal[name] and achieved == qualifying:
            binding = f"only {qualifying} of the {total} frames qualify for {name}: {rule}"
        elif achieved + 0.5 < goal[name]:
            binding = (f"{qualifying} frames qualify for {name} ({rule}) but the other strategies' "
                       f"targets need some of them")
        elif achieved - 0.5 > goal[name] and achieved == only:
            binding = f"{only} frames qualify for nothing but {name}"
        elif achieved - 0.5 > goal[name]:
            binding = (f"{only} frames qualify for nothing but {name}; the others' alternatives are at or over "
                       f"their targets")
        else:
            binding = "on target"
        result[name] = {
            "target": round(goal[name] / total, 4) if total else 0.0,
            "achieved": round(achieved / total, 4) if total else 0.0,
            "frames": achieved, "target_frames": round(goal[name], 1),
            "qualifying": qualifying, "only_choice": only, "binding": binding,
        }
    return result
