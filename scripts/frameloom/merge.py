"""Aggregate steps: the plan, the kohya training folder and processing_report.json."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

from .captions import REJECTIONS
from .config import STRATEGIES
from .distributions import distribution, frame_classes, training_classes
from .exports import concept_of
from .imageio import read_json, staged_folder, swap_in_folder, write_text

FAILED = "failed"
EXCLUDED = "excluded"
# Plan entries that get no strategy outputs.
NOT_PROCESSED = (FAILED, EXCLUDED)
# The analysis values each report result repeats (the decision's inputs).
ANALYSIS_FIELDS = ("complexity", "lighting", "occlusion", "quality", "sharpness", "noise", "instance_count",
                   "shot_type", "width", "height")


def plan_status(decision: dict) -> str:
    """The strategy, ``excluded`` (by the frame gate or by hand on review) or ``failed``
    (no usable analysis or a bad override)."""
    if decision.get("excluded"):
        return EXCLUDED
    return decision["strategy"] if decision["ok"] else FAILED


def exclusion_reason(decision: dict) -> str:
    """The frame gate's reason, or ``review`` for a frame excluded by hand."""
    if decision.get("override", {}).get("exclude"):
        return "review"
    return decision.get("exclusion_reason") or "review"


def write_plan(decisions: dict[str, dict], plan_path: str) -> dict[str, str]:
    """``frame<TAB>status`` per frame (see ``plan_status``)."""
    plan = {frame: plan_status(decision) for frame, decision in decisions.items()}
    write_text(plan_path, "".join(f"{frame}\t{strategy}\n" for frame, strategy in sorted(plan.items())))
    return plan


def read_plan(plan_path: str) -> dict[str, str]:
    with open(plan_path, encoding="utf-8") as handle:
        return dict(line.rstrip("\n").split("\t") for line in handle if line.strip())


def _place(src: str, dst: Path) -> None:
    """Hard-link when possible: outputs are only ever replaced by rename, never edited in place."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def read_caption_manifests(manifest_paths: list[str]) -> dict[str, dict]:
    """{image path: caption record} from the caption step's batch manifests."""
    records = {}
    for path in manifest_paths:
        records |= read_json(path)["images"]
    return records


def build_training_folder(selection: dict, training_dir: str, concepts: dict[str, dict],
                          vlm_captions: dict[str, dict] | None = None) -> int:
    """Fill ``training_dir`` with one kohya concept folder per entry of ``concepts``
    (exports.plan_concepts) holding the curated images and their captions, atomically.

    Curated names carry the strategy prefix, so they are unique even if a frame
    is called "x_character". An augmented variant takes its source's caption;
    an image the caption step captioned gets that caption, the others link
    their template caption. Returns the number of images. The folder is
    assembled beside the target and renamed into place, so a crash never leaves
    a half-merged dataset.
    """
    vlm_captions = vlm_captions or {}
    target = Path(training_dir)
    staging = staged_folder(target)
    for name in concepts:
        (staging / name).mkdir()
    records = selection["kept"] + selection["augmented"]
    for record in records:
        concept = staging / concept_of(concepts, record["strategy"])
        stem = Path(record["curated"]).stem
        _place(record["curated"], concept / f"{stem}.png")
        if record["image"] in vlm_captions:
            (concept / f"{stem}.txt").write_text(vlm_captions[record["image"]]["caption"] + "\n", encoding="utf-8")
        elif record["caption"]:
            _place(record["caption"], concept / f"{stem}.txt")
    swap_in_folder(staging, target)
    return len(records)


def build_rejected_folder(selection: dict, rejected_dir: str) -> int:
    """``rejected_dir/{reason}/``: a link to every curated image the curation removed (nothing is deleted)."""
    target = Path(rejected_dir)
    staging = staged_folder(target)
    for entry in selection["rejected"]:
        folder = staging / (entry.get("filter") or entry["reason"])
        folder.mkdir(exist_ok=True)
        _place(entry["curated"], folder / Path(entry["curated"]).name)
    swap_in_folder(staging, target)
    return len(selection["rejected"])


