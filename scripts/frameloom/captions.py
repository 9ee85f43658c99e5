"""Captions in the kohya style: trigger word first, then comma-separated tags.

Template captions are built only from facts we measured (the analysis record,
the image's own colours) or applied (the strategy's suffixes, the occlusion
actually drawn, enhancement steps that ran); nothing is guessed. A VLM caption
(frameloom.caption_step) replaces the measured middle part with the model's
description and keeps the same trigger word, prefix and applied facts; a VLM
answer that fails ``check_vlm_text`` is replaced by the template caption.
"""

from __future__ import annotations

import re

import cv2
import numpy as np

BACKGROUND_SUBJECT = "3d animated scene"
CHARACTER, BACKGROUND = "character", "background"

# Descriptive cut-offs for tags. Fixed on purpose, not the decision thresholds:
# tuning a decision must not rewrite every caption.
BACKGROUND_LEVELS = ((0.2, "plain background"), (0.4, "simple background"), (0.7, "detailed background"))
BUSY_BACKGROUND = "busy background"
WELL_LIT_ABOVE, DIM_BELOW = 0.7, 0.45
LOW_KEY_BELOW, HIGH_KEY_ABOVE = 0.3, 0.65  # mean brightness
SOFT_FOCUS_BELOW = 0.25  # analysis sharpness
FILM_GRAIN_ABOVE = 0.5  # analysis noise
LEFT_OF, RIGHT_OF = 0.38, 0.62  # subject-box centre, share of the frame width

# Colour names by OpenCV hue (0..180): (upper bound, name); red wraps around.
HUES = ((8, "red"), (22, "orange"), (34, "yellow"), (80, "green"), (98, "teal"),
        (128, "blue"), (150, "purple"), (170, "pink"), (180, "red"))
COLOURFUL_SATURATION, COLOURFUL_VALUE = 70, 60  # a pixel below either is grey-ish
MUTED_BELOW = 0.12  # share of colourful pixels under which the image reads as muted
SECOND_COLOUR_SHARE = 0.25  # of the colourful pixels, for a second colour name
PALETTE_SIZE = 96  # px, longest side the palette is measured at
# Mean Lab chroma (b: blue-yellow, a: green-magenta, 0 = neutral) of a colour cast.
WARM_CAST_B, COOL_CAST_B = 8.0, -6.0
UNEVEN_LIGHT_BELOW = 0.3  # analysis lighting_parts.local_consistency: half-shadowed frames
LOW_CONTRAST_BELOW = 0.5  # analysis lighting_parts.dynamic_range

# Why a VLM answer was replaced by the template caption (the report counts each).
REJECT_EMPTY, REJECT_TOO_LONG, REJECT_REPEATED = "empty", "too_long", "repeated_phrase"
REJECT_GENERATION = "generation_error"  # the model failed on the batch (out of memory, ...)
REJECT_LOAD = "model_load_error"  # the model did not load (damaged weights, ...): every image keeps its template
REJECTIONS = (REJECT_EMPTY, REJECT_TOO_LONG, REJECT_REPEATED, REJECT_GENERATION, REJECT_LOAD)
REPEAT_NGRAM = 4  # words: the same 4-word phrase twice is degenerate generation


def split_tags(text: str) -> list[str]:
    return [tag.strip() for tag in text.split(",") if tag.strip()]


def compose(*parts: str | list[str] | None) -> str:
    """Join tag groups into one caption, dropping empty and repeated tags."""
    seen, ordered = set(), []
    for part in parts:
        if not part:
            continue
        for tag in split_tags(part) if isinstance(part, str) else part:
            if tag.lower() not in seen:
                seen.add(tag.lower())
                ordered.append(tag)
    return ", ".join(ordered)


def _background_tag(complexity: float) -> str:
    return next((name for bound, name in BACKGROUND_LEVELS if complexity < bound), BUSY_BACKGROUND)


def _cast_tag(count: int) -> str | None:
    if count < 2:
        return None
    return {2: "two characters", 3: "three characters"}.get(count, "group of characters")


def _position_tag(box: list[int] | None, width: int) -> str | None:
    if not box or not width:
        return None
    centre = (box[0] + box[2] / 2) / width
    if centre < LEFT_OF:
        return "character on the left"
    return "character on the right" if centre > RIGHT_OF else "centered composition"


def scene_tags(analysis: dict | None, *, with_background: bool = True) -> list[str]:
    """Shot type, cast, framing, background, lighting and focus tags from the analysis.

    ``with_background`` off (a cut-out on a clean backdrop): only what the
    character itself shows: shot type and focus.
    """
    if not analysis or not analysis.get("ok", True):
        return []
    tags = [f"{analysis['shot_type']} shot"] if analysis.get("shot_type") else []
    if with_background:
        tags += [_cast_tag(analysis.get("instance_count", 0)),
                 _position_tag(analysis.get("foreground_box"), analysis.get("width", 0)),
                 _background_tag(analysis["complexity"])]
        brightness = analysis.get("brightness_mean", 0.5)
        tags.append("low-key lighting" if brightness < LOW_KEY_BELOW
                    else "high-key lighting" if brightness > HIGH_KEY_ABOVE else None)
        lighting = analysis["lighting"]
        tags.append("well-lit" if lighting > WELL_LIT_ABOVE else "dim lighting" if lighting < DIM_BELOW else None)
        parts = analysis.get("lighting_parts", {})
        if parts.get("local_consistency", 1.0) < UNEVEN_LIGHT_BELOW:
            tags.append("uneven lighting")
        if parts.get("dynamic_range", 1.0) < LOW_CONTRAST_BELOW:
            tags.append("low contrast")
    if analysis.get("sharpness", 1.0) < SOFT_FOCUS_BELOW:
        tags.append("soft focus")
    if analysis.get("noise", 0.0) > FILM_GRAIN_ABOVE:
        tags.append("film grain")
    return [tag for tag in tags if tag]


