"""Degradations: pure functions on uint8 BGR images, shared with the tests."""

from __future__ import annotations

import cv2
import numpy as np


def apply_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (defocus / motion-blur stand-in); sigma <= 0 returns a copy."""
    if sigma <= 0:
        return image.copy()
    return cv2.GaussianBlur(image, (0, 0), sigmaX=float(sigma), borderType=cv2.BORDER_REFLECT_101)


def apply_noise(image: np.ndarray, std: float, seed: int) -> np.ndarray:
    """Additive Gaussian sensor noise of ``std`` (0..255 units), reproducible by seed."""
    if std <= 0:
        return image.copy()
    noise = np.random.default_rng(seed).standard_normal(image.shape, dtype=np.float32)
    noisy = image.astype(np.float32) + noise * np.float32(std)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def apply_darkness(image: np.ndarray, amount: float) -> np.ndarray:
    """Underexposure: gain 1-amount plus a shadow-crushing gamma, so mean and contrast drop."""
    if amount <= 0:
        return image.copy()
    levels = np.arange(256, dtype=np.float64) / 255.0
    curve = (1.0 - amount) * levels ** (1.0 + 0.8 * amount)
    lut = np.clip(np.round(curve * 255.0), 0, 255).astype(np.uint8)
    return cv2.LUT(image, lut)


def downscaled_size(width: int, height: int, factor: float) -> tuple[int, int]:
    """Output (width, height) of ``apply_downscale`` for a frame of width x height."""
    if factor <= 1:
        return width, height
    return max(1, round(width / factor)), max(1, round(height / factor))


def apply_downscale(image: np.ndarray, factor: float) -> np.ndarray:
    """Shrink by ``factor`` (area averaging, like a low-resolution source); <= 1 returns a copy."""
    if factor <= 1:
        return image.copy()
    size = downscaled_size(image.shape[1], image.shape[0], factor)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
