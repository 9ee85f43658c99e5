"""Face restoration adapters (CodeFormer, GFPGAN) on random-weight checkpoints, the identity
guard, and facexlib RetinaFace vs YuNet on generated close-ups.

No CodeFormer/GFPGAN weights ship here: the session fixture saves random-weight
networks in the official ``{'params_ema': state_dict}`` format and the adapters
load them through the real loading path. One 512x512 forward takes ~20 s
(CodeFormer) / ~14 s (GFPGAN) on two CPU cores, so the file is marked slow.
"""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
sys.modules.setdefault("torchvision.transforms.functional_tensor", torchvision.transforms.functional)
pytest.importorskip("codeformer.basicsr.archs.codeformer_arch")
pytest.importorskip("gfpgan.archs.gfpganv1_clean_arch")

from model_builders import save_random_face_restorer  # noqa: E402

from frameloom import face_restore  # noqa: E402
from frameloom.demo import FrameSpec, render_frame  # noqa: E402
from frameloom.face_restore import (  # noqa: E402
    FFHQ_ALIGNMENT,
    FFHQ_TEMPLATE_512,
    CodeFormerRestorer,
    FaceRestoreError,
    GFPGANRestorer,
    align_face,
    identity_drift,
    load_face_restorer,
    paste_face,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """Random-weight CodeFormer and GFPGAN checkpoints in the real format."""
    out = tmp_path_factory.mktemp("face_restore_weights")
    return {name: save_random_face_restorer(out / f"{name}_random.pth", cls)
            for name, cls in (("codeformer", CodeFormerRestorer), ("gfpgan", GFPGANRestorer))}


@pytest.fixture(scope="module")
def close_up():
    image, truth = render_frame(FrameSpec(seed=1, width=320, height=240, shot="close-up"))
    boxes = [b for b in truth["face_boxes"] if b is not None]
    assert boxes, "generated close-up has no visible face"
    return image, boxes


@pytest.fixture(scope="module")
def codeformer(checkpoints):
    return CodeFormerRestorer(checkpoints["codeformer"], device="cpu", fidelity=0.7, max_drift=1.0)


@pytest.fixture(scope="module")
def codeformer_applied(codeformer, close_up):
    image, boxes = close_up
    return codeformer.restore(image, boxes)


def _outside(mask_shape, boxes):
    outside = np.ones(mask_shape, bool)
    for x, y, w, h in boxes:
        outside[max(y, 0) : y + h, max(x, 0) : x + w] = False
    return outside


def test_codeformer_output_shape_and_only_faces_change(codeformer, codeformer_applied, close_up):
    image, boxes = close_up
    out, records = codeformer_applied
    assert codeformer.name == "codeformer"
    assert out.shape == image.shape and out.dtype == np.uint8
    assert len(records) == len(boxes)
    for record, box in zip(records, boxes):
        assert record["box"] == list(box)
        assert record["applied"] is True
        assert 0.0 <= record["drift"] <= 1.0
        assert "codeformer" in record["reason"]
    outside = _outside(image.shape[:2], boxes)
    assert np.array_equal(out[outside], image[outside])
    assert np.abs(out.astype(int) - image.astype(int)).max() > 0  # the random net did change the face


def test_blend_is_feathered_without_seams(codeformer, close_up, monkeypatch):
    """A net that returns pure white shows the mask: 0 outside the box, ~1 in the centre, smooth between."""
    image, boxes = close_up
    flat = np.full_like(image, 40)
    monkeypatch.setattr(codeformer, "_run_nets", lambda crops: [np.full_like(crop, 240) for crop in crops])
    out, records = codeformer.restore(flat, boxes[:1])
    assert records[0]["applied"]  # max_drift=1.0 on this fixture
    x, y, w, h = boxes[0]
    weight = (out.astype(float)[..., 0] - 40) / 200.0
    assert weight[y + h // 2, x + w // 2] > 0.95
    outside = _outside(weight.shape, boxes[:1])
    assert np.all(weight[outside] == 0)
    # Along the centre row and column the blend ramps up: intermediate values, no hard step.
    row = weight[y + h // 2, x : x + w]
    col = weight[y : y + h, x + w // 2]
    for profile in (row, col):
        assert np.any((profile > 0.1) & (profile < 0.9))
        assert np.abs(np.diff(profile)).max() < 0.25
        assert profile[0] < 0.02 and profile[-1] < 0.02  # faded out at the box edge


def test_identity_mapping_passes_the_guard(checkpoints, close_up, monkeypatch):
    image, boxes = close_up
    restorer = CodeFormerRestorer(checkpoints["codeformer"], device="cpu")  # default max_drift
    monkeypatch.setattr(restorer, "_forward", lambda x: x)
    out, records = restorer.restore(image, boxes)
    assert all(r["applied"] for r in records)
    assert all(r["drift"] < 0.05 for r in records), records
    # Only the 512 px resampling round trip differs.
    assert np.abs(out.astype(int) - image.astype(int)).mean() < 1.0


def test_guard_rejects_random_weights_and_keeps_original(checkpoints, close_up, codeformer_applied):
    image, boxes = close_up
    _, applied_records = codeformer_applied
    assert all(r["drift"] > face_restore.DEFAULT_MAX_DRIFT for r in applied_records), applied_records
    restorer = GFPGANRestorer(checkpoints["gfpgan"], device="cpu")  # default max_drift 0.35
    assert restorer.name == "gfpgan"
    out, records = restorer.restore(image, boxes)
    assert np.array_equal(out, image)
    for record in records:
        assert record["applied"] is False
        assert record["drift"] > restorer.max_drift
        assert record["reason"] == f"identity drift {record['drift']:.2f} > 0.35: kept original"


def test_gfpgan_is_deterministic(checkpoints, close_up):
    image, boxes = close_up
    restorer = load_face_restorer("gfpgan", checkpoints["gfpgan"], device="cpu", max_drift=1.0)
    first, rec1 = restorer.restore(image, boxes)
    second, rec2 = restorer.restore(image, boxes)
    assert rec1 == rec2 and all(r["applied"] for r in rec1)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, image)
    outside = _outside(image.shape[:2], boxes)
    assert np.array_equal(first[outside], image[outside])


def test_identity_drift_range():
    image, truth = render_frame(FrameSpec(seed=3, width=320, height=240, shot="close-up"))
    x, y, w, h = truth["face_boxes"][0]
    face = image[y : y + h, x : x + w]
    assert identity_drift(face, face) == pytest.approx(0.0, abs=1e-6)
    noise = np.random.default_rng(0).integers(0, 256, face.shape, dtype=np.uint8)
    assert identity_drift(face, noise) > 0.6
    slightly_blurred = __import__("cv2").GaussianBlur(face, (3, 3), 0.8)
    assert identity_drift(face, slightly_blurred) < 0.2


def test_loading_errors(tmp_path, checkpoints):
    with pytest.raises(FileNotFoundError, match="codeformer weights not found"):
        CodeFormerRestorer(tmp_path / "nope.pth", device="cpu")
    bare = tmp_path / "bare.pth"
    torch.save({"params": {}}, bare)
    with pytest.raises(FaceRestoreError, match="no 'params_ema'"):
        CodeFormerRestorer(bare, device="cpu")
    # GFPGAN weights given to CodeFormer: clear mismatch error.
    with pytest.raises(FaceRestoreError, match="do not match the architecture"):
        CodeFormerRestorer(checkpoints["gfpgan"], device="cpu")
    with pytest.raises(ValueError, match="unknown face restorer"):
        load_face_restorer("restoreformer", bare)


# --- detectors: facexlib RetinaFace (real weights) vs YuNet ---------------------------------

N_CLOSE_UPS = 10
RETINAFACE_CONF = 0.8  # facexlib's default


def _iou(a, b):
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def _score(frames, detect):
    """(found, ground-truth faces, false positives) at IoU >= 0.3."""
    found = total = false_pos = 0
    for image, gt in frames:
        dets = detect(image)
        matched = set()
        for g in gt:
            total += 1
            hits = [i for i, d in enumerate(dets) if _iou(g, d) >= 0.3]
            if hits:
                found += 1
                matched.update(hits)
        false_pos += len(dets) - len(matched)
    return found, total, false_pos


@pytest.fixture(scope="module")
def close_up_frames():
    frames = []
    for seed in range(N_CLOSE_UPS):
        image, truth = render_frame(FrameSpec(seed=seed, width=640, height=360, shot="close-up"))
        frames.append((image, [b for b in truth["face_boxes"] if b is not None]))
    return frames


def test_retinaface_vs_yunet_on_close_ups(real_models_dir, close_up_frames, record_property):
    faces_dir = real_models_dir / "faces"
    if not (faces_dir / "detection_mobilenet0.25_Final.pth").is_file():
        pytest.skip(f"RetinaFace weights not present in {faces_dir}")
    from facexlib.detection import init_detection_model

    from frameloom.faces import load_face_detector

    retina = init_detection_model("retinaface_mobile0.25", device="cpu", model_rootpath=str(faces_dir))

    def retina_detect(image):
        with torch.inference_mode():
            dets = retina.detect_faces(image, RETINAFACE_CONF)
        return [[d[0], d[1], d[2] - d[0], d[3] - d[1]] for d in dets]

    yunet = load_face_detector(real_models_dir)

    def yunet_detect(image):
        return [r["box"] for r in yunet.detect(image)]

    r_found, total, r_fp = _score(close_up_frames, retina_detect)
    y_found, _, y_fp = _score(close_up_frames, yunet_detect)
    summary = (f"close-ups: {total} faces; RetinaFace-mobile0.25@{RETINAFACE_CONF}: {r_found} found, {r_fp} false; "
               f"YuNet ({yunet.name}): {y_found} found, {y_fp} false")
    print(summary)
    record_property("detector_comparison", summary)
    assert total >= N_CLOSE_UPS
    assert r_found >= 1  # RetinaFace loads from the real weights and finds cartoon faces
    assert y_found >= 1


# --- alignment to the FFHQ template, as upstream (facexlib's FaceRestoreHelper) ------------------


def _similarity(scale: float, degrees: float, shift: tuple[float, float]) -> np.ndarray:
    angle = np.deg2rad(degrees)
    return np.array([[scale * np.cos(angle), -scale * np.sin(angle), shift[0]],
                     [scale * np.sin(angle), scale * np.cos(angle), shift[1]]])


def _face_at(points: np.ndarray, size=(360, 480)) -> np.ndarray:
    """A frame with a face drawn where the five points are: eyes, nose, mouth corners."""
    image = np.full((*size, 3), 70, np.uint8)
    centre = points.mean(axis=0)
    radius = int(np.linalg.norm(points[0] - points[4]) * 1.1)
    cv2.circle(image, tuple(int(v) for v in centre), radius, (150, 180, 220), -1, cv2.LINE_AA)
    for x, y in points[:2]:
        cv2.circle(image, (int(x), int(y)), max(2, radius // 8), (40, 40, 40), -1, cv2.LINE_AA)
    cv2.circle(image, tuple(int(v) for v in points[2]), max(2, radius // 12), (90, 110, 160), -1, cv2.LINE_AA)
    cv2.line(image, tuple(int(v) for v in points[3]), tuple(int(v) for v in points[4]), (60, 60, 150), 3, cv2.LINE_AA)
    return image


# A face a third of the template's size, turned 15 degrees, somewhere in the frame.
TO_FRAME = _similarity(0.32, 15.0, (150.0, 60.0))
LANDMARKS = (np.c_[FFHQ_TEMPLATE_512, np.ones(5)] @ TO_FRAME.T).astype(np.float32)


def test_alignment_takes_the_landmarks_onto_the_ffhq_template():
    aligned, affine = align_face(_face_at(LANDMARKS), LANDMARKS)
    assert aligned.shape == (512, 512, 3)
    mapped = np.c_[LANDMARKS, np.ones(5)] @ affine.T
    np.testing.assert_allclose(mapped, FFHQ_TEMPLATE_512, atol=0.5)
    # A similarity: the inverse of the transform that placed the face.
    np.testing.assert_allclose(affine[:, :2] @ TO_FRAME[:, :2], np.eye(2), atol=1e-3)


def test_pasting_the_aligned_face_back_changes_nothing_outside_its_soft_mask():
    image = _face_at(LANDMARKS)
    aligned, affine = align_face(image, LANDMARKS)
    unchanged, mask = paste_face(image, aligned, affine)
    assert mask.max() == pytest.approx(1.0) and mask[0, 0] == 0.0
    assert np.array_equal(unchanged[mask == 0], image[mask == 0])
    inside = mask > 0.99
    assert np.abs(unchanged[inside].astype(int) - image[inside]).mean() < 4  # warp there and back
    brighter, _ = paste_face(image, np.full_like(aligned, 255), affine)
    centre = tuple(int(v) for v in LANDMARKS[2])[::-1]
    assert tuple(brighter[centre]) == (255, 255, 255) and np.array_equal(brighter[mask == 0], image[mask == 0])


def test_a_face_with_landmarks_is_restored_aligned(codeformer):
    image = _face_at(LANDMARKS)
    box = [int(v) for v in cv2.boundingRect(LANDMARKS)]
    out, records = codeformer.restore(image, [box], [LANDMARKS.tolist()])
    assert records[0]["applied"] and records[0]["alignment"] == FFHQ_ALIGNMENT
    assert "aligned to the FFHQ template" in records[0]["reason"]
    _, affine = align_face(image, LANDMARKS)
    _, mask = paste_face(image, np.zeros((512, 512, 3), np.uint8), affine)
    assert np.array_equal(out[mask == 0], image[mask == 0]) and not np.array_equal(out, image)


def test_faces_are_restored_batch_size_at_a_time_and_out_of_memory_halves_the_batch(checkpoints, monkeypatch):
    """processing.batch_size is the inference batch: three faces in one forward pass give the frame
    one-at-a-time gives; a CUDA out-of-memory error halves the batch and the job goes on."""
    image, truth = render_frame(FrameSpec(seed=3, width=480, height=240, shot="medium", n_characters=3))
    boxes = [[int(v) for v in b] for b in truth["face_boxes"] if b is not None]
    assert len(boxes) >= 2
    one = CodeFormerRestorer(checkpoints["codeformer"], device="cpu", max_drift=1.0, batch_size=1)
    batched = CodeFormerRestorer(checkpoints["codeformer"], device="cpu", max_drift=1.0, batch_size=8)
    passes = []
    forward = batched._forward
    monkeypatch.setattr(batched, "_forward", lambda x: passes.append(len(x)) or forward(x))
    out_one, records_one = one.restore(image, boxes)
    out_batched, records_batched = batched.restore(image, boxes)
    assert passes == [len(boxes)]
    assert np.abs(out_one.astype(int) - out_batched.astype(int)).max() <= 1
    assert [r["applied"] for r in records_one] == [r["applied"] for r in records_batched]

    passes.clear()

    def out_of_memory_above_one(x):
        passes.append(len(x))
        if len(x) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return forward(x)

    monkeypatch.setattr(batched, "_forward", out_of_memory_above_one)
    out_retried, _ = batched.restore(image, boxes)
    assert batched.batch_size == 1 and passes[-len(boxes):] == [1] * len(boxes)
    assert np.abs(out_retried.astype(int) - out_one.astype(int)).max() <= 1
