"""Group character cut-outs by identity, and find the group that is the user's character.

A film's frames show the main character and a changing cast of others; once
every frame's characters are cut out, grouping the cut-outs by who they are
lets the dataset keep the main character's group (the one that matches the
reference images, or the largest one) and leave the rest out.

Each cut-out (BGRA, colour premultiplied onto grey, the alpha its mask) is
described by target.py's appearance signature (colour, layout, proportions),
and two cut-outs are as alike as target.py's calibrated similarity says,
taken in the better of the two directions: the similarity tries inverse tone
curves on its first argument only, so whichever of the two is the darker
shot gets its chance to be brightened.

Clustering is average-linkage agglomerative clustering on that similarity,
merging while the two closest groups' mean pairwise similarity is at least
the threshold (complete linkage split identities into many groups, single
linkage chained them together). Scoring every pair with target.py's
per-pair function costs about 0.1 ms a pair (about 7 minutes for 2000
cut-outs), so the similarity matrix is computed with the same formulas
batched as matrix products (about 5 s for 2000 on one core);
tests/test_identity.py checks both agree.

There is no face term: on the generated casts every cut-out the clustering
put in the wrong group or left alone was one YuNet finds no face in (far,
dark, noisy or blurred shots), so a face descriptor could not have fixed any
of them, and the others already separate.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from .target import (
    COLOUR_WEIGHT,
    DEFAULT_THRESHOLD,
    LAYOUT_WEIGHT,
    MIN_INSTANCE_PIXELS,
    PROFILE_DEPTHS,
    PROFILE_DISSIMILAR,
    PROFILE_FLOOR,
    PROFILE_KEEP,
    PROFILE_MIN_ROWS,
    PROPORTION_WEIGHT,
    TONE_GAMMAS,
    ReferenceMatcher,
    _describe,
    _Signature,
)

# Groups merge while their mean pairwise similarity is at least this. Chosen
# on generated casts of 2, 3 and 6 identities (all shots, lighting and
# degradations): 0.66..0.70 gave the best adjusted Rand index (mean 0.99),
# 0.64 started merging identities, 0.73 (target.py's even odds for a single
# pair) split shots of one character into several groups. The upper end
# keeps the margin against merging, which mixes characters in a dataset.
DEFAULT_CLUSTER_THRESHOLD = 0.70
# A cluster is the user's character when its members' median best-reference
# score reaches this: target.py's even-odds point for a single instance.
DEFAULT_PICK_THRESHOLD = DEFAULT_THRESHOLD
# Alpha above this (of 255) is the character: its soft edge is half covered there.
MASK_ALPHA = 127
# Similarities are computed in blocks of instances whose largest temporary
# (instances x references x depths, float64) holds about this many elements.
BLOCK_ELEMENTS = 4_000_000


def character_descriptor(image_bgra: np.ndarray) -> _Signature:
    """The cut-out's appearance signature, described like a frame instance (with tone hypotheses)."""
    if image_bgra.dtype != np.uint8 or image_bgra.ndim != 3 or image_bgra.shape[2] != 4:
        raise ValueError(f"expected a uint8 BGRA cut-out, got {image_bgra.dtype} {image_bgra.shape}")
    mask = image_bgra[..., 3] > MASK_ALPHA
    if int(np.count_nonzero(mask)) < MIN_INSTANCE_PIXELS:
        raise ValueError(f"the cut-out's alpha covers fewer than {MIN_INSTANCE_PIXELS} pixels")
    return _describe(np.ascontiguousarray(image_bgra[..., :3]), mask, tone_gammas=TONE_GAMMAS)


def reference_descriptors(references: str | os.PathLike | np.ndarray | Iterable) -> list[_Signature]:
    """Signatures of reference images, read and cut out exactly as ReferenceMatcher does.

    ``references``: an image array (BGR, or BGRA whose alpha is the mask), a
    file or folder path, or a list of these; arrays come first in the result.
    """
    if isinstance(references, (str, os.PathLike, np.ndarray)):
        references = [references]
    references = list(references)
    images = [item for item in references if isinstance(item, np.ndarray)]
    paths = [item for item in references if not isinstance(item, np.ndarray)]
    matchers = ([ReferenceMatcher(images)] if images else []) + ([ReferenceMatcher.from_paths(paths)] if paths else [])
    if not matchers:
        raise ValueError("at least one reference image is needed")
    return [signature for matcher in matchers for signature in matcher._references]


