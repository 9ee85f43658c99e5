"""Background inpainting: remove a character and fill the hole from its surroundings.

The classical backend is OpenCV's Telea (fast marching) or Navier-Stokes
inpainting. A neural backend (LaMa) replaces it behind the same interface: an
object with a ``name`` and ``inpaint(image_bgr, mask, dilation) -> image``.
Every backend must leave pixels outside the dilated mask byte-identical.
"""

from __future__ import annotations

import math
from typing import Protocol

import cv2
import numpy as np

# cv2.inpaint's cost grows with the hole's pixel count; above this many hole
# pixels the fill is computed on a downscaled copy (a smooth fill loses nothing).
MAX_FULL_RESOLUTION_HOLE = 50_000
METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


class Inpainter(Protocol):
    name: str

    def inpaint(self, image_bgr: np.ndarray, mask: np.ndarray, dilation: int = 5) -> np.ndarray: ...


def grown_hole(image_bgr: np.ndarray, mask: np.ndarray, dilation: int) -> np.ndarray:
    """The uint8 0/1 hole to fill: ``mask`` checked against the image and grown by ``dilation`` px."""
    if mask.shape != image_bgr.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image {image_bgr.shape[:2]}")
    hole = (mask > 0).astype(np.uint8)
    if dilation > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilation + 1,) * 2)
        hole = cv2.dilate(hole, kernel)
    return hole


class OpenCVInpainter:
    def __init__(self, method: str = "telea", radius: int = 5):
        if method not in METHODS:
            raise ValueError(f"unknown inpainting method {method!r} (expected one of {sorted(METHODS)})")
        self.name = f"opencv_{method}"
        self.method = method
        self.radius = radius

    def inpaint(self, image_bgr: np.ndarray, mask: np.ndarray, dilation: int = 5) -> np.ndarray:
        """Fill ``mask`` (bool or uint8, non-zero = remove), grown by ``dilation`` px first."""
        hole = grown_hole(image_bgr, mask, dilation)
        result = image_bgr.copy()
        if not hole.any():
            return result

        # Only the hole and a ring of known pixels around it take part.
        height, width = hole.shape
        x, y, w, h = cv2.boundingRect(hole)
        margin = 4 * self.radius + 8
        x0, y0 = max(0, x - margin), max(0, y - margin)
        x1, y1 = min(width, x + w + margin), min(height, y + h + margin)
        crop = image_bgr[y0:y1, x0:x1]
        crop_hole = hole[y0:y1, x0:x1]

        hole_pixels = int(crop_hole.sum())
        scale = min(1.0, math.sqrt(MAX_FULL_RESOLUTION_HOLE / hole_pixels))
        if scale < 1.0:
            filled = self._inpaint_downscaled(crop, crop_hole, scale)
        else:
            filled = cv2.inpaint(crop, crop_hole, self.radius, METHODS[self.method])
        inside = crop_hole.astype(bool)
        result[y0:y1, x0:x1][inside] = filled[inside]
        return result

    def _inpaint_downscaled(self, crop: np.ndarray, crop_hole: np.ndarray, scale: float) -> np.ndarray:
        crop_h, crop_w = crop_hole.shape
        small_size = (max(1, round(crop_w * scale)), max(1, round(crop_h * scale)))
        small = cv2.resize(crop, small_size, interpolation=cv2.INTER_AREA)
        # Any partly covered low-res pixel is unknown, so no character colour leaks in.
        small_hole = cv2.resize(crop_hole.astype(np.float32), small_size, interpolation=cv2.INTER_AREA) > 0
        small_hole = cv2.dilate(small_hole.astype(np.uint8), np.ones((3, 3), np.uint8))
        radius = max(1, round(self.radius * scale))
        small_filled = cv2.inpaint(small, small_hole, radius, METHODS[self.method])
        return cv2.resize(small_filled, (crop_w, crop_h), interpolation=cv2.INTER_CUBIC)
