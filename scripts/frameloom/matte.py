"""Soft edges for a hard cut: the alpha a cut-out is composited with."""

from __future__ import annotations

import math

import cv2
import numpy as np

GUIDED_FILTER_EPS = 1e-3


def soft_alpha(image_bgr: np.ndarray, mask: np.ndarray, pixel_size: float = 1.0) -> np.ndarray:
    """Full-resolution float32 alpha: a guided filter on a band around the cut's boundary only.

    ``mask`` is the cut at frame size: bool, or float 0..1 when upsampled from a
    coarser cut whose pixels are ``pixel_size`` frame pixels wide (the band and
    filter radius grow with it, so a coarse staircase edge is fully re-fitted).
    """
    soft = mask.astype(np.float32, copy=False)
    height, width = soft.shape
    hard = soft >= 0.5
    radius = max(2, math.ceil(pixel_size) + 1)
    band_width = 2 * radius + 1  # beyond two radii the filter returns its input unchanged
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band_width + 1,) * 2)
    hard_u8 = hard.astype(np.uint8)
    band = cv2.dilate(hard_u8, kernel).astype(bool) & ~cv2.erode(hard_u8, kernel).astype(bool)
    alpha = hard.astype(np.float32)
    if not band.any():
        return alpha
    x, y, w, h = cv2.boundingRect(band.astype(np.uint8))
    margin = 2 * radius
    x0, y0 = max(0, x - margin), max(0, y - margin)
    x1, y1 = min(width, x + w + margin), min(height, y + h + margin)
    guide = image_bgr[y0:y1, x0:x1].astype(np.float32) / 255.0
    filtered = _guided_filter(guide, soft[y0:y1, x0:x1], radius, GUIDED_FILTER_EPS)
    band_roi = band[y0:y1, x0:x1]
    alpha_roi = alpha[y0:y1, x0:x1]
    alpha_roi[band_roi] = np.clip(filtered[band_roi], 0.0, 1.0)
    return alpha


def _guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s colour guided filter: edge-aware smoothing of ``source`` along ``guide``."""
    ksize = (2 * radius + 1, 2 * radius + 1)

    def box_mean(values: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(values, cv2.CV_32F, ksize, borderType=cv2.BORDER_REFLECT)

    mean_guide = cv2.split(box_mean(guide))
    mean_source = box_mean(source)
    channels = cv2.split(guide)
    cov_source = [box_mean(channel * source) - mean * mean_source for channel, mean in zip(channels, mean_guide)]

    def covariance(i: int, j: int) -> np.ndarray:
        value = box_mean(channels[i] * channels[j]) - mean_guide[i] * mean_guide[j]
        return value + eps if i == j else value

    # Per-pixel 3x3 symmetric covariance, inverted in closed form (adjugate / determinant).
    a, b, c = covariance(0, 0), covariance(0, 1), covariance(0, 2)
    d, e, f = covariance(1, 1), covariance(1, 2), covariance(2, 2)
    inv_00, inv_01, inv_02 = d * f - e * e, c * e - b * f, b * e - c * d
    inv_11, inv_12, inv_22 = a * f - c * c, b * c - a * e, a * d - b * b
    determinant = a * inv_00 + b * inv_01 + c * inv_02
    slope = [
        (inv_00 * cov_source[0] + inv_01 * cov_source[1] + inv_02 * cov_source[2]) / determinant,
        (inv_01 * cov_source[0] + inv_11 * cov_source[1] + inv_12 * cov_source[2]) / determinant,
        (inv_02 * cov_source[0] + inv_12 * cov_source[1] + inv_22 * cov_source[2]) / determinant,
    ]
    offset = mean_source - sum(k * m for k, m in zip(slope, mean_guide))
    return sum(box_mean(k) * channel for k, channel in zip(slope, channels)) + box_mean(offset)
