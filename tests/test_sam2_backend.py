"""SAM2 adapter: sam2's real loading and mask generation on a random-weight tiny model.

No SAM2 checkpoint can be downloaded in CI, so a session fixture saves the
packaged tiny config's randomly initialised weights in SAM2's checkpoint
format, and the adapter loads them through ``build_sam2`` like real weights.
Random weights give meaningless masks, so the model run checks the contract
(strict loading, output shapes and types, determinism, one model per batch);
the instance filter and the target pick are checked on hand-made and
ground-truth masks fed in place of the generator's. The same holds for the
box prompt the character finder's subject box triggers: one random-weight
run through SAM2's image predictor, then ground-truth masks in place of its.
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
from model_builders import save_random_sam2  # noqa: E402

from frameloom import sam2_backend  # noqa: E402
from frameloom.demo import FrameSpec, render_frame  # noqa: E402
from frameloom.devices import resolve_device  # noqa: E402
from frameloom.sam2_backend import (  # noqa: E402
    BOX_PROMPT_MARGIN,
    BOX_PROMPT_NOTE,
    SAM2_CONFIGS,
    SAM2Segmenter,
    filter_instances,
    finder_box,
)
from frameloom.segmentation import Segmentation  # noqa: E402

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
        with pytest.raises(RuntimeError, match="requested but torch .* (cannot use the GPU|sees no CUDA device)"):
            resolve_device("cuda")


FINDER_HINT = {"finder": "grounding_dino"}


def test_finder_box_is_the_hints_box_clipped_to_the_image():
    assert finder_box({}, 100, 100) is None
    assert finder_box(FINDER_HINT, 100, 100) is None, "the finder ran but found no character"
    assert finder_box({"finder": "classical", "foreground_box": [10, 20, 30, 40]}, 100, 100) is None
    assert finder_box({**FINDER_HINT, "foreground_box": [10, 20, 30, 40]}, 100, 100) == (10, 20, 30, 40)
    assert finder_box({**FINDER_HINT, "foreground_box": [90, 40, 30, 30]}, 100, 50) == (90, 40, 10, 10)
    assert finder_box({**FINDER_HINT, "foreground_box": [5, 5, 1, 1]}, 100, 50) is None


def test_enhance_segments_hint_scales_the_box_once():
    """strategies.scaled_hint puts the analysis boxes on the upscaled image's grid; finder_box takes it as is."""
    from frameloom.strategies import scaled_hint

    analysis = {**FINDER_HINT, "foreground_box": [10, 10, 30, 20], "width": 100, "height": 50, "faces": [],
                "instances": []}
    assert finder_box(scaled_hint(analysis, 4.0), 400, 200) == (40, 40, 120, 80)


def padded(box, size: tuple[int, int], slack: int = 0) -> np.ndarray:
    """Where a box-prompted mask may lie: the box grown by BOX_PROMPT_MARGIN (and ``slack`` px)."""
    x, y, w, h = box
    pad_x, pad_y = BOX_PROMPT_MARGIN * w + slack, BOX_PROMPT_MARGIN * h + slack
    allowed = np.zeros(size, bool)
    allowed[max(0, int(y - pad_y)):int(np.ceil(y + h + pad_y)), max(0, int(x - pad_x)):int(np.ceil(x + w + pad_x))] = 1
    return allowed


@pytest.fixture
def spied_predictor(batch_run, monkeypatch):
    """The segmenter with its box predictor's calls recorded and the automatic generator forbidden."""
    segmenter = batch_run["segmenter"]
    calls = {"set_image": [], "predict": []}
    set_image, predict = segmenter._predictor.set_image, segmenter._predictor.predict
    monkeypatch.setattr(segmenter._predictor, "set_image",
                        lambda image: calls["set_image"].append(image.shape) or set_image(image))
    monkeypatch.setattr(segmenter._predictor, "predict",
                        lambda **kwargs: calls["predict"].append(kwargs) or predict(**kwargs))
    monkeypatch.setattr(segmenter._generator, "generate",
                        lambda image: pytest.fail("a finder box must not run the automatic mask generator"))
    return segmenter, calls


def test_finder_box_prompts_sam2_with_the_box(spied_predictor):
    segmenter, calls = spied_predictor
    image, truth = render_frame(FrameSpec(seed=1, width=480, height=270))
    box = truth["boxes"][truth["target_index"]]
    result = segmenter.segment(image, {**FINDER_HINT, "foreground_box": box, "width": 480, "height": 270})

    assert segmenter._predictor.model is segmenter.model, "one model serves both prompts"
    assert calls["set_image"] == [(270, 480, 3)] and len(calls["predict"]) == 1
    x, y, w, h = box
    assert calls["predict"][0]["box"].tolist() == [x, y, x + w, y + h]
    assert calls["predict"][0]["multimask_output"] is False
    assert result.notes.startswith(f"{BOX_PROMPT_NOTE} {box}: ") and "\n" not in result.notes
    assert result.backend == segmenter.name
    # Random weights still give a mask: the one the box asked for, kept near the box.
    assert result.target_index == 0 and len(result.instance_masks) == 1
    mask = result.instance_masks[0]
    assert mask.dtype == bool and mask.shape == (270, 480) and mask.sum() > 64 * 64
    assert not (mask & ~padded(box, (270, 480), slack=1)).any()
    assert result.target_alpha.dtype == np.float32 and result.target_alpha.shape == (270, 480)
    assert not ((result.target_alpha >= 0.5) & ~padded(box, (270, 480), slack=3)).any()
    assert 0.0 <= result.target_score <= 1.0


