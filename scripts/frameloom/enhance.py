"""Enhancement for low-quality frames: upscale, denoise, deblur, face restoration, sharpen.

Each configured step either runs or records why it did not, so the metadata
says exactly what happened to a frame. Upscaling uses Real-ESRGAN and face
restoration CodeFormer (or GFPGAN) when the job's backends have their
weights; otherwise upscaling is Lanczos and face restoration is reported as
not applied rather than faked. An identity guard compares the character
before and after and keeps the unenhanced frame when they drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .face_restore import FFHQ_ALIGNMENT

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
# Richardson-Lucy deconvolution with a Gaussian point spread function.
DEBLUR_PSF_SIGMA = 1.5
DEBLUR_ITERATIONS = 10
# Identity guard: the character, compared at this size before and after.
GUARD_SIZE = 64


@dataclass
class EnhanceStep:
    step: str
    applied: bool
    backend: str
    reason: str


@dataclass
class EnhanceState:
    """Where a frame's enhancement stands between the model steps that share it: the
    frame's width (for the analysis' boxes) and the grid its pixels were sampled on."""

    frame_width: int
    # Interpolation makes noise spatially smooth, so after an upscale the noise
    # is measured on every n-th pixel, the grid the source was sampled on.
    source_grid: int = 1


def split_at_face_restoration(names: list[str]) -> tuple[list[str], list[str]]:
    """The enhancement steps the upscale model step runs (those before face_enhance) and
    those the face-restoration step runs (face_enhance and after): one model each."""
    cut = names.index("face_enhance") if "face_enhance" in names else len(names)
    return list(names[:cut]), list(names[cut:])


def run_steps(image: np.ndarray, analysis: dict, cfg: dict, names: list[str], models,
              state: EnhanceState) -> tuple[np.ndarray, list[EnhanceStep]]:
    """Run the enhancement steps ``names`` in order on ``image`` (already enhanced as far as
    ``state`` says; updated in place). ``models`` (a job's ``Backends``) provides
    ``upscaler()`` and ``face_restorer()``, each ``(model or None, name)``; without it
    every step is classical."""
    steps = []
    for step in names:
        scale = image.shape[1] / state.frame_width
        if step == "upscale":
            upscaler = models.upscaler() if models else (None, "lanczos")
            upscaled, record = _upscale(image, analysis, cfg, upscaler)
            if record.applied:
                state.source_grid *= max(1, round(upscaled.shape[1] / image.shape[1]))
            image = upscaled
        elif step == "denoise":
            image, record = _denoise(image, _noise_on_grid(image, state.source_grid), analysis)
        elif step == "deblur":
            image, record = _deblur(image, _subject_box(analysis, scale), float(cfg["deblur_below"]))
        elif step == "face_enhance":
            restorer = models.face_restorer() if models else (None, "none: no face-restoration model")
            image, record = _restore_faces(image, analysis, scale, restorer)
        elif step == "sharpen":
            image, record = _sharpen(image, _noise_on_grid(image, state.source_grid))
        else:
            raise ValueError(f"unknown enhancement step {step!r}")
        steps.append(record)
    return image, steps


def enhance(image_bgr: np.ndarray, analysis: dict | None, cfg: dict,
            models=None) -> tuple[np.ndarray, list[EnhanceStep]]:
    """Run ``cfg['enhancement_steps']`` in order (``cfg`` is the enhance_segment block), then the identity guard."""
    analysis = analysis or {}
    image, steps = run_steps(image_bgr, analysis, cfg, cfg["enhancement_steps"], models,
                             EnhanceState(image_bgr.shape[1]))
    return identity_guard(image_bgr, image, analysis, float(cfg["identity_max_drift"]), steps)


def _scaled(box, scale: float) -> list[int] | None:
    return [int(round(v * scale)) for v in box] if box else None


def _subject_box(analysis: dict, scale: float) -> list[int] | None:
    return _scaled(analysis.get("foreground_box"), scale)


def laplacian_variance(gray: np.ndarray) -> float:
    return float(cv2.Laplacian(gray, cv2.CV_64F).var()) if gray.size else 0.0


def _deblur(image: np.ndarray, subject_box, deblur_below: float) -> tuple[np.ndarray, EnhanceStep]:
    """Richardson-Lucy on luma, only for a blurred frame whose subject is blurred too.

    A sharp subject in a soft frame is intentional depth of field: left alone.
    """
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    frame_var = laplacian_variance(gray)
    if frame_var >= deblur_below:
        return image, EnhanceStep("deblur", False, "richardson_lucy",
                                  f"Laplacian variance {frame_var:.0f} >= {deblur_below:g}: sharp")
    if subject_box:
        x, y, w, h = subject_box
        subject_var = laplacian_variance(gray[max(0, y):y + h, max(0, x):x + w])
        if subject_var >= deblur_below:
            return image, EnhanceStep("deblur", False, "richardson_lucy",
                                      f"depth of field: subject sharp ({subject_var:.0f}) "
                                      f"in a soft frame ({frame_var:.0f})")
    luma = gray.astype(np.float32) + 1.0
    estimate = luma.copy()
    for _ in range(DEBLUR_ITERATIONS):
        blurred = cv2.GaussianBlur(estimate, (0, 0), DEBLUR_PSF_SIGMA) + 1e-3
        estimate *= cv2.GaussianBlur(luma / blurred, (0, 0), DEBLUR_PSF_SIGMA)
    # Bounded to the 3x3 neighbourhood's range, like the sharpen step: no ringing halos.
    neighbourhood = np.ones((3, 3), np.uint8)
    estimate = np.clip(estimate, cv2.erode(luma, neighbourhood), cv2.dilate(luma, neighbourhood))
    offset = (estimate - luma)[..., None]
    result = np.clip(np.rint(image.astype(np.float32) + offset), 0, 255).astype(np.uint8)
    return result, EnhanceStep("deblur", True, "richardson_lucy",
                               f"Laplacian variance {frame_var:.0f} < {deblur_below:g}: "
                               f"{DEBLUR_ITERATIONS} iterations, Gaussian PSF sigma {DEBLUR_PSF_SIGMA:g}")


def _restore_faces(image: np.ndarray, analysis: dict, scale: float, restorer) -> tuple[np.ndarray, EnhanceStep]:
    model, name = restorer
    if model is None:
        return image, EnhanceStep("face_enhance", False, "none", name.split(": ", 1)[-1])
    faces = analysis.get("faces", [])
    boxes = [_scaled(face["box"], scale) for face in faces]
    if not boxes:
        return image, EnhanceStep("face_enhance", False, name, "no face detected in the analysis")
    # The detector's five landmarks, on the upscaled grid: those faces are aligned to the FFHQ template.
    landmarks = [None if face.get("landmarks") is None else [[x * scale, y * scale] for x, y in face["landmarks"]]
                 for face in faces]
    restored, records = model.restore(image, boxes, landmarks)
    kept = [r for r in records if not r["applied"]]
    aligned = sum(1 for r in records if r["applied"] and r["alignment"] == FFHQ_ALIGNMENT)
    reason = f"{len(records) - len(kept)} of {len(records)} face(s) restored ({aligned} aligned to the FFHQ template)"
    if kept:
        reason += "; " + "; ".join(r["reason"] for r in kept)
    return restored, EnhanceStep("face_enhance", len(kept) < len(records), name, reason)


def character_drift(before: np.ndarray, after: np.ndarray) -> float:
    """0 (same character) .. 1: structure (luma correlation) and colour (hue-chroma histogram) at a common size."""
    size = (GUARD_SIZE, GUARD_SIZE)
    a = cv2.resize(before, size, interpolation=cv2.INTER_AREA)
    b = cv2.resize(after, size, interpolation=cv2.INTER_AREA)
    luma_a = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY).astype(np.float32).ravel()
    luma_b = cv2.cvtColor(b, cv2.COLOR_BGR2GRAY).astype(np.float32).ravel()
    if luma_a.std() < 1e-3 or luma_b.std() < 1e-3:
        structure = 0.0 if np.allclose(luma_a, luma_b, atol=2) else 1.0
    else:
        structure = 1.0 - max(0.0, float(np.corrcoef(luma_a, luma_b)[0, 1]))
    hist = [cv2.calcHist([cv2.cvtColor(x, cv2.COLOR_BGR2Lab)], [1, 2], None, [16, 16], [0, 256, 0, 256])
            for x in (a, b)]
    colour = float(cv2.compareHist(cv2.normalize(hist[0], None), cv2.normalize(hist[1], None), cv2.HISTCMP_HELLINGER))
    return round(min(1.0, 0.6 * structure + 0.4 * colour), 4)


def identity_guard(original: np.ndarray, enhanced: np.ndarray, analysis: dict, max_drift: float,
                    steps: list[EnhanceStep]) -> tuple[np.ndarray, list[EnhanceStep]]:
    """Keep the unenhanced frame when the character no longer looks like itself (``steps``: every
    enhancement step the frame went through, in order)."""
    if not any(step.applied for step in steps):
        return enhanced, steps
    box = analysis.get("foreground_box") or [0, 0, original.shape[1], original.shape[0]]
    x, y, w, h = box
    scale = enhanced.shape[1] / original.shape[1]
    before = original[y:y + h, x:x + w]
    ex, ey, ew, eh = _scaled(box, scale)
    after = enhanced[ey:ey + eh, ex:ex + ew]
    if before.size == 0 or after.size == 0:
        return enhanced, steps
    drift = character_drift(before, after)
    if drift > max_drift:
        return original, steps + [EnhanceStep("identity_guard", True, "character_drift",
                                              f"drift {drift:.2f} > {max_drift:g}: kept the unenhanced frame")]
    return enhanced, steps + [EnhanceStep("identity_guard", False, "character_drift",
                                          f"drift {drift:.2f} <= {max_drift:g}: enhancement kept")]


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


def _upscale(image: np.ndarray, analysis: dict, cfg: dict, upscaler) -> tuple[np.ndarray, EnhanceStep]:
    """Upscale only small material: the frame, or the character in it, under ``upscale_below`` px."""
    model, name = upscaler
    backend = name if model is not None else "lanczos"
    upscale_below, factor = int(cfg["upscale_below"]), float(cfg["upscale_factor"])
    height, width = image.shape[:2]
    subject = analysis.get("foreground_box")
    frame_side = max(height, width)
    subject_side = max(subject[2], subject[3]) if subject else frame_side
    if min(frame_side, subject_side) >= upscale_below:
        return image, EnhanceStep("upscale", False, backend,
                                  f"frame {frame_side} px and character {subject_side} px >= {upscale_below} px")
    if factor <= 1.0:
        return image, EnhanceStep("upscale", False, backend, f"upscale factor {factor:g} <= 1")
    size = (round(width * factor), round(height * factor))
    small, side = ("frame", frame_side) if frame_side <= subject_side else ("character", subject_side)
    why = f"{small} {side} px < {upscale_below} px: x{factor:g} to {size[0]}x{size[1]}"
    if model is not None:
        return model.upscale(image), EnhanceStep("upscale", True, backend, why)
    upscaled = cv2.resize(image, size, interpolation=cv2.INTER_LANCZOS4)
    note = "" if name == "lanczos" else f" ({name})"
    return upscaled, EnhanceStep("upscale", True, backend, why + note)


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
