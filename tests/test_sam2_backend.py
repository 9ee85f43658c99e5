"""SAM2 adapter: sam2's real loading and mask generation on a random-weight tiny model.

No SAM2 checkpoint can be downloaded in CI, so a session fixture saves the
packaged tiny config's randomly initialised weights in SAM2's checkpoint
format, and the adapter loads them through ``build_sam2`` like real weights.
Random weights give meaningless masks, so the model run checks the contract
(strict loading, output shapes and types, determinism, one model per batch);
the instance filter and the target pick are checked on hand-made and
ground-truth masks fed in place of the generator's.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")
sam2 = pytest.importorskip("sam2")

from hydra import compose  # noqa: E402

from frameloom import sam2_backend  # noqa: E402
from frameloom.demo import FrameSpec, render_frame  # noqa: E402
from frameloom.devices import resolve_device  # noqa: E402
from frameloom.sam2_backend import SAM2_CONFIGS, SAM2Segmenter, filter_instances  # noqa: E402
from frameloom.segmentation import Segmentation  # noqa: E402
from model_builders import save_random_sam2  # noqa: E402

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = "sam2_hiera_tiny"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """The tiny model's random initial weights, saved the way SAM2's released checkpoints are."""
    return save_random_sam2(tmp_path_factory.mktemp("sam2") / "sam2_hiera_tiny_random.pt", TINY)


def small_frames() -> list[tuple[np.ndarray, dict | None]]:
    """A landscape and a portrait frame, the first repeated to check determinism."""
    landscape, truth = render_frame(FrameSpec(seed=1, width=256, height=144))
    portrait, _ = render_frame(FrameSpec(seed=2, width=144, height=192, shot="full-body"))
    hint = {"foreground_box": truth["boxes"][truth["target_index"]]}
    return [(landscape, hint), (portrait, None), (landscape, hint)]


@pytest.fixture(scope="module")
def batch_run(tiny_checkpoint):
    """One segmenter over the small frames, counting model builds and image encodings."""
    builds, encodings = [], []
    real_build = sam2_backend.build_sam2
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            sam2_backend, "build_sam2", lambda *args, **kwargs: builds.append(args) or real_build(*args, **kwargs)
        )
        # Thresholds off: random weights score low, and the masks should reach the filter.
        segmenter = SAM2Segmenter(
            TINY, tiny_checkpoint, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0
        )
        encode = segmenter.model.forward_image
        patch.setattr(segmenter.model, "forward_image", lambda image: encodings.append(1) or encode(image))
        frames = small_frames()
        results = [segmenter.segment(frame, hint) for frame, hint in frames]
    return {"segmenter": segmenter, "frames": frames, "results": results,
            "builds": len(builds), "encodings": len(encodings)}


def test_every_configured_model_maps_to_a_packaged_config():
    schema = yaml.safe_load((REPO_ROOT / "config/schemas/strategy_configs.schema.yaml").read_text())
    models = set(schema["definitions"]["sam2_models"]["enum"]) - {"grabcut"}
    assert set(SAM2_CONFIGS) == models
    package = Path(sam2.__file__).parent
    for model, config in SAM2_CONFIGS.items():
        assert (package / config).is_file(), model
        # The name as build_sam2 resolves it through sam2's hydra search path.
        assert compose(config_name=config).model.image_encoder.trunk is not None


def test_checkpoint_weights_are_what_the_model_runs_with(batch_run, tiny_checkpoint):
    saved = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)["model"]
    loaded = batch_run["segmenter"].model.state_dict()
    # build_sam2 raises on any missing or unexpected key; the values prove the file was used.
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[key], loaded[key]) for key in saved)


def test_mismatched_checkpoint_fails_clearly(tmp_path):
    partial = tmp_path / "partial.pt"
    torch.save({"model": {"no_mem_embed": torch.zeros(1, 1, 256)}}, partial)
    with pytest.raises(RuntimeError, match="partial.pt as sam2_hiera_tiny"):
        SAM2Segmenter(TINY, partial)


def test_bad_arguments_fail_before_loading(tmp_path):
    with pytest.raises(ValueError, match="unknown SAM2 model"):
        SAM2Segmenter("sam3_hiera_huge", tmp_path / "any.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        SAM2Segmenter(TINY, tmp_path / "missing.pt")


def test_name(batch_run):
    assert batch_run["segmenter"].name == "sam2:sam2_hiera_tiny"
    assert all(result.backend == "sam2:sam2_hiera_tiny" for result in batch_run["results"])


def test_outputs_follow_the_segmentation_contract(batch_run):
    for (frame, _), result in zip(batch_run["frames"], batch_run["results"]):
        assert isinstance(result, Segmentation)
        shape = frame.shape[:2]
        alpha = result.target_alpha
        assert alpha.dtype == np.float32 and alpha.shape == shape
        assert 0.0 <= alpha.min() and alpha.max() <= 1.0
        assert all(mask.dtype == bool and mask.shape == shape for mask in result.instance_masks)
        assert 0.0 <= result.target_score <= 1.0
        if result.target_index is None:
            assert result.instance_masks == [] and not alpha.any()
        else:
            assert 0 <= result.target_index < len(result.instance_masks)
        assert "sam2 kept" in result.notes and "\n" not in result.notes


def test_one_model_serves_the_whole_batch(batch_run):
    assert batch_run["builds"] == 1
    assert batch_run["encodings"] == len(batch_run["frames"])


def test_deterministic(batch_run):
    first, _, again = batch_run["results"]
    assert np.array_equal(first.target_alpha, again.target_alpha)
    assert len(first.instance_masks) == len(again.instance_masks)
    assert all(np.array_equal(a, b) for a, b in zip(first.instance_masks, again.instance_masks))
    assert (first.target_index, first.target_score) == (again.target_index, again.target_score)
    assert first.notes == again.notes


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def resized(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0


def test_target_from_generated_masks_at_frame_resolution(batch_run, monkeypatch):
    """Ground-truth masks in place of the generator's: the glue downscales, filters, picks and refines."""
    segmenter = batch_run["segmenter"]
    image, truth = render_frame(FrameSpec(seed=2, width=1280, height=720, shot="medium", n_characters=2))
    seen_sizes = []

    def generate(image_rgb):
        size = image_rgb.shape[1::-1]
        seen_sizes.append(size)
        characters = [resized(mask, size) for mask in truth["masks"]]
        backdrop = ~np.logical_or.reduce(characters)
        rows = np.arange(size[1])[:, None]
        upper_half = characters[0] & (rows < characters[0].nonzero()[0].mean())
        return [{"segmentation": mask} for mask in [upper_half, backdrop, *characters]]

    monkeypatch.setattr(segmenter._generator, "generate", generate)
    faces = [(box, index) for index, box in enumerate(truth["face_boxes"]) if box]
    hint = {"faces": [{"box": box, "score": 0.9} for box, _ in faces]}
    result = segmenter.segment(image, hint)

    assert seen_sizes == [(1024, 576)], "frames larger than the model's input are generated on a smaller copy"
    assert "kept 2 of 4" in result.notes and "1 background" in result.notes and "1 part" in result.notes
    assert len(result.instance_masks) == 2 and result.instance_masks[0].shape == (720, 1280)
    largest_face_owner = max(faces, key=lambda face: face[0][2] * face[0][3])[1]
    owner = truth["masks"][largest_face_owner]
    assert iou(result.instance_masks[result.target_index], owner) > 0.95
    assert iou(result.target_alpha >= 0.5, owner) > 0.95
    assert "face" in result.notes and result.target_score > 0.3
    partial = (result.target_alpha > 0.02) & (result.target_alpha < 0.98)
    assert partial.sum() > 100, "the upsampled edge is refitted to a soft one"


