"""The plan file: each frame's strategy, or why it has none (excluded, failed)."""

from __future__ import annotations

from .imageio import write_text

FAILED = "failed"
EXCLUDED = "excluded"
# Plan entries that get no strategy outputs.
NOT_PROCESSED = (FAILED, EXCLUDED)


def plan_status(decision: dict) -> str:
    """The strategy, ``excluded`` (by the frame gate or by hand on review) or ``failed``
    (no usable analysis or a bad override)."""
    if decision.get("excluded"):
        return EXCLUDED
    return decision["strategy"] if decision["ok"] else FAILED


def exclusion_reason(decision: dict) -> str:
    """The frame gate's reason, or ``review`` for a frame excluded by hand."""
    if decision.get("override", {}).get("exclude"):
        return "review"
    return decision.get("exclusion_reason") or "review"


def write_plan(decisions: dict[str, dict], plan_path: str) -> dict[str, str]:
    """``frame<TAB>status`` per frame (see ``plan_status``)."""
    plan = {frame: plan_status(decision) for frame, decision in decisions.items()}
    write_text(plan_path, "".join(f"{frame}\t{strategy}\n" for frame, strategy in sorted(plan.items())))
    return plan


def read_plan(plan_path: str) -> dict[str, str]:
    with open(plan_path, encoding="utf-8") as handle:
        return dict(line.rstrip("\n").split("\t") for line in handle if line.strip())
