"""Plan, training folder, stale-output pruning and the report, on hand-made records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from analysis_records import PICTURE

from frameloom.exports import plan_concepts
from frameloom.imageio import read_json, write_json
from frameloom.merge import build_report
from frameloom.plan import read_plan, write_plan
from frameloom.pruning import prune_stale_outputs
from frameloom.training import build_rejected_folder, build_training_folder

with open("config/decision_thresholds.yaml") as handle:
    DECISION_CFG = yaml.safe_load(handle)


def make_frame(root, frame, strategy, ok=True, error=None):
    analysis = root / "analysis" / f"{frame}.json"
    decision = root / "decisions" / f"{frame}.json"
    metrics = {"complexity": 0.1, "lighting": 0.9, "occlusion": 0.05, "quality": 0.9, "sharpness": 0.9,
               "noise": 0.0, "instance_count": 1, "shot_type": "medium", **PICTURE} if ok else {}
    write_json(analysis, {"frame": frame, "source": f"{frame}.png", "ok": ok, "error": error, **metrics})
    write_json(decision, {"frame": frame, "ok": ok, "strategy": strategy if ok else None, "seed_rule": strategy,
                          "confidence": 0.9 if ok else 0.0, "reasoning": "r", "error": error})
    meta = None
    if ok:
        image = root / strategy / "images" / f"{frame}.png"
        caption = root / strategy / "captions" / f"{frame}.txt"
        image.parent.mkdir(parents=True, exist_ok=True)
        caption.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(b"png")
        caption.write_text("cap\n")
        meta = root / strategy / "meta" / f"{frame}.json"
        write_json(meta, {"frame": frame, "strategy": strategy, "error": None, "outputs": [
            {"image": str(image), "caption": str(caption), "role": "full", "backend": "original", "train": True}]})
    return str(analysis), str(decision), (str(meta) if meta else None)


def curated(root, meta_path, name=None):
    """A kept record of the meta's image, as the curation step writes it (a curated copy)."""
    meta = json.loads(open(meta_path).read())
    entry = meta["outputs"][0]
    path = root / "curated" / f"{meta['strategy']}__{name or meta['frame']}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"curated png")
    return {"image": entry["image"], "caption": entry["caption"], "curated": str(path), "frame": meta["frame"],
            "strategy": meta["strategy"], "role": "full"}


def selection_of(kept, augmented=(), rejected=()):
    total = len(kept) + len(augmented)
    return {"kept": list(kept), "augmented": list(augmented), "rejected": list(rejected),
            "identity": {"clusters": [], "target": None, "scores": [], "reason": "no cut-outs to cluster"},
            "counts": {"curated": total + len(rejected), "kept": len(kept), "augmented": len(augmented),
                       "rejected": len(rejected), "total": total, "target_size": [200, 600],
                       "within_target_size": False}}


def test_report_counts_failures_and_strategies(tmp_path):
    records = {
        "a": make_frame(tmp_path, "a", "keep_full"),
        "b": make_frame(tmp_path, "b", "segment"),
        "bad": make_frame(tmp_path, "bad", None, ok=False, error="FrameDecodeError: empty file: bad.png"),
    }
    plan = write_plan({f: json.loads(Path(r[1]).read_text()) for f, r in records.items()}, str(tmp_path / "plan.tsv"))
    assert read_plan(str(tmp_path / "plan.tsv")) == plan == {"a": "keep_full", "b": "segment", "bad": "failed"}
    kept = curated(tmp_path, records["a"][2])
    rejected = {**curated(tmp_path, records["b"][2]), "reason": "quality", "filter": "blur_threshold",
                "value": 12.5, "limit": 80}
    report = build_report(plan, {f: r[0] for f, r in records.items()}, {f: r[1] for f, r in records.items()},
                          {f: read_json(r[2]) for f, r in records.items() if r[2]}, DECISION_CFG,
                          selection_of([kept], rejected=[rejected]))
    summary = report["summary"]
    assert (summary["produced_images"], summary["training_images"]) == (2, 1)
    assert summary["curation"]["rejected_by"] == {"blur_threshold": 1}
    by_frame = {r["frame_id"]: r for r in report["results"]}
    assert by_frame["a"]["curation"] == {kept["image"]: "kept"}
    assert by_frame["b"]["curation"] == {rejected["image"]: "rejected: blur_threshold (measured 12.5, limit 80)"}
    assert report["rejected"] == [rejected]
    assert (summary["total_frames"], summary["successful"], summary["failed"]) == (3, 2, 1)
    assert summary["strategies"] == {"keep_full": 1, "segment": 1, "create_occlusion": 0, "enhance_segment": 0}
    failed = next(r for r in report["results"] if r["frame_id"] == "bad")
    assert failed["success"] is False and failed["error"] == "FrameDecodeError: empty file: bad.png"
    assert failed["frame"] == "bad.png" and failed["outputs"] == []
    # Before and after: the two analysed frames, and the one training image.
    assert summary["distributions"]["frames"]["lighting"] == {"good": 2}
    assert summary["distributions"]["training"]["shot_type"] == {"medium": 1}
    assert by_frame["a"]["analysis"]["complexity"] == 0.1 and failed["analysis"] == {}
    json.dumps(report)  # serialisable


