"""Frame analysis: record contract, robustness, and metrics that move the right way."""

from __future__ import annotations

import json
import math
import re

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frameloom.analysis import ANALYSIS_VERSION, analyze_file, analyze_image
from frameloom.cast import NO_CHARACTER_SHOT, SHOT_TYPES
from frameloom.demo import (
    FrameSpec,
    apply_blur,
    apply_darkness,
    apply_downscale,
    apply_noise,
    demo_kind,
    demo_specs,
    render_frame,
)
from frameloom.faces import load_face_detector
from frameloom.imageio import read_image, write_image
from frameloom.measures import WORK_SIZE, detail_copy, work_copy

UNIT_METRICS = ("complexity", "lighting", "occlusion", "quality", "sharpness", "noise", "brightness_mean")
PART_GROUPS = {
    "complexity_parts": ("edge_density", "color_diversity", "texture"),
    "lighting_parts": ("dynamic_range", "local_consistency", "brightness_balance"),
    "occlusion_parts": ("border_edge_density", "border_edge_variance", "depth_discontinuity"),
    "quality_parts": ("sharpness", "noise", "resolution"),
}
RECORD_FIELDS = {
    "width", "height", "complexity", "complexity_parts", "lighting", "lighting_parts", "occlusion",
    "occlusion_parts", "quality", "quality_parts", "sharpness", "laplacian_variance", "noise",
    "instance_count", "instances", "faces", "face_detector", "foreground_box", "shot_type", "brightness_mean",
    "picture", "exposure", "plain_ground", "sharpness_parts", "finder",
}
SEEDS = range(6)


@pytest.fixture(scope="module")
def face_detector(request):
    """YuNet when the real weights are around, else the packaged fallback: the
    tests below hold for both (character counts are checked on plain sets)."""
    try:
        models_dir = request.getfixturevalue("real_models_dir")
    except pytest.skip.Exception:
        models_dir = None
    return load_face_detector(models_dir)


@pytest.fixture(scope="module")
def demo_records(face_detector):
    """(kind, record, truth) for the 40-frame demo catalogue."""
    records = []
    for index, spec in enumerate(demo_specs(40)):
        image, truth = render_frame(spec)
        records.append((demo_kind(index), analyze_image(image, face_detector), truth))
    return records


def _unit_values(record: dict) -> list[float]:
    values = [record[name] for name in UNIT_METRICS]
    values += [record[group][part] for group, parts in PART_GROUPS.items() for part in parts]
    values += [instance["area_fraction"] for instance in record["instances"]]
    values += [face["score"] for face in record["faces"]]
    return values


def _assert_well_formed(record: dict, width: int, height: int) -> None:
    assert set(record) == RECORD_FIELDS
    for value in _unit_values(record):
        assert isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0
    assert math.isfinite(record["laplacian_variance"]) and record["laplacian_variance"] >= 0
    assert (record["width"], record["height"]) == (width, height)
    assert record["instance_count"] == len(record["instances"]) >= 0
    assert record["shot_type"] in SHOT_TYPES + (NO_CHARACTER_SHOT,)
    assert (record["shot_type"] == NO_CHARACTER_SHOT) == (record["instance_count"] == 0)
    boxes = [instance["box"] for instance in record["instances"]] + [face["box"] for face in record["faces"]]
    if record["foreground_box"] is not None:
        boxes.append(record["foreground_box"])
    for x, y, w, h in boxes:
        assert 0 <= x and 0 <= y and w >= 1 and h >= 1 and x + w <= width and y + h <= height
    json.dumps(record, allow_nan=False)


def _rate(flags) -> float:
    flags = list(flags)
    return sum(flags) / len(flags)


# ----------------------------------------------------------------------------
# Contract and robustness.


