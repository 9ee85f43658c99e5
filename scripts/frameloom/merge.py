"""The merge's report: processing_report.json (every frame's analysis, decision, outputs and
curation) and the warnings a person should read before training."""

from __future__ import annotations

import re
from collections import Counter

from .backends import FALLBACK_MARK
from .captions import REJECTIONS
from .distributions import distribution, frame_classes, training_classes
from .imageio import read_json
from .plan import exclusion_reason
from .planner import plan_constraints
from .registry import STRATEGIES

# The analysis values each report result repeats (the decision's inputs).
ANALYSIS_FIELDS = ("complexity", "lighting", "occlusion", "quality", "sharpness", "noise", "instance_count",
                   "shot_type", "width", "height")


def read_caption_manifests(manifest_paths: list[str]) -> dict[str, dict]:
    """{image path: caption record} from the caption step's batch manifests."""
    records = {}
    for path in manifest_paths:
        records |= read_json(path)["images"]
    return records


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
        elif entry["reason"] == "other_identity":
            why = f"other identity (cluster {entry['cluster']})"
        else:  # unverified, plate_contains_character, synthetic_cap
            why = f"{entry['reason']} ({entry['detail']})"
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
                 metas: dict[str, dict], decision_cfg: dict, selection: dict,
                 vlm_captions: dict[str, dict] | None = None, captioner: str = "template",
                 inputs: dict[str, str] | None = None, enabled: list[str] | None = None) -> dict:
    """processing_report.json in the seed's shape, plus backends, captions, curation, the achieved
    mix and the plan (target, achieved and what binds per strategy, frameloom.planner).

    ``analyses``, ``decisions``: {frame id: its file}; ``metas``: {frame id: its strategy meta (the
    record)}; ``inputs``: {frame id: the image file it was read from} (a video frame's is the extracted file);
    ``enabled``: the enabled strategies (default all)."""
    vlm_captions = vlm_captions or {}
    curation = _curation_status(selection)
    verification = selection.get("verification", {})
    final_per_frame = Counter(r["frame"] for r in selection["kept"] + selection["augmented"])
    results = []
    strategies = Counter()
    backends = Counter()
    caption_sources = Counter()
    rejected = Counter()
    classes, instance_counts = {}, {}
    excluded = Counter()
    model_devices: dict[str, dict] = {}
    decision_records = {}
    for frame in sorted(plan):
        analysis = read_json(analyses[frame])
        decision = decision_records[frame] = read_json(decisions[frame])
        meta = metas.get(frame)
        error = decision.get("error") or (meta or {}).get("error")
        outputs, output_backends, output_captions, output_curation = [], {}, {}, {}
        output_verification = {}
        for entry in (meta or {}).get("outputs", []):
            if entry["image"] in curation:
                output_curation[entry["image"]] = curation[entry["image"]]
            if entry["image"] in verification:
                output_verification[entry["image"]] = verification[entry["image"]]
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
        model_devices |= (meta or {}).get("devices", {})
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
            # Where this frame's models ran: {model: {device, precision, cpu_because}}.
            "devices": (meta or {}).get("devices", {}),
            "caption_sources": output_captions,
            "curation": output_curation,
            # Per produced training image: {verified, reason} (frameloom.dataset's verification).
            "verification": output_verification,
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
            # Per strategy: the planned share of the decided frames against its target, and what binds.
            "plan": plan_constraints(decision_records, decision_cfg, list(STRATEGIES) if enabled is None else enabled),
            "produced_images": sum(r["produced_images"] for r in results if r["success"]),
            "training_images": selection["counts"]["total"],
            "backends": dict(sorted(backends.items())),
            # Each model step's device and precision (and why the CPU, when a GPU was asked for).
            "model_devices": dict(sorted(model_devices.items())),
            # Outputs made by a classical method standing in for a missing model.
            "fallbacks": sum(count for name, count in backends.items() if FALLBACK_MARK in name),
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


# A frame mix this far from its target, or a folder with fewer images, is worth a warning.
MIX_WARNING_POINTS = 0.10
FEW_IMAGES = 10
# Without references, the kept identity cluster is clearly the character only when
# the next largest is under this share of its size.
CLEAR_CLUSTER_MARGIN = 0.5


