"""Find input frames and give each a stable, filesystem- and shell-safe id.

An id is the frame's relative path without extension, with directories joined
by ``__``. When that is not made only of ``[A-Za-z0-9._-]`` (spaces, unicode,
quotes...) or when two files would share an id (``a.png`` and ``a.jpg``), the
unsafe characters become ``_`` and an 8-hex digest of the relative path is
appended, so ids never collide and never need quoting.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from pathlib import Path

from .imageio import IMAGE_EXTENSIONS

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def _readable_id(relative: str) -> str:
    stem = os.path.splitext(relative)[0]
    return "__".join(Path(stem).parts)


def _digest(relative: str) -> str:
    return hashlib.sha1(relative.encode("utf-8")).hexdigest()[:8]


def frame_ids(relative_paths: list[str]) -> dict[str, str]:
    """Map each relative path (POSIX separators) to its frame id."""
    readable = {rel: _readable_id(rel) for rel in relative_paths}
    counts = Counter(readable.values())
    ids = {}
    for rel, name in readable.items():
        if SAFE_ID.match(name) and counts[name] == 1:
            ids[rel] = name
        else:
            cleaned = UNSAFE_CHARS.sub("_", name).strip("_.-") or "frame"
            ids[rel] = f"{cleaned}-{_digest(rel)}"
    return ids


def relative_files(root: Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[str]:
    """Files under ``root`` with one of ``extensions`` (any case), as sorted POSIX relative paths.

    Hidden files and folders are skipped (editor and OS litter); linked folders are not walked
    (they may loop), linked files are taken."""
    relative_paths = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(extensions):
                continue
            relative_paths.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(relative_paths)


def discover_frames(input_dir: str | os.PathLike, limit: int = 0) -> dict[str, Path]:
    """Frames under ``input_dir`` (recursive, sorted by relative path) as {frame_id: path};
    ``limit`` > 0 keeps the first N by relative path."""
    root = Path(input_dir)
    relative_paths = relative_files(root)
    if limit > 0:
        relative_paths = relative_paths[:limit]
    ids = frame_ids(relative_paths)
    return {ids[rel]: root / rel for rel in relative_paths}


def discover_videos(input_dir: str | os.PathLike) -> dict[str, Path]:
    """Video files under ``input_dir`` as {video id: path}; the id names its extracted frames."""
    from .video import VIDEO_EXTENSIONS

    root = Path(input_dir)
    relative_paths = relative_files(root, VIDEO_EXTENSIONS)
    ids = frame_ids(relative_paths)
    return {ids[rel]: root / rel for rel in relative_paths}