def test_record_is_complete_rounded_and_deterministic(face_detector):
    image, _ = render_frame(FrameSpec(seed=3, n_characters=2, shot="full-body"))
    first = analyze_image(image, face_detector)
    _assert_well_formed(first, 640, 360)
    assert first["face_detector"] == face_detector.name
    text = json.dumps(first, sort_keys=True)
    assert not re.search(r"\d\.\d{5,}", text), "floats are rounded to 4 decimals"
    assert json.dumps(analyze_image(image.copy(), face_detector), sort_keys=True) == text
    assert ANALYSIS_VERSION == 3


@pytest.mark.parametrize(
    "make_image",
    [
        lambda: np.zeros((1, 1, 3), np.uint8),
        lambda: np.full((8, 8, 3), 255, np.uint8),
        lambda: np.zeros((360, 640, 3), np.uint8),
        lambda: np.full((360, 640, 3), 255, np.uint8),
        lambda: np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8),
        lambda: np.random.default_rng(1).integers(0, 256, (3000, 4000, 3), dtype=np.uint8),
    ],
    ids=["1x1", "8x8-white", "black", "white", "noise", "4000x3000"],
)
def test_extreme_images(make_image, face_detector):
    image = make_image()
    record = analyze_image(image, face_detector)
    _assert_well_formed(record, image.shape[1], image.shape[0])


_PATTERNS = ("noise", "flat", "gradient", "blocks", "stripes")


