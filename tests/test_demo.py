"""The synthetic frame generator: determinism, ground truth consistency, shot/background/degradation semantics."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frameloom.demo import (
    CHARACTERS,
    DEMO_CYCLE,
    FrameSpec,
    apply_blur,
    apply_darkness,
    apply_downscale,
    apply_noise,
    demo_specs,
    downscaled_size,
    render_frame,
    render_reference,
    write_demo_set,
)

SMALL = {"width": 320, "height": 180}


def laplacian_variance(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def edge_density(image: np.ndarray) -> float:
    return float((cv2.Canny(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), 100, 200) > 0).mean())


def box_of(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def assert_truth_consistent(image: np.ndarray, truth: dict) -> None:
    height, width = image.shape[:2]
    count = truth["instance_count"]
    assert len(truth["identities"]) == len(truth["boxes"]) == len(truth["face_boxes"]) == len(truth["masks"]) == count
    assert truth["image_size"] == [width, height]
    coverage = np.zeros((height, width), np.int32)
    for mask, box, face in zip(truth["masks"], truth["boxes"], truth["face_boxes"]):
        assert mask.shape == (height, width) and mask.dtype == bool and mask.any()
        assert box == box_of(mask)
        coverage += mask
        if face is not None:
            x, y, w, h = face
            bx, by, bw, bh = box
            assert bx <= x and by <= y and x + w <= bx + bw and y + h <= by + bh, "face box outside the body box"
    assert coverage.max() <= 1, "a pixel belongs to two characters"
    if count:
        assert truth["target_index"] == 0, "the main character is listed first"
    payload = {key: value for key, value in truth.items() if key != "masks"}
    json.dumps(payload)  # everything but the masks is JSON-serialisable as is


def test_same_spec_gives_identical_bytes_and_truth():
    spec = FrameSpec(seed=5, n_characters=2, background="cluttered", occluder="pole", noise_std=12, blur_sigma=1.5,
                     **SMALL)
    first_image, first_truth = render_frame(spec)
    second_image, second_truth = render_frame(spec)
    assert first_image.tobytes() == second_image.tobytes()
    assert all(np.array_equal(a, b) for a, b in zip(first_truth["masks"], second_truth["masks"]))
    strip = lambda truth: {k: v for k, v in truth.items() if k != "masks"}  # noqa: E731
    assert strip(first_truth) == strip(second_truth)
    other, _ = render_frame(FrameSpec(seed=6, n_characters=2, background="cluttered", occluder="pole", **SMALL))
    assert other.tobytes() != first_image.tobytes()


def test_degradations_do_not_move_the_scene():
    clean_image, clean_truth = render_frame(FrameSpec(seed=9, **SMALL))
    _, dark_truth = render_frame(FrameSpec(seed=9, darkness=0.7, noise_std=20, blur_sigma=4, **SMALL))
    assert dark_truth["boxes"] == clean_truth["boxes"]
    assert np.array_equal(dark_truth["masks"][0], clean_truth["masks"][0])


def test_image_and_mask_sizes():
    image, truth = render_frame(FrameSpec(seed=1))
    assert image.shape == (360, 640, 3) and image.dtype == np.uint8
    small, small_truth = render_frame(FrameSpec(seed=1, downscale=3.5, **SMALL))
    assert small.shape == (51, 91, 3)
    assert downscaled_size(320, 180, 3.5) == (91, 51)
    assert small_truth["masks"][0].shape == (51, 91)
    assert_truth_consistent(small, small_truth)


@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("shot", ["medium", "full-body", "far"])
def test_instance_count_matches_unoccluded_characters(count, shot):
    for seed in range(3):
        image, truth = render_frame(FrameSpec(seed=seed, n_characters=count, shot=shot, **SMALL))
        assert truth["instance_count"] == count
        assert truth["target_index"] == 0
        assert len(set(truth["identities"])) == count
        assert_truth_consistent(image, truth)


def test_explicit_identities_are_kept_in_order():
    _, truth = render_frame(FrameSpec(seed=3, n_characters=3, shot="full-body", identities=(4, 1, 2), **SMALL))
    assert truth["identities"] == [4, 1, 2]
    assert truth["spec"]["identities"] == [4, 1, 2]


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    count=st.integers(1, 3),
    shot=st.sampled_from(["close-up", "medium", "full-body", "far"]),
    background=st.sampled_from(["plain", "cluttered"]),
    occluder=st.sampled_from([None, "left", "right", "bottom", "pole"]),
    downscale=st.sampled_from([1.0, 2.5]),
)
def test_truth_is_consistent_for_any_spec(seed, count, shot, background, occluder, downscale):
    spec = FrameSpec(seed=seed, n_characters=count, shot=shot, background=background, occluder=occluder,
                     downscale=downscale, width=192, height=108)
    image, truth = render_frame(spec)
    assert image.shape[:2] == downscaled_size(192, 108, downscale)[::-1]
    assert 1 <= truth["instance_count"] <= count
    assert truth["target_index"] is not None, "the main character is never fully hidden"
    assert 0.0 <= truth["occluded_fraction"] < 0.8
    if occluder is None:
        assert truth["occluded_fraction"] == 0.0
    assert_truth_consistent(image, truth)


def test_shot_scales_are_ordered():
    face_heights = {}
    figure_heights = {}
    for shot in ("close-up", "medium", "full-body", "far"):
        faces, figures = [], []
        for seed in range(4):
            _, truth = render_frame(FrameSpec(seed=seed, shot=shot, **SMALL))
            faces.append(truth["face_boxes"][0][3] / 180)
            figures.append(truth["boxes"][0][3] / 180)
        face_heights[shot], figure_heights[shot] = faces, figures
    assert min(face_heights["close-up"]) >= 0.35
    assert min(face_heights["close-up"]) > max(face_heights["medium"])
    assert min(face_heights["medium"]) > max(face_heights["full-body"])
    assert min(face_heights["full-body"]) > max(face_heights["far"])
    assert all(0.65 <= h <= 0.9 for h in figure_heights["full-body"])
    assert max(figure_heights["far"]) <= 0.25


def test_cluttered_background_has_many_more_edges_than_plain():
    for seed in range(3):
        plain, _ = render_frame(FrameSpec(seed=seed, background="plain", shot="full-body", **SMALL))
        cluttered, _ = render_frame(FrameSpec(seed=seed, background="cluttered", shot="full-body", **SMALL))
        assert edge_density(cluttered) > 3 * edge_density(plain)
        assert edge_density(cluttered) > 0.05


def test_plain_background_itself_is_nearly_edge_free():
    image, truth = render_frame(FrameSpec(seed=2, shot="far", **SMALL))
    edges = cv2.Canny(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), 100, 200) > 0
    near_character = cv2.dilate(truth["masks"][0].astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    assert edges[~near_character].mean() < 0.002


@pytest.mark.parametrize("occluder", ["left", "right", "bottom", "pole"])
def test_occluders_hide_part_of_the_main_character(occluder):
    for seed in range(3):
        _, clean = render_frame(FrameSpec(seed=seed, **SMALL))
        _, hidden = render_frame(FrameSpec(seed=seed, occluder=occluder, **SMALL))
        assert 0.05 < hidden["occluded_fraction"] < 0.7
        assert hidden["masks"][0].sum() < clean["masks"][0].sum()
        assert hidden["face_boxes"][0] is not None, "occluders cover part of the body, not the whole face"


def test_degradation_helpers_do_what_they_say():
    image, _ = render_frame(FrameSpec(seed=4, shot="close-up", **SMALL))
    blurred = apply_blur(image, 4.0)
    assert laplacian_variance(blurred) < 0.3 * laplacian_variance(image)
    dark = apply_darkness(image, 0.7)
    assert dark.mean() < 0.4 * image.mean()
    assert dark.astype(np.float32).std() < 0.5 * image.astype(np.float32).std()
    assert apply_darkness(image, 0.3).mean() > dark.mean()
    noisy = apply_noise(image, 20.0, seed=3)
    residual = noisy.astype(np.float32) - image.astype(np.float32)
    assert 15 < residual.std() < 22
    assert np.array_equal(noisy, apply_noise(image, 20.0, seed=3))
    assert not np.array_equal(noisy, apply_noise(image, 20.0, seed=4))
    assert apply_downscale(image, 4.0).shape == (45, 80, 3)
    for helper, argument in ((apply_blur, 0.0), (apply_darkness, 0.0), (apply_downscale, 1.0)):
        assert np.array_equal(helper(image, argument), image)
    assert np.array_equal(apply_noise(image, 0.0, seed=1), image)


def test_render_frame_applies_the_same_degradations():
    spec = dict(seed=8, shot="medium", **SMALL)
    clean, _ = render_frame(FrameSpec(**spec))
    blurred, _ = render_frame(FrameSpec(blur_sigma=5.0, **spec))
    dark, truth = render_frame(FrameSpec(darkness=0.75, **spec))
    assert np.array_equal(blurred, apply_blur(clean, 5.0))
    assert np.array_equal(dark, apply_darkness(clean, 0.75))
    assert laplacian_variance(blurred) < laplacian_variance(clean)
    assert dark.mean() < clean.mean()
    assert truth["darkness"] == 0.75


def test_identities_are_told_apart_by_colour():
    """Each identity's palette is its own: same identity, other seed is closer than any other identity."""
    def signature(identity: int, seed: int) -> np.ndarray:
        image, truth = render_frame(FrameSpec(seed=seed, shot="full-body", identities=(identity,), **SMALL))
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)
        mask = truth["masks"][0].astype(np.uint8)
        hist = cv2.calcHist([hsv], [0, 1], mask, [18, 8], [0, 180, 0, 256])
        return cv2.normalize(hist, None, norm_type=cv2.NORM_L1).flatten()

    references = [signature(identity, 0) for identity in range(len(CHARACTERS))]
    for identity in range(len(CHARACTERS)):
        probe = signature(identity, 11)
        distances = [cv2.compareHist(probe, ref, cv2.HISTCMP_BHATTACHARYYA) for ref in references]
        assert int(np.argmin(distances)) == identity


