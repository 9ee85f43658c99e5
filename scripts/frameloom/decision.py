"""Choose one strategy per frame from its analysis record.

The seed's rules decide first (``seed_rule``), in this order:

    enhance_segment  quality < poor_quality OR sharpness < low_sharpness
    keep_full        complexity < simple_background AND lighting > good_lighting
                     AND occlusion < low_occlusion
    segment          instance_count >= multi_character OR complexity > simple_background
    create_occlusion dataset_needs.occlusion > 0.5
    segment          safe default

The seed lists enhance_segment third; here a frame the analysis finds blurred
or poor is enhanced first and only enhanced (``EXCLUSIVE_RULES``): a whole
frame or a cut-out of a blurred character teaches the blur, so it is not kept
whole, segmented as it is or given synthetic occluders, whatever else it
matches.

Before any rule, the frame gate (``gate_reason``) excludes frames that
would only poison the dataset: near-black or blown-out exposure, a title or
credit card, blur that leaves the character unreadable, no character found.
Such a decision has ``excluded: true`` and its ``exclusion_reason``; no
strategy runs for it, and the review page can override it.

Disabled strategies are skipped. A frame often matches more than one rule (a
clean close-up is both a keep_full frame and a good occlusion source; the
occlusion alternative is offered only for frames that are not already
occluded or poor): ``eligible`` lists them, each with its preference
``strategy_targets[s] * (1 + need_s)``, where ``need_s`` is the dataset need
that strategy would serve for this frame. With ``steering`` on,
``decide_all`` hands the whole set to the planner (frameloom.planner), which
picks among them so the mix of frames approaches ``strategy_targets``; off,
the seed's first match stands.
"""

from __future__ import annotations

from .registry import STRATEGIES

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


# How each strategy's conditions combine, in the order of the module docstring.
RULE_ORDER = (("enhance_segment", any), ("keep_full", all), ("segment", any), ("create_occlusion", all))
# A frame whose first matching rule is one of these is offered no alternative to plan with.
EXCLUSIVE_RULES = ("enhance_segment",)


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


# Why a frame is excluded before any strategy, in the order they are checked
# (a black frame is reported as near_black, not as having no character).
GATE_REASONS = {
    "near_black": "near-black exposure (99th-percentile brightness {p99:.2f} < {near_black:.2f})",
    "blown_out": "blown-out exposure (1st-percentile brightness {p1:.2f} > {blown_out:.2f})",
    "blank": "blank picture (a fade or an empty backdrop: {flat_share:.0%} of it flat)",
    "title_card": "title or credit card ({text_lines} lines of text on a plain ground)",
    "unusable_blur": "blur leaves the character unreadable (sharpness {sharpness:.2f} < {unusable_sharpness:.2f})",
    "no_character": "no character found",
}


def gate_reason(analysis: dict, gate: dict) -> tuple[str, str] | None:
    """(reason, sentence) when the frame gate excludes the frame, else None."""
    if not gate["enabled"]:
        return None
    exposure = analysis["exposure"]
    values = {**gate, **exposure, "sharpness": analysis["sharpness"],
              "text_lines": analysis["plain_ground"]["text_lines"],
              "flat_share": analysis["plain_ground"]["flat_share"]}
    checks = {
        "near_black": exposure["p99"] < gate["near_black"],
        "blown_out": exposure["p1"] > gate["blown_out"],
        "blank": analysis["plain_ground"]["flat_share"] >= gate["blank_flat_share"],
        "title_card": gate["title_card"] and analysis["plain_ground"]["title_card"],
        "unusable_blur": analysis["sharpness"] < gate["unusable_sharpness"],
        "no_character": gate["no_character"] and analysis["instance_count"] == 0,
    }
    for reason, text in GATE_REASONS.items():
        if checks[reason]:
            return reason, text.format(**values)
    return None


def decide(analysis: dict, decision_cfg: dict, enabled: list[str]) -> dict:
    """The decision record for one frame (see module docstring)."""
    frame = analysis["frame"]
    if not analysis.get("ok", True):
        return {
            "frame": frame, "ok": False, "strategy": None, "seed_rule": None, "confidence": 0.0,
            "reasoning": "Analysis failed", "eligible": [], "preferences": {}, "error": analysis.get("error"),
        }
    gated = gate_reason(analysis, decision_cfg["gate"])
    if gated is not None:
        reason, sentence = gated
        return {
            "frame": frame, "ok": True, "strategy": None, "seed_rule": None, "confidence": 1.0,
            "reasoning": f"Excluded by the frame gate: {sentence}", "eligible": [], "preferences": {},
            "excluded": True, "exclusion_reason": reason, "error": None,
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
    if seed_rule in EXCLUSIVE_RULES and len(matching) > 1:
        reasoning += f" | enhanced first (also matches: {', '.join(matching[1:])})"
        matching = [seed_rule]

    # Alternatives for the planner: every other matching rule; synthetic occlusion only on clean sources.
    eligible = [seed_rule] + [
        s for s in matching[1:] if s != "create_occlusion" or _is_clean_source(analysis, decision_cfg)
    ]
    preferences, need_text = {}, []
    for name in eligible:
        need, need_name = _served_need(name, analysis, decision_cfg)
        preferences[name] = round(decision_cfg["strategy_targets"][name] * (1.0 + need), 4)
        if need_name:
            need_text.append(f"{name} serves dataset_needs.{need_name}={need:.2f}")
    if len(eligible) > 1:
        reasoning += f" | Qualifies for {', '.join(eligible)}" + (f" ({'; '.join(need_text)})" if need_text else "")
    # How clearly each alternative's rule holds (the default of no matching rule: 0.5).
    confidences = {name: _rule_confidence(conditions[name], rules[name]) if name in matching else 0.5
                   for name in eligible}
    disabled = [name for name in STRATEGIES if name not in enabled]
    if disabled:
        reasoning += " | disabled: " + ", ".join(disabled)
    return {
        "frame": frame,
        "ok": True,
        "strategy": seed_rule,
        "seed_rule": seed_rule,
        "confidence": confidences[seed_rule],
        "reasoning": reasoning,
        "eligible": eligible,
        "preferences": preferences,
        "confidences": confidences,
        "error": None,
    }


def decide_all(analyses: list[dict], decision_cfg: dict, enabled: list[str],
               overrides: dict | None = None) -> dict[str, dict]:
    """{frame: decision} for a whole set: each frame decided, hand-made overrides
    applied (frameloom.overrides), then, with ``steering`` on, the strategies of
    the frames that qualify for several planned together (frameloom.planner)."""
    from .overrides import apply_override
    from .planner import plan

    overrides = overrides or {}
    decisions = {
        analysis["frame"]: apply_override(decide(analysis, decision_cfg, enabled), overrides.get(analysis["frame"]),
                                          enabled)
        for analysis in analyses
    }
    if not decision_cfg.get("steering", True):
        return decisions
    return plan(decisions, decision_cfg["strategy_targets"], enabled)
