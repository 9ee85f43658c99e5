"""GrabCut segmentation against the demo renderer's ground-truth masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from frameloom.demo import FrameSpec, render_frame
from frameloom.segmentation import GrabCutSegmenter, Segmentation


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def target_truth(spec: FrameSpec):
    image, truth = render_frame(spec)
    index = truth["target_index"]
    return image, truth, truth["masks"][index], truth["boxes"][index]


@pytest.fixture(scope="module")
def segmenter() -> GrabCutSegmenter:
    return GrabCutSegmenter(min_instance_size=64)


def test_plain_background_cutouts_match_ground_truth(segmenter):
    scores = []
    for seed, shot in enumerate(["close-up", "medium", "full-body", "medium", "close-up", "full-body"]):
        image, _, truth_mask, box = target_truth(FrameSpec(seed=seed, shot=shot, background="plain"))
        result = segmenter.segment(image, {"foreground_box": box})
        scores.append(iou(result.target_alpha >= 0.5, truth_mask))
    hit_rate = np.mean(np.array(scores) >= 0.7)
    assert hit_rate >= 5 / 6, f"IoU per frame: {np.round(scores, 3)}"
    assert np.mean(scores) >= 0.85, f"IoU per frame: {np.round(scores, 3)}"


def test_alpha_is_soft_on_the_boundary_only(segmenter):
    image, _, truth_mask, box = target_truth(FrameSpec(seed=3, shot="medium"))
    alpha = segmenter.segment(image, {"foreground_box": box}).target_alpha
    assert alpha.dtype == np.float32 and alpha.shape == truth_mask.shape
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0
    partial = (alpha > 0.02) & (alpha < 0.98)
    assert partial.sum() > 100, "edge should be anti-aliased, not binary"
    # Partial values sit on the edge; deep inside and far outside stay exactly 1 and 0.
    distance_to_edge = np.minimum(_distance(truth_mask), _distance(~truth_mask))
    assert (distance_to_edge[partial] <= 6).mean() > 0.95
    assert (alpha[_distance(~truth_mask) > 10] > 0.99).all()
    assert (alpha[_distance(truth_mask) > 10] < 0.01).all()


def _distance(mask: np.ndarray) -> np.ndarray:
    """Per pixel: how far (px) to the nearest pixel of ``mask``."""
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)


def test_target_is_the_instance_with_the_largest_face(segmenter):
    image, truth = render_frame(FrameSpec(seed=2, shot="medium", n_characters=2))
    faces = [(box, index) for index, box in enumerate(truth["face_boxes"]) if box]
    assert len(faces) == 2
    hint = {
        "faces": [{"box": box, "score": 0.9} for box, _ in faces],
        "instances": [{"box": box, "area_fraction": 0.1} for box in truth["boxes"]],
        "instance_count": 2,
    }
    largest_face_owner = max(faces, key=lambda face: face[0][2] * face[0][3])[1]
    result = segmenter.segment(image, hint)

    assert len(result.instance_masks) == 2
    assert result.target_index is not None
    owner_mask = truth["masks"][largest_face_owner]
    assert iou(result.target_alpha >= 0.5, owner_mask) >= 0.7
    assert iou(result.instance_masks[result.target_index], owner_mask) >= 0.7
    assert 0.0 < result.target_score <= 1.0
    assert "face" in result.notes
    # Every character is found as its own instance.
    for truth_mask in truth["masks"]:
        assert max(iou(mask, truth_mask) for mask in result.instance_masks) >= 0.7


@pytest.mark.parametrize("hint", [None, {}, {"foreground_box": None, "faces": None, "instances": None}])
def test_works_without_hints(segmenter, hint):
    image, _, truth_mask, _ = target_truth(FrameSpec(seed=4, shot="close-up"))
    result = segmenter.segment(image, hint)
    assert isinstance(result, Segmentation)
    assert result.backend == "grabcut"
    assert iou(result.target_alpha >= 0.5, truth_mask) >= 0.7
    assert "centre box" in result.notes


def test_face_hint_alone_seeds_the_body(segmenter):
    image, truth, truth_mask, _ = target_truth(FrameSpec(seed=5, shot="medium"))
    face = truth["face_boxes"][truth["target_index"]]
    result = segmenter.segment(image, {"faces": [{"box": face, "score": 0.8}]})
    assert iou(result.target_alpha >= 0.5, truth_mask) >= 0.7


def test_nothing_usable_gives_no_target(segmenter):
    flat = np.full((200, 300, 3), 128, np.uint8)
    result = segmenter.segment(flat, {"foreground_box": [100, 50, 40, 40]})
    assert result.target_index is None
    assert result.instance_masks == []
    assert result.target_score == 0.0
    assert not result.target_alpha.any()
    assert result.notes


def test_tiny_instances_are_dropped():
    image, _, _, box = target_truth(FrameSpec(seed=1, shot="far"))
    assert max(box[2:]) < 200
    strict = GrabCutSegmenter(min_instance_size=200)
    assert strict.segment(image, {"foreground_box": box}).target_index is None


def test_deterministic(segmenter):
    image, _, _, box = target_truth(FrameSpec(seed=6, shot="medium", background="cluttered"))
    first = segmenter.segment(image, {"foreground_box": box})
    second = segmenter.segment(image, {"foreground_box": box})
    assert np.array_equal(first.target_alpha, second.target_alpha)
    assert first.notes == second.notes
