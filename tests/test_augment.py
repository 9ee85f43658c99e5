"""3D-safe augmentation: bounds, kept character, aspect, hue, grey noise, determinism and refusals."""

from __future__ import annotations

import functools
import re

import cv2
import numpy as np
import pytest

from frameloom.augment import ALLOWED, AUGMENT_DEFAULTS, FORBIDDEN, augment, forbidden_reason
from frameloom.demo import FrameSpec, render_frame
from frameloom.imageops import NEUTRAL_GREY

PHOTOMETRIC_ONLY = {"augmentations": ["brightness", "contrast", "noise"]}
GEOMETRY_ONLY = {"augmentations": ["crop_scale", "rotation"]}
RESAMPLING_SLACK = 0.005  # kept share measured on the resampled alpha vs. the exact window sum


def premultiplied(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """BGRA cut-out in the house convention: colour premultiplied onto neutral grey by alpha (0..1)."""
    a = alpha[..., None]
    colour = np.clip(image * a + NEUTRAL_GREY * (1 - a) + 0.5, 0, 255).astype(np.uint8)
    return np.dstack([colour, np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8)])


@functools.cache
def frame_cut_out(seed: int = 4, shot: str = "full-body", width: int = 320, height: int = 180) -> np.ndarray:
    """A frame-sized cut-out: the main character's soft-edged silhouette over grey."""
    image, truth = render_frame(FrameSpec(seed=seed, shot=shot, width=width, height=height))
    alpha = cv2.GaussianBlur(truth["masks"][truth["target_index"]].astype(np.float32), (0, 0), 1.0)
    return premultiplied(image, alpha)


@functools.cache
def edge_cut_out() -> np.ndarray:
    """A cut-out whose character stands at the left edge: most 0.8 windows would cut it."""
    image, truth = render_frame(FrameSpec(seed=9, shot="medium", width=180, height=180))
    mask = truth["masks"][truth["target_index"]]
    columns = np.flatnonzero(mask.any(axis=0))
    shift = -int(columns[0])  # the character's left side on the image edge
    moved_image = np.roll(image, shift, axis=1)
    moved_mask = np.roll(mask, shift, axis=1)
    canvas_image = np.full((180, 320, 3), NEUTRAL_GREY, np.uint8)
    canvas_alpha = np.zeros((180, 320), np.float32)
    canvas_image[:, :180], canvas_alpha[:, :180] = moved_image, moved_mask
    return premultiplied(canvas_image, cv2.GaussianBlur(canvas_alpha, (0, 0), 1.0))


def kept_share(original: np.ndarray, variant) -> float:
    """Share of the original alpha mass in the variant: the window is zoomed by 1/scale, so its mass
    in the output is scaled by 1/scale^2."""
    scale = variant.params["crop_scale"]
    return float(variant.image[..., 3].astype(np.float64).sum() * scale**2 / original[..., 3].astype(np.float64).sum())


def hue_degrees(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr.astype(np.float32) / 255, cv2.COLOR_BGR2HSV)[..., 0]


def mean_hue_shift(before: np.ndarray, after: np.ndarray) -> float:
    """Mean absolute hue change (degrees) over saturated pixels that clip in neither image."""
    chroma = before.max(axis=2).astype(np.int16) - before.min(axis=2)
    unclipped = ((before.min(axis=2) > 0) & (before.max(axis=2) < 255)
                 & (after.min(axis=2) > 0) & (after.max(axis=2) < 255))
    saturated = (chroma >= 40) & unclipped  # below ~40 levels of chroma, uint8 rounding alone moves the hue
    shift = np.abs((hue_degrees(after) - hue_degrees(before) + 180) % 360 - 180)
    return float(shift[saturated].mean())


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_BGR2GRAY).astype(np.float64)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


# ---------------------------------------------------------------------------