def test_excluded_frames_are_counted_apart(tmp_path):
    from frameloom.overrides import apply_override

    records = {"a": make_frame(tmp_path, "a", "keep_full"), "b": make_frame(tmp_path, "b", "segment")}
    decisions = {f: json.loads(Path(r[1]).read_text()) for f, r in records.items()}
    decisions["b"] = apply_override(decisions["b"], {"exclude": True, "note": "not ours"}, ["keep_full", "segment"])
    write_json(records["b"][1], decisions["b"])
    plan = write_plan(decisions, str(tmp_path / "plan.tsv"))
    assert plan == {"a": "keep_full", "b": "excluded"}
    report = build_report(plan, {f: r[0] for f, r in records.items()}, {f: r[1] for f, r in records.items()},
                          {"a": read_json(records["a"][2])}, DECISION_CFG,
                          selection_of([curated(tmp_path, records["a"][2])]))
    summary = report["summary"]
    assert (summary["total_frames"], summary["successful"], summary["failed"], summary["excluded"]) == (2, 1, 0, 1)
    excluded = next(r for r in report["results"] if r["frame_id"] == "b")
    assert excluded["excluded"] and excluded["override"]["automatic"] == "segment" and not excluded["success"]


def test_training_folder_pairs_and_prefixes(tmp_path):
    kept = [curated(tmp_path, make_frame(tmp_path, "x", "keep_full")[2]),
            curated(tmp_path, make_frame(tmp_path, "x_character", "segment")[2])]
    variant = {**kept[0], "curated": str(tmp_path / "aug" / "keep_full__x_aug0.png"),
               "augmented_from": kept[0]["curated"]}
    (tmp_path / "aug").mkdir()
    (tmp_path / "aug" / "keep_full__x_aug0.png").write_bytes(b"variant")
    vlm = {kept[1]["image"]: {"caption": "trig, from the vlm", "source": "qwen2_vl", "rejected": None}}
    one_folder = plan_concepts(kept + [variant], "trig", 7, DECISION_CFG["strategy_targets"], balance=False)
    count = build_training_folder(selection_of(kept, [variant]), str(tmp_path / "training"), one_folder, vlm)
    concept = tmp_path / "training" / "7_trig"
    assert count == 3
    assert sorted(p.name for p in concept.iterdir()) == [
        "keep_full__x.png", "keep_full__x.txt", "keep_full__x_aug0.png", "keep_full__x_aug0.txt",
        "segment__x_character.png", "segment__x_character.txt"]
    assert (concept / "keep_full__x.png").read_bytes() == b"curated png"
    assert (concept / "keep_full__x_aug0.txt").read_text() == "cap\n", "a variant keeps its source's caption"
    assert (concept / "segment__x_character.txt").read_text() == "trig, from the vlm\n"
    # Rebuilding replaces the folder instead of accumulating files.
    build_training_folder(selection_of(kept[:1]), str(tmp_path / "training"), one_folder)
    assert len(list(concept.iterdir())) == 2
    # A build that fails half-way leaves the last good folder and no staging debris.
    missing = {**kept[1], "curated": str(tmp_path / "gone.png")}
    with pytest.raises(FileNotFoundError):
        build_training_folder(selection_of([kept[0], missing]), str(tmp_path / "training"), one_folder)
    assert len(list(concept.iterdir())) == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".training")) == []


def test_rejected_images_are_linked_by_reason(tmp_path):
    kept = curated(tmp_path, make_frame(tmp_path, "x", "keep_full")[2])
    blurred = {**curated(tmp_path, make_frame(tmp_path, "y", "keep_full")[2]), "reason": "quality",
               "filter": "blur_threshold", "value": 3.0, "limit": 80}
    duplicate = {**curated(tmp_path, make_frame(tmp_path, "z", "keep_full")[2]), "reason": "duplicate",
                 "duplicate_of": kept["curated"]}
    assert build_rejected_folder(selection_of([kept], rejected=[blurred, duplicate]), str(tmp_path / "rejected")) == 2
    assert sorted(str(p.relative_to(tmp_path / "rejected")) for p in (tmp_path / "rejected").rglob("*.png")) == [
        "blur_threshold/keep_full__y.png", "duplicate/keep_full__z.png"]
    assert (tmp_path / "curated" / "keep_full__y.png").exists(), "nothing is deleted"