def cluster_identities(descriptors: dict[str, _Signature],
                       threshold: float = DEFAULT_CLUSTER_THRESHOLD) -> list[list[str]]:
    """Image ids grouped by identity: average-linkage clustering on the symmetric similarity.

    Ids are taken in sorted order, so the result does not depend on the dict's;
    clusters come largest first (ties: by first id), each sorted.
    """
    _check_threshold(threshold)
    ids = sorted(descriptors)
    if not ids:
        return []
    signatures = [descriptors[key] for key in ids]
    directed = _similarity_matrix(signatures, signatures)
    groups = _average_linkage(np.maximum(directed, directed.T), threshold)
    clusters = [sorted(ids[index] for index in group) for group in groups]
    return sorted(clusters, key=lambda cluster: (-len(cluster), cluster[0]))


def pick_target_cluster(clusters: list[list[str]], descriptors: dict[str, _Signature],
                        references: list[_Signature] | None,
                        threshold: float = DEFAULT_PICK_THRESHOLD) -> tuple[int | None, list[float], str]:
    """(index of the user's character's cluster or None, a score per cluster, a one-line reason).

    With references a cluster scores the median over its members of their best
    reference similarity (a few odd shots do not sway it), and the best cluster
    must reach ``threshold``; without, the score is the cluster's share of all
    cut-outs and the largest cluster is the pick.
    """
    _check_threshold(threshold)
    if not clusters:
        return None, [], "no clusters to pick from"
    if not references:
        total = sum(len(cluster) for cluster in clusters)
        shares = [round(len(cluster) / total, 3) for cluster in clusters]
        best = max(range(len(clusters)), key=lambda index: len(clusters[index]))
        return best, shares, (f"no reference images: cluster {best} is the largest "
                              f"({len(clusters[best])} of {total} cut-outs); {_runner_up(shares, best)}")
    members = [key for cluster in clusters for key in cluster]
    best_reference = _similarity_matrix([descriptors[key] for key in members], references).max(axis=1)
    score_of = dict(zip(members, best_reference))
    scores = [round(float(np.median([score_of[key] for key in cluster])), 3) for cluster in clusters]
    best = int(np.argmax(scores))
    described = f"cluster {best}, {len(clusters[best])} cut-outs"
    if scores[best] < threshold:
        return None, scores, (f"no cluster matches the references: best {scores[best]:.3f} ({described}) "
                              f"< threshold {threshold:.3f}; {_runner_up(scores, best)}")
    return best, scores, f"{described} matches the references ({scores[best]:.3f}); {_runner_up(scores, best)}"


def _check_threshold(threshold: float) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in 0..1, got {threshold}")


def _runner_up(scores: list[float], best: int) -> str:
    others = scores[:best] + scores[best + 1:]
    return f"runner-up {max(others):.3f}" if others else "no other cluster"


def _average_linkage(similarity: np.ndarray, threshold: float) -> list[list[int]]:
    """Groups of row indices: merge the most similar pair of groups while their mean similarity >= threshold.

    Each row keeps its best partner. A merged group's similarity to any other
    is a size-weighted mean of the two old ones, never above the larger, so
    only the merged row and rows whose best partner was one of the two need a
    rescan, instead of a search of the whole matrix per merge.
    """
    current = similarity.astype(np.float64, copy=True)
    np.fill_diagonal(current, -np.inf)
    sizes = np.ones(len(current))
    groups: list[list[int]] = [[index] for index in range(len(current))]
    partner = np.argmax(current, axis=1)
    best = current[np.arange(len(current)), partner]
    while True:
        first = int(np.argmax(best))
        if best[first] < threshold:
            break
        keep, gone = sorted((first, int(partner[first])))
        merged = (sizes[keep] * current[keep] + sizes[gone] * current[gone]) / (sizes[keep] + sizes[gone])
        current[keep], current[:, keep] = merged, merged
        current[gone], current[:, gone] = -np.inf, -np.inf
        current[keep, keep] = -np.inf
        sizes[keep] += sizes[gone]
        groups[keep] += groups[gone]
        groups[gone] = []
        refresh = (partner == keep) | (partner == gone)
        refresh[keep], refresh[gone] = True, False
        stale = np.flatnonzero(refresh)
        partner[stale] = np.argmax(current[stale], axis=1)
        best[stale] = current[stale, partner[stale]]
        best[gone] = -np.inf
    return [group for group in groups if group]


