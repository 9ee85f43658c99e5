"""The model steps' cache entries: their layout, and how a frame's entries are found.

A model step (frameloom.model_step) leaves per frame an entry
``<cache>/<step>/<key>/`` holding ``record.json`` and its result (``image.png``,
``alpha.npy`` or ``background.png``); its batch manifest maps frames to keys. The
strategy exports (frameloom.strategies) read the entries; the merge keeps those
the metas name.
"""

from __future__ import annotations

from pathlib import Path

from .imageio import read_json

RECORD = "record.json"
IMAGE = "image.png"
ALPHA = "alpha.npy"
BACKGROUND = "background.png"


def entry_dir(cache_dir: str, step: str, key: str) -> Path:
    return Path(cache_dir, step, key)


def entry_name(entry: Path) -> str:
    """``step/key``: how metas and records name a cache entry."""
    return f"{entry.parent.name}/{entry.name}"


def frame_entries(frame: str, manifests: dict[str, str], cache_dir: str) -> tuple[dict[str, Path], str | None]:
    """{step: entry} of one frame from its batches' manifests, or the first step's error."""
    entries = {}
    for step, path in manifests.items():
        manifest = read_json(path)
        if frame in manifest["failed"]:
            return {}, f"{step}: {manifest['failed'][frame]}"
        entries[step] = entry_dir(cache_dir, step, manifest["frames"][frame])
    return entries, None


def entries_used(entries: dict[str, Path]) -> list[str]:
    """``step/key`` of a frame's entries and of every entry they continue: what its meta keeps alive."""
    used = set()
    for entry in entries.values():
        used |= {entry_name(entry), *read_json(entry / RECORD)["chain"]}
    return sorted(used)