def test_every_parameter_stays_within_its_bounds():
    cut_out = frame_cut_out()
    variants = [v for seed in range(50) for v in augment(cut_out, {}, seed, 8)]
    assert len(variants) == 400
    scales = {v.params["crop_scale"] for v in variants}
    assert scales == set(AUGMENT_DEFAULTS["crop_scales"])
    rotations = [v.params["rotation"] for v in variants]
    assert max(abs(r) for r in rotations) <= 5.0 and min(rotations) < -4 and max(rotations) > 4
    assert all(0.9 <= v.params["brightness"] <= 1.1 for v in variants)
    assert all(0.95 <= v.params["contrast"] <= 1.05 for v in variants)
    assert {v.params["noise_std"] for v in variants} == {0.0, 0.01}
    noisy = sum(v.params["noise_std"] > 0 for v in variants) / len(variants)
    print(f"noise on {noisy:.1%} of 400 variants")
    assert 0.2 <= noisy <= 0.4


def test_noise_is_grey_with_the_configured_strength():
    """On a flat grey image every geometric and gain change leaves a flat image, so what varies is the noise."""
    flat = np.full((96, 96, 3), 128, np.uint8)
    variants = [v for seed in range(100) for v in augment(flat, {}, seed, 4)]
    noisy = [v for v in variants if v.params["noise_std"] > 0]
    for v in variants:
        assert np.array_equal(v.image[..., 0], v.image[..., 1]) and np.array_equal(v.image[..., 1], v.image[..., 2])
    assert all(v.image.std() == 0 for v in variants if v.params["noise_std"] == 0)
    measured = float(np.mean([v.image[..., 0].std() for v in noisy]))
    print(f"noise on {len(noisy)} of {len(variants)} variants, std {measured:.3f} grey levels (expected 2.55)")
    assert 0.2 <= len(noisy) / len(variants) <= 0.4
    assert measured == pytest.approx(0.01 * 255, rel=0.05)


@pytest.mark.parametrize("ratio", [0.6, 0.9])
def test_crop_keeps_the_required_share_of_the_character(ratio):
    cut_out = edge_cut_out()
    cfg = {"min_character_ratio": ratio}
    kept = [kept_share(cut_out, v) for seed in range(40) for v in augment(cut_out, cfg, seed, 3)]
    unconstrained = [kept_share(cut_out, v) for seed in range(40)
                     for v in augment(cut_out, {"min_character_ratio": 0.0}, seed, 3)]
    print(f"ratio {ratio}: kept share min {min(kept):.4f}, without the constraint min {min(unconstrained):.4f}")
    assert min(kept) >= ratio - RESAMPLING_SLACK
    assert min(unconstrained) < ratio  # the constraint really chose the windows


def test_crop_box_has_the_image_aspect_and_is_what_was_applied():
    cut_out = frame_cut_out()
    height, width = cut_out.shape[:2]
    for seed in range(20):
        for v in augment(cut_out, {"augmentations": ["crop_scale"]}, seed, 3):
            x, y, w, h = v.params["crop_box"]
            scale = v.params["crop_scale"]
            assert v.image.shape == cut_out.shape
            assert abs(w - scale * width) <= 0.5 and abs(h - scale * height) <= 0.5
            assert 0 <= x <= width - w and 0 <= y <= height - h
            expected = cv2.resize(cut_out[y:y + h, x:x + w], (width, height), interpolation=cv2.INTER_LINEAR)
            assert np.abs(v.image.astype(np.int16) - expected).mean() < 1.5


def test_character_mask_guides_the_crop_of_a_frame():
    image, truth = render_frame(FrameSpec(seed=9, shot="close-up", width=320, height=180))
    mask = truth["masks"][truth["target_index"]]
    for seed in range(30):
        for v in augment(image, {"augmentations": ["crop_scale"], "min_character_ratio": 0.9}, seed, 2,
                         character_mask=mask):
            x, y, w, h = v.params["crop_box"]
            assert v.image.shape == image.shape
            assert mask[y:y + h, x:x + w].sum() >= 0.9 * mask.sum()
    with pytest.raises(ValueError, match="character_mask"):
        augment(image, {}, 0, 1, character_mask=mask[:, :-1])


