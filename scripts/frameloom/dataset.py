"""Dataset curation between the strategy outputs and the merge.

Per frame (``curate_frame``, one job each): every training image gets its
alpha refined by matting (cut-outs with their real pixels), a uniform
backdrop, mild hue-preserving CLAHE, its quality measured against the
filters, and a perceptual hash; the curated copy and a record go to the
frame's curated folder. Over the whole set (``select_dataset``, one job):
quality rejects, near-duplicate groups (best image kept), identity clusters
of the cut-outs (the target character's kept, the others reported), and
3D-safe augmentation while the character has fewer than ``augment_below``
images, the variants deduplicated too. Nothing is deleted: every image
removed is listed with why, and the merge links it under ``rejected/``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .augment import augment
from .backends import FALLBACK_MARK
from .curation import OPAQUE_ABOVE, measure_quality, normalize_colour, quality_failures, refine_alpha
from .dedup import choose_representatives, near_duplicate_groups, phash, ssim_thumbnail
from .faces import box_overlap
from .imageio import building_folder, read_image, read_json, write_image, write_json
from .imageops import uniform_background
from .seeding import stable_seed
from .segmentation import mask_bounding_box

CUT_OUT_ROLES = ("character", "enhanced_character")
# Images that show the character as filmed (whole frames and cut-outs), and the
# strategy whose images are synthetic variants of a frame.
CHARACTER_ROLES = ("full", "character", "enhanced_character")
SYNTHETIC_STRATEGY = "create_occlusion"
# Roles whose image shows the character's face when the frame has one (occlusion variants may hide it).
FACE_ROLES = ("full", "character", "enhanced_character")
CURATED_RECORD = "curated.json"


def _source_region(meta: dict, frame: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, float, list[int]]:
    """The frame's pixels behind a cut-out, at the cut-out's size, the scale from frame to
    cut-out coordinates and the crop box (frame coordinates), as the cut-out's placement
    records them (frameloom.strategies.placement)."""
    box, scale = meta["segmentation"]["source_box"], meta["segmentation"]["scale"]
    region = frame[box[1]:box[1] + box[3], box[0]:box[0] + box[2]]
    if region.shape[:2] != shape[:2]:
        region = cv2.resize(region, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return region, scale, box


def _faces(analysis: dict, role: str, box: list[int] | None, scale: float) -> list[list[int]] | None:
    """The analysis' face boxes in the image's coordinates; None when no face is expected."""
    if role not in FACE_ROLES or not analysis.get("faces"):
        return None
    x0, y0 = (box[0], box[1]) if box else (0, 0)
    return [[int((fx - x0) * scale), int((fy - y0) * scale), int(fw * scale), int(fh * scale)]
            for fx, fy, fw, fh in (face["box"] for face in analysis["faces"])]


def _cut_out(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray, mode: str) -> np.ndarray:
    """A BGRA cut-out of ``colour`` with ``alpha`` (0..1), on the configured uniform backdrop."""
    bgra = np.dstack([colour, np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8)])
    return uniform_background(bgra, mode)


# Verification: a cut-out is the character only when evidence the segmenter did not
# make supports its mask. With the character finder, its box: the mask's bounding box
# must overlap it by FINDER_BOX_IOU. Without it, a detected face, FACE_INSIDE of it
# covered by the mask, with a body around it: the mask BODY_AROUND_FACE times the
# face's area at least and at most BODY_EXTENT face sizes across (a wall cut out
# round a face is no body).
FINDER_BOX_IOU = 0.5
FACE_INSIDE = 0.5
BODY_AROUND_FACE = 1.5
BODY_EXTENT = 10.0
# A plate is clean when each character the analysis found lies this much inside
# the box of what was filled (its own body, not only its face, was removed).
PLATE_INSTANCE_INSIDE = 0.8


def _verify_cut_out(opaque: np.ndarray, analysis: dict, box: list[int], scale: float) -> dict:
    """{verified, reason} for a cut-out whose opaque pixels are ``opaque`` (its own grid; ``box``
    and ``scale`` map frame coordinates onto it, as for ``_faces``)."""
    mask_box = mask_bounding_box(opaque)
    if mask_box is None:
        return {"verified": False, "reason": "empty mask"}
    finder = analysis.get("finder", "classical")
    if finder != "classical" and analysis.get("foreground_box"):
        fx, fy, fw, fh = analysis["foreground_box"]
        found = [(fx - box[0]) * scale, (fy - box[1]) * scale, fw * scale, fh * scale]
        overlap = box_overlap(mask_box, found)[0]
        if overlap >= FINDER_BOX_IOU:
            return {"verified": True, "reason": f"mask matches the {finder} box (IoU {overlap:.2f})"}
        return {"verified": False, "reason": f"mask off the {finder} box (IoU {overlap:.2f} < {FINDER_BOX_IOU})"}
    area = float(np.count_nonzero(opaque))
    for x, y, w, h in _faces(analysis, "character", box, scale) or []:
        x0, y0, x1, y1 = max(0, x), max(0, y), min(opaque.shape[1], x + w), min(opaque.shape[0], y + h)
        if w <= 0 or h <= 0 or x1 <= x0 or y1 <= y0:
            continue
        inside = np.count_nonzero(opaque[y0:y1, x0:x1]) / float(w * h)
        extent = max(mask_box[2] / w, mask_box[3] / h)
        if inside >= FACE_INSIDE and area >= BODY_AROUND_FACE * w * h and extent <= BODY_EXTENT:
            return {"verified": True, "reason": f"a detected face inside the mask ({inside:.0%} covered), "
                                                f"a body around it ({area / (w * h):.1f}x the face)"}
    return {"verified": False, "reason": "no detected face (or finder box) supports the mask: only the "
                                         "classical subject guess does"}


def _verify_frame(analysis: dict) -> dict:
    """{verified, reason} for a whole frame (kept whole or an occlusion variant's source)."""
    count, finder = analysis.get("instance_count", 0), analysis.get("finder", "classical")
    if count < 1:
        return {"verified": False, "reason": "no character found in the frame"}
    return {"verified": True, "reason": f"frame gate passed: {count} character(s) found ({finder}), "
                                        f"sharpness {analysis.get('sharpness', 0):.2f}"}


def _verify_plate(cut_out: dict | None, frame_mask: np.ndarray | None, analysis: dict, mask_backend: str) -> dict:
    """{verified, reason} for a background plate: the character cut out of it was verified, every
    face detected in the frame lies where the plate was filled, and so does every character the
    analysis found (PLATE_INSTANCE_INSIDE of its box within the filled region's box). Whatever
    is left may be the character's own body, a second view of it or another character: with no
    way to tell which from the plate alone, none of it is trained on as "environment"."""
    if cut_out is None or not cut_out["verified"] or frame_mask is None or not frame_mask.any():
        return {"verified": False, "reason": "plate_contains_character: the character cut out of it was not "
                                             "verified, so it may still be in the plate"}
    if FALLBACK_MARK in mask_backend:
        # Looked at on the shared real frames: of 11 plates from GrabCut masks that passed the
        # checks below, 6 still showed a hand, a body or a second character.
        return {"verified": False, "reason": "plate_contains_character: the mask is the classical fallback's "
                                             f"({mask_backend.split(' (')[0]}), which leaves parts of the "
                                             "character in the plate; plates are trained on from SAM2 masks"}
    for x, y, w, h in (face["box"] for face in analysis.get("faces", [])):
        covered = float(frame_mask[max(0, y):y + h, max(0, x):x + w].mean()) if w and h else 0.0
        if covered < FACE_INSIDE:
            return {"verified": False, "reason": f"plate_contains_character: a face at {[x, y, w, h]} was left "
                                                 f"in the plate ({covered:.0%} of it filled)"}
    fx, fy, fw, fh = mask_bounding_box(frame_mask)
    for x, y, w, h in (instance["box"] for instance in analysis.get("instances", [])):
        # The share of the character's box inside the filled region's box.
        ix = max(0, min(x + w, fx + fw) - max(x, fx))
        iy = max(0, min(y + h, fy + fh) - max(y, fy))
        inside = ix * iy / float(w * h) if w and h else 0.0
        if inside < PLATE_INSTANCE_INSIDE:
            return {"verified": False, "reason": f"plate_contains_character: a character at {[x, y, w, h]} "
                                                 f"lies mostly outside the filled region ({inside:.0%} inside)"}
    return {"verified": True, "reason": "the verified character was filled in; no detected face or character "
                                        "is left"}


def curate_image(entry: dict, meta: dict, analysis: dict, frame: np.ndarray, cfg: dict,
                 good_lighting: float) -> tuple[np.ndarray, dict]:
    """One training image curated: (pixels, record of what was done and measured)."""
    image = read_image(entry["image"], keep_alpha=True)
    steps, source, box, scale = [], frame, None, 1.0
    is_cut_out = image.ndim == 3 and image.shape[2] == 4 and entry["role"] in CUT_OUT_ROLES
    if is_cut_out:
        opaque = image[..., 3] > OPAQUE_ABOVE  # the segmenter's mask, before matting
        source, scale, box = _source_region(meta, frame, image.shape)
        alpha = image[..., 3].astype(np.float32) / 255.0
        background = cfg["background"]
        if background["refine_alpha"] and "enhanced_size" not in meta:
            # The frame's own pixels behind the cut-out: matting sees the real edge colours.
            alpha = refine_alpha(source, alpha, band=background["matting_band"])
            image = _cut_out(image, alpha, source, background["uniformity"])
            steps.append("alpha matting (pymatting closed-form)")
            steps.append(f"{background['uniformity']} backdrop")
        elif background["uniformity"] == "transparent":
            # Enhanced cut-outs have no unpremultiplied source at their scale: the alpha stays,
            # and their soft edge keeps its blend with the grey it was cut onto.
            image = uniform_background(image, "transparent")
            steps.append("transparent backdrop")
    colour = cfg["colour"]
    good = entry["role"] == "full" and meta["strategy"] == "keep_full" and analysis.get("lighting", 0) >= good_lighting
    if colour["clahe"] and not (colour["skip_good_lighting"] and good):
        image = normalize_colour(image, colour["clahe_clip_limit"], colour["adaptive_tile_size"],
                                 colour["white_balance"])
        steps.append("clahe" + (" + white balance" if colour["white_balance"] else ""))
    faces = _faces(analysis, entry["role"], box, scale)
    # Where the character is in a whole frame, so augmentation crops keep it.
    subject = analysis.get("foreground_box") if not is_cut_out else None
    if subject and image.shape[1] != frame.shape[1]:
        subject = [int(round(v * image.shape[1] / frame.shape[1])) for v in subject]
    measures = measure_quality(image, source, faces)
    failures = quality_failures(measures, cfg["quality_filters"], face_expected=faces is not None)
    if is_cut_out:
        verification = _verify_cut_out(opaque, analysis, box, scale)
    elif entry["role"] == "background":
        verification = None  # set by curate_frame, from its character's cut-out
    else:
        verification = _verify_frame(analysis)
    return image, {
        "image": entry["image"], "caption": entry["caption"], "role": entry["role"], "subject": entry["subject"],
        "strategy": meta["strategy"], "frame": meta["frame"], "steps": steps, "measures": measures,
        "failures": failures, "phash": f"{phash(image):016x}", "character_box": subject,
        "verification": verification,
    }


def _mask_backend(meta: dict) -> str:
    """The reported backend of the frame's character mask (its cut-out's), fallback note included."""
    return next((e["backend"] for e in meta["outputs"] if e["role"] in CUT_OUT_ROLES), "")


def _frame_mask(meta: dict, shape: tuple[int, ...]) -> np.ndarray | None:
    """The character's mask on the frame's grid (bool): the segment step's mask file, else
    the cut-out's alpha put back where it was cut from the frame; None without either."""
    by_role = {entry["role"]: entry["image"] for entry in meta["outputs"] if Path(entry["image"]).is_file()}
    if "mask" in by_role:
        mask = read_image(by_role["mask"], keep_alpha=True)
        mask = mask if mask.ndim == 2 else mask[..., 0]
        return cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > OPAQUE_ABOVE
    crop = (meta.get("segmentation") or {}).get("source_box")
    if "character" not in by_role or not crop:
        return None
    cut_out = read_image(by_role["character"], keep_alpha=True)
    if cut_out.ndim != 3 or cut_out.shape[2] != 4:
        return None
    x, y, w, h = crop
    mask = np.zeros(shape[:2], bool)
    mask[y:y + h, x:x + w] = cv2.resize(cut_out[..., 3], (w, h), interpolation=cv2.INTER_NEAREST) > OPAQUE_ABOVE
    return mask


def curate_frame(meta_path: str, analysis_path: str, frame_path: str, out_dir: str, cfg: dict,
                 good_lighting: float) -> dict:
    """Curate every training image of one frame into ``out_dir`` (images + curated.json), built in a
    staged folder and swapped in: a job killed half-way leaves no folder that looks complete."""
    meta, analysis = read_json(meta_path), read_json(analysis_path)
    frame = read_image(frame_path)
    with building_folder(out_dir) as staging:
        return _curate_into(staging, out_dir, meta, analysis, frame, cfg, good_lighting)


def _curate_into(staging: Path, out_dir: str, meta: dict, analysis: dict, frame, cfg: dict,
                 good_lighting: float) -> dict:
    records = []
    for entry in meta["outputs"]:
        if not entry["train"]:
            continue
        image, record = curate_image(entry, meta, analysis, frame, cfg, good_lighting)
        name = f"{meta['strategy']}__{Path(entry['image']).stem}.png"
        record["curated"] = str(Path(out_dir, name))  # where it will be once the folder is swapped in
        write_image(staging / name, image)
        records.append(record)
    cut_out = next((r for r in records if r["role"] in CUT_OUT_ROLES), None)
    for record in records:
        if record["role"] == "background":
            record["verification"] = _verify_plate(cut_out and cut_out["verification"],
                                                   _frame_mask(meta, frame.shape), analysis, _mask_backend(meta))
    result = {"frame": meta["frame"], "strategy": meta["strategy"], "images": records}
    write_json(staging / CURATED_RECORD, result)
    return result


# ---------------------------------------------------------------------------
# The whole set.


def _quality(record: dict) -> float:
    return float(record["measures"]["edge_score"])


def _deduplicate(records: dict[str, dict], cfg: dict, thumbnails: dict[str, np.ndarray]) -> dict[str, str]:
    """{dropped id: kept id} over ``records`` (ids are curated paths); ``thumbnails`` caches
    SSIM thumbnails across calls, so the pass over the augmented variants reads no image twice."""

    def thumbnail_of(image_id: str) -> np.ndarray:
        if image_id not in thumbnails:
            thumbnails[image_id] = ssim_thumbnail(read_image(image_id, keep_alpha=True))
        return thumbnails[image_id]

    hashes = {image_id: int(record["phash"], 16) for image_id, record in records.items()}
    groups = near_duplicate_groups(hashes, thumbnail_of, cfg["phash_threshold"], cfg["ssim_threshold"])
    return choose_representatives(groups, {image_id: _quality(r) for image_id, r in records.items()})


CLASSICAL_IDENTITY = "classical signature"  # frameloom.target's appearance signature


def _identity(records: dict[str, dict], cfg: dict, references: dict, embeddings: dict | None) -> dict:
    """Cluster the cut-outs by the identity embedding when it ran (frameloom.embed_step), else by
    the classical signature (the named fallback); {"clusters", "target", "scores", "reason",
    "descriptor", "others": {id: cluster}}."""
    from .identity import (
        best_reference_cosines,
        best_reference_scores,
        character_descriptor,
        cluster_embeddings,
        cluster_identities,
        pick_target_cluster,
        reference_descriptors,
    )

    cut_outs = sorted(image_id for image_id, r in records.items() if r["role"] in CUT_OUT_ROLES)
    if embeddings is not None:
        descriptor = f"{embeddings['embedder']} embedding ({embeddings['model']}, {embeddings['device']})"
    else:
        descriptor = f"{CLASSICAL_IDENTITY} {FALLBACK_MARK} no dinov2 weights)"
    if not cut_outs:
        return {"clusters": [], "target": None, "scores": [], "reason": "no cut-outs to cluster", "others": {},
                "descriptor": descriptor}
    if embeddings is not None:
        vectors = {i: np.asarray(embeddings["images"][i]) for i in cut_outs if i in embeddings["images"]}
        undescribed = [i for i in cut_outs if i not in vectors]
        clusters = cluster_embeddings(vectors, cfg["embedding_threshold"])
        reference = [np.asarray(embeddings["references"][f]) for f in sorted(references["files"])
                     if f in embeddings["references"]]
        best_reference = best_reference_cosines(vectors, reference) if reference else None
        pick_threshold = cfg["embedding_threshold"]
    else:
        descriptors, undescribed = {}, []
        for image_id in cut_outs:
            try:
                descriptors[image_id] = character_descriptor(read_image(image_id, keep_alpha=True))
            except ValueError:  # too few opaque pixels to tell anyone apart: kept, not clustered
                undescribed.append(image_id)
        clusters = cluster_identities(descriptors, cfg["threshold"])
        reference = reference_descriptors(sorted(references["files"])) if references["files"] else None
        best_reference = best_reference_scores(descriptors, reference) if reference and descriptors else None
        pick_threshold = references["threshold"]
    # Without references only a cluster backed by character evidence (a face or a detected
    # character behind a verified cut-out) may be taken for the character.
    supported = {index for index, members in enumerate(clusters)
                 if any(records[i].get("verification", {}).get("verified") for i in members)}
    target, scores, reason = pick_target_cluster(clusters, best_reference, pick_threshold, supported)
    scores = [round(float(s), 4) for s in scores]
    if best_reference is None and clusters and len(clusters[0]) < cfg["min_cluster_size"]:
        # Without references the main character is the biggest cluster: too small a one tells nothing.
        return {"clusters": clusters, "target": None, "scores": scores, "others": {}, "descriptor": descriptor,
                "reason": f"no reference images and the largest cluster has {len(clusters[0])} < "
                          f"{cfg['min_cluster_size']} cut-outs: all kept"}
    if target is None and best_reference is None:
        return {"clusters": clusters, "target": None, "scores": scores, "others": {}, "descriptor": descriptor,
                "reason": reason + ": all kept"}
    others = {image_id: index for index, members in enumerate(clusters) if index != target for image_id in members}
    return {"clusters": clusters, "target": target, "scores": scores, "descriptor": descriptor,
            "reason": reason + (f"; {len(undescribed)} cut-outs too small to describe, kept" if undescribed else ""),
            "others": others}


def _character_mask(record: dict, shape: tuple[int, ...]) -> np.ndarray | None:
    """A whole frame's character box as a mask (a cut-out's alpha is its own)."""
    is_cut_out = len(shape) == 3 and shape[2] == 4
    if is_cut_out or not record.get("character_box"):
        return None
    x, y, w, h = record["character_box"]
    mask = np.zeros(shape[:2], np.float32)
    mask[y:y + h, x:x + w] = 1.0
    return mask


def _augment(kept: dict[str, dict], cfg: dict, backdrop: str, out_dir: Path) -> dict[str, dict]:
    """Variants of the kept images, in id order, until the set reaches ``augment_below``."""
    room = cfg["augment_below"] - len(kept)
    variants: dict[str, dict] = {}
    for image_id in sorted(kept):
        if len(variants) >= room:
            break
        record = kept[image_id]
        # Background plates are not the character's images, and occlusion variants are
        # synthetic already: variants of variants would outnumber the frames they show.
        if record["subject"] != "character" or record["strategy"] == SYNTHETIC_STRATEGY:
            continue
        image = read_image(image_id, keep_alpha=True)
        count = min(cfg["variants_per_image"], room - len(variants))
        variants_of = augment(image, cfg, stable_seed(Path(image_id).name), count, _character_mask(record, image.shape))
        for index, variant in enumerate(variants_of):
            path = out_dir / f"{Path(image_id).stem}_aug{index}.png"
            # Augmentation works on grey-premultiplied cut-outs; restore a transparent backdrop after it.
            is_cut_out = variant.image.ndim == 3 and variant.image.shape[2] == 4
            write_image(path, uniform_background(variant.image, "transparent")
                        if is_cut_out and backdrop == "transparent" else variant.image)
            variants[str(path)] = {**record, "curated": str(path), "augmented_from": image_id,
                                   "augmentation": variant.params, "phash": f"{phash(variant.image):016x}"}
    return variants


def _over_synthetic_cap(kept: dict[str, dict]) -> list[str]:
    """The occlusion variants beyond the number of real character images in ``kept``
    (whole frames and cut-outs of the other strategies), dropped latest variant first
    and evenly over the frames: every frame keeps its first variant before any keeps two."""
    real = sum(1 for r in kept.values() if r["strategy"] != SYNTHETIC_STRATEGY and r["role"] in CHARACTER_ROLES)
    variants: dict[str, list[str]] = {}
    for image_id in sorted(kept):
        if kept[image_id]["strategy"] == SYNTHETIC_STRATEGY:
            variants.setdefault(kept[image_id]["frame"], []).append(image_id)
    rounds = [(index, frame, image_id) for frame, ids in variants.items() for index, image_id in enumerate(ids)]
    return [image_id for _, _, image_id in sorted(rounds)[real:]]


def select_dataset(curated_records: list[str], cfg: dict, references: dict, augment_dir: str,
                   embeddings: dict | None = None) -> dict:
    """The curated set: what is kept, what was augmented, and every image removed with why.

    ``references``: RunConfig.references() (files and the match threshold); ``embeddings``:
    the identity-embedding step's record (frameloom.embed_step) when it ran."""
    records: dict[str, dict] = {}
    for path in curated_records:
        for record in read_json(path)["images"]:
            records[record["curated"]] = record
    rejected: dict[str, dict] = {}
    # What is not the character (or a plate with it still inside) is named as such first.
    for image_id, record in records.items():
        check = record.get("verification")
        if check and not check["verified"] and not cfg["train_unverified"]:
            reason = "plate_contains_character" if record["role"] == "background" else "unverified"
            rejected[image_id] = {"reason": reason, "detail": check["reason"]}
    for image_id, record in records.items():
        if record["failures"] and image_id not in rejected:
            first = record["failures"][0]
            rejected[image_id] = {"reason": "quality", **first, "all_failures": record["failures"]}
    kept = {i: r for i, r in records.items() if i not in rejected}
    thumbnails: dict[str, np.ndarray] = {}
    if cfg["dedup"]["enabled"]:
        for dropped, representative in _deduplicate(kept, cfg["dedup"], thumbnails).items():
            rejected[dropped] = {"reason": "duplicate", "duplicate_of": representative}
        kept = {i: r for i, r in kept.items() if i not in rejected}
    identity = {"clusters": [], "target": None, "scores": [], "reason": "identity clustering off", "others": {},
                "descriptor": None}
    if cfg["identity"]["enabled"]:
        identity = _identity(kept, cfg["identity"], references, embeddings)
        for image_id, cluster in identity["others"].items():
            rejected[image_id] = {"reason": "other_identity", "cluster": cluster}
        kept = {i: r for i, r in kept.items() if i not in rejected}
    out = Path(augment_dir)
    out.mkdir(parents=True, exist_ok=True)
    augmented: dict[str, dict] = {}
    augmentation = cfg["augmentation"]
    if augmentation["enabled"] and len(kept) < augmentation["augment_below"]:
        augmented = _augment(kept, augmentation, cfg["background"]["uniformity"], out)
        if cfg["dedup"]["enabled"] and augmented:
            # Variants that came out near-identical to their source (or each other) are dropped too.
            for dropped, representative in _deduplicate({**kept, **augmented}, cfg["dedup"], thumbnails).items():
                if dropped in augmented:
                    rejected[dropped] = {"reason": "duplicate", "duplicate_of": representative,
                                         "augmented_from": augmented[dropped]["augmented_from"],
                                         "image": augmented[dropped]["image"]}
            augmented = {i: r for i, r in augmented.items() if i not in rejected}
    for image_id in _over_synthetic_cap(kept):
        rejected[image_id] = {"reason": "synthetic_cap",
                              "detail": "synthetic occlusion variants may not outnumber the real character images"}
    kept = {i: r for i, r in kept.items() if i not in rejected}
    low, high = cfg["target_size"]
    total = len(kept) + len(augmented)
    return {
        "kept": [kept[i] for i in sorted(kept)],
        "augmented": [augmented[i] for i in sorted(augmented)],
        # A variant's entry names its source's produced image (it carries "image" itself).
        "rejected": [{"curated": i, "image": records[i]["image"] if i in records else None, **rejected[i]}
                     for i in sorted(rejected)],
        "identity": {key: identity[key] for key in ("clusters", "target", "scores", "reason", "descriptor")},
        # Per produced image: is it what its role says (the character, a clean plate), and why.
        "verification": {r["image"]: r["verification"] for r in records.values() if r.get("verification")},
        "counts": {"curated": len(records), "kept": len(kept), "augmented": len(augmented),
                   "rejected": len(rejected), "total": total, "target_size": [low, high],
                   "within_target_size": low <= total <= high},
    }
