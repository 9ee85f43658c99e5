"""Classical enhancement: which steps run when, and that they help."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from frameloom.demo import FrameSpec, apply_noise, render_frame
from frameloom.enhance import enhance, estimate_noise_sigma

CONFIG = Path(__file__).resolve().parents[1] / "config" / "strategy_configs.yaml"


@pytest.fixture(scope="module")
def cfg() -> dict:
    return yaml.safe_load(CONFIG.read_text())["strategies"]["enhance_segment"]


def steps_by_name(steps) -> dict:
    return {step.step: step for step in steps}


def laplacian_variance(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def test_steps_run_in_config_order_and_face_enhance_is_not_faked(cfg):
    image, _ = render_frame(FrameSpec(seed=1))
    _, steps = enhance(image, {}, cfg)
    assert [step.step for step in steps] == cfg["enhancement_steps"] + ["identity_guard"]
    face = steps_by_name(steps)["face_enhance"]
    assert not face.applied
    assert face.reason == "no face-restoration model"


def test_big_frame_is_not_upscaled(cfg):
    image, _ = render_frame(FrameSpec(seed=1, width=640, height=360))
    result, steps = enhance(image, None, cfg)
    upscale = steps_by_name(steps)["upscale"]
    assert result.shape == image.shape
    assert not upscale.applied and "640" in upscale.reason


def test_small_frame_is_upscaled_by_the_factor(cfg):
    image, _ = render_frame(FrameSpec(seed=1, width=320, height=180))
    result, steps = enhance(image, {}, cfg)
    upscale = steps_by_name(steps)["upscale"]
    assert upscale.applied and upscale.backend == "lanczos"
    assert result.shape == (360, 640, 3)


def test_clean_frame_is_not_denoised(cfg):
    image, _ = render_frame(FrameSpec(seed=2))
    _, steps = enhance(image, {"noise": 0.0}, cfg)
    denoise = steps_by_name(steps)["denoise"]
    assert not denoise.applied and "clean" in denoise.reason


@pytest.mark.parametrize("size", [(640, 360), (320, 180)])  # the small one is denoised after its upscale
def test_noisy_frame_is_denoised(cfg, size):
    clean, _ = render_frame(FrameSpec(seed=2, width=size[0], height=size[1]))
    noisy = apply_noise(clean, 10.0, seed=5)
    result, steps = enhance(noisy, {}, cfg)
    denoise = steps_by_name(steps)["denoise"]
    assert denoise.applied and denoise.backend == "opencv_nlmeans"
    if result.shape == noisy.shape:
        assert estimate_noise_sigma(result) < 0.5 * estimate_noise_sigma(noisy)
        assert cv2.PSNR(result, clean) > cv2.PSNR(noisy, clean) + 3
    else:
        reference = cv2.resize(clean, result.shape[1::-1], interpolation=cv2.INTER_CUBIC)
        plain = cv2.resize(noisy, result.shape[1::-1], interpolation=cv2.INTER_CUBIC)
        assert cv2.PSNR(result, reference) > cv2.PSNR(plain, reference) + 3


def test_noise_estimate_tracks_added_noise():
    clean, _ = render_frame(FrameSpec(seed=3, background="cluttered"))
    assert estimate_noise_sigma(clean) < 2.0
    for sigma in (5.0, 12.0):
        estimate = estimate_noise_sigma(apply_noise(clean, sigma, seed=1))
        assert abs(estimate - sigma) < 0.2 * sigma


def test_sharpen_raises_laplacian_variance(cfg):
    image, _ = render_frame(FrameSpec(seed=4, blur_sigma=1.5))
    result, steps = enhance(image, {}, dict(cfg, enhancement_steps=["sharpen"]))
    assert steps_by_name(steps)["sharpen"].applied
    assert laplacian_variance(result) > 1.3 * laplacian_variance(image)


def test_sharpen_adds_no_halo(cfg):
    """Halo-free: no pixel's brightness leaves the range of its 3x3 neighbourhood in the input."""
    image, _ = render_frame(FrameSpec(seed=4, blur_sigma=1.0))
    result, _ = enhance(image, {}, dict(cfg, enhancement_steps=["sharpen"]))
    before = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    after = cv2.cvtColor(result, cv2.COLOR_BGR2GRAY).astype(int)
    kernel = np.ones((3, 3), np.uint8)
    # One level of slack for rounding.
    assert (after >= cv2.erode(before, kernel).astype(int) - 1).all()
    assert (after <= cv2.dilate(before, kernel).astype(int) + 1).all()
    assert not np.array_equal(after, before)