def square(size: tuple[int, int], x: int, y: int, w: int, h: int) -> np.ndarray:
    mask = np.zeros(size, bool)
    mask[y : y + h, x : x + w] = True
    return mask


FRAME = (200, 300)


def test_filter_drops_background_sized_masks():
    most_of_frame = square(FRAME, 10, 10, 280, 150)
    sky = square(FRAME, 0, 0, 300, 40)  # small, but along the top and both sides
    character = square(FRAME, 100, 60, 80, 140)  # crosses the bottom border only
    kept, dropped = filter_instances([most_of_frame, sky, character], 64)
    assert len(kept) == 1 and kept[0] is character
    assert dropped == {"background": 2}


def test_filter_keeps_a_frame_filling_mask_that_holds_a_face():
    close_up = square(FRAME, 0, 20, 300, 180)
    kept, dropped = filter_instances([close_up], 64, face_boxes=[(120, 40, 60, 60)])
    assert len(kept) == 1 and not dropped
    kept, dropped = filter_instances([close_up], 64, face_boxes=[(0, 0, 60, 15)])
    assert not kept and dropped == {"background": 1}


def test_filter_drops_tiny_and_empty_masks():
    tiny = square(FRAME, 50, 50, 40, 63)
    kept, dropped = filter_instances([tiny, np.zeros(FRAME, bool), square(FRAME, 50, 50, 40, 64)], 64)
    assert len(kept) == 1 and kept[0].sum() == 40 * 64
    assert dropped == {"tiny": 2}


def test_filter_keeps_one_of_duplicates_and_the_whole_over_its_parts():
    whole = square(FRAME, 100, 40, 80, 140)
    almost_the_same = square(FRAME, 100, 44, 80, 136)
    head = square(FRAME, 110, 40, 60, 60)
    kept, dropped = filter_instances([head, almost_the_same, whole], 32)
    assert len(kept) == 1 and kept[0] is whole
    assert dropped == {"duplicate": 1, "part": 1}


def test_filter_keeps_overlapping_characters():
    whole = square(FRAME, 100, 40, 80, 140)
    in_front = square(FRAME, 150, 60, 60, 120)  # half of it over `whole`: a second character
    kept, dropped = filter_instances([in_front, whole], 32)
    assert [id(mask) for mask in kept] == [id(whole), id(in_front)]
    assert not dropped


def test_filter_orders_by_area_and_keeps_input_order_on_ties():
    left, right = square(FRAME, 10, 60, 60, 100), square(FRAME, 200, 60, 60, 100)
    big = square(FRAME, 90, 50, 90, 120)
    kept, _ = filter_instances([right, left, big], 32)
    assert [id(mask) for mask in kept] == [id(big), id(right), id(left)]


def test_resolve_device():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device("cuda")