def test_box_prompted_mask_at_frame_resolution_without_leaks(spied_predictor, monkeypatch):
    """A ground-truth mask plus a leak in place of SAM2's: scaled prompt, leak cut off, edge refitted."""
    segmenter, calls = spied_predictor
    image, truth = render_frame(FrameSpec(seed=2, width=1280, height=720, shot="medium", n_characters=2))
    target, other = truth["masks"][0], truth["masks"][1]
    box = truth["boxes"][0]
    # enhance_segment's hint for its 2x upscale of a half-size frame: boxes already on the image's grid.
    from frameloom.strategies import scaled_hint

    analysis = scaled_hint({**FINDER_HINT, "foreground_box": [v / 2 for v in box], "width": 640, "height": 360},
                            2.0)

    leaky = target | other | square((720, 1280), 0, 0, 1280, 50)  # SAM2 ran into the other one and the sky
    inside = padded(box, (720, 1280))
    assert (leaky & ~inside).sum() > 20_000

    def predict(box, multimask_output):
        return resized(leaky, (1024, 576))[None].astype(np.float32), np.array([1.3]), None

    monkeypatch.setattr(segmenter._predictor, "set_image", lambda image: calls["set_image"].append(image.shape))
    monkeypatch.setattr(segmenter._predictor, "predict",
                        lambda **kwargs: calls["predict"].append(kwargs) or predict(**kwargs))
    result = segmenter.segment(image, analysis)

    assert calls["set_image"] == [(576, 1024, 3)], "prompted on the same smaller copy as the generator"
    x, y, w, h = box
    assert np.allclose(calls["predict"][0]["box"], np.array([x, y, x + w, y + h]) * 0.8, atol=1.0)
    mask = result.instance_masks[0]
    assert mask.shape == (720, 1280)
    assert not (mask & ~padded(box, (720, 1280), slack=3)).any(), "the leaks outside the box are cut off"
    assert iou(mask, leaky & inside) > 0.95
    assert iou(mask, target) > 0.8
    assert iou(result.target_alpha >= 0.5, mask) > 0.95
    partial = (result.target_alpha > 0.02) & (result.target_alpha < 0.98)
    assert partial.sum() > 100, "the upsampled edge is refitted to a soft one"
    assert result.target_score == 1.0, "SAM2's predicted IoU, clipped to 0..1"


def test_a_box_prompt_that_finds_nothing_usable(spied_predictor, monkeypatch):
    segmenter, _ = spied_predictor
    image, truth = render_frame(FrameSpec(seed=1, width=480, height=270))
    box = truth["boxes"][0]
    speck = square((270, 480), box[0] + 5, box[1] + 5, 10, 10)[None].astype(np.float32)
    monkeypatch.setattr(segmenter._predictor, "set_image", lambda image: None)
    monkeypatch.setattr(segmenter._predictor, "predict", lambda **kwargs: (speck, np.array([0.9]), None))
    result = segmenter.segment(image, {**FINDER_HINT, "foreground_box": box})
    assert result.target_index is None and result.instance_masks == [] and not result.target_alpha.any()
    assert result.notes.startswith(BOX_PROMPT_NOTE) and "no character above 64 px" in result.notes


def test_without_a_finder_box_the_automatic_masks_are_used(batch_run, monkeypatch):
    segmenter = batch_run["segmenter"]
    generated = []
    monkeypatch.setattr(segmenter._generator, "generate", lambda image: generated.append(image.shape) or [])
    monkeypatch.setattr(segmenter._predictor, "predict", lambda **kwargs: pytest.fail("no box to prompt with"))
    image, truth = render_frame(FrameSpec(seed=1, width=320, height=180))
    for hint in (None, FINDER_HINT, {"finder": "yolo", "foreground_box": truth["boxes"][0]}):
        result = segmenter.segment(image, hint)
        assert "sam2 kept 0 of 0" in result.notes and result.target_index is None
    assert len(generated) == 3


def test_out_of_memory_halves_the_points_per_batch_and_tries_the_frame_again(tiny_checkpoint, monkeypatch):
    segmenter = SAM2Segmenter(TINY, tiny_checkpoint, points_per_side=4, batch_points=8)
    tries = []
    generate = segmenter._generator.generate

    def out_of_memory_above_two(image):
        tries.append(segmenter._generator.points_per_batch)
        if segmenter._generator.points_per_batch > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return generate(image)

    monkeypatch.setattr(segmenter._generator, "generate", out_of_memory_above_two)
    image, _ = render_frame(FrameSpec(seed=1, width=160, height=90))
    segmenter.segment(image)
    segmenter.segment(image)
    assert tries == [8, 4, 2, 2], "halved until it fits, then kept for the rest of the job"
    monkeypatch.setattr(segmenter._generator, "generate", lambda image: (_ for _ in ()).throw(
        torch.OutOfMemoryError("CUDA out of memory (simulated)")))
    segmenter._generator.points_per_batch = 1
    with pytest.raises(torch.OutOfMemoryError):
        segmenter.segment(image)