@pytest.mark.parametrize("seed", [0, 1])
def test_upscaled_small_frame_beats_bicubic(cfg, seed):
    original, _ = render_frame(FrameSpec(seed=seed, width=630, height=360, shot="close-up"))
    height, width = original.shape[:2]
    small = cv2.resize(original, (width // 3, height // 3), interpolation=cv2.INTER_AREA)
    enhanced, _ = enhance(small, {}, dict(cfg, upscale_factor=3))
    bicubic = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    assert enhanced.shape == original.shape
    assert cv2.PSNR(enhanced, original) >= cv2.PSNR(bicubic, original)


def test_unknown_step_is_rejected(cfg):
    image, _ = render_frame(FrameSpec(seed=1))
    with pytest.raises(ValueError, match="unknown enhancement step"):
        enhance(image, {}, dict(cfg, enhancement_steps=["dehaze"]))


def test_deblur_runs_on_a_blurred_frame_only(cfg):
    sharp, _ = render_frame(FrameSpec(seed=3, shot="close-up"))
    blurred, _ = render_frame(FrameSpec(seed=3, shot="close-up", blur_sigma=3.0))
    only_deblur = dict(cfg, enhancement_steps=["deblur"])
    _, steps = enhance(sharp, {}, only_deblur)
    assert not steps_by_name(steps)["deblur"].applied
    result, steps = enhance(blurred, {}, only_deblur)
    assert steps_by_name(steps)["deblur"].applied
    assert laplacian_variance(result) > laplacian_variance(blurred)


def test_deblur_leaves_intentional_depth_of_field_alone(cfg):
    """A sharp far character on a defocused set reads soft as a whole frame, but is sharp itself."""
    defocused, _ = render_frame(FrameSpec(seed=4, shot="far", blur_sigma=6.0))
    sharp, truth = render_frame(FrameSpec(seed=4, shot="far"))
    character = truth["masks"][0]
    frame = defocused.copy()
    frame[character] = sharp[character]
    assert laplacian_variance(frame) < cfg["deblur_below"]
    only_deblur = dict(cfg, enhancement_steps=["deblur"])
    analysis = {"foreground_box": truth["boxes"][0]}
    result, steps = enhance(frame, analysis, only_deblur)
    step = steps_by_name(steps)["deblur"]
    assert not step.applied and step.reason.startswith("depth of field: subject sharp")
    assert np.array_equal(result, frame)
    # The same frame with the character blurred too is deblurred.
    _, steps = enhance(defocused, analysis, only_deblur)
    assert steps_by_name(steps)["deblur"].applied


def test_identity_guard_keeps_the_unenhanced_frame_when_the_character_drifts(cfg):
    from frameloom.enhance import character_drift

    image, truth = render_frame(FrameSpec(seed=5, width=320, height=180))
    assert character_drift(image, image) == 0.0
    inverted = 255 - image
    assert character_drift(image, inverted) > cfg["identity_max_drift"]

    class Inverting:
        """A face restorer gone wrong: returns a different character."""

        def restore(self, img, boxes, landmarks=None):
            return 255 - img, [{"applied": True, "alignment": None, "reason": ""} for _ in boxes]

    class Models:
        def upscaler(self):
            return None, "lanczos"

        def face_restorer(self):
            return Inverting(), "codeformer"

    analysis = {"foreground_box": truth["boxes"][0], "faces": [{"box": truth["face_boxes"][0]}]}
    result, steps = enhance(image, analysis, dict(cfg, enhancement_steps=["face_enhance"]), Models())
    assert np.array_equal(result, image)
    guard = steps_by_name(steps)["identity_guard"]
    assert guard.applied and guard.reason.startswith("drift ") and "kept the unenhanced frame" in guard.reason
