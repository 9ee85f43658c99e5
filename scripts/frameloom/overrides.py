"""Decisions made by hand: a plain YAML file the review page writes and the decide step reads.

    frames:
      shot_0412:
        strategy: segment        # instead of the automatic decision
        note: two characters, want the cut-out
      shot_0413:
        exclude: true            # no outputs, no training images
        note: not our character

A missing file means no overrides. The decide step keeps the automatic
decision in the record (``override.automatic``), so the report shows both.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .imageio import write_text
from .registry import STRATEGIES
from .schema import ConfigError, read_yaml, validate

HEADER = (
    "# frameloom overrides: per-frame decisions made by hand (the review page writes this file;\n"
    "# editing it by hand is fine). The next snakemake run redoes only the frames whose strategy changed.\n"
)


def check_override(frame: str, override: dict, source: str) -> None:
    """An override names a strategy or excludes the frame, not both and not neither."""
    if override.get("exclude") and "strategy" in override:
        raise ConfigError(f"{source}: frames.{frame}: give either strategy or exclude: true, not both")
    if not override.get("exclude") and "strategy" not in override:
        raise ConfigError(f"{source}: frames.{frame}: give a strategy ({', '.join(STRATEGIES)}) or exclude: true")


def load_overrides(path: Path, source: str) -> dict[str, dict]:
    """{frame id: override} from ``path``; {} when the file does not exist."""
    if not path.is_file():
        return {}
    frames = validate(read_yaml(path, source), "overrides", source)["frames"]
    for frame, override in frames.items():
        check_override(frame, override, source)
    return frames


def save_overrides(path: Path, frames: dict[str, dict]) -> None:
    """Write the overrides (sorted, defaults left out) atomically."""
    cleaned = {}
    for frame in sorted(frames):
        override = frames[frame]
        check_override(frame, override, str(path))
        entry = {"exclude": True} if override.get("exclude") else {"strategy": override["strategy"]}
        if override.get("note"):
            entry["note"] = override["note"]
        cleaned[frame] = entry
    body = yaml.safe_dump({"frames": cleaned}, sort_keys=False, allow_unicode=True)
    write_text(str(path), HEADER + body)


def apply_override(decision: dict, override: dict | None, enabled: list[str]) -> dict:
    """The decision record after a hand-made override (unchanged without one).

    A frame whose analysis failed cannot be given a strategy (it stays failed);
    excluding it is allowed. A strategy that is disabled in strategy_configs is
    a named error for that frame, so the user sees the conflict in the report.
    """
    if not override:
        return decision
    note = f" ({override['note']})" if override.get("note") else ""
    automatic = decision["strategy"]
    record = {**decision, "override": {**override, "automatic": automatic}}
    if override.get("exclude"):
        return {**record, "strategy": None, "excluded": True, "confidence": 1.0,
                "reasoning": f"Excluded on review{note} | automatic: {decision['reasoning']}"}
    if not decision["ok"]:
        return record
    strategy = override["strategy"]
    if strategy not in enabled:
        return {**record, "ok": False, "strategy": None, "confidence": 0.0,
                "reasoning": f"Override to {strategy} on review{note}",
                "error": f"OverrideError: {strategy} is disabled in strategy_configs"}
    # A strategy chosen by hand lifts the frame gate's exclusion too.
    return {**record, "strategy": strategy, "confidence": 1.0, "excluded": False, "exclusion_reason": None,
            "reasoning": f"Override to {strategy} on review{note} | automatic {automatic}: {decision['reasoning']}"}
