"""Plan, training folder, stale-output pruning and the report, on hand-made records."""

from __future__ import annotations

import json

import yaml

from frameloom.imageio import write_json
from frameloom.merge import build_report, build_training_folder, prune_stale_outputs, read_plan, write_plan

with open("config/decision_thresholds.yaml") as handle:
    DECISION_CFG = yaml.safe_load(handle)


def make_frame(root, frame, strategy, ok=True, error=None):
    analysis = root / "analysis" / f"{frame}.json"
    decision = root / "decisions" / f"{frame}.json"
    write_json(analysis, {"frame": frame, "source": f"{frame}.png", "ok": ok, "error": error})
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


def test_report_counts_failures_and_strategies(tmp_path):
    records = {
        "a": make_frame(tmp_path, "a", "keep_full"),
        "b": make_frame(tmp_path, "b", "segment"),
        "bad": make_frame(tmp_path, "bad", None, ok=False, error="FrameDecodeError: empty file: bad.png"),
    }
    plan = write_plan([d for _, d, _ in records.values()], str(tmp_path / "plan.tsv"))
    assert read_plan(str(tmp_path / "plan.tsv")) == plan == {"a": "keep_full", "b": "segment", "bad": "failed"}
    report = build_report(plan, {f: r[0] for f, r in records.items()}, {f: r[1] for f, r in records.items()},
                          {f: r[2] for f, r in records.items() if r[2]}, DECISION_CFG)
    summary = report["summary"]
    assert (summary["total_frames"], summary["successful"], summary["failed"]) == (3, 2, 1)
    assert summary["strategies"] == {"keep_full": 1, "segment": 1, "create_occlusion": 0, "enhance_segment": 0}
    failed = next(r for r in report["results"] if r["frame_id"] == "bad")
    assert failed["success"] is False and failed["error"] == "FrameDecodeError: empty file: bad.png"
    assert failed["frame"] == "bad.png" and failed["outputs"] == []
    json.dumps(report)  # serialisable


def test_training_folder_pairs_and_prefixes(tmp_path):
    metas = [make_frame(tmp_path, "x", "keep_full")[2], make_frame(tmp_path, "x_character", "segment")[2]]
    count = build_training_folder(metas, str(tmp_path / "training"), 7, "trig")
    names = sorted(p.name for p in (tmp_path / "training" / "7_trig").iterdir())
    assert count == 2
    assert names == ["keep_full__x.png", "keep_full__x.txt", "segment__x_character.png", "segment__x_character.txt"]
    # Rebuilding replaces the folder instead of accumulating files.
    build_training_folder(metas[:1], str(tmp_path / "training"), 7, "trig")
    assert len(list((tmp_path / "training" / "7_trig").iterdir())) == 2


def test_prune_removes_outputs_of_abandoned_strategies(tmp_path):
    make_frame(tmp_path, "a", "segment")
    make_frame(tmp_path, "b", "segment")
    removed = prune_stale_outputs(str(tmp_path), {"a": "keep_full", "b": "segment"})
    assert not (tmp_path / "segment" / "images" / "a.png").exists()
    assert not (tmp_path / "segment" / "meta" / "a.json").exists()
    assert (tmp_path / "segment" / "images" / "b.png").exists()
    assert len(removed) == 3

