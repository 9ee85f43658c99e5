"""The content-addressed cache every batched step files its results in: the key, the entry
layout, how a frame's entries are found, and what the merge keeps.

Each result is an entry ``<cache>/<step>/<key>/`` holding ``record.json``: a model step
(frameloom.model_step) adds its result file (``image.png``, ``alpha.npy`` or
``background.png``) and its batch manifest maps frames to keys; the caption step
(``captions``) and the character finder (``finder``) keep only the record. The strategy
exports (frameloom.strategies) read the model-step entries; the merge keeps the entries
the metas, caption manifests and detection files name (``step/key``) and drops the rest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

from .imageio import read_json, write_json

KEY_DIGITS = 32  # hex digits of a cache key
RECORD = "record.json"
IMAGE = "image.png"
ALPHA = "alpha.npy"
BACKGROUND = "background.png"
# The folders of the record-only steps, beside the model steps' (registry.MODEL_STEPS).
CAPTIONS = "captions"
FINDER = "finder"


def content_key(*parts: bytes | str | dict | list) -> str:
    """The cache key of a result: the sha256 of what it depends on, in order (bytes as they are,
    text as UTF-8, other values as sorted-key JSON)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            part = part.encode()
        elif not isinstance(part, bytes):
            part = json.dumps(part, sort_keys=True).encode()
        digest.update(part)
    return digest.hexdigest()[:KEY_DIGITS]


def entry_dir(cache_dir: str, step: str, key: str) -> Path:
    return Path(cache_dir, step, key)


def cached_record(cache_dir: str, step: str, key: str) -> dict | None:
    """The record of a cached result, None when it was never made."""
    path = entry_dir(cache_dir, step, key) / RECORD
    return read_json(path) if path.is_file() else None


def store_record(cache_dir: str, step: str, key: str, record: dict) -> None:
    """File a record-only result (the caption step's, the finder's)."""
    write_json(entry_dir(cache_dir, step, key) / RECORD, record)


def entry_name(step: str, key: str) -> str:
    """``step/key``: how metas, manifests and records name a cache entry (what the merge keeps)."""
    return f"{step}/{key}"


class Entry(NamedTuple):
    """A frame's model-step entry: its folder (the result files) and its record, read once."""

    path: Path
    record: dict


def frame_entries(frame: str, manifests: dict[str, str], cache_dir: str) -> tuple[dict[str, Entry], str | None]:
    """{step: entry} of one frame from its batches' manifests, or the first step's error."""
    entries = {}
    for step, path in manifests.items():
        manifest = read_json(path)
        if frame in manifest["failed"]:
            return {}, f"{step}: {manifest['failed'][frame]}"
        folder = entry_dir(cache_dir, step, manifest["frames"][frame])
        entries[step] = Entry(folder, read_json(folder / RECORD))
    return entries, None


def entries_used(entries: dict[str, Entry]) -> list[str]:
    """``step/key`` of a frame's entries and of every entry they continue: what its meta keeps alive."""
    used = set()
    for entry in entries.values():
        used |= {entry_name(entry.path.parent.name, entry.path.name), *entry.record["chain"]}
    return sorted(used)