def test_render_reference_is_a_clean_single_character_view():
    reference = render_reference(2, size=128, seed=1)
    assert reference.shape == (128, 128, 3) and reference.dtype == np.uint8
    assert np.array_equal(reference, render_reference(2, size=128, seed=1))
    assert not np.array_equal(reference, render_reference(3, size=128, seed=1))


def test_spec_validation():
    with pytest.raises(ValueError, match="n_characters"):
        FrameSpec(seed=0, n_characters=4)
    with pytest.raises(ValueError, match="shot"):
        FrameSpec(seed=0, shot="extreme")
    with pytest.raises(ValueError, match="identities"):
        FrameSpec(seed=0, n_characters=2, identities=(1,))
    with pytest.raises(ValueError, match="distinct"):
        FrameSpec(seed=0, n_characters=2, identities=(1, 1))
    assert FrameSpec(seed=0, identities=[3]).identities == (3,)


def categories(spec: FrameSpec) -> set[str]:
    found = set()
    degraded = spec.blur_sigma or spec.noise_std or spec.darkness >= 0.6 or spec.downscale > 1
    if (spec.background == "plain" and spec.n_characters == 1 and spec.shot in ("close-up", "medium")
            and spec.occluder is None and spec.lighting == "studio" and not degraded and spec.darkness == 0):
        found.add("clean")
    if spec.background == "cluttered":
        found.add("cluttered")
    if spec.n_characters > 1:
        found.add(f"multi-{spec.n_characters}")
    if spec.shot == "far":
        found.add("far")
    if spec.occluder is not None:
        found.add("occluded")
    if 0.45 <= spec.blur_sigma <= 0.6:  # soft enough to enhance (harder blur is gated out as unusable)
        found.add("blurred")
    if 15 <= spec.noise_std <= 30:
        found.add("noisy")
    if 0.6 <= spec.darkness <= 0.8:
        found.add("dark")
    if 3 <= spec.downscale <= 4:
        found.add("low-res")
    return found