def test_hue_is_preserved():
    frame, _ = render_frame(FrameSpec(seed=11, background="cluttered", width=320, height=180))
    shifts = [mean_hue_shift(frame, v.image) for seed in range(20)
              for v in augment(frame, {**PHOTOMETRIC_ONLY, "noise_probability": 0.5}, seed, 1)]
    cut_out = frame_cut_out()
    opaque = cut_out[..., 3] == 255
    cut_out_shifts = [mean_hue_shift(cut_out[..., :3][opaque][None], v.image[..., :3][opaque][None])
                      for seed in range(20) for v in augment(cut_out, PHOTOMETRIC_ONLY, seed, 1)]
    print(f"mean hue shift: frame up to {max(shifts):.3f} deg, cut-out up to {max(cut_out_shifts):.3f} deg")
    assert max(shifts) < 1.0 and max(cut_out_shifts) < 1.0
    hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + 3) % 180  # a real hue shift of 6 degrees
    assert mean_hue_shift(frame, cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)) > 4  # the measure would see it


def test_alpha_and_backdrop_are_never_brightened_or_noised():
    cut_out = frame_cut_out()
    loud = {"brightness_range": [1.1, 1.1], "noise_probability": 1.0}
    for seed in range(10):
        changed, = augment(cut_out, loud, seed, 1)
        geometry, = augment(cut_out, GEOMETRY_ONLY, seed, 1)  # same streams: same crop and rotation
        assert changed.params["crop_box"] == geometry.params["crop_box"]
        assert np.array_equal(changed.image[..., 3], geometry.image[..., 3])
        transparent = changed.image[..., 3] == 0
        assert np.all(changed.image[..., :3][transparent] == NEUTRAL_GREY)


def test_same_seed_same_variants():
    cut_out = frame_cut_out()
    first, again = augment(cut_out, {}, 42, 3), augment(cut_out, {}, 42, 3)
    assert [v.params for v in first] == [v.params for v in again]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    shorter = augment(cut_out, {}, 42, 2)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(shorter, first[:2], strict=True))
    assert first[0].params != augment(cut_out, {}, 43, 1)[0].params


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
def test_forbidden_augmentations_are_refused_with_the_reason(name):
    reason = FORBIDDEN[name]
    assert forbidden_reason(name) == reason
    assert forbidden_reason(name.replace("_", "-").upper()) == reason
    with pytest.raises(ValueError, match=re.escape(reason)):
        augment(frame_cut_out(), {"augmentations": ["rotation", name]}, 0, 1)


def test_allowed_and_unknown_names():
    assert all(forbidden_reason(name) is None for name in ALLOWED)
    with pytest.raises(ValueError, match="unknown augmentation 'swirl'"):
        augment(frame_cut_out(), {"augmentations": ["swirl"]}, 0, 1)
    with pytest.raises(ValueError, match="uint8 BGR or BGRA"):
        augment(np.zeros((8, 8), np.uint8), {}, 0, 1)


def test_no_variant_is_ever_mirrored():
    """An asymmetric frame (dark-to-bright ramp, a bright disc on the left): every variant matches the
    original clearly better than its mirror image, while a mirrored variant would do the opposite."""
    ramp = np.tile(np.linspace(30, 220, 320, dtype=np.float32), (180, 1))
    cv2.circle(ramp, (70, 90), 40, 250, -1)
    image = cv2.merge([ramp, ramp * 0.8, ramp * 0.6]).astype(np.uint8)
    original, mirrored = grey(image), grey(image[:, ::-1])

    def margin(candidate: np.ndarray) -> float:
        return correlation(grey(candidate), original) - correlation(grey(candidate), mirrored)

    variants = [v.image for seed in range(100) for v in augment(image, {}, seed, 1)]
    margins = [margin(variant) for variant in variants]
    flipped = [margin(variant[:, ::-1]) for variant in variants]
    print(f"correlation with the original minus with its mirror: min {min(margins):.3f} "
          f"(a flipped variant: max {max(flipped):.3f})")
    assert min(margins) > 0.4
    assert max(flipped) < -0.4
