"""Synthetic occlusion variants: count, kinds, captions, placement, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from frameloom.demo import FrameSpec, render_frame
from frameloom.occlusion import make_occlusion_variants

CONFIG = Path(__file__).resolve().parents[1] / "config" / "strategy_configs.yaml"


@pytest.fixture(scope="module")
def cfg() -> dict:
    return yaml.safe_load(CONFIG.read_text())["strategies"]["create_occlusion"]


@pytest.fixture(scope="module", params=["medium", "full-body"])
def frame(request):
    image, truth = render_frame(FrameSpec(seed=11, shot=request.param, background="cluttered"))
    return image, truth["boxes"][truth["target_index"]]


def changed(original: np.ndarray, variant: np.ndarray) -> np.ndarray:
    return (original != variant).any(axis=2)


def test_count_kinds_and_descriptions_follow_the_config(cfg, frame):
    image, box = frame
    variants = make_occlusion_variants(image, cfg, seed=1, subject_box=box)
    assert len(variants) == cfg["variations_per_image"] == 3
    assert {v.kind for v in variants} == {"edge_blur", "overlay"}
    assert [v.description for v in variants] == cfg["occlusion_descriptions"]
    for variant in variants:
        assert variant.position in cfg["blur_positions"]
        assert variant.image.shape == image.shape and variant.image.dtype == np.uint8


def test_descriptions_wrap_and_all_combinations_appear(cfg, frame):
    image, box = frame
    many = dict(cfg, variations_per_image=7)
    variants = make_occlusion_variants(image, many, seed=1, subject_box=box)
    descriptions = cfg["occlusion_descriptions"]
    assert [v.description for v in variants] == [descriptions[i % len(descriptions)] for i in range(7)]
    pairs = {(v.kind, v.position) for v in variants[:6]}
    assert pairs == {(k, p) for k in cfg["occlusion_types"] for p in cfg["blur_positions"]}


@pytest.mark.parametrize("kind", ["edge_blur", "overlay"])
@pytest.mark.parametrize("position", ["left", "right", "bottom", "top"])
def test_changes_stay_on_the_claimed_side(cfg, frame, kind, position):
    image, box = frame
    height, width = image.shape[:2]
    one = dict(cfg, occlusion_types=[kind], blur_positions=[position], variations_per_image=1)
    (variant,) = make_occlusion_variants(image, one, seed=4, subject_box=box)
    assert (variant.kind, variant.position) == (kind, position)
    diff = changed(image, variant.image)
    assert diff.any()
    far_half = {
        "left": diff[:, width // 2 :],
        "right": diff[:, : width // 2],
        "top": diff[height // 2 :, :],
        "bottom": diff[: height // 2, :],
    }[position]
    assert not far_half.any(), "an occluder must leave the far half of the frame untouched"
    x, y, w, h = box
    assert diff[y : y + h, x : x + w].any(), "the occluder should reach across part of the subject"
    if kind == "edge_blur":
        # The band hugs its border: the outermost 5% strip is changed almost everywhere.
        strip = {
            "left": diff[:, : width // 20],
            "right": diff[:, -width // 20 :],
            "top": diff[: height // 20, :],
            "bottom": diff[-height // 20 :, :],
        }[position]
        assert strip.mean() > 0.9


def test_overlay_opacity_limits_the_change(cfg, frame):
    image, box = frame
    for opacity in (0.3, 0.8):
        one = dict(cfg, occlusion_types=["overlay"], overlay_opacity=opacity, variations_per_image=1)
        (variant,) = make_occlusion_variants(image, one, seed=2, subject_box=box)
        difference = np.abs(variant.image.astype(int) - image.astype(int)).max()
        # An element can move a pixel at most `opacity` of the way towards its colour.
        assert difference <= opacity * 255 + 1


def test_deterministic_in_image_cfg_and_seed(cfg, frame):
    image, box = frame
    original = image.copy()
    first = make_occlusion_variants(image, cfg, seed=9, subject_box=box)
    second = make_occlusion_variants(image, cfg, seed=9, subject_box=box)
    other = make_occlusion_variants(image, cfg, seed=10, subject_box=box)
    assert np.array_equal(image, original), "the input frame must not be modified"
    for a, b in zip(first, second):
        assert np.array_equal(a.image, b.image) and (a.kind, a.position) == (b.kind, b.position)
    assert any(not np.array_equal(a.image, c.image) for a, c in zip(first, other))


def test_works_without_a_subject_box(cfg, frame):
    image, _ = frame
    variants = make_occlusion_variants(image, cfg, seed=0, subject_box=None)
    assert len(variants) == 3
    assert all(changed(image, v.image).any() for v in variants)


def test_unknown_type_or_position_is_rejected(cfg, frame):
    image, box = frame
    with pytest.raises(ValueError, match="occlusion type"):
        make_occlusion_variants(image, dict(cfg, occlusion_types=["rain"]), seed=0, subject_box=box)
    with pytest.raises(ValueError, match="occlusion position"):
        make_occlusion_variants(image, dict(cfg, blur_positions=["middle"]), seed=0, subject_box=box)
