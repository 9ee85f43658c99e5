"""The four strategies' outputs: read a frame and its analysis, write the seed's outputs.

keep_full and create_occlusion compute theirs here (``execute``); segment and
enhance_segment assemble theirs from the frame's model-step cache entries
(``export``, frameloom.model_step). Each takes the rule's named outputs and one
``settings`` dict (the rule's params), writes every file atomically, and
finishes with the meta file that lists each output, whether it goes into the
training folder, and which backend made it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import captions
from .imageio import copy_file, read_image, read_json, write_image, write_json, write_text
from .imageops import on_grey
from .matte import soft_alpha
from .occlusion import make_occlusion_variants
from .seeding import stable_seed
from .segmentation import Segmentation
from .stepcache import ALPHA, BACKGROUND, IMAGE, entries_used

CROP_MARGIN = 0.1  # of the character's box, kept around it in the cut-out


def _entry(image: str, caption: str | None, role: str, backend: str, train: bool,
           subject: str = captions.CHARACTER, facts: list[str] | None = None) -> dict:
    """One output in the meta file. ``subject`` and ``facts`` (tags the strategy applied)
    let the caption step frame a VLM answer the same way as the template caption."""
    return {"image": image, "caption": caption, "role": role, "backend": backend, "train": train,
            "subject": subject, "facts": facts or []}


def _write_caption(path: str | None, subject: str, settings: dict, analysis: dict, facts: list[str],
                   image: np.ndarray, *, with_background: bool = True) -> None:
    if path:
        write_text(path, captions.template_caption(
            subject, settings["trigger_word"], settings["caption_prefix"], analysis, facts, image,
            with_background=with_background) + "\n")


def cutout(image: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """BGRA crop around the character; colour premultiplied onto grey so alpha-less readers see a clean backdrop."""
    ys, xs = np.nonzero(alpha > 0.02)
    height, width = alpha.shape
    if len(xs) == 0:
        x0, y0, x1, y1 = 0, 0, width, height
    else:
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        pad_x, pad_y = int((x1 - x0) * CROP_MARGIN), int((y1 - y0) * CROP_MARGIN)
        x0, y0 = max(0, x0 - pad_x), max(0, y0 - pad_y)
        x1, y1 = min(width, x1 + pad_x), min(height, y1 + pad_y)
    a = alpha[y0:y1, x0:x1, None].astype(np.float32)
    bgra = np.dstack([on_grey(image[y0:y1, x0:x1], a), np.clip(a[..., 0] * 255 + 0.5, 0, 255).astype(np.uint8)])
    return bgra, [int(x0), int(y0), int(x1 - x0), int(y1 - y0)]


def placement(crop_box: list[int] | None, scale: float = 1.0) -> dict:
    """Where a cut-out sits: ``crop_box`` on the grid it was cut from, ``source_box`` the same
    crop on the frame's own grid and ``scale`` the cut-out's pixels per frame pixel (above 1 for
    an enhanced frame), so curation takes the frame's pixels behind it as they are."""
    source_box = None if crop_box is None else [int(round(v / scale)) for v in crop_box]
    return {"crop_box": crop_box, "source_box": source_box, "scale": scale}


def _segmentation_record(masks: dict, crop_box: list[int] | None, scale: float = 1.0) -> dict:
    """The meta's segmentation record, from the masks step's record (frameloom.model_step)."""
    keys = ("instances_found", "target_index", "target_score", "notes")
    return {"backend": masks["backend"], **{key: masks[key] for key in keys}, **placement(crop_box, scale)}


def scaled_hint(analysis: dict, scale: float) -> dict:
    """The analysis boxes in the coordinates of an upscaled image."""
    def scale_box(box):
        return [int(round(v * scale)) for v in box] if box else box

    hint = dict(analysis)
    hint["foreground_box"] = scale_box(analysis.get("foreground_box"))
    hint["faces"] = [dict(face, box=scale_box(face["box"])) for face in analysis.get("faces", [])]
    hint["instances"] = [dict(inst, box=scale_box(inst["box"])) for inst in analysis.get("instances", [])]
    return hint