def short_backend(name: str) -> str:
    """'grabcut (fallback: sam2_hiera_large weights missing: /long/path)' -> 'grabcut (no sam2_hiera_large weights)'."""
    return re.sub(r" \(fallback: (\S+) weights missing: [^)]*\)", r" (no \1 weights)", name)


def summary_warnings(report: dict, selection: dict) -> list[str]:
    """summary.warnings: short plain sentences about what a person should know before
    training on the folder: fallbacks behind training images, exclusions and rejections,
    capped repeats, strategies off their target, thin folders."""
    summary, warnings = report["summary"], []
    backend_of = {image: backend for result in report["results"] for image, backend in result["backends"].items()}
    training = selection["kept"] + selection["augmented"]
    fallbacks = Counter(backend_of.get(r["image"], "") for r in training)
    from_fallbacks = {name: n for name, n in fallbacks.items() if FALLBACK_MARK in name}
    if from_fallbacks:
        described = "; ".join(f"{n} by {short_backend(name)}" for name, n in sorted(from_fallbacks.items()))
        warnings.append(f"{sum(from_fallbacks.values())} of the {len(training)} training images were made by a "
                        f"fallback, not the configured model: {described}.")
    lost = sorted({where["cpu_because"] for where in summary.get("model_devices", {}).values()
                   if where.get("cpu_because")})
    if lost:
        names = ", ".join(name for name, where in summary["model_devices"].items() if where.get("cpu_because"))
        warnings.append(f"{names} ran on the CPU although device is auto: {lost[0]}. docs/models.md, "
                        "\"A GPU for the model steps\", says which driver the pinned torch needs.")
    if summary["excluded"]:
        reasons = ", ".join(f"{reason} {n}" for reason, n in summary["excluded_reasons"].items())
        warnings.append(f"{summary['excluded']} of the {summary['total_frames']} frames were excluded ({reasons}); "
                        "the review page lists them and can bring one back.")
    rejected = Counter(entry["reason"] for entry in report["rejected"])
    if rejected:
        warnings.append(f"{sum(rejected.values())} images were kept out of training by curation ("
                        + ", ".join(f"{reason} {n}" for reason, n in sorted(rejected.items()))
                        + "); they are linked under rejected/.")
    identity = selection.get("identity", {})
    if FALLBACK_MARK in (identity.get("descriptor") or "") and identity.get("clusters"):
        warnings.append(f"Identity clusters compared the cut-outs by the {identity['descriptor']}; "
                        "`frameloom download-models --models dinov2_small` brings the DINOv2 embedding.")
    sizes = sorted((len(members) for members in identity.get("clusters", [])), reverse=True)
    if identity.get("target") is not None and identity.get("reason", "").startswith("no reference images") \
            and len(sizes) > 1 and sizes[1] >= CLEAR_CLUSTER_MARGIN * sizes[0]:
        warnings.append(f"Without character.reference_images no cluster is clearly the character: the largest "
                        f"({sizes[0]} cut-outs) was kept, the next has {sizes[1]}, and "
                        f"{rejected['other_identity']} cut-outs of other clusters were set aside; reference "
                        "images of the character would choose.")
    for name, concept in summary.get("repeats", {}).items():
        if concept["shortfall"] > 0:
            strategy = concept["strategy"]
            warnings.append(
                f"{strategy} is short: {concept['images']} images would need {concept['wanted_repeats']} repeats, "
                f"capped at {concept['repeats']} (merge.max_repeats), so it is {concept['effective_share']:.0%} of "
                f"what the trainer sees against a {concept['target']:.0%} target. More frames that qualify for "
                f"{strategy}, `snakemake tune`, or a lower target would close the gap.")
        if concept["images"] < FEW_IMAGES:
            warnings.append(f"training/{name} has only {concept['images']} images (fewer than {FEW_IMAGES}).")
    for strategy in STRATEGIES:
        achieved, target = summary["strategy_mix"][strategy], summary["strategy_targets"][strategy]
        if abs(achieved - target) > MIX_WARNING_POINTS:
            binding = summary.get("plan", {}).get(strategy, {}).get("binding")
            warnings.append(f"{strategy} got {achieved:.0%} of the frames against a {target:.0%} target"
                            + (f": {binding}." if binding and binding != "on target" else "."))
    return warnings
