"""Template captions in the kohya style: trigger word first, then tags.

Tags come from facts we measured (the analysis record) or applied (the
strategy's suffixes and occlusion descriptions); nothing is guessed.
"""

from __future__ import annotations

BACKGROUND_SUBJECT = "3d animated scene"
# Descriptive cut-offs for tags. Fixed on purpose, not the decision thresholds:
# tuning a decision must not rewrite every caption.
SIMPLE_BACKGROUND_BELOW = 0.3
WELL_LIT_ABOVE = 0.7


def _tags(text: str) -> list[str]:
    return [tag.strip() for tag in text.split(",") if tag.strip()]


def scene_tags(analysis: dict | None, *, with_background: bool = True) -> list[str]:
    """Shot type, character count, background and lighting tags from the analysis."""
    if not analysis or not analysis.get("ok", True):
        return []
    tags = []
    if analysis.get("shot_type"):
        tags.append(f"{analysis['shot_type']} shot")
    if analysis.get("instance_count", 0) >= 2:
        tags.append("multiple characters")
    if with_background:
        simple = analysis["complexity"] < SIMPLE_BACKGROUND_BELOW
        tags.append("simple background" if simple else "detailed background")
        tags.append("well-lit" if analysis["lighting"] > WELL_LIT_ABOVE else "dim lighting")
    return tags


def compose(*parts: str | list[str] | None) -> str:
    """Join tag groups into one caption, dropping empty and repeated tags."""
    seen, ordered = set(), []
    for part in parts:
        if not part:
            continue
        for tag in _tags(part) if isinstance(part, str) else part:
            if tag.lower() not in seen:
                seen.add(tag.lower())
                ordered.append(tag)
    return ", ".join(ordered)


def character_caption(trigger: str, prefix: str, analysis: dict | None,
                      suffix: str = "", *, with_background: bool = True) -> str:
    return compose(trigger, prefix, scene_tags(analysis, with_background=with_background), suffix)


def background_caption(analysis: dict | None, suffix: str, other_characters: int = 0) -> str:
    """Caption of the inpainted plate. Only the target is removed, so when other
    characters stay in it the caption says so instead of "no characters". No
    trigger word: the plate must not teach it the scenery."""
    tags = scene_tags(analysis)
    environment = [tag for tag in tags if tag.endswith("background") or tag in ("well-lit", "dim lighting")]
    suffix_tags = _tags(suffix)
    if other_characters:
        suffix_tags = [tag for tag in suffix_tags if tag != "no characters"]
        suffix_tags.append("other character" if other_characters == 1 else f"{other_characters} other characters")
    return compose(BACKGROUND_SUBJECT, suffix_tags, environment)