def segment_target(image: np.ndarray, hint: dict, backends) -> tuple[Segmentation, str, str | None]:
    """Segment, then pick the target: against the reference images when given, else the
    segmenter's own pick. Returns the segmentation, the backend name and an error (no target)."""
    segmenter, backend = backends.segmenter()
    seg = segmenter.segment(image, hint)
    matcher = backends.matcher()
    if matcher is not None and seg.instance_masks:
        index, score, note = matcher.pick(image, seg.instance_masks)
        seg.target_index, seg.target_score, seg.notes = index, score, f"{note} [{matcher.name}]"
        if index is not None:
            seg.target_alpha = soft_alpha(image, seg.instance_masks[index])
    if seg.target_index is None:
        kind = "NoCharacterMatch" if matcher is not None and seg.instance_masks else "NoCharacterFound"
        return seg, backend, f"{kind}: {seg.notes}"
    return seg, backend, None


def run_keep_full(frame_path: str, analysis: dict, outputs: dict, settings: dict) -> dict:
    cfg = settings["strategy"]
    image = read_image(frame_path)
    if Path(frame_path).suffix.lower() == ".png":
        copy_file(frame_path, outputs["image"])
    else:
        write_image(outputs["image"], image)  # same pixels, stored as PNG
    caption_path = outputs.get("caption")
    _write_caption(caption_path, captions.CHARACTER, settings, analysis, [], image)
    return {"outputs": [_entry(outputs["image"], caption_path, "full", "original", cfg["generate_caption"])]}


def _entry_devices(entries: dict) -> dict:
    devices = {}
    for entry in entries.values():
        devices |= entry.record["devices"]
    return devices


def export_segment(frame_path: str, analysis: dict, outputs: dict, settings: dict, entries: dict) -> dict:
    """The segment outputs from the frame's ``masks`` and ``inpaint`` cache entries (frameloom.model_step)."""
    cfg = settings["strategy"]
    image = read_image(frame_path)
    masks = entries["masks"].record
    found = masks["error"] is None
    alpha = np.load(entries["masks"].path / ALPHA)
    entries_out = []
    crop_box = None
    # No inpaint entry when neither the background nor the composite is saved.
    if "inpaint" in entries:
        background = read_image(entries["inpaint"].path / BACKGROUND)
        inpaint_backend = entries["inpaint"].record["backend"]
    if "character" in outputs:
        character, crop_box = cutout(image, alpha)
        write_image(outputs["character"], character)
        facts = captions.split_tags(cfg["character_caption_suffix"])
        caption = outputs.get("character_caption")
        _write_caption(caption, captions.CHARACTER, settings, analysis, facts, character, with_background=False)
        entries_out.append(_entry(outputs["character"], caption, "character", masks["backend"], found,
                                  captions.CHARACTER, facts))
    if "background" in outputs:
        write_image(outputs["background"], background)
        others = max(0, masks["instances_found"] - 1) if found else 0
        facts = captions.background_facts(cfg["background_caption_suffix"], others)
        caption = outputs.get("background_caption")
        _write_caption(caption, captions.BACKGROUND, settings, analysis, facts, background)
        entries_out.append(_entry(outputs["background"], caption, "background", inpaint_backend, found,
                                  captions.BACKGROUND, facts))
    if "composite" in outputs:
        # The cut-out laid back over the inpainted plate: a review image, not training data.
        a = alpha[..., None]
        composite = np.clip(image * a + background * (1 - a) + 0.5, 0, 255).astype(np.uint8)
        write_image(outputs["composite"], composite)
        entries_out.append(_entry(outputs["composite"], None, "composite", masks["backend"], False))
    if "mask" in outputs:
        write_image(outputs["mask"], np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8))
        entries_out.append(_entry(outputs["mask"], None, "mask", masks["backend"], False))
    return {"outputs": entries_out, "segmentation": _segmentation_record(masks, crop_box),
            "devices": _entry_devices(entries), "error": masks["error"]}


