"""Classical enhancement for low-quality frames: upscale, denoise, sharpen.

Each configured step either runs or records why it did not, so the metadata
says exactly what happened to a frame. The neural backends (Real-ESRGAN for
``upscale``, CodeFormer for ``face_enhance``) slot in per step later; until
then ``face_enhance`` is reported as not applied rather than faked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Below this noise sigma (grey levels) a frame counts as clean: NL-means would only smear it.
CLEAN_NOISE_SIGMA = 2.0
# fastNlMeans filter strength per unit of noise sigma, and its sane range.
DENOISE_STRENGTH_PER_SIGMA = 0.9
DENOISE_STRENGTH_RANGE = (2.0, 25.0)
SHARPEN_SIGMA = 1.0
SHARPEN_AMOUNT = 0.8
# Detail smaller than this (grey levels), or than a few noise sigmas, is left
# alone so flat shading and residual noise are not amplified.
SHARPEN_MIN_THRESHOLD = 2.0
SHARPEN_NOISE_MULTIPLE = 2.5
# The fraction of flattest pixels the noise estimate is measured on.
NOISE_ESTIMATE_FLAT_FRACTION = 0.3


@dataclass
class EnhanceStep:
    step: str
    applied: bool
    backend: str
    reason: str


def enhance_classical(image_bgr: np.ndarray, analysis: dict | None, cfg: dict) -> tuple[np.ndarray, list[EnhanceStep]]:
    """Run ``cfg['enhancement_steps']`` in order (``cfg`` is the enhance_segment block)."""
    analysis = analysis or {}
    image = image_bgr
    # Interpolation makes noise spatially smooth, so after an upscale the noise
    # is measured on every n-th pixel, the grid the source was sampled on.
    source_grid = 1
    steps = []
    for step in cfg["enhancement_steps"]:
        if step == "upscale":
            image, record = _upscale(image, int(cfg["upscale_below"]), float(cfg["upscale_factor"]))
            if record.applied:
                source_grid *= max(1, round(float(cfg["upscale_factor"])))
        elif step == "denoise":
            image, record = _denoise(image, _noise_on_grid(image, source_grid), analysis)
        elif step == "face_enhance":
            record = EnhanceStep(step, False, "none", "no face-restoration model in classical mode")
        elif step == "sharpen":
            image, record = _sharpen(image, _noise_on_grid(image, source_grid))
        else:
            raise ValueError(f"unknown enhancement step {step!r}")
        steps.append(record)
    return image, steps


def estimate_noise_sigma(image_bgr: np.ndarray) -> float:
    """Noise standard deviation in grey levels (Immerkaer's method on the flattest pixels).

    The 3x3 kernel cancels constant and linearly shaded regions, which is what
    most of an animated frame is, so what remains on flat pixels is noise.
    Measured per colour channel; the median channel is returned.
    """
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    # Structure is judged on a smoothed copy so that noise does not decide what is "flat".
    smoothed = cv2.GaussianBlur(gray, (0, 0), 1.5)
    gradient = np.hypot(cv2.Sobel(smoothed, cv2.CV_32F, 1, 0), cv2.Sobel(smoothed, cv2.CV_32F, 0, 1))
    flat = gradient <= np.quantile(gradient, NOISE_ESTIMATE_FLAT_FRACTION)
    flat[[0, -1], :] = False
    flat[:, [0, -1]] = False
    if not flat.any():
        return 0.0
    sigmas = []
    for channel in cv2.split(image_bgr.astype(np.float32)):
        response = np.abs(cv2.filter2D(channel, cv2.CV_32F, kernel))
        sigmas.append(math.sqrt(math.pi / 2) * float(response[flat].mean()) / 6.0)
    return float(np.median(sigmas))


def _noise_on_grid(image: np.ndarray, step: int) -> float:
    return estimate_noise_sigma(np.ascontiguousarray(image[::step, ::step]))


def _upscale(image: np.ndarray, upscale_below: int, factor: float) -> tuple[np.ndarray, EnhanceStep]:
    height, width = image.shape[:2]
    longest = max(height, width)
    if longest >= upscale_below:
        return image, EnhanceStep("upscale", False, "lanczos", f"longest side {longest} px >= {upscale_below} px")
    if factor <= 1.0:
        return image, EnhanceStep("upscale", False, "lanczos", f"upscale factor {factor:g} <= 1")
    size = (round(width * factor), round(height * factor))
    upscaled = cv2.resize(image, size, interpolation=cv2.INTER_LANCZOS4)
    return upscaled, EnhanceStep(
        "upscale", True, "lanczos", f"longest side {longest} px < {upscale_below} px: x{factor:g} to {size[0]}x{size[1]}"
    )


def _denoise(image: np.ndarray, sigma: float, analysis: dict) -> tuple[np.ndarray, EnhanceStep]:
    # ``sigma`` is measured on the image as this step receives it: an earlier
    # upscale changes the noise, and NL-means strength is in grey levels, which
    # the analysis' 0..1 noise score is not, so that score is only reported.
    seen = f"; analysis noise {analysis['noise']:.2f}" if isinstance(analysis.get("noise"), (int, float)) else ""
    if sigma < CLEAN_NOISE_SIGMA:
        return image, EnhanceStep(
            "denoise", False, "opencv_nlmeans", f"noise sigma {sigma:.1f} < {CLEAN_NOISE_SIGMA:g}: clean{seen}"
        )
    strength = float(np.clip(DENOISE_STRENGTH_PER_SIGMA * sigma, *DENOISE_STRENGTH_RANGE))
    denoised = cv2.fastNlMeansDenoisingColored(image, None, strength, strength, 7, 21)
    return denoised, EnhanceStep(
        "denoise", True, "opencv_nlmeans", f"noise sigma {sigma:.1f}: NL-means h={strength:.1f}{seen}"
    )


def _sharpen(image: np.ndarray, noise_sigma: float) -> tuple[np.ndarray, EnhanceStep]:
    """Unsharp mask on luma only (no colour fringes), thresholded, clamped to avoid halos."""
    luma = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    detail = luma - cv2.GaussianBlur(luma, (0, 0), SHARPEN_SIGMA)
    threshold = max(SHARPEN_MIN_THRESHOLD, SHARPEN_NOISE_MULTIPLE * noise_sigma)
    # Soft knee from threshold to twice the threshold: no visible on/off seams.
    gain = SHARPEN_AMOUNT * np.clip(np.abs(detail) / threshold - 1.0, 0.0, 1.0)
    sharpened = luma + gain * detail
    # Never overshoot the 3x3 neighbourhood's range: that overshoot is what halos are.
    neighbourhood = np.ones((3, 3), np.uint8)
    sharpened = np.clip(sharpened, cv2.erode(luma, neighbourhood), cv2.dilate(luma, neighbourhood))
    # The same offset on B, G and R changes brightness only, so hues stay put.
    offset = (sharpened - luma)[..., None]
    result = np.clip(np.rint(image.astype(np.float32) + offset), 0, 255).astype(np.uint8)
    return result, EnhanceStep(
        "sharpen", True, "unsharp_mask",
        f"unsharp mask sigma {SHARPEN_SIGMA:g}, amount {SHARPEN_AMOUNT:g}, threshold {threshold:.1f}, halo-clamped",
    )
