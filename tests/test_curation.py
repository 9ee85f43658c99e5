"""Curation: each quality filter catches its defect, colour normalisation keeps hue, matting mends rough alphas."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from frameloom.curation import (
    EDGE_SCORE_HALF,
    QUALITY_DEFAULTS,
    measure_quality,
    normalize_colour,
    quality_failures,
    refine_alpha,
)
from frameloom.demo import FrameSpec, apply_blur, apply_darkness, render_frame
from frameloom.imageops import NEUTRAL_GREY, uniform_background
from frameloom.matte import soft_alpha
from frameloom.measures import DETAIL_SIZE, measure_sharpness
from frameloom.strategies import cutout

FRAME_SPECS = [FrameSpec(seed=seed, background=background, shot=shot)
               for seed, background, shot in ((0, "plain", "medium"), (1, "cluttered", "close-up"),
                                              (2, "plain", "full-body"), (3, "cluttered", "medium"))]


def failed(image, source=None, faces=None, face_expected=False, cfg=None) -> list[str]:
    return [f["filter"] for f in quality_failures(measure_quality(image, source, faces), cfg or {}, face_expected)]


def with_saturation(image: np.ndarray, factor: float) -> np.ndarray:
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * factor, 0, 255)
    return cv2.cvtColor(hsv.round().astype(np.uint8), cv2.COLOR_HSV2BGR)


@pytest.fixture(scope="module")
def frames():
    return [render_frame(spec) for spec in FRAME_SPECS]


@pytest.fixture(scope="module")
def plain_frame():
    return render_frame(FrameSpec(seed=0))[0]


# ----------------------------------------------------------------------------
# Quality measurement and filters.


def test_clean_frames_pass_every_filter(frames):
    for image, truth in frames:
        face = truth["face_boxes"][0]
        assert face is not None and face[3] >= QUALITY_DEFAULTS["min_face_size"]
        measures = measure_quality(image, source=image, faces=[face])
        assert measures["saturation_ratio"] == 1.0 and measures["face_size"] == face[3]
        assert quality_failures(measures, QUALITY_DEFAULTS, face_expected=True) == []


def test_blur_fails_blur_threshold_and_edge_score(frames):
    for image, _ in frames:
        blurred = apply_blur(image, 2.0)
        assert failed(blurred, source=image) == ["blur_threshold", "edge_score"]


def test_dark_and_blown_out_fail_brightness(frames):
    image = frames[0][0]
    dark = apply_darkness(image, 0.85)
    blown = cv2.addWeighted(image, 0.3, np.full_like(image, 255), 0.7, 0)
    assert measure_quality(dark)["brightness"] < 30
    assert measure_quality(blown)["brightness"] > 220
    assert "brightness_range" in failed(dark)
    assert "brightness_range" in failed(blown)


def test_washed_out_and_blown_up_colours_fail_saturation(plain_frame):
    washed = with_saturation(plain_frame, 0.2)
    loud = with_saturation(plain_frame, 3.0)
    assert measure_quality(washed, source=plain_frame)["saturation_ratio"] < 0.3
    assert measure_quality(loud, source=plain_frame)["saturation_ratio"] > 2.0
    assert failed(washed, source=plain_frame) == ["saturation_range"]
    assert failed(loud, source=plain_frame) == ["saturation_range"]
    # Without a source, or against a grey one, there is nothing to compare.
    grey_source = cv2.cvtColor(cv2.cvtColor(plain_frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert measure_quality(washed)["saturation_ratio"] == 1.0
    assert measure_quality(washed, source=grey_source)["saturation_ratio"] == 1.0


def test_small_face_fails_only_when_a_face_is_expected(plain_frame):
    small = [[300, 60, 40, 40], [10, 10, 20, 30]]
    assert failed(plain_frame, faces=small, face_expected=True) == ["min_face_size"]
    assert failed(plain_frame, faces=small, face_expected=False) == []
    assert failed(plain_frame, faces=None, face_expected=True) == []
    failure = quality_failures(measure_quality(plain_frame, faces=small), {}, True)[0]
    assert failure == {"filter": "min_face_size", "value": 40, "limit": 64}


def test_failures_come_in_the_fixed_order_with_values_and_limits():
    measures = {"laplacian_variance": 5.0, "brightness": 250.0, "saturation_ratio": 0.1,
                "edge_score": 0.1, "face_size": 20}
    failures = quality_failures(measures, {"brightness_range": [10, 200]}, face_expected=True)
    assert [f["filter"] for f in failures] == list(QUALITY_DEFAULTS)
    assert failures[2] == {"filter": "brightness_range", "value": 250.0, "limit": [10, 200]}
    assert failures[1]["limit"] == QUALITY_DEFAULTS["blur_threshold"]  # keys the config lacks: defaults


def test_detail_measures_are_the_analysis_metrics_on_a_frame(frames):
    for image, _ in frames:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        assert max(grey.shape) <= DETAIL_SIZE
        _, laplacian_variance, parts = measure_sharpness(grey, [])
        measures = measure_quality(image)
        whole = parts["whole_ratio"]
        assert measures["edge_score"] == pytest.approx(whole / (whole + EDGE_SCORE_HALF), abs=1e-4)
        assert measures["laplacian_variance"] == pytest.approx(laplacian_variance, abs=1e-3)


def sparse_character(blur: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A small, dark, finely textured character (straight BGR, soft alpha) on a large frame."""
    rng = np.random.default_rng(7)
    height, width = 360, 480
    texture = cv2.resize(rng.integers(20, 110, (height // 4, width // 4, 3), dtype=np.uint8), (width, height),
                         interpolation=cv2.INTER_NEAREST)
    texture = apply_blur(texture, blur)
    yy, xx = np.mgrid[0:height, 0:width]
    alpha = np.clip(50.5 - np.hypot(xx - 240, yy - 180), 0, 1).astype(np.float32)
    return texture, alpha


def test_cutout_is_measured_on_its_character_only():
    colour, alpha = sparse_character()
    bgra = uniform_background(np.dstack([colour, (alpha * 255).round().astype(np.uint8)]), "grey")
    inside = colour[150:210, 210:270]  # wholly inside the disc
    cut, flat = measure_quality(bgra), measure_quality(bgra[..., :3])
    own = measure_quality(inside)
    # The flat grey backdrop neither reads as blur nor pulls the brightness to grey.
    assert cut["laplacian_variance"] == pytest.approx(own["laplacian_variance"], rel=0.15)
    assert flat["laplacian_variance"] < QUALITY_DEFAULTS["blur_threshold"] < cut["laplacian_variance"]
    assert cut["brightness"] == pytest.approx(colour[alpha > 0.5].mean(), abs=3)
    assert flat["brightness"] > cut["brightness"] + 40
    assert failed(bgra) == []
    # ... and a blurred character is still caught.
    blurred_colour, _ = sparse_character(blur=2.5)
    blurred = uniform_background(np.dstack([blurred_colour, (alpha * 255).round().astype(np.uint8)]), "grey")
    assert failed(blurred) == ["blur_threshold", "edge_score"]


def test_cutout_saturation_is_compared_with_the_same_character(frames):
    image, truth = frames[0]
    bgra, (x, y, w, h) = cutout(image, soft_alpha(image, truth["masks"][0]))
    frame_crop = image[y:y + h, x:x + w]
    assert measure_quality(bgra, source=frame_crop)["saturation_ratio"] == pytest.approx(1.0, abs=0.02)
    upscaled_crop = cv2.resize(frame_crop, (2 * w, 2 * h), interpolation=cv2.INTER_CUBIC)
    assert measure_quality(bgra, source=upscaled_crop)["saturation_ratio"] == pytest.approx(1.0, abs=0.02)
    assert measure_quality(bgra, source=bgra)["saturation_ratio"] == 1.0
    washed = np.dstack([with_saturation(bgra[..., :3], 0.2), bgra[..., 3]])
    assert measure_quality(washed, source=frame_crop)["saturation_ratio"] < 0.3
    with pytest.raises(ValueError, match="frame crop"):
        measure_quality(bgra, source=image)


# ----------------------------------------------------------------------------
# Colour normalisation.


def hue_shift_degrees(before: np.ndarray, after: np.ndarray) -> float:
    """Mean |HSV hue change| in degrees (wrapping at 360) over clearly coloured pixels."""
    hsv_before, hsv_after = (cv2.cvtColor(image[..., :3].astype(np.float32) / 255.0, cv2.COLOR_BGR2HSV)
                             for image in (before, after))
    coloured = (hsv_before[..., 1] > 0.25) & (hsv_before[..., 2] > 0.15)
    assert coloured.sum() > 2000
    shift = np.abs(hsv_before[..., 0] - hsv_after[..., 0])[coloured]
    return float(np.minimum(shift, 360.0 - shift).mean())


def lightness_std(image: np.ndarray) -> float:
    return float(cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2LAB)[..., 0].std())


def hue_gradient(hue: float, height: int = 180, width: int = 240) -> np.ndarray:
    """A low-contrast image of one hue: saturation down, value across, a faint ripple."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    saturation = 0.3 + 0.6 * yy / height
    value = 0.35 + 0.3 * xx / width + 0.05 * np.sin(xx / 6)
    hsv = np.dstack([np.full_like(xx, hue), saturation, value])
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR) * 255 + 0.5, 0, 255).astype(np.uint8)


def test_clahe_keeps_hue_and_raises_contrast(frames):
    low_contrast = [apply_darkness(frames[1][0], 0.5), apply_darkness(frames[2][0], 0.4)]
    gradients = [hue_gradient(hue) for hue in (0, 30, 60, 120, 200, 280, 330)]
    for image in [frame for frame, _ in frames] + low_contrast + gradients:
        result = normalize_colour(image)
        assert result.shape == image.shape and result.dtype == np.uint8
        assert hue_shift_degrees(image, result) < 1.0
    for image in low_contrast + gradients:
        assert lightness_std(normalize_colour(image)) > lightness_std(image) + 2.0


def channel_spread(image: np.ndarray) -> float:
    means = np.array(cv2.mean(image[..., :3])[:3])
    return float(means.std() / means.mean())


def test_white_balance_reduces_a_colour_cast(plain_frame):
    warm = np.array([0.82, 1.0, 1.18], np.float32)  # BGR gains: blue down, red up
    cast = np.clip(plain_frame * warm + 0.5, 0, 255).astype(np.uint8)
    assert channel_spread(cast) > 2 * channel_spread(plain_frame)
    assert channel_spread(normalize_colour(cast, white_balance=True)) < 0.5 * channel_spread(cast)
    assert channel_spread(normalize_colour(cast)) > 0.8 * channel_spread(cast)  # only when asked


def test_normalising_a_cutout_keeps_alpha_and_backdrop(frames):
    image, truth = frames[2]
    bgra, _ = cutout(apply_darkness(image, 0.4), soft_alpha(image, truth["masks"][0]))
    result = normalize_colour(bgra, white_balance=True)
    assert result.shape == bgra.shape and result.dtype == np.uint8
    assert np.array_equal(result[..., 3], bgra[..., 3])
    transparent = bgra[..., 3] == 0
    assert np.array_equal(result[transparent], bgra[transparent])
    assert hue_shift_degrees(bgra, normalize_colour(bgra)) < 1.0
    opaque = bgra[..., 3] == 255
    assert result[opaque][:, :3].std() > bgra[opaque][:, :3].std()
    nothing = np.zeros((8, 8, 4), np.uint8)
    assert np.array_equal(normalize_colour(nothing), nothing)


# ----------------------------------------------------------------------------
# Alpha clean-up.


def disc_scene(height: int, width: int, radius: float, softness: float):
    """(image, true soft alpha, distance from the disc's centre): an orange disc, shaded
    top to bottom, over a green-blue background rippling in all directions."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = np.hypot(xx - width / 2, yy - height / 2)
    true = np.clip((radius - distance) / softness + 0.5, 0, 1)
    foreground = np.dstack([40 + 60 * yy / height, np.full_like(xx, 90), 200 - 40 * xx / width])
    background = np.dstack([150 + 50 * np.sin(xx / 9), 160 + 40 * np.cos(yy / 13), 60 + 30 * np.sin((xx + yy) / 17)])
    image = foreground * true[..., None] + background * (1 - true[..., None])
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), true.astype(np.float32), distance


def jagged_mask(distance: np.ndarray, radius: float, error: float, grow: bool | None) -> np.ndarray:
    """The disc's mask wrong by ``error`` px: grown, shrunk, or (None) alternately both, in 23 teeth."""
    height, width = distance.shape
    yy, xx = np.mgrid[0:height, 0:width]
    teeth = np.sign(np.sin(23 * np.arctan2(yy - height / 2, xx - width / 2)))
    offset = {True: error, False: -error, None: error * teeth}[grow]
    if grow is not None:
        offset = offset * (0.5 + 0.5 * (teeth > 0))  # error/2 and error px, alternating
    return (distance <= radius + offset).astype(np.float32)


def band_error(alpha: np.ndarray, true: np.ndarray, distance: np.ndarray, radius: float) -> float:
    return float(np.abs(alpha - true)[np.abs(distance - radius) <= 8].mean())


@pytest.mark.parametrize("grow", [True, False, None])
def test_matting_mends_a_rough_mask(grow):
    radius = 60.0
    image, true, distance = disc_scene(200, 240, radius, softness=3.0)
    rough = jagged_mask(distance, radius, error=2.0, grow=grow)
    refined = refine_alpha(image, rough, band=4)
    assert refined.shape == rough.shape and refined.dtype == np.float32
    before, after = band_error(rough, true, distance, radius), band_error(refined, true, distance, radius)
    assert after < 0.1 * before
    assert refined[distance < radius - 10].min() == 1.0
    assert refined[distance > radius + 10].max() == 0.0
    edge = np.abs(distance - radius) <= 1
    assert ((refined[edge] > 0.05) & (refined[edge] < 0.95)).mean() > 0.5  # the edge stays soft


def test_matting_a_large_crop_is_bounded_and_still_mends():
    radius = 380.0
    image, true, distance = disc_scene(900, 1200, radius, softness=3.0)
    rough = jagged_mask(distance, radius, error=3.0, grow=None)
    refined = refine_alpha(image, rough)
    assert band_error(refined, true, distance, radius) < 0.15 * band_error(rough, true, distance, radius)
    assert refined[distance < radius - 10].min() == 1.0 and refined[distance > radius + 10].max() == 0.0


def test_nothing_to_matte_comes_back_as_is():
    image = np.full((64, 64, 3), 90, np.uint8)
    empty = np.zeros((64, 64), np.float32)
    assert np.array_equal(refine_alpha(image, empty), empty)
    full = np.ones((64, 64), np.float32)
    assert np.array_equal(refine_alpha(image, full), full)
    almost_full = np.ones((64, 64), np.float32)
    almost_full[:, 40:43] = 0.2  # only a sliver left out: no definite background
    assert np.array_equal(refine_alpha(image, almost_full), almost_full)
    sliver = np.zeros((64, 64), np.float32)
    sliver[10:50, 30:33] = 0.9  # thinner than 2 x band: no definite foreground to anchor a matte
    assert np.array_equal(refine_alpha(image, sliver), sliver)


# ----------------------------------------------------------------------------
# Uniform backdrop.


def test_uniform_background_modes():
    colour = np.array([[[10, 200, 40], [250, 0, 100], [30, 60, 90]]], np.uint8)
    alpha = np.array([[0, 255, 128]], np.uint8)
    bgra = np.dstack([colour, alpha])
    grey = uniform_background(bgra, "grey")
    assert grey.shape == bgra.shape and grey.dtype == np.uint8
    assert grey[0, 0].tolist() == [NEUTRAL_GREY] * 3 + [0]
    assert grey[0, 1].tolist() == [250, 0, 100, 255]
    assert grey[0, 2, :3].tolist() == [round(c * 128 / 255 + NEUTRAL_GREY * 127 / 255) for c in (30, 60, 90)]
    clear = uniform_background(bgra, "transparent")
    assert clear[0, 0].tolist() == [0, 0, 0, 0]
    assert np.array_equal(clear[0, 1:], bgra[0, 1:])
    with pytest.raises(ValueError, match="mode"):
        uniform_background(bgra, "white")


def test_matting_falls_back_to_a_diagonal_preconditioner(monkeypatch):
    """When no incomplete Cholesky factor exists, the same matte is solved with Jacobi."""
    import pymatting

    def failing_ichol(matrix, **kwargs):
        raise ValueError("Thresholded incomplete Cholesky decomposition failed")

    radius = 60.0
    image, true, distance = disc_scene(200, 240, radius, softness=3.0)
    rough = jagged_mask(distance, radius, error=2.0, grow=True)
    expected = refine_alpha(image, rough, band=4)
    monkeypatch.setattr(pymatting, "ichol", failing_ichol)
    fallback = refine_alpha(image, rough, band=4)
    assert np.abs(fallback - expected).max() < 0.02
    assert band_error(fallback, true, distance, radius) < 0.1 * band_error(rough, true, distance, radius)
