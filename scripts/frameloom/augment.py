"""3D-safe augmentation: variants that a film's own camera and grading could have produced.

Allowed: a zoom-in crop that keeps most of the character and the frame's
aspect ratio, a small camera roll, and mild exposure, contrast and grain
changes that leave hue alone. Refused, with the reason (``FORBIDDEN``): flips
(character designs are asymmetric), hue, saturation and colour jitter (the
material colours are part of the identity) and non-rigid warps (the geometry
is rigid 3D). Each variant records exactly what was applied.

Cut-outs (BGRA) keep the house convention: colour premultiplied onto
``NEUTRAL_GREY`` by alpha. Geometry fills with grey and alpha 0, and the
photometric changes act on the character's own colour, so the backdrop stays
exactly grey and alpha is never brightened or noised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from .imageops import NEUTRAL_GREY

ALLOWED = ("crop_scale", "rotation", "brightness", "contrast", "noise")
FORBIDDEN = {
    "horizontal_flip": "mirrors an asymmetric character design (hair parting, accessories, one-sided props)",
    "vertical_flip": "shows the character upside down, which no frame of the film does",
    "hue_shift": "changes the PBR material colours (skin, hair, costume) that identify the character",
    "color_jitter": "shifts the PBR material colours per channel; the colours identify the character",
    "saturation": "changes how saturated the PBR material colours are; the colours identify the character",
    "elastic": "bends rigid 3D geometry in ways the rendered model never deforms",
    "perspective": "a 2D keystone warp distorts rigid 3D proportions instead of moving the camera",
}
AUGMENT_DEFAULTS = {
    "augment_below": 300,  # the caller augments while the set has fewer images
    "variants_per_image": 2,  # the caller's ``count``
    "crop_scales": [0.8, 0.9, 1.0],  # window side / image side
    "min_character_ratio": 0.6,  # share of the character a crop must keep
    "rotation_degrees": 5.0,  # +- camera roll
    "brightness_range": [0.9, 1.1],  # gain on the colour
    "contrast_range": [0.95, 1.05],  # gain around the mean grey level
    "noise_std": 0.01,  # grey noise, share of the 0..255 range (2.55 levels)
    "noise_probability": 0.3,  # share of the variants that get noise
    "augmentations": list(ALLOWED),
}

# Independent random streams per aspect of a variant: turning one augmentation
# off leaves the draws of the others unchanged.
_STREAM_CROP, _STREAM_ROTATION, _STREAM_BRIGHTNESS, _STREAM_CONTRAST, _STREAM_NOISE = range(5)
ROTATION_DECIMALS, GAIN_DECIMALS = 2, 4  # recorded values are rounded first, then applied exactly
Stream = Callable[[int], np.random.Generator]  # the random stream of one aspect of one variant


@dataclass(frozen=True)
class Augmented:
    """One variant: the image (same channel count as the input) and exactly what was applied:
    crop_scale, crop_box [x, y, w, h] (in the rotated image), rotation (degrees, counter-clockwise),
    brightness, contrast, noise_std (share of 255; 0 when none)."""

    image: np.ndarray
    params: dict


def _name_key(name: str) -> str:
    """"Horizontal-Flip", "horizontal flip" and "horizontal_flip" name the same augmentation."""
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def forbidden_reason(name: str) -> str | None:
    """Why an augmentation is refused for 3D-animated characters; None when it is not refused."""
    return FORBIDDEN.get(_name_key(name))


def _checked_settings(cfg: dict) -> dict:
    """The config over AUGMENT_DEFAULTS; a forbidden or unknown augmentation is a ValueError."""
    settings = {**AUGMENT_DEFAULTS, **cfg}
    for name in settings["augmentations"]:
        reason = forbidden_reason(name)
        if reason:
            raise ValueError(f"augmentation {name!r} is refused: {reason}")
        if _name_key(name) not in ALLOWED:
            raise ValueError(f"unknown augmentation {name!r}; allowed: {', '.join(ALLOWED)}")
    settings["augmentations"] = [_name_key(name) for name in settings["augmentations"]]
    if not settings["crop_scales"] or any(not 0 < scale <= 1 for scale in settings["crop_scales"]):
        raise ValueError(f"crop_scales must be in (0, 1], got {settings['crop_scales']}")
    return settings


def _character_weights(image: np.ndarray, character_mask: np.ndarray | None) -> np.ndarray:
    """float32 0..1 map of where the character is: the mask, else the alpha, else the whole frame."""
    if character_mask is not None:
        if character_mask.shape != image.shape[:2]:
            raise ValueError(f"character_mask {character_mask.shape} does not match the image {image.shape[:2]}")
        scale = 255.0 if character_mask.dtype == np.uint8 else 1.0
        return character_mask.astype(np.float32) / scale
    if image.shape[2] == 4:
        return image[..., 3].astype(np.float32) / 255.0
    return np.ones(image.shape[:2], np.float32)


def _rotation_matrix(width: int, height: int, degrees: float) -> np.ndarray:
    """3x3 rotation about the image centre."""
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), degrees, 1.0)
    return np.vstack([matrix, [0.0, 0.0, 1.0]])


def _crop_matrix(x0: int, y0: int, scale: float) -> np.ndarray:
    """3x3 map of the window of side ``scale`` at pixel (x0, y0) onto the whole image: a uniform
    zoom by 1/scale, so the aspect ratio is kept exactly (pixel edges map to pixel edges)."""
    zoom = 1.0 / scale
    return np.array([[zoom, 0.0, (0.5 - x0) * zoom - 0.5],
                     [0.0, zoom, (0.5 - y0) * zoom - 0.5],
                     [0.0, 0.0, 1.0]])


def _kept_shares(weights: np.ndarray, total: float, width: int, height: int) -> np.ndarray:
    """Share of the character inside every width x height window (rows: y0, columns: x0)."""
    integral = cv2.integral(weights, sdepth=cv2.CV_64F)
    rows, columns = weights.shape[0] - height + 1, weights.shape[1] - width + 1
    inside = (integral[height:, width:] - integral[:rows, width:]
              - integral[height:, :columns] + integral[:rows, :columns])
    return inside / total if total > 0 else np.ones_like(inside)


def _choose_crop(weights: np.ndarray, total: float, scales: list[float], min_ratio: float,
                 rng: np.random.Generator) -> tuple[float, list[int]]:
    """A random scale among those with a window keeping min_ratio of the character, and a random such
    window; the whole image (scale 1) when no configured scale can keep enough."""
    height, width = weights.shape
    options = []
    for scale in sorted(set(scales)):
        box_w, box_h = max(1, round(scale * width)), max(1, round(scale * height))
        feasible = np.flatnonzero(_kept_shares(weights, total, box_w, box_h) >= min_ratio)
        if feasible.size:
            options.append((scale, box_w, box_h, feasible))
    if not options:
        return 1.0, [0, 0, width, height]
    scale, box_w, box_h, feasible = options[rng.integers(len(options))]
    y0, x0 = divmod(int(rng.choice(feasible)), width - box_w + 1)
    return float(scale), [x0, y0, box_w, box_h]


def _warp(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Rotation and crop in one resampling. BGR fills with the nearest edge colour; a cut-out's
    colour fills with the neutral grey and its alpha with 0, which keeps it premultiplied on grey."""
    height, width = image.shape[:2]
    affine = matrix[:2]
    if image.shape[2] == 3:
        return cv2.warpAffine(image, affine, (width, height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    colour = cv2.warpAffine(np.ascontiguousarray(image[..., :3]), affine, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(NEUTRAL_GREY,) * 3)
    alpha = cv2.warpAffine(np.ascontiguousarray(image[..., 3]), affine, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.dstack([colour, alpha])


def _coverage(image: np.ndarray) -> np.ndarray:
    """(H, W, 1) float32 alpha 0..1; 1 everywhere for BGR."""
    if image.shape[2] == 4:
        return image[..., 3:].astype(np.float32) / 255.0
    return np.ones((*image.shape[:2], 1), np.float32)


def _apply_photometry(image: np.ndarray, brightness: float, contrast: float,
                      noise: np.ndarray | None) -> np.ndarray:
    """Brightness, then contrast around the character's mean level, then grey noise.

    On the character's own colour x: x' = brightness * x, contrast around
    the mean m of x', plus noise, the same for B, G and R, so channel
    differences only scale and hue is kept. A cut-out stores
    c = grey + a (x - grey); the same change applied there is
    c' = grey + g (c - grey) + a ((g - 1) grey + o + noise) with g, o the
    combined gain and offset, so the backdrop (a = 0) stays grey.
    """
    colour = image[..., :3].astype(np.float32)
    coverage = _coverage(image)
    weight = float(coverage.sum())
    own_colour = colour - NEUTRAL_GREY * (1.0 - coverage)  # a * x
    mean = float(own_colour.sum()) / (3.0 * weight) if weight > 0 else float(NEUTRAL_GREY)
    gain = brightness * contrast
    offset = brightness * mean * (1.0 - contrast)
    shift = (gain - 1.0) * NEUTRAL_GREY + offset
    if noise is not None:
        shift = shift + noise[..., None]
    result = NEUTRAL_GREY + gain * (colour - NEUTRAL_GREY) + coverage * shift
    out = np.clip(np.rint(result), 0, 255).astype(np.uint8)
    return np.dstack([out, image[..., 3]]) if image.shape[2] == 4 else out


def _draw_geometry(weights: np.ndarray, total: float, settings: dict,
                   stream: Stream) -> tuple[float, float, list[int]]:
    """(rotation degrees, crop scale, crop box): the box is chosen on the rotated character."""
    height, width = weights.shape
    enabled = settings["augmentations"]
    degrees = 0.0
    if "rotation" in enabled:
        limit = settings["rotation_degrees"]
        degrees = round(float(stream(_STREAM_ROTATION).uniform(-limit, limit)), ROTATION_DECIMALS)
    if "crop_scale" not in enabled:
        return degrees, 1.0, [0, 0, width, height]
    rotated = cv2.warpAffine(weights, _rotation_matrix(width, height, degrees)[:2], (width, height),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    scale, box = _choose_crop(rotated, total, settings["crop_scales"], settings["min_character_ratio"],
                              stream(_STREAM_CROP))
    return degrees, scale, box


def _draw_photometry(shape: tuple[int, int], settings: dict,
                     stream: Stream) -> tuple[float, float, float, np.ndarray | None]:
    """(brightness, contrast, noise std as a share of 255, noise field in grey levels or None)."""
    enabled = settings["augmentations"]
    brightness = contrast = 1.0
    if "brightness" in enabled:
        brightness = round(float(stream(_STREAM_BRIGHTNESS).uniform(*settings["brightness_range"])), GAIN_DECIMALS)
    if "contrast" in enabled:
        contrast = round(float(stream(_STREAM_CONTRAST).uniform(*settings["contrast_range"])), GAIN_DECIMALS)
    noise_rng = stream(_STREAM_NOISE)
    if "noise" not in enabled or noise_rng.random() >= settings["noise_probability"]:
        return brightness, contrast, 0.0, None
    noise_std = float(settings["noise_std"])
    noise = noise_rng.standard_normal(shape, dtype=np.float32) * np.float32(noise_std * 255.0)
    return brightness, contrast, noise_std, noise


def _variant(image: np.ndarray, weights: np.ndarray, total: float, settings: dict, seed: int,
             index: int) -> Augmented:
    """Variant ``index`` of the image, each aspect drawn from its own stream of (seed, index)."""
    def stream(aspect: int) -> np.random.Generator:
        return np.random.default_rng([seed, index, aspect])

    height, width = image.shape[:2]
    degrees, scale, box = _draw_geometry(weights, total, settings, stream)
    brightness, contrast, noise_std, noise = _draw_photometry((height, width), settings, stream)
    warped = _warp(image, _crop_matrix(box[0], box[1], scale) @ _rotation_matrix(width, height, degrees))
    params = {"crop_scale": scale, "crop_box": box, "rotation": degrees, "brightness": brightness,
              "contrast": contrast, "noise_std": noise_std}
    return Augmented(_apply_photometry(warped, brightness, contrast, noise), params)


def augment(image: np.ndarray, cfg: dict, seed: int, count: int,
            character_mask: np.ndarray | None = None) -> list[Augmented]:
    """``count`` variants of one BGR frame or BGRA cut-out, deterministic for a seed
    (variant k does not depend on ``count``).

    ``cfg`` overrides AUGMENT_DEFAULTS; only cfg["augmentations"] are applied,
    and a forbidden one raises ValueError with the reason. The crop keeps
    min_character_ratio of the character, measured after the rotation: the
    ``character_mask`` when given (bool, or uint8 0..255), else the cut-out's
    alpha mass, else the whole frame (then any scale >= sqrt(ratio) fits, and
    the whole frame is the honest default when nobody told us where the
    character is). Noise goes to noise_probability of the variants.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"augment needs a uint8 BGR or BGRA image, got {image.dtype} {image.shape}")
    settings = _checked_settings(cfg)
    weights = _character_weights(image, character_mask)
    total = float(weights.sum())
    return [_variant(image, weights, total, settings, seed, index) for index in range(count)]