def palette_tags(image: np.ndarray) -> list[str]:
    """The image's dominant colour names ("blue and orange tones") or "muted colors",
    and its colour cast ("warm lighting", "cool lighting") when it has one.

    A BGRA image counts only its opaque pixels (a cut-out's character).
    """
    scale = PALETTE_SIZE / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    opaque = image[..., 3] > 127 if image.shape[2] == 4 else np.ones(image.shape[:2], bool)
    bgr = np.ascontiguousarray(image[..., :3])
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)[opaque]
    if len(hsv) == 0:
        return []
    cast_b = float(cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB)[opaque][:, 2].mean()) - 128.0
    cast = ["warm lighting"] if cast_b >= WARM_CAST_B else ["cool lighting"] if cast_b <= COOL_CAST_B else []
    colourful = hsv[(hsv[:, 1] >= COLOURFUL_SATURATION) & (hsv[:, 2] >= COLOURFUL_VALUE)]
    if len(colourful) < MUTED_BELOW * len(hsv):
        return ["muted colors", *cast]
    names = np.array([next(name for bound, name in HUES if hue < bound) for hue in range(180)])
    counts: dict[str, int] = {}
    for name, count in zip(*np.unique(names[colourful[:, 0]], return_counts=True), strict=True):
        counts[str(name)] = int(count)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    chosen = [ranked[0][0]] + [name for name, count in ranked[1:2] if count >= SECOND_COLOUR_SHARE * len(colourful)]
    return [f"{' and '.join(chosen)} tones", *cast]


def template_caption(subject: str, trigger: str, prefix: str, analysis: dict | None, facts: list[str],
                     image: np.ndarray | None = None, *, with_background: bool = True) -> str:
    """The template caption of one produced image.

    A character image: trigger word, prefix, scene tags, colours, applied facts.
    A background plate: no trigger word (it must not teach the scenery), the
    environment tags only, then the facts ("environment only, no characters").
    """
    colours = palette_tags(image) if image is not None else []
    if subject == BACKGROUND:
        environment = [tag for tag in scene_tags(analysis)
                       if tag.endswith("background") or "lighting" in tag
                       or tag in ("well-lit", "soft focus", "film grain")]
        return compose(BACKGROUND_SUBJECT, environment, colours, facts)
    return compose(trigger, prefix, scene_tags(analysis, with_background=with_background), colours, facts)


def background_facts(suffix: str, other_characters: int) -> list[str]:
    """The plate's suffix tags. Only the target is removed, so when other characters
    stay in it the facts say so instead of "no characters"."""
    facts = split_tags(suffix)
    if other_characters:
        facts = [tag for tag in facts if tag != "no characters"]
        facts.append("other character" if other_characters == 1 else f"{other_characters} other characters")
    return facts


def clean_vlm_text(text: str, style: str, trigger: str = "") -> str:
    """The model's answer as caption text: one line, no label, no trigger word it may echo."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"^(caption|tags|description)\s*:\s*", "", text, flags=re.IGNORECASE)
    if style == "tags":
        text = ", ".join(tag.strip(" .;") for tag in re.split(r"[,;\n]", text) if tag.strip(" .;"))
        if trigger:
            text = ", ".join(tag for tag in split_tags(text) if tag.lower() != trigger.lower())
    return text.strip()


def check_vlm_text(text: str, max_chars: int) -> str | None:
    """Why a cleaned VLM answer is unusable (REJECT_*), or None when it is fine."""
    if not text:
        return REJECT_EMPTY
    if len(text) > max_chars:
        return REJECT_TOO_LONG
    tags = [tag.lower() for tag in split_tags(text)]
    if len(tags) != len(set(tags)):
        return REJECT_REPEATED
    words = re.findall(r"[\w'-]+", text.lower())
    ngrams = [tuple(words[i:i + REPEAT_NGRAM]) for i in range(len(words) - REPEAT_NGRAM + 1)]
    if len(ngrams) != len(set(ngrams)):
        return REJECT_REPEATED
    return None


def vlm_caption(subject: str, trigger: str, prefix: str, text: str, facts: list[str]) -> str:
    """A checked VLM answer in the caption's frame: the same head and applied facts as the template."""
    if subject == BACKGROUND:
        return compose(BACKGROUND_SUBJECT, text, facts)
    return compose(trigger, prefix, text, facts)