def prune_stale_outputs(out_dir: str, plan: dict[str, str]) -> list[str]:
    """Remove outputs, and curated copies, of strategies a frame no longer has (after a
    threshold change or a removed frame)."""
    removed = []
    root = Path(out_dir).resolve()
    for strategy in STRATEGIES:
        for meta_path in sorted(Path(out_dir, strategy, "meta").glob("*.json")):
            if plan.get(meta_path.stem) == strategy:
                continue
            for entry in read_json(meta_path).get("outputs", []):
                for path in (entry["image"], entry["caption"]):
                    # Only ever inside the output folder, whatever a (damaged) meta file says.
                    if path and Path(path).exists() and Path(path).resolve().is_relative_to(root):
                        Path(path).unlink()
                        removed.append(path)
            meta_path.unlink()
            removed.append(str(meta_path))
        curated = Path(out_dir, "curated", strategy)
        for frame_dir in sorted(curated.iterdir()) if curated.is_dir() else []:
            if plan.get(frame_dir.name) != strategy:
                shutil.rmtree(frame_dir)
                removed.append(str(frame_dir))
    return removed


def prune_cache(cache_dir: str) -> list[str]:
    """Drop model-step cache entries no output links to any more.

    Exports hard-link each entry's meta.json into the output tree, so an entry
    whose meta has no second link serves no current output (where the
    filesystem could not link, entries are only a speed-up and are dropped too).
    """
    removed = []
    for meta in sorted(Path(cache_dir).glob("*/*/meta.json")):
        if meta.stat().st_nlink == 1:
            shutil.rmtree(meta.parent)
            removed.append(str(meta.parent))
    return removed


def prune_caption_cache(cache_dir: str, records: dict[str, dict]) -> list[str]:
    """Drop cached captions no current manifest refers to."""
    used = {record["key"] for record in records.values()}
    removed = []
    for cached in sorted(Path(cache_dir).glob("*.json")):
        if cached.stem not in used:
            cached.unlink()
            removed.append(str(cached))
    return removed


def _caption_source(record: dict | None) -> str:
    if record is None:
        return "template"
    return record["source"] + (f" (rejected: {record['rejected']})" if record["rejected"] else "")


def _curation_status(selection: dict) -> dict[str, str]:
    """{produced image: what the curation did with it}, in words for the report."""
    status = {record["image"]: "kept" for record in selection["kept"]}
    for entry in selection["rejected"]:
        if entry.get("augmented_from"):
            continue
        if entry["reason"] == "quality":
            why = f"{entry['filter']} (measured {entry['value']}, limit {entry['limit']})"
        elif entry["reason"] == "duplicate":
            why = f"near-duplicate of {entry['duplicate_of']}"
        else:
            why = f"other identity (cluster {entry['cluster']})"
        status[entry["image"]] = f"rejected: {why}"
    for record in selection["augmented"]:
        status[record["image"]] += " + augmented"
    return status


def _curation_summary(selection: dict) -> dict:
    reasons = Counter(e.get("filter") or e["reason"] for e in selection["rejected"])
    by_strategy = Counter(r["strategy"] for r in selection["kept"] + selection["augmented"])
    return {
        **selection["counts"],
        "rejected_by": dict(sorted(reasons.items())),
        "images_by_strategy": {name: by_strategy[name] for name in STRATEGIES},
        "identity": selection["identity"],
    }


