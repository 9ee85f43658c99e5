"""Pixel operations shared across layers: the cut-out backdrop convention.

A cut-out is BGRA with its colour premultiplied onto ``NEUTRAL_GREY`` by its alpha,
so a trainer that drops alpha sees the character on a clean grey backdrop. Cut-outs
are made that way (strategies.cutout), compared that way (dedup, identity,
embedding) and augmented that way (augment).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

NEUTRAL_GREY = 128  # what trainers that drop alpha see behind a cut-out character
BACKGROUND_MODES = ("grey", "transparent")


def on_grey(bgr: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``bgr`` premultiplied onto NEUTRAL_GREY by ``weight`` (float, 0..1, HxWx1), as uint8."""
    colour = bgr.astype(np.float32) * weight + NEUTRAL_GREY * (1.0 - weight)
    return np.clip(colour + 0.5, 0, 255).astype(np.uint8)


def uniform_background(bgra: np.ndarray, mode: str = "grey") -> np.ndarray:
    """A cut-out on a uniform backdrop; ``bgra`` holds straight (not premultiplied) colour.

    "grey": colour premultiplied onto NEUTRAL_GREY by the alpha, as
    strategies.cutout makes it, for trainers that drop alpha; 4 channels kept.
    "transparent": colour of fully transparent pixels set to 0 (nothing of
    the old backdrop left for an alpha-aware trainer to leak), alpha kept.
    """
    if mode not in BACKGROUND_MODES:
        raise ValueError(f"mode must be one of {BACKGROUND_MODES}, got {mode!r}")
    alpha = bgra[..., 3]
    if mode == "transparent":
        result = bgra.copy()
        result[alpha == 0, :3] = 0
        return result
    return np.dstack([on_grey(bgra[..., :3], alpha[..., None].astype(np.float32) / 255.0), alpha])


def clip01(value: float) -> float:
    """Clamp to [0, 1]; NaN (only possible from degenerate input) becomes 0."""
    if not math.isfinite(value):
        return 0.0
    return min(1.0, max(0.0, float(value)))


def resize_longest(image: np.ndarray, longest: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = longest / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def masked_norm(values: np.ndarray, mask: np.ndarray, norm_type: int) -> float:
    """cv2.norm over the mask's pixels (zeroing the rest first is ~6x faster
    than cv2.norm's own mask argument)."""
    return cv2.norm(cv2.bitwise_and(values, values, mask=mask), norm_type)
