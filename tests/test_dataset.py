"""Curation on generated frames: per-frame curation, then quality rejects, dedup, identity and augmentation."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from frameloom.config import ConfigError, load_run_config
from frameloom.dataset import CURATED_RECORD, curate_frame, select_dataset
from frameloom.demo import FrameSpec, render_frame, render_reference
from frameloom.imageio import read_image, write_image, write_json
from frameloom.segmentation import soft_alpha
from frameloom.strategies import cutout

REPO = Path(__file__).resolve().parents[1]
CFG = load_run_config({}, REPO).run["curation"]
NO_REFERENCES = {"files": {}, "threshold": 0.73}
ANALYSIS = {"ok": True, "lighting": 0.5, "faces": []}


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
    write_json(meta, {"frame": name, "strategy": "segment", "segmentation": {"crop_box": crop_box}, "outputs": [
        {"image": str(out), "caption": None, "role": "character", "backend": "grabcut", "train": True,
         "subject": "character", "facts": []}]})
    analysis = root / "analysis" / f"{name}.json"
    write_json(analysis, ANALYSIS)
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
        assert Path(variant["curated"]).is_file() and variant["augmented_from"] in [r["curated"] for r in selection["kept"]]
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
            spec = FrameSpec(seed=10 * identity + index, identities=(identity,), shot=("medium", "full-body")[index % 2])
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
    ({"augmentations": ["crop_scale", "horizontal_flip"]}, "curation.augmentation.augmentations: horizontal_flip is refused: "),
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
