"""What the dataset looks like before and after processing, in the decision thresholds' own terms.

Each input frame is classed by its analysis; each training image by what the
strategy made of its frame: a cut-out is one character on a clean backdrop, a
background plate has no target character, an occlusion variant is occluded
whatever its source was. The report charts both, so a user sees the close-up
bias of the input and how far the strategies moved it.
"""

from __future__ import annotations

from collections import Counter

from .cast import SHOT_TYPES
from .dataset import CUT_OUT_ROLES

# Chart order of each dimension's classes.
CLASSES = {
    "shot_type": SHOT_TYPES + ("no character", "unknown"),
    "lighting": ("good", "poor"),
    "background": ("simple", "complex", "clean (cut-out)"),
    "occlusion": ("low", "occluded", "synthetic"),
    "instances": ("0", "1", "2", "3+"),
}


def _instances(count: int) -> str:
    return "3+" if count >= 3 else str(max(count, 0))


def frame_classes(analysis: dict, thresholds: dict, instance_count: int | None = None) -> dict[str, str]:
    """One analysed frame's class per dimension; ``instance_count`` (the segmenter's, when
    there is one) replaces the analysis estimate."""
    count = analysis["instance_count"] if instance_count is None else instance_count
    return {
        "shot_type": analysis.get("shot_type") or "unknown",
        "lighting": "good" if analysis["lighting"] > thresholds["good_lighting"] else "poor",
        "background": "simple" if analysis["complexity"] < thresholds["simple_background"] else "complex",
        "occlusion": "low" if analysis["occlusion"] < thresholds["low_occlusion"] else "occluded",
        "instances": _instances(count),
    }


def training_classes(role: str, frame: dict[str, str], instance_count: int) -> dict[str, str]:
    """A training image's classes, from its role, its source frame's classes and instance count."""
    classes = dict(frame)
    if role in CUT_OUT_ROLES:
        classes |= {"background": "clean (cut-out)", "instances": "1"}
    elif role == "background":
        # The plate keeps the other characters, not the target.
        classes |= {"shot_type": "no character", "instances": _instances(instance_count - 1)}
    elif role.startswith("occlusion:"):
        classes["occlusion"] = "synthetic"
    return classes


def distribution(rows: list[dict[str, str]]) -> dict[str, dict[str, int]]:
    """{dimension: {class: count}} in chart order; classes no row has are left out."""
    counts = {dimension: Counter(row[dimension] for row in rows) for dimension in CLASSES}
    return {
        dimension: {name: counts[dimension][name] for name in CLASSES[dimension] + tuple(
            sorted(set(counts[dimension]) - set(CLASSES[dimension]))) if counts[dimension][name]}
        for dimension in CLASSES
    }