def run_create_occlusion(frame_path: str, analysis: dict, outputs: dict, settings: dict) -> dict:
    cfg = settings["strategy"]
    image = read_image(frame_path)
    variants = make_occlusion_variants(image, cfg, stable_seed(settings["frame"]), analysis.get("foreground_box"))
    entries = []
    for variant, image_path, caption_path in zip(variants, outputs["images"], outputs["captions"], strict=True):
        write_image(image_path, variant.image)
        facts = [variant.description] if cfg["add_occlusion_tags"] else []
        _write_caption(caption_path, captions.CHARACTER, settings, analysis, facts, variant.image)
        entries.append(_entry(image_path, caption_path, f"occlusion:{variant.kind}:{variant.position}", "synthetic",
                              True, captions.CHARACTER, facts))
    return {"outputs": entries}


def export_enhance_segment(frame_path: str, analysis: dict, outputs: dict, settings: dict, entries: dict) -> dict:
    """The enhance_segment output from the frame's ``restore_faces`` entry (the enhanced frame, every
    enhancement step's record) and, with apply_segmentation, its ``masks`` entry."""
    cfg = settings["strategy"]
    restored = entries["restore_faces"].record
    enhanced = read_image(entries["restore_faces"].path / IMAGE)
    steps = restored["steps"]
    # The enhanced frame's size: crop boxes below are in its coordinates.
    meta = {"steps": steps, "enhanced_size": restored["enhanced_size"], "devices": _entry_devices(entries),
            "error": None}
    enhance_backend = "+".join(step["backend"] for step in steps if step["applied"]) or "none"
    if "masks" in entries:
        masks = entries["masks"].record
        found = masks["error"] is None
        result, crop_box = cutout(enhanced, np.load(entries["masks"].path / ALPHA))
        meta["segmentation"] = _segmentation_record(masks, crop_box, enhanced.shape[1] / analysis["width"])
        meta["error"] = masks["error"]
        backend = f"{enhance_backend} -> {masks['backend']}"
        with_background = False
        isolated = captions.split_tags(settings["segment"]["character_caption_suffix"])
    else:
        result, found, backend, with_background, isolated = enhanced, True, enhance_backend, True, []
    # "enhanced" only when a step actually changed the frame.
    facts = isolated + (captions.split_tags(cfg["caption_suffix"]) if any(step["applied"] for step in steps) else [])
    write_image(outputs["image"], result)
    _write_caption(outputs["caption"], captions.CHARACTER, settings, analysis, facts, result,
                   with_background=with_background)
    meta["outputs"] = [_entry(outputs["image"], outputs["caption"], "enhanced_character", backend, found,
                              captions.CHARACTER, facts)]
    return meta


EXECUTORS = {"keep_full": run_keep_full, "create_occlusion": run_create_occlusion}
EXPORTERS = {"segment": export_segment, "enhance_segment": export_enhance_segment}


def execute(strategy: str, frame_path: str, analysis_path: str, outputs: dict, settings: dict) -> dict:
    """Run keep_full or create_occlusion on one frame and write its meta file last (it marks the job complete)."""
    meta = {"frame": settings["frame"], "strategy": strategy, "error": None}
    meta |= EXECUTORS[strategy](frame_path, read_json(analysis_path), outputs, settings)
    write_json(outputs["meta"], meta)
    return meta


def export(strategy: str, frame_path: str, analysis_path: str, outputs: dict, settings: dict,
           entries: dict) -> dict:
    """Assemble a model strategy's outputs from the frame's model-step cache entries (``{step: Entry}``)
    and write its meta file last; the meta names the entries it used (the merge keeps those)."""
    meta = {"frame": settings["frame"], "strategy": strategy}
    meta |= EXPORTERS[strategy](frame_path, read_json(analysis_path), outputs, settings, entries)
    meta["cache"] = entries_used(entries)
    write_json(outputs["meta"], meta)
    return meta
