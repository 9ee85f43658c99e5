"""What a rerun no longer needs: outputs of strategies a frame lost, unused cache entries."""

from __future__ import annotations

import shutil
from pathlib import Path

from .imageio import read_json
from .registry import MODEL_STEPS, STRATEGIES
from .stepcache import CAPTIONS, FINDER, entry_name


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


# Every cache folder: the merge prunes them all.
PRUNED_STEPS = (*MODEL_STEPS, CAPTIONS, FINDER)


def prune_cache(cache_dir: str, used: set[str]) -> list[str]:
    """Drop the entries no current output names (``step/key``: an export's meta names the
    model-step entries it used and those they continue, a caption manifest its captions, a
    detection file its finder entry; frameloom.stepcache), and the staging folders of
    entries a killed job left half-built (dot names: no job writes the cache while the
    merge runs)."""
    removed = []
    for step in PRUNED_STEPS:
        for entry in sorted(Path(cache_dir, step).glob("*")):  # dot names included
            if entry.is_dir() and (entry.name.startswith(".") or entry_name(step, entry.name) not in used):
                shutil.rmtree(entry)
                removed.append(str(entry))
    return removed