def build_report(plan: dict[str, str], analyses: dict[str, str], decisions: dict[str, str],
                 metas: dict[str, str], decision_cfg: dict, selection: dict,
                 vlm_captions: dict[str, dict] | None = None, captioner: str = "template",
                 inputs: dict[str, str] | None = None) -> dict:
    """processing_report.json in the seed's shape, plus backends, captions, curation and the achieved mix.

    ``inputs``: {frame id: the image file it was read from} (a video frame's is the extracted file)."""
    vlm_captions = vlm_captions or {}
    curation = _curation_status(selection)
    final_per_frame = Counter(r["frame"] for r in selection["kept"] + selection["augmented"])
    results = []
    strategies = Counter()
    backends = Counter()
    caption_sources = Counter()
    rejected = Counter()
    classes, instance_counts = {}, {}
    excluded = Counter()
    for frame in sorted(plan):
        analysis = read_json(analyses[frame])
        decision = read_json(decisions[frame])
        meta = read_json(metas[frame]) if frame in metas else None
        error = decision.get("error") or (meta or {}).get("error")
        outputs, output_backends, output_captions, output_curation = [], {}, {}, {}
        for entry in (meta or {}).get("outputs", []):
            if entry["image"] in curation:
                output_curation[entry["image"]] = curation[entry["image"]]
            outputs.append(entry["image"])
            if entry["caption"]:
                outputs.append(entry["caption"])
                record = vlm_captions.get(entry["image"])
                output_captions[entry["image"]] = _caption_source(record)
                if entry["train"]:
                    caption_sources[record["source"] if record else "template"] += 1
                    if record and record["rejected"]:
                        rejected[record["rejected"]] += 1
            output_backends[entry["image"]] = entry["backend"]
            backends[entry["backend"]] += 1
        success = decision["ok"] and meta is not None and not meta.get("error")
        if decision.get("excluded"):
            excluded[exclusion_reason(decision)] += 1
        segmentation = (meta or {}).get("segmentation")
        if success:
            strategies[decision["strategy"]] += 1
        # The segmenter's instance count replaces the analysis estimate when there is one.
        instance_count = segmentation["instances_found"] if segmentation else analysis.get("instance_count")
        if analysis.get("ok", True):
            instance_counts[frame] = instance_count
            classes[frame] = frame_classes(analysis, decision_cfg["thresholds"], instance_count)
        results.append({
            "frame": analysis.get("source", frame),
            "frame_id": frame,
            "input": (inputs or {}).get(frame),
            "strategy": decision["strategy"],
            "seed_rule": decision.get("seed_rule"),
            "confidence": decision["confidence"],
            "reasoning": decision["reasoning"],
            "outputs": outputs,
            "produced_images": sum(1 for e in (meta or {}).get("outputs", []) if e["train"]),
            "training_images": final_per_frame[frame],
            "backends": output_backends,
            "caption_sources": output_captions,
            "curation": output_curation,
            "instance_count": instance_count,
            "target": segmentation and {k: segmentation[k] for k in ("target_index", "target_score", "notes")},
            "success": bool(success),
            "error": error,
            "excluded": bool(decision.get("excluded")),
            # Why: a frame-gate reason (frameloom.decision.GATE_REASONS) or "review".
            "exclusion_reason": exclusion_reason(decision) if decision.get("excluded") else None,
            # The hand-made override (with the automatic strategy it replaced), if any.
            "override": decision.get("override"),
            # The measures the decision read, for the review page.
            "analysis": {key: analysis[key] for key in ANALYSIS_FIELDS if key in analysis},
        })
    successful = sum(1 for r in results if r["success"])
    total = len(results)
    mix = {name: round(strategies[name] / successful, 4) if successful else 0.0 for name in STRATEGIES}
    training = selection["kept"] + selection["augmented"]
    return {
        "summary": {
            "total_frames": total,
            "successful": successful,
            "failed": total - successful - sum(excluded.values()),
            # Frames excluded by the frame gate or by hand (overrides_file): neither successful nor failed.
            "excluded": sum(excluded.values()),
            "excluded_reasons": dict(sorted(excluded.items())),
            "strategies": {name: strategies[name] for name in STRATEGIES},
            "strategy_mix": mix,
            "strategy_targets": decision_cfg["strategy_targets"],
            "produced_images": sum(r["produced_images"] for r in results if r["success"]),
            "training_images": selection["counts"]["total"],
            "backends": dict(sorted(backends.items())),
            # Outputs made by a classical method standing in for a missing model.
            "fallbacks": sum(count for name, count in backends.items() if "(fallback:" in name),
            # Captions of the training images: who wrote them, and VLM answers replaced by templates.
            "captions": {
                "captioner": captioner,
                "sources": dict(sorted(caption_sources.items())),
                "rejected": {reason: rejected[reason] for reason in REJECTIONS},
            },
            "curation": _curation_summary(selection),
            # Shot type, lighting, background, occlusion and instance count of the analysed
            # frames and of the training images (distributions.py says how each image is classed).
            "distributions": {
                "frames": distribution(list(classes.values())),
                "training": distribution([
                    training_classes(r["role"], classes[r["frame"]], instance_counts[r["frame"]])
                    for r in training
                ]),
            },
        },
        "results": results,
        # Every image the curation removed, with the filter and the measured value (or the duplicate / cluster).
        "rejected": selection["rejected"],
    }