def test_first_twelve_demo_specs_cover_every_category():
    found = set().union(*(categories(spec) for spec in demo_specs(12)))
    assert found == {"clean", "cluttered", "multi-2", "multi-3", "far", "occluded",
                     "blurred", "noisy", "dark", "low-res"}


def test_demo_specs_are_deterministic_balanced_and_prefix_stable():
    specs = demo_specs(40, seed=7, width=320, height=180)
    assert specs == demo_specs(40, seed=7, width=320, height=180)
    assert specs[:12] == demo_specs(12, seed=7, width=320, height=180)
    assert specs != demo_specs(40, seed=8, width=320, height=180)
    assert all(spec.identities[0] == 0 for spec in specs)
    cycle = specs[: len(DEMO_CYCLE)]
    share = lambda predicate: sum(map(predicate, cycle)) / len(cycle)  # noqa: E731
    assert share(lambda s: "clean" in categories(s)) == pytest.approx(0.35)
    assert share(lambda s: bool({"cluttered", "multi-2", "multi-3"} & categories(s))) == pytest.approx(0.30)
    assert share(lambda s: s.occluder is not None or s.lighting == "side") == pytest.approx(0.15)
    assert share(lambda s: bool({"blurred", "noisy", "dark", "low-res"} & categories(s))) == pytest.approx(0.20)


def test_write_demo_set_is_idempotent_and_keeps_truth_outside_frames(tmp_path):
    frames_dir = tmp_path / "frames dir é"
    paths = write_demo_set(frames_dir, 3, width=192, height=108)
    truth_dir = tmp_path / "demo_truth"
    assert [p.name for p in paths] == ["demo_0000.png", "demo_0001.png", "demo_0002.png"]
    assert sorted(p.name for p in frames_dir.iterdir()) == [p.name for p in paths]
    record = json.loads((truth_dir / "demo_0001.json").read_text(encoding="utf-8"))
    assert record["frame"] == "demo_0001.png" and record["kind"] == DEMO_CYCLE[1]
    for name in record["masks"]:
        mask = cv2.imread(str(truth_dir / name), cv2.IMREAD_GRAYSCALE)
        assert mask.shape == (108, 192) and set(np.unique(mask)) <= {0, 255}

    written = {p: os.stat(p).st_mtime_ns for p in [*frames_dir.iterdir(), *truth_dir.iterdir()]}
    for path in written:
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert write_demo_set(frames_dir, 3, width=192, height=108) == paths
    assert all(os.stat(p).st_mtime_ns == 1_000_000_000 for p in written), "unchanged files were rewritten"

    write_demo_set(frames_dir, 2, width=192, height=108)
    assert sorted(p.name for p in frames_dir.iterdir()) == ["demo_0000.png", "demo_0001.png"]
    assert not any(p.name.startswith("demo_0002") for p in truth_dir.iterdir())


def test_write_demo_set_refuses_truth_inside_frames(tmp_path):
    with pytest.raises(ValueError, match="truth_dir"):
        write_demo_set(tmp_path / "frames", 1, truth_dir=tmp_path / "frames" / "truth")