@st.composite
def _images(draw):
    height = draw(st.integers(1, 300))
    width = draw(st.integers(1, 300))
    pattern = draw(st.sampled_from(_PATTERNS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if pattern == "noise":
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if pattern == "flat":
        return np.full((height, width, 3), rng.integers(0, 256, 3), np.uint8)
    if pattern == "gradient":
        ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None] * rng.uniform(0, 1, 3)
        return np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8)
    cell = int(rng.integers(1, 40))
    ys, xs = np.mgrid[0:height, 0:width]
    index = (xs // cell + ys // cell) % 2 if pattern == "blocks" else (xs // cell) % 2
    palette = rng.integers(0, 256, (2, 3), dtype=np.uint8)
    return palette[index]


@settings(max_examples=60, deadline=None)
@given(image=_images())
def test_every_metric_is_finite_and_in_unit_range(image, face_detector):
    _assert_well_formed(analyze_image(image, face_detector), image.shape[1], image.shape[0])


def test_bad_files_give_a_named_error(tmp_path):
    good, _ = render_frame(FrameSpec(seed=1))
    write_image(tmp_path / "good.png", good)
    encoded = (tmp_path / "good.png").read_bytes()
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("this is not a picture\n")
    (tmp_path / "truncated.png").write_bytes(encoded[: len(encoded) // 2])
    for name in ("empty.png", "text.png", "truncated.png", "missing.png"):
        record = analyze_file(tmp_path / name, name, "tests", models_dir=tmp_path)
        assert set(record) == {"frame", "source", "ok", "error"}
        assert record["ok"] is False and record["frame"] == name and record["source"] == "tests"
        assert re.fullmatch(r"(FrameDecodeError|FileNotFoundError): [^\n]+", record["error"])
    assert analyze_file(tmp_path / "truncated.png", "t", "tests")["error"].startswith("FrameDecodeError: ")

    record = analyze_file(tmp_path / "good.png", "good", "tests", models_dir=tmp_path)
    assert record["ok"] is True and record["error"] is None and record["frame"] == "good"
    _assert_well_formed({k: v for k, v in record.items() if k not in ("frame", "source", "ok", "error")}, 640, 360)


# ----------------------------------------------------------------------------
# Metrics move the right way under controlled changes of one generated frame.


@pytest.fixture(scope="module")
def clean_frames():
    shots = ("medium", "full-body", "close-up")
    return [render_frame(FrameSpec(seed=seed, shot=shots[seed % 3]))[0] for seed in SEEDS]


def _paired(face_detector, images, degrade):
    return [(analyze_image(image, face_detector), analyze_image(degrade(image), face_detector)) for image in images]


def test_blur_lowers_sharpness(face_detector, clean_frames):
    for clean, blurred in _paired(face_detector, clean_frames, lambda image: apply_blur(image, 2.0)):
        assert blurred["sharpness"] < clean["sharpness"] - 0.2
        assert blurred["sharpness"] < 0.4 <= clean["sharpness"]


def test_darkening_lowers_lighting(face_detector, clean_frames):
    for clean, dark in _paired(face_detector, clean_frames, lambda image: apply_darkness(image, 0.6)):
        assert dark["lighting"] < clean["lighting"] - 0.15
        assert dark["lighting"] < 0.7 < clean["lighting"]
        assert dark["brightness_mean"] < clean["brightness_mean"]


def test_noise_lowers_quality_and_raises_noise(face_detector, clean_frames):
    for clean, noisy in _paired(face_detector, clean_frames, lambda image: apply_noise(image, 20.0, seed=5)):
        assert noisy["noise"] > clean["noise"] + 0.5
        assert noisy["quality"] < 0.5 <= clean["quality"]


def test_downscale_lowers_quality(face_detector, clean_frames):
    for clean, small in _paired(face_detector, clean_frames, lambda image: apply_downscale(image, 3.0)):
        assert small["quality_parts"]["resolution"] < clean["quality_parts"]["resolution"]
        assert small["quality"] < 0.5 <= clean["quality"]


def test_large_frames_are_measured_on_whole_factor_halvings():
    for (width, height), detail in (((1024, 436), (1024, 436)), ((1920, 1080), (960, 540)),
                                    ((1280, 720), (1280, 720)), ((4096, 1744), (1024, 436))):
        image = np.zeros((height, width, 3), np.uint8)
        assert detail_copy(image).shape[1::-1] == detail
        assert max(work_copy(detail_copy(image)).shape) <= WORK_SIZE


def test_a_pixel_doubled_frame_is_measured_like_the_original(face_detector):
    """Halving a 2x pixel-replicated frame gives back the original pixels, so
    every metric that does not depend on the frame size agrees (exactly, or
    to the pixel rounding of character boxes)."""
    image, _ = render_frame(FrameSpec(seed=4, width=1024, height=436, n_characters=2, background="cluttered"))
    doubled = cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    original, large = analyze_image(image, face_detector), analyze_image(doubled, face_detector)
    for name in ("lighting", "noise", "laplacian_variance", "instance_count", "shot_type", "brightness_mean"):
        assert large[name] == original[name], name
    # Character boxes (from face boxes) are rounded to whole pixels on each grid,
    # which moves the measures read inside or outside them a little.
    for name in ("complexity", "occlusion", "sharpness"):
        assert large[name] == pytest.approx(original[name], abs=0.01), name
    assert (large["width"], large["height"]) == (2048, 872)
    assert [face["box"] for face in large["faces"]] == [[2 * v for v in face["box"]] for face in original["faces"]]


def test_clutter_raises_complexity(face_detector):
    for seed in SEEDS:
        plain = analyze_image(render_frame(FrameSpec(seed=seed))[0], face_detector)
        busy = analyze_image(render_frame(FrameSpec(seed=seed, background="cluttered"))[0], face_detector)
        assert plain["complexity"] < 0.3 < busy["complexity"]


def test_border_occluders_raise_occlusion(face_detector):
    shots = ("medium", "full-body", "close-up")
    raised = []
    for seed in SEEDS:
        shot = shots[seed % 3]
        open_view = analyze_image(render_frame(FrameSpec(seed=seed, shot=shot))[0], face_detector)
        assert open_view["occlusion"] < 0.2
        for occluder in ("left", "right", "bottom", "pole"):
            hidden = analyze_image(render_frame(FrameSpec(seed=seed, shot=shot, occluder=occluder))[0], face_detector)
            raised.append(hidden["occlusion"] > max(0.2, open_view["occlusion"] + 0.1))
    assert _rate(raised) >= 0.85


# ----------------------------------------------------------------------------
# Calibration against the decision thresholds, characters and shots.


def test_demo_frames_land_on_the_expected_side_of_the_thresholds(demo_records):
    rules = {
        "clean": lambda r: (r["complexity"] < 0.3 and r["lighting"] > 0.7 and r["occlusion"] < 0.2
                            and r["quality"] >= 0.5 and r["sharpness"] >= 0.4),
        "cluttered": lambda r: r["complexity"] > 0.3,
        "dark": lambda r: r["lighting"] < 0.7,
        "occluded": lambda r: r["occlusion"] > 0.2,
        "degraded": lambda r: r["quality"] < 0.5 or r["sharpness"] < 0.4,
    }
    category = {
        "clean-close-up": "clean", "clean-medium": "clean", "cluttered": "cluttered",
        "multi-3-cluttered": "cluttered", "far-cluttered": "cluttered", "multi-2-cluttered": "cluttered",
        "dark": "dark", "occluded-side": "occluded", "occluded-front": "occluded",
        "blurred": "degraded", "noisy": "degraded", "low-res": "degraded",
    }
    for name, rule in rules.items():
        records = [record for kind, record, _ in demo_records if category.get(kind) == name]
        assert records and _rate(rule(record) for record in records) >= 0.8, name


def test_character_count_on_plain_sets(face_detector):
    singles, groups = [], []
    for seed in range(8):
        for shot in ("medium", "full-body", "far"):
            for count in (1, 2, 3):
                record = analyze_image(render_frame(FrameSpec(seed=seed, shot=shot, n_characters=count))[0],
                                       face_detector)
                (singles if count == 1 else groups).append(record["instance_count"])
    assert _rate(n == 1 for n in singles) >= 0.8
    assert _rate(n >= 2 for n in groups) >= 0.8


def test_character_count_on_the_demo_catalogue(real_models_dir, demo_records):
    """Busy sets need faces to separate characters, so this one needs YuNet."""
    singles = [record["instance_count"] == 1 for _, record, truth in demo_records if truth["instance_count"] == 1]
    groups = [record["instance_count"] >= 2 for _, record, truth in demo_records if truth["instance_count"] >= 2]
    assert _rate(singles) >= 0.8 and _rate(groups) >= 0.8


def test_foreground_box_covers_the_main_character(face_detector):
    for seed in SEEDS:
        image, truth = render_frame(FrameSpec(seed=seed, shot="full-body"))
        box = analyze_image(image, face_detector)["foreground_box"]
        tx, ty, tw, th = truth["boxes"][truth["target_index"]]
        cx, cy = tx + tw / 2, ty + th / 2
        assert box[0] <= cx <= box[0] + box[2] and box[1] <= cy <= box[1] + box[3]


def test_close_ups_are_closer_than_far_shots(face_detector):
    order = {shot: index for index, shot in enumerate(SHOT_TYPES)}
    closer = []
    for seed in range(8):
        near = analyze_image(render_frame(FrameSpec(seed=seed, shot="close-up"))[0], face_detector)
        far = analyze_image(render_frame(FrameSpec(seed=seed, shot="far"))[0], face_detector)
        closer.append(order[near["shot_type"]] < order[far["shot_type"]])
        assert far["shot_type"] == "far"
    assert _rate(closer) == 1.0


# ----------------------------------------------------------------------------
# Real Sintel frames.


def test_sintel_clean_pass_is_sharper_than_final_pass(sintel_frames_dir, face_detector):
    pairs = []
    for clean in sorted(sintel_frames_dir.glob("*_clean_frame_*.png")):
        final = clean.with_name(clean.name.replace("_clean_frame_", "_final_frame_"))
        if final.exists():
            pairs.append((clean, final))
    assert len(pairs) >= 9
    for clean, final in pairs:
        clean_sharpness = analyze_image(read_image(clean), face_detector)["sharpness"]
        final_sharpness = analyze_image(read_image(final), face_detector)["sharpness"]
        assert clean_sharpness > final_sharpness, clean.name
