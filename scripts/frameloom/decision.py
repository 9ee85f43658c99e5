"""Choose one strategy per frame from its analysis record.

The seed's rule order decides first (``seed_rule``):

    keep_full        complexity < simple_background AND lighting > good_lighting
                     AND occlusion < low_occlusion
    segment          instance_count >= multi_character OR complexity > simple_background
    enhance_segment  quality < poor_quality OR sharpness < low_sharpness
    create_occlusion dataset_needs.occlusion > 0.5
    segment          safe default

Disabled strategies are skipped. A frame often matches more than one rule (a
clean close-up is both a keep_full frame and a good occlusion source; the
occlusion alternative is offered only for frames that are not already
occluded or poor). With ``steering`` on, such a frame draws its strategy with
probability proportional to ``strategy_targets[s] * (1 + need_s)``, where
``need_s`` is the dataset need that strategy would serve for this frame. The
draw uses a hash of the frame id, so decisions are reproducible and depend on
nothing but the frame's own analysis and the configuration.
"""

from __future__ import annotations

import hashlib

from .config import STRATEGIES

OCCLUSION_NEED_CUTOFF = 0.5  # the seed: create_occlusion when dataset_needs['occlusion'] > 0.5
CLEAR_MARGIN = 0.25  # a metric this far past its threshold counts as a fully clear call


def _strength(value: float, threshold: float) -> float:
    return min(1.0, abs(value - threshold) / CLEAR_MARGIN)


def _conditions(analysis: dict, decision_cfg: dict) -> dict[str, list[tuple[bool, str, float]]]:
    """Per strategy: its conditions as (holds, reason text, strength 0..1)."""
    t = decision_cfg["thresholds"]
    needs = decision_cfg["dataset_needs"]
    complexity = analysis["complexity"]
    lighting = analysis["lighting"]
    occlusion = analysis["occlusion"]
    quality = analysis["quality"]
    sharpness = analysis["sharpness"]
    instances = analysis["instance_count"]
    multi = instances >= t["multi_character"]
    return {
        "keep_full": [
            (complexity < t["simple_background"], f"Simple background (complexity={complexity:.2f})",
             _strength(complexity, t["simple_background"])),
            (lighting > t["good_lighting"], f"Good lighting (quality={lighting:.2f})",
             _strength(lighting, t["good_lighting"])),
            (occlusion < t["low_occlusion"], f"Low occlusion (level={occlusion:.2f})",
             _strength(occlusion, t["low_occlusion"])),
        ],
        "segment": [
            (multi, f"Multi-character (instances={instances})", 1.0 if multi else 0.0),
            (complexity > t["simple_background"], f"Complex background (complexity={complexity:.2f})",
             _strength(complexity, t["simple_background"])),
        ],
        "enhance_segment": [
            (quality < t["poor_quality"], f"Poor quality (quality={quality:.2f})",
             _strength(quality, t["poor_quality"])),
            (sharpness < t["low_sharpness"], f"Low sharpness (sharpness={sharpness:.2f})",
             _strength(sharpness, t["low_sharpness"])),
        ],
        "create_occlusion": [
            (needs["occlusion"] > OCCLUSION_NEED_CUTOFF,
             f"Dataset needs occlusion (need={needs['occlusion']:.2f})",
             _strength(needs["occlusion"], OCCLUSION_NEED_CUTOFF)),
        ],
    }


# How each strategy's conditions combine, in the seed's rule order.
RULE_ORDER = (("keep_full", all), ("segment", any), ("enhance_segment", any), ("create_occlusion", all))


def _rule_holds(conditions, combine) -> bool:
    return combine(holds for holds, _, _ in conditions)


def _rule_confidence(conditions, combine) -> float:
    strengths = [strength for holds, _, strength in conditions if holds]
    decisive = min(strengths) if combine is all else max(strengths)
    return round(0.5 + 0.5 * decisive, 3)


def _reason(conditions) -> str:
    return " | ".join(text for holds, text, _ in conditions if holds)


