"""OpenCV inpainting: the character goes, everything outside the hole stays."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from frameloom.demo import FrameSpec, render_frame
from frameloom.inpainting import OpenCVInpainter


def grown(mask: np.ndarray, pixels: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1,) * 2)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def surrounding_colour(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    ring = grown(hole, 25) & ~hole
    return image[ring].astype(np.float64).mean(axis=0)


@pytest.mark.parametrize("method", ["telea", "ns"])
@pytest.mark.parametrize("size", [(640, 360), (1600, 900)])  # the large one takes the downscaled path
def test_removes_the_character_and_keeps_everything_else(method, size):
    image, truth = render_frame(FrameSpec(seed=3, width=size[0], height=size[1], shot="medium"))
    character = truth["masks"][truth["target_index"]]
    dilation = 5
    result = OpenCVInpainter(method=method).inpaint(image, character, dilation=dilation)

    hole = grown(character, dilation)
    assert result.shape == image.shape and result.dtype == np.uint8
    assert np.array_equal(result[~hole], image[~hole])
    background = surrounding_colour(image, hole)
    before = np.abs(image[character].astype(np.float64).mean(axis=0) - background).max()
    after = np.abs(result[character].astype(np.float64).mean(axis=0) - background).max()
    assert after < 15, f"filled colour is {after:.1f} levels off the surrounding background"
    assert after < 0.3 * before


def test_backend_names():
    assert OpenCVInpainter().name == "opencv_telea"
    assert OpenCVInpainter(method="ns").name == "opencv_ns"
    with pytest.raises(ValueError, match="unknown inpainting method"):
        OpenCVInpainter(method="lama")


def test_uint8_mask_and_zero_dilation():
    image, truth = render_frame(FrameSpec(seed=1, shot="close-up"))
    mask = truth["masks"][0].astype(np.uint8) * 255
    result = OpenCVInpainter().inpaint(image, mask, dilation=0)
    outside = mask == 0
    assert np.array_equal(result[outside], image[outside])
    assert not np.array_equal(result[~outside], image[~outside])


def test_empty_mask_returns_an_identical_copy():
    image, _ = render_frame(FrameSpec(seed=2))
    result = OpenCVInpainter().inpaint(image, np.zeros(image.shape[:2], bool))
    assert result is not image
    assert np.array_equal(result, image)


def test_mask_shape_must_match():
    image, _ = render_frame(FrameSpec(seed=2))
    with pytest.raises(ValueError, match="does not match"):
        OpenCVInpainter().inpaint(image, np.zeros((10, 10), bool))
