"""Temporal context expansion: each hand-curated frame brings its neighbours from the full frames folder.

A curated frame is matched to the full folder by file name (its path relative
to the curated folder first, then its bare name when that is unique). Its
neighbours are the ``window_size`` frames before and after it in the same
folder of the full set, in natural order (``frame_9`` before ``frame_10``).
With the seed's numbers: 372 curated frames, window 3, no overlaps and no
near-duplicates give 372 x 7 = 2604 frames. A neighbour that is a
near-duplicate (pHash distance AND SSIM, as in the curation's dedup) of a frame
already kept in its window is dropped: a held shot adds nothing new.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from .dedup import near_duplicates, phash, ssim_thumbnail
from .imageio import FrameDecodeError, read_image


def natural_key(name: str) -> list:
    """``frame_9`` < ``frame_10``: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def match_curated(curated: list[str], frames: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """{curated relative path: frame relative path} and the curated frames with no match.

    ``frames``: {relative path in the full folder: frame id}."""
    by_name = defaultdict(list)
    for relative in frames:
        by_name[Path(relative).name].append(relative)
    matched, unmatched = {}, []
    for relative in curated:
        if relative in frames:
            matched[relative] = relative
        elif len(by_name[Path(relative).name]) == 1:
            matched[relative] = by_name[Path(relative).name][0]
        else:
            unmatched.append(relative)
    return matched, unmatched


class _Fingerprints:
    """pHash and SSIM thumbnail per frame, computed once."""

    def __init__(self, root: Path):
        self.root = root
        self._cache: dict[str, tuple[int, object] | None] = {}

    def __call__(self, relative: str):
        if relative not in self._cache:
            try:
                image = read_image(self.root / relative)
                self._cache[relative] = (phash(image), ssim_thumbnail(image))
            except (FrameDecodeError, OSError):
                self._cache[relative] = None  # analysed later, and reported there
        return self._cache[relative]


def expand(curated: list[str], frames: dict[str, str], frames_root: Path, window_size: int,
           phash_threshold: int, ssim_threshold: float) -> dict:
    """The frames to process: every matched curated frame and its non-duplicate neighbours.

    Returns {"selected": [frame ids, sorted], "curated", "matched", "unmatched", "added",
    "dropped": {frame id: "near-duplicate of <frame id>"}, "window_size"}."""
    matched, unmatched = match_curated(curated, frames)
    folders = defaultdict(list)
    for relative in frames:
        folders[str(Path(relative).parent)].append(relative)
    order = {}
    for members in folders.values():
        members.sort(key=natural_key)
        order.update({relative: (members, i) for i, relative in enumerate(members)})
    fingerprint = _Fingerprints(frames_root)

    def twins(first: str, second: str) -> bool:
        """pHash distance AND SSIM, as the curation's dedup judges; an unreadable frame has no twin."""
        a, b = fingerprint(first), fingerprint(second)
        return a is not None and b is not None and near_duplicates(*a, *b, phash_threshold, ssim_threshold)

    kept = set(matched.values())
    dropped = {}
    for centre in sorted(set(matched.values()), key=natural_key):
        members, position = order[centre]
        window = members[max(0, position - window_size): position + window_size + 1]
        neighbours = sorted((r for r in window if r != centre), key=lambda r: abs(order[r][1] - position))
        for relative in neighbours:
            if relative in kept:
                continue
            twin = next((other for other in window if other in kept and twins(relative, other)), None)
            if twin is None:
                kept.add(relative)
                dropped.pop(frames[relative], None)  # a twin in an earlier window is not in this one
            else:
                dropped[frames[relative]] = f"near-duplicate of {frames[twin]}"
    return {
        "window_size": window_size,
        "curated": len(curated),
        "matched": len(matched),
        "unmatched": unmatched,
        "added": len(kept) - len(set(matched.values())),
        "dropped": dict(sorted(dropped.items())),
        "selected": sorted(frames[relative] for relative in kept),
    }