def _is_clean_source(analysis: dict, decision_cfg: dict) -> bool:
    """Synthetic occlusion only makes sense on a frame that is not already occluded or poor."""
    t = decision_cfg["thresholds"]
    return (
        analysis["occlusion"] < t["low_occlusion"]
        and analysis["quality"] >= t["poor_quality"]
        and analysis["sharpness"] >= t["low_sharpness"]
    )


def _served_need(strategy: str, analysis: dict, decision_cfg: dict) -> tuple[float, str]:
    """The dataset need a strategy would serve for this frame, and its name."""
    needs = decision_cfg["dataset_needs"]
    t = decision_cfg["thresholds"]
    if strategy == "create_occlusion":
        return needs["occlusion"], "occlusion"
    if strategy == "keep_full":
        # Keeping the whole frame preserves the multi-character or far-shot context a cut-out loses.
        if analysis["instance_count"] >= t["multi_character"]:
            return needs["multi_character"], "multi_character"
        if analysis.get("shot_type") == "far":
            return needs["far_shot"], "far_shot"
    if strategy == "segment" and analysis["complexity"] > t["simple_background"]:
        return needs["complex_bg"], "complex_bg"
    return 0.0, ""


def _unit_draw(frame_id: str) -> float:
    digest = hashlib.sha256(f"frameloom-steering:{frame_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def decide(analysis: dict, decision_cfg: dict, enabled: list[str]) -> dict:
    """The decision record for one frame (see module docstring)."""
    frame = analysis["frame"]
    if not analysis.get("ok", True):
        return {
            "frame": frame, "ok": False, "strategy": None, "seed_rule": None, "confidence": 0.0,
            "reasoning": "Analysis failed", "eligible": [], "error": analysis.get("error"),
        }
    conditions = _conditions(analysis, decision_cfg)
    rules = dict(RULE_ORDER)
    matching = [s for s, combine in RULE_ORDER if s in enabled and _rule_holds(conditions[s], combine)]
    if matching:
        seed_rule = matching[0]
        reasoning = _reason(conditions[seed_rule])
    else:
        seed_rule = "segment" if "segment" in enabled else enabled[0]
        reasoning = f"No rule matched: default {seed_rule}"

    # Steering alternatives: every other matching rule; synthetic occlusion only on clean sources.
    eligible = [seed_rule] + [
        s for s in matching[1:] if s != "create_occlusion" or _is_clean_source(analysis, decision_cfg)
    ]
    strategy = seed_rule
    steering = None
    if decision_cfg.get("steering", True) and len(eligible) > 1:
        weights, need_text = {}, {}
        for name in eligible:
            need, need_name = _served_need(name, analysis, decision_cfg)
            weights[name] = decision_cfg["strategy_targets"][name] * (1.0 + need)
            if need_name:
                need_text[name] = f"dataset_needs.{need_name}={need:.2f}"
        total = sum(weights.values()) or 1.0
        shares = {name: weights[name] / total for name in eligible}
        draw = _unit_draw(frame)
        cumulative = 0.0
        for name in eligible:
            cumulative += shares[name]
            strategy = name
            if draw < cumulative:
                break
        steering = {"shares": {n: round(v, 4) for n, v in shares.items()}, "draw": round(draw, 4)}
        described = ", ".join(
            f"{n} {shares[n]:.2f}" + (f" ({need_text[n]})" if n in need_text else "") for n in eligible
        )
        reasoning += f" | Steered to {strategy} (eligible: {described})"
        if strategy != seed_rule:
            reasoning += " | " + _reason(conditions[strategy])
    if strategy in matching:
        confidence = _rule_confidence(conditions[strategy], rules[strategy])
    else:
        confidence = 0.5
    disabled = [name for name in STRATEGIES if name not in enabled]
    if disabled:
        reasoning += " | disabled: " + ", ".join(disabled)
    return {
        "frame": frame,
        "ok": True,
        "strategy": strategy,
        "seed_rule": seed_rule,
        "confidence": confidence,
        "reasoning": reasoning,
        "eligible": eligible,
        "steering": steering,
        "error": None,
    }