class _Stacked(NamedTuple):
    """Signatures as arrays: square-rooted histograms (tones, n, bins), body flags, log widths (n, depths)."""

    colour: np.ndarray
    head: np.ndarray
    body: np.ndarray  # zeros where a signature has no body (those coefficients go unused)
    has_body: np.ndarray
    log_widths: np.ndarray  # NaN where the silhouette does not show the depth

    @classmethod
    def of(cls, signatures: list[_Signature], tones: int | None = None) -> _Stacked:
        """``tones``: how many tone hypotheses to keep (None: all, which must then agree in number)."""
        def roots(histograms: list[tuple[np.ndarray, ...]]) -> np.ndarray:
            return np.sqrt(np.stack([np.stack(per_tone[:tones]) for per_tone in histograms], axis=1))

        no_body = np.zeros_like(signatures[0].head[0])
        return cls(roots([s.colour for s in signatures]), roots([s.head for s in signatures]),
                   roots([tuple(no_body if b is None else b for b in s.body) for s in signatures]),
                   np.array([s.body[0] is not None for s in signatures]),
                   np.log(np.maximum(np.stack([s.widths for s in signatures]), PROFILE_FLOOR)))

    def rows(self, start: int, stop: int) -> _Stacked:
        return _Stacked(self.colour[:, start:stop], self.head[:, start:stop], self.body[:, start:stop],
                        self.has_body[start:stop], self.log_widths[start:stop])


def _similarity_matrix(instances: list[_Signature], references: list[_Signature]) -> np.ndarray:
    """(instances, references) of target._similarity(instance, reference), batched in blocks of instances."""
    rows, columns = _Stacked.of(instances), _Stacked.of(references, tones=1)
    block = max(1, BLOCK_ELEMENTS // (len(references) * len(PROFILE_DEPTHS)))
    return np.concatenate([_similarity_block(rows.rows(start, start + block), columns)
                           for start in range(0, len(instances), block)])


def _similarity_block(instances: _Stacked, references: _Stacked) -> np.ndarray:
    """target._components and target._similarity as matrix products (references untoned, as there)."""
    colour = instances.colour @ references.colour[0].T  # (tones, instances, references)
    tone = np.argmax(colour, axis=0)[None]  # the first best tone, as target._components picks it
    colour = np.take_along_axis(colour, tone, axis=0)[0]
    head = np.take_along_axis(instances.head @ references.head[0].T, tone, axis=0)[0]
    body = np.take_along_axis(instances.body @ references.body[0].T, tone, axis=0)[0]
    both_bodies = instances.has_body[:, None] & references.has_body[None, :]
    layout = np.where(both_bodies, 0.5 * (head + body), head)
    proportions = _proportion_similarities(instances.log_widths, references.log_widths)
    without = (COLOUR_WEIGHT * colour + LAYOUT_WEIGHT * layout) / (COLOUR_WEIGHT + LAYOUT_WEIGHT)
    with_proportions = COLOUR_WEIGHT * colour + LAYOUT_WEIGHT * layout + PROPORTION_WEIGHT * proportions
    return np.where(np.isnan(proportions), without, with_proportions)


def _proportion_similarities(instance_logs: np.ndarray, reference_logs: np.ndarray) -> np.ndarray:
    """target._proportion_similarity of every (instance, reference) pair of log width profiles.

    NaN where fewer than PROFILE_MIN_ROWS depths show in both. Sorting puts the
    NaN of depths not both show last, so the kept smallest differences are a
    prefix of the sorted row and a cumulative sum gives their mean.
    """
    differences = np.sort(np.abs(instance_logs[:, None, :] - reference_logs[None, :, :]), axis=-1)
    common = np.count_nonzero(~np.isnan(differences), axis=-1)
    kept = np.maximum(PROFILE_MIN_ROWS, (PROFILE_KEEP * common).astype(np.int64))
    last = np.minimum(kept, differences.shape[-1]) - 1
    mean = np.take_along_axis(np.cumsum(differences, axis=-1), last[..., None], axis=-1)[..., 0] / kept
    return np.where(common >= PROFILE_MIN_ROWS, np.maximum(0.0, 1.0 - mean / PROFILE_DISSIMILAR), np.nan)