def test_prune_removes_outputs_of_abandoned_strategies(tmp_path):
    make_frame(tmp_path, "a", "segment")
    make_frame(tmp_path, "b", "segment")
    curated = {name: tmp_path / "curated" / strategy / frame for name, strategy, frame in
               [("current", "keep_full", "a"), ("moved", "segment", "a"), ("gone", "keep_full", "gone")]}
    for folder in curated.values():
        folder.mkdir(parents=True)
    removed = prune_stale_outputs(str(tmp_path), {"a": "keep_full", "b": "segment"})
    assert curated["current"].is_dir() and not curated["moved"].exists() and not curated["gone"].exists()
    removed.remove(str(curated["moved"]))
    removed.remove(str(curated["gone"]))
    assert not (tmp_path / "segment" / "images" / "a.png").exists()
    assert not (tmp_path / "segment" / "meta" / "a.json").exists()
    assert (tmp_path / "segment" / "images" / "b.png").exists()
    assert len(removed) == 3



def test_prune_never_deletes_outside_the_output_folder(tmp_path):
    out = tmp_path / "results"
    outside = tmp_path / "precious.png"
    outside.write_bytes(b"keep me")
    write_json(out / "segment" / "meta" / "x.json", {"frame": "x", "strategy": "segment", "outputs": [
        {"image": str(outside), "caption": str(out / ".." / "precious.png"), "train": True}]})
    removed = prune_stale_outputs(str(out), {})
    assert outside.read_bytes() == b"keep me" and removed == [str(out / "segment" / "meta" / "x.json")]


def test_warnings_name_fallbacks_exclusions_rejects_capped_repeats_and_the_mix():
    from frameloom.merge import summary_warnings

    fallback = "grabcut (fallback: sam2_hiera_large weights missing: m/sam2.pt)"
    report = {
        "summary": {
            "total_frames": 10, "excluded": 3, "excluded_reasons": {"no_character": 2, "near_black": 1},
            "strategy_mix": {"keep_full": 0.05, "segment": 0.45, "create_occlusion": 0.35, "enhance_segment": 0.15},
            "strategy_targets": DECISION_CFG["strategy_targets"],
            "repeats": {
                "20_hero_keep_full": {"strategy": "keep_full", "repeats": 20, "wanted_repeats": 288, "images": 3,
                                      "target": 0.3, "effective_share": 0.04, "shortfall": 0.26},
                "8_hero_segment": {"strategy": "segment", "repeats": 8, "wanted_repeats": 8, "images": 40,
                                   "target": 0.4, "effective_share": 0.5, "shortfall": 0.0},
            },
        },
        "results": [{"backends": {"seg/a_character.png": fallback, "keep/b.png": "original"}}],
        "rejected": [{"reason": "unverified"}, {"reason": "unverified"}, {"reason": "quality"}],
    }
    selection = {"kept": [{"image": "seg/a_character.png"}, {"image": "keep/b.png"}],
                 "augmented": [{"image": "seg/a_character.png"}],
                 "identity": {"clusters": [["x"] * 17, ["y"] * 12, ["z"]], "target": 0,
                              "reason": "no reference images: cluster 0 is the largest (17 of 30 cut-outs)"}}
    warnings = summary_warnings(report, selection)
    text = "\n".join(warnings)
    assert ("2 of the 3 training images were made by a fallback, not the configured model: 2 by grabcut "
            "(no sam2_hiera_large weights)." in text)
    assert "3 of the 10 frames were excluded (no_character 2, near_black 1)" in text
    assert "3 images were kept out of training by curation (quality 1, unverified 2)" in text
    assert "keep_full is short: 3 images would need 288 repeats, capped at 20" in text and "30% target" in text
    assert "training/20_hero_keep_full has only 3 images" in text
    assert "keep_full got 5% of the frames against a 30% target." in text
    assert "create_occlusion got 35% of the frames against a 15% target." in text
    assert not any("segment got" in w and "enhance" not in w for w in warnings)  # 45% vs 40%: within 10 points
    assert ("no cluster is clearly the character: the largest (17 cut-outs) was kept, the next has 12" in text)
    assert all(w.endswith(".") for w in warnings)
    selection["identity"]["clusters"][1] = ["y"] * 5
    assert "clearly the character" not in "\n".join(summary_warnings(report, selection))
