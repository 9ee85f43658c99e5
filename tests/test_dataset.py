"""Curation on generated frames: per-frame curation, then quality rejects, dedup, identity and augmentation."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from frameloom.config import load_run_config
from frameloom.dataset import CURATED_RECORD, curate_frame, select_dataset
from frameloom.demo import FrameSpec, render_frame, render_reference
from frameloom.imageio import read_image, write_image, write_json
from frameloom.matte import soft_alpha
from frameloom.schema import ConfigError
from frameloom.strategies import cutout, placement

REPO = Path(__file__).resolve().parents[1]
CFG = load_run_config({}, REPO).run["curation"]
NO_REFERENCES = {"files": {}, "threshold": 0.73}
# What the analysis found: one character (the frame gate let it through), no face.
ANALYSIS = {"ok": True, "lighting": 0.5, "faces": [], "instance_count": 1, "sharpness": 0.6, "finder": "classical"}


def keep_full_frame(root: Path, name: str, image: np.ndarray) -> tuple[str, str, str]:
    """A frame kept whole: (meta, analysis, frame) paths as the strategy step leaves them."""
    frame = root / "frames" / f"{name}.png"
    write_image(frame, image)
    out = root / "keep_full" / "images" / f"{name}.png"
    write_image(out, image)
    caption = root / "keep_full" / "captions" / f"{name}.txt"
    caption.parent.mkdir(parents=True, exist_ok=True)
    caption.write_text(f"trig, {name}\n")
    meta = root / "keep_full" / "meta" / f"{name}.json"
    write_json(meta, {"frame": name, "strategy": "keep_full", "outputs": [
        {"image": str(out), "caption": str(caption), "role": "full", "backend": "original", "train": True,
         "subject": "character", "facts": []}]})
    analysis = root / "analysis" / f"{name}.json"
    write_json(analysis, ANALYSIS)
    return str(meta), str(analysis), str(frame)


def segment_frame(root: Path, name: str, spec: FrameSpec) -> tuple[str, str, str]:
    """A segmented frame: the main character's cut-out (from the renderer's truth mask)."""
    image, truth = render_frame(spec)
    frame = root / "frames" / f"{name}.png"
    write_image(frame, image)
    mask = truth["masks"][truth["target_index"]]
    mask = read_image(root.parent / mask) if isinstance(mask, str) else mask
    character, crop_box = cutout(image, soft_alpha(image, np.asarray(mask) > 0))
    out = root / "segment" / "images" / f"{name}_character.png"
    write_image(out, character)
    meta = root / "segment" / "meta" / f"{name}.json"
    write_json(meta, {"frame": name, "strategy": "segment", "segmentation": placement(crop_box), "outputs": [
        {"image": str(out), "caption": None, "role": "character", "backend": "grabcut", "train": True,
         "subject": "character", "facts": []}]})
    analysis = root / "analysis" / f"{name}.json"
    # The face a detector finds on the target: the evidence that verifies the cut-out.
    face = truth["face_boxes"][truth["target_index"]]
    write_json(analysis, {**ANALYSIS, "faces": [{"box": face, "score": 0.9}] if face else []})
    return str(meta), str(analysis), str(frame)


def curate_all(root: Path, frames: dict[str, tuple[str, str, str]], cfg: dict) -> list[str]:
    records = []
    for name, (meta, analysis, frame) in frames.items():
        curate_frame(meta, analysis, frame, str(root / "curated" / name), cfg, good_lighting=0.7)
        records.append(str(root / "curated" / name / CURATED_RECORD))
    return records


def test_quality_rejects_duplicates_and_augmentation(tmp_path):
    cfg = copy.deepcopy(CFG)
    cfg["augmentation"] |= {"augment_below": 12, "variants_per_image": 2}
    frames = {}
    for seed in range(4):
        frames[f"shot{seed}"] = keep_full_frame(tmp_path, f"shot{seed}", render_frame(FrameSpec(seed=seed))[0])
    clean = read_image(frames["shot0"][2])
    # A re-encoded copy of shot0 (a near-duplicate) and a blurred shot.
    _, jpeg = cv2.imencode(".jpg", clean, [cv2.IMWRITE_JPEG_QUALITY, 92])
    frames["again0"] = keep_full_frame(tmp_path, "again0", cv2.imdecode(jpeg, cv2.IMREAD_COLOR))
    frames["blurred"] = keep_full_frame(tmp_path, "blurred", cv2.GaussianBlur(render_frame(FrameSpec(seed=9))[0],
                                                                             (0, 0), 4))
    selection = select_dataset(curate_all(tmp_path, frames, cfg), cfg, NO_REFERENCES, str(tmp_path / "aug"))

    rejected = {Path(e["curated"]).parent.name: e for e in selection["rejected"] if "augmented_from" not in e}
    for variant in (e for e in selection["rejected"] if "augmented_from" in e):
        source = next(r for r in selection["kept"] if r["curated"] == variant["augmented_from"])
        assert variant["image"] == source["image"], "a dropped variant names its source's produced image"
    assert rejected["blurred"]["reason"] == "quality" and rejected["blurred"]["filter"] == "blur_threshold"
    assert rejected["blurred"]["value"] < 80 == rejected["blurred"]["limit"]
    duplicate = next(e for name, e in rejected.items() if name in ("shot0", "again0"))
    assert duplicate["reason"] == "duplicate" and Path(duplicate["duplicate_of"]).parent.name in ("shot0", "again0")
    assert len(rejected) == 2
    kept = [Path(r["curated"]).parent.name for r in selection["kept"]]
    assert len(kept) == 4 and {"shot1", "shot2", "shot3"} <= set(kept)
    # Augmented up to augment_below (12): 2 variants of each of the 4 kept images, all distinct shots.
    counts = selection["counts"]
    assert counts["kept"] + counts["augmented"] <= 12 and counts["augmented"] >= 4
    for variant in selection["augmented"]:
        assert (Path(variant["curated"]).is_file()
                and variant["augmented_from"] in [r["curated"] for r in selection["kept"]])
        params = variant["augmentation"]
        assert params["crop_scale"] in (0.8, 0.9, 1.0) and abs(params["rotation"]) <= 5
        assert variant["caption"] == next(r["caption"] for r in selection["kept"]
                                          if r["curated"] == variant["augmented_from"])
    assert counts["total"] == counts["kept"] + counts["augmented"] and counts["within_target_size"] is False
    json.dumps(selection)


def test_good_keep_full_frames_skip_clahe_and_cut_outs_get_matted(tmp_path):
    frames = {"kept": keep_full_frame(tmp_path, "kept", render_frame(FrameSpec(seed=1))[0]),
              "cut": segment_frame(tmp_path, "cut", FrameSpec(seed=2, shot="full-body"))}
    write_json(frames["kept"][1], {**ANALYSIS, "lighting": 0.9})
    records = curate_all(tmp_path, frames, CFG)
    kept = json.loads(Path(records[0]).read_text())["images"][0]
    assert kept["steps"] == []  # lighting already good: the frame stays as it is
    assert read_image(kept["curated"]).tobytes() == read_image(frames["kept"][2]).tobytes()
    cut = json.loads(Path(records[1]).read_text())["images"][0]
    assert cut["steps"] == ["alpha matting (pymatting closed-form)", "grey backdrop", "clahe"]
    image = read_image(cut["curated"], keep_alpha=True)
    assert image.shape[2] == 4
    alpha = image[..., 3]
    assert np.any((alpha > 0) & (alpha < 255)), "edges stay soft"
    # Fully transparent pixels show the neutral grey backdrop.
    assert np.all(np.abs(image[alpha == 0][:, :3].astype(int) - 128) <= 1)


def test_identity_keeps_the_reference_character(tmp_path):
    cfg = copy.deepcopy(CFG)
    cfg["augmentation"]["enabled"] = False
    frames = {}
    for index in range(4):
        for identity in (0, 3):
            spec = FrameSpec(seed=10 * identity + index, identities=(identity,),
                             shot=("medium", "full-body")[index % 2])
            frames[f"id{identity}_{index}"] = segment_frame(tmp_path, f"id{identity}_{index}", spec)
    write_image(tmp_path / "refs" / "ref.png", render_reference(3))
    references = {"files": {str(tmp_path / "refs" / "ref.png"): "x"}, "threshold": 0.73}
    records = curate_all(tmp_path, frames, cfg)
    # Without references, two clusters of 4 cannot say who the main character is (min_cluster_size 5).
    unguided = select_dataset(records, cfg, NO_REFERENCES, str(tmp_path / "aug"))
    assert len(unguided["kept"]) == 8 and unguided["identity"]["reason"].endswith("< 5 cut-outs: all kept")
    selection = select_dataset(records, cfg, references, str(tmp_path / "aug"))
    kept = sorted(Path(r["curated"]).parent.name for r in selection["kept"])
    assert kept == [f"id3_{i}" for i in range(4)], selection["identity"]
    others = [e for e in selection["rejected"] if e["reason"] == "other_identity"]
    assert sorted(Path(e["curated"]).parent.name for e in others) == [f"id0_{i}" for i in range(4)]
    assert len(selection["identity"]["clusters"]) == 2 and selection["identity"]["target"] is not None


@pytest.mark.parametrize(("augmentation", "message"), [
    ({"augmentations": ["crop_scale", "horizontal_flip"]},
     "curation.augmentation.augmentations: horizontal_flip is refused: "),
    ({"hue_shift": 0.1}, "curation.augmentation.hue_shift: hue_shift is refused: "),
    ({"augmentations": ["elastic"]}, "curation.augmentation.augmentations: elastic is refused: "),
])
def test_forbidden_augmentations_are_refused_with_the_reason(augmentation, message):
    with pytest.raises(ConfigError) as caught:
        load_run_config({"curation": {"augmentation": augmentation}}, REPO)
    assert message in str(caught.value) and len(str(caught.value)) > len(message) + 20


def test_ranges_must_be_ascending():
    with pytest.raises(ConfigError, match=r"curation.quality_filters.brightness_range: must be \[low, high\]"):
        load_run_config({"curation": {"quality_filters": {"brightness_range": [220, 30]}}}, REPO)


# --- verification: only what evidence supports reaches training -------------------------------


def wall_cut_out(root: Path, name: str, spec: FrameSpec) -> tuple[str, str, str]:
    """A cut-out of the set beside the character (what a classical guess can return), with a plate."""
    meta, analysis, frame = segment_frame(root, name, spec)
    image = read_image(frame)
    alpha = np.zeros(image.shape[:2], np.float32)
    alpha[20:120, 480:620] = 1.0  # a patch of backdrop at the right edge, away from the face
    character, crop_box = cutout(image, alpha)
    record = json.loads(Path(meta).read_text())
    write_image(record["outputs"][0]["image"], character)
    plate = root / "segment" / "images" / f"{name}_background.png"
    write_image(plate, image)  # the character is still in it
    record["segmentation"] = placement(crop_box)
    record["outputs"].append({"image": str(plate), "caption": None, "role": "background", "backend": "opencv_ns",
                              "train": True, "subject": "background", "facts": []})
    write_json(meta, record)
    return meta, analysis, frame


def test_a_cut_out_is_verified_by_a_face_inside_it_and_a_wall_is_not(tmp_path):
    cfg = copy.deepcopy(CFG)
    cfg["augmentation"]["enabled"] = False
    frames = {"hero": segment_frame(tmp_path, "hero", FrameSpec(seed=2, shot="medium")),
              "wall": wall_cut_out(tmp_path, "wall", FrameSpec(seed=3, shot="medium")),
              "whole": keep_full_frame(tmp_path, "whole", render_frame(FrameSpec(seed=4))[0])}
    selection = select_dataset(curate_all(tmp_path, frames, cfg), cfg, NO_REFERENCES, str(tmp_path / "aug"))
    verification = selection["verification"]
    by_name = {Path(image).stem: check for image, check in verification.items()}
    assert by_name["hero_character"]["verified"] and "face inside the mask" in by_name["hero_character"]["reason"]
    assert not by_name["wall_character"]["verified"]
    assert "classical subject guess" in by_name["wall_character"]["reason"]
    assert not by_name["wall_background"]["verified"]
    assert by_name["wall_background"]["reason"].startswith("plate_contains_character")
    assert by_name["whole"]["verified"] and by_name["whole"]["reason"].startswith("frame gate passed")
    rejected = {Path(e["image"]).stem: e["reason"] for e in selection["rejected"]}
    assert rejected == {"wall_character": "unverified", "wall_background": "plate_contains_character"}
    assert {Path(r["image"]).stem for r in selection["kept"]} == {"hero_character", "whole"}
    # A user can take them anyway: nothing is rejected for want of evidence.
    cfg["train_unverified"] = True
    anyway = select_dataset(curate_all(tmp_path, frames, cfg), cfg, NO_REFERENCES, str(tmp_path / "aug2"))
    assert not [e for e in anyway["rejected"] if e["reason"] in ("unverified", "plate_contains_character")]


def test_with_the_character_finder_its_box_verifies_the_mask(tmp_path):
    cfg = copy.deepcopy(CFG)
    cfg["augmentation"]["enabled"] = False
    spec = FrameSpec(seed=2, shot="medium")
    _, truth = render_frame(spec)
    target = truth["boxes"][truth["target_index"]]
    frames = {"found": segment_frame(tmp_path, "found", spec), "missed": segment_frame(tmp_path, "missed", spec)}
    for name, box in (("found", target), ("missed", [0, 0, 60, 60])):
        write_json(frames[name][1], {**ANALYSIS, "finder": "grounding_dino", "foreground_box": box, "faces": []})
    selection = select_dataset(curate_all(tmp_path, frames, cfg), cfg, NO_REFERENCES, str(tmp_path / "aug"))
    by_name = {Path(image).stem: check for image, check in selection["verification"].items()}
    assert by_name["found_character"]["verified"] and "grounding_dino box" in by_name["found_character"]["reason"]
    assert not by_name["missed_character"]["verified"] and "off the grounding_dino box" in by_name[
        "missed_character"]["reason"]


def test_synthetic_occlusion_never_outnumbers_the_real_character_images():
    from frameloom.dataset import _over_synthetic_cap

    kept = {f"real{i}": {"strategy": "segment", "role": "character", "frame": f"r{i}"} for i in range(3)}
    kept["plate"] = {"strategy": "segment", "role": "background", "frame": "r0"}  # not a character image
    for frame in ("a", "b"):
        for index in range(3):
            kept[f"{frame}_occ{index}"] = {"strategy": "create_occlusion", "role": "occlusion:bar:left",
                                           "frame": frame}
    dropped = _over_synthetic_cap(kept)
    # 6 variants, 3 real images: each frame keeps its first variant before any keeps a second.
    assert sorted(dropped) == ["a_occ2", "b_occ1", "b_occ2"]


def test_a_plate_with_a_face_left_in_it_is_not_trained_on(tmp_path):
    cfg = copy.deepcopy(CFG)
    cfg["augmentation"]["enabled"] = False
    spec = FrameSpec(seed=5, n_characters=2, shot="full-body")
    _, truth = render_frame(spec)
    meta, analysis, frame = segment_frame(tmp_path, "pair", spec)
    record = json.loads(Path(meta).read_text())
    plate = tmp_path / "segment" / "images" / "pair_background.png"
    write_image(plate, read_image(frame))
    record["outputs"].append({"image": str(plate), "caption": None, "role": "background", "backend": "lama",
                              "train": True, "subject": "background", "facts": []})
    record["outputs"][0]["backend"] = "sam2:sam2_hiera_large"
    write_json(meta, record)
    faces = [{"box": box, "score": 0.9} for box in truth["face_boxes"] if box]
    assert len(faces) == 2
    write_json(analysis, {**ANALYSIS, "instance_count": 2, "faces": faces})
    selection = select_dataset(curate_all(tmp_path, {"pair": (meta, analysis, frame)}, cfg), cfg, NO_REFERENCES,
                               str(tmp_path / "aug"))
    by_name = {Path(image).stem: check for image, check in selection["verification"].items()}
    assert by_name["pair_character"]["verified"]
    assert not by_name["pair_background"]["verified"] and "was left in the plate" in by_name["pair_background"][
        "reason"]
    # Only the other character's face is outside the cut-out: one face covered, one left.
    assert [Path(e["image"]).stem for e in selection["rejected"]] == ["pair_background"]


def test_a_plate_where_only_the_head_was_filled_is_not_trained_on(tmp_path):
    """The mask took the face (so the cut-out verifies) but not the body: the body is still in the plate."""
    cfg = copy.deepcopy(CFG)
    cfg["augmentation"]["enabled"] = False
    cfg["train_unverified"] = False
    spec = FrameSpec(seed=2, shot="full-body")
    image, truth = render_frame(spec)
    meta, analysis, frame = segment_frame(tmp_path, "head", spec)
    face = truth["face_boxes"][truth["target_index"]]
    body = truth["boxes"][truth["target_index"]]
    alpha = np.zeros(image.shape[:2], np.float32)
    x, y, w, h = face
    alpha[max(0, y - h // 2):y + 2 * h, max(0, x - w // 2):x + w + w // 2] = 1.0  # the head and a little more
    character, crop_box = cutout(image, alpha)
    record = json.loads(Path(meta).read_text())
    write_image(record["outputs"][0]["image"], character)
    record["segmentation"] = placement(crop_box)
    plate = tmp_path / "segment" / "images" / "head_background.png"
    write_image(plate, image)
    record["outputs"].append({"image": str(plate), "caption": None, "role": "background", "backend": "lama",
                              "train": True, "subject": "background", "facts": []})
    write_json(meta, record)
    write_json(analysis, {**ANALYSIS, "faces": [{"box": face, "score": 0.9}],
                          "instances": [{"box": body, "area_fraction": 0.2}]})
    selection = select_dataset(curate_all(tmp_path, {"head": (meta, analysis, frame)}, cfg), cfg, NO_REFERENCES,
                               str(tmp_path / "aug"))
    plate_check = next(v for image, v in selection["verification"].items() if image.endswith("_background.png"))
    assert not plate_check["verified"] and "lies mostly outside the filled region" in plate_check["reason"]


def test_plates_from_the_classical_fallback_mask_are_not_trained_on():
    from frameloom.dataset import _verify_plate

    mask = np.zeros((100, 100), bool)
    mask[10:90, 20:80] = True
    analysis = {"faces": [{"box": [40, 15, 20, 20]}], "instances": [{"box": [22, 12, 56, 76]}]}
    verified = {"verified": True, "reason": "a detected face inside the mask"}
    assert _verify_plate(verified, mask, analysis, "sam2:sam2_hiera_large")["verified"]
    check = _verify_plate(verified, mask, analysis, "grabcut (fallback: sam2_hiera_large weights missing: x)")
    assert not check["verified"] and "classical fallback's (grabcut)" in check["reason"]


def test_a_plate_cut_with_the_fallback_mask_is_rejected_in_the_frame_run(tmp_path):
    """Through curate_frame and select_dataset: the mask's backend is read off its cut-out entry."""
    cfg = copy.deepcopy(CFG)
    cfg["augmentation"]["enabled"] = False
    meta, analysis, frame = segment_frame(tmp_path, "solo", FrameSpec(seed=2, shot="medium"))
    record = json.loads(Path(meta).read_text())
    record["outputs"][0]["backend"] = "grabcut (fallback: sam2_hiera_large weights missing: m/sam2.pt)"
    plate = tmp_path / "segment" / "images" / "solo_background.png"
    write_image(plate, read_image(frame))
    record["outputs"].append({"image": str(plate), "caption": None, "role": "background",
                              "backend": "opencv_ns (fallback: lama weights missing: m/lama.pt)", "train": True,
                              "subject": "background", "facts": []})
    write_json(meta, record)
    selection = select_dataset(curate_all(tmp_path, {"solo": (meta, analysis, frame)}, cfg), cfg, NO_REFERENCES,
                               str(tmp_path / "aug"))
    by_name = {Path(image).stem: check for image, check in selection["verification"].items()}
    assert by_name["solo_character"]["verified"]
    assert "classical fallback's (grabcut)" in by_name["solo_background"]["reason"]
    assert [(Path(e["image"]).stem, e["reason"]) for e in selection["rejected"]] == [
        ("solo_background", "plate_contains_character")]

