"""Aggregate steps: the plan, the kohya training folder and processing_report.json."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from .captions import REJECTIONS
from .config import STRATEGIES
from .imageio import read_json, write_text

FAILED = "failed"


def write_plan(decision_paths: list[str], plan_path: str) -> dict[str, str]:
    """``frame<TAB>strategy`` per frame (``failed`` when the frame could not be analysed)."""
    plan = {}
    for path in decision_paths:
        decision = read_json(path)
        plan[decision["frame"]] = decision["strategy"] if decision["ok"] else FAILED
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


def build_training_folder(meta_paths: list[str], training_dir: str, repeats: int, trigger_word: str,
                          vlm_captions: dict[str, dict] | None = None) -> int:
    """Fill ``training_dir/{repeats}_{trigger}/`` with image + caption pairs, atomically.

    An image the caption step captioned gets that caption; the others link their
    template caption. Returns the number of images. The folder is assembled
    beside the target and renamed into place, so a crash never leaves a
    half-merged dataset.
    """
    vlm_captions = vlm_captions or {}
    target = Path(training_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    concept = staging / f"{repeats}_{trigger_word}"
    concept.mkdir()
    count = 0
    for meta_path in sorted(meta_paths):
        meta = read_json(meta_path)
        for entry in meta["outputs"]:
            if not entry["train"]:
                continue
            # The strategy prefix keeps names unique even if a frame is called "x_character".
            stem = f"{meta['strategy']}__{Path(entry['image']).stem}"
            _place(entry["image"], concept / f"{stem}{Path(entry['image']).suffix}")
            if entry["image"] in vlm_captions:
                (concept / f"{stem}.txt").write_text(vlm_captions[entry["image"]]["caption"] + "\n", encoding="utf-8")
            elif entry["caption"]:
                _place(entry["caption"], concept / f"{stem}.txt")
            count += 1
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return count


def prune_stale_outputs(out_dir: str, plan: dict[str, str]) -> list[str]:
    """Remove outputs of strategies a frame no longer has (after a threshold change or a removed frame)."""
    removed = []
    for strategy in STRATEGIES:
        for meta_path in sorted(Path(out_dir, strategy, "meta").glob("*.json")):
            frame = meta_path.stem
            if plan.get(frame) == strategy:
                continue
            for entry in read_json(meta_path).get("outputs", []):
                for path in (entry["image"], entry["caption"]):
                    if path and Path(path).exists():
                        Path(path).unlink()
                        removed.append(path)
            meta_path.unlink()
            removed.append(str(meta_path))
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


def build_report(plan: dict[str, str], analyses: dict[str, str], decisions: dict[str, str],
                 metas: dict[str, str], decision_cfg: dict, vlm_captions: dict[str, dict] | None = None,
                 captioner: str = "template") -> dict:
    """processing_report.json in the seed's shape, plus backends, captions and the achieved mix."""
    vlm_captions = vlm_captions or {}
    results = []
    strategies = Counter()
    backends = Counter()
    caption_sources = Counter()
    rejected = Counter()
    for frame in sorted(plan):
        analysis = read_json(analyses[frame])
        decision = read_json(decisions[frame])
        meta = read_json(metas[frame]) if frame in metas else None
        error = decision.get("error") or (meta or {}).get("error")
        outputs, output_backends, output_captions = [], {}, {}
        for entry in (meta or {}).get("outputs", []):
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
        segmentation = (meta or {}).get("segmentation")
        if success:
            strategies[decision["strategy"]] += 1
        results.append({
            "frame": analysis.get("source", frame),
            "frame_id": frame,
            "strategy": decision["strategy"],
            "seed_rule": decision.get("seed_rule"),
            "confidence": decision["confidence"],
            "reasoning": decision["reasoning"],
            "outputs": outputs,
            "training_images": sum(1 for e in (meta or {}).get("outputs", []) if e["train"]),
            "backends": output_backends,
            "caption_sources": output_captions,
            # The segmenter's instance count replaces the analysis estimate when there is one.
            "instance_count": segmentation["instances_found"] if segmentation else analysis.get("instance_count"),
            "target": segmentation and {k: segmentation[k] for k in ("target_index", "target_score", "notes")},
            "success": bool(success),
            "error": error,
        })
    successful = sum(1 for r in results if r["success"])
    total = len(results)
    mix = {name: round(strategies[name] / successful, 4) if successful else 0.0 for name in STRATEGIES}
    return {
        "summary": {
            "total_frames": total,
            "successful": successful,
            "failed": total - successful,
            "strategies": {name: strategies[name] for name in STRATEGIES},
            "strategy_mix": mix,
            "strategy_targets": decision_cfg["strategy_targets"],
            "training_images": sum(r["training_images"] for r in results if r["success"]),
            "backends": dict(sorted(backends.items())),
            # Outputs made by a classical method standing in for a missing model.
            "fallbacks": sum(count for name, count in backends.items() if "(fallback:" in name),
            # Captions of the training images: who wrote them, and VLM answers replaced by templates.
            "captions": {
                "captioner": captioner,
                "sources": dict(sorted(caption_sources.items())),
                "rejected": {reason: rejected[reason] for reason in REJECTIONS},
            },
        },
        "results": results,
    }
