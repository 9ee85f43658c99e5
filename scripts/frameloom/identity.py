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
linkage chained them together). target.similarity_matrix scores all pairs
as matrix products (about 5 s for 2000 cut-outs on one core, where one pair
at a time took about 0.1 ms a pair).

With DINOv2's weights (frameloom.embedding, run by frameloom.embed_step),
cut-outs are compared by the cosine of their embeddings instead
(``cluster_embeddings``), and the classical signature is the named fallback.

There is no face term: on the generated casts every cut-out the clustering
put in the wrong group or left alone was one YuNet finds no face in (far,
dark, noisy or blurred shots), so a face descriptor could not have fixed any
of them, and the others already separate.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from .target import (
    DEFAULT_THRESHOLD,
    MIN_INSTANCE_PIXELS,
    TONE_GAMMAS,
    ReferenceMatcher,
    Signature,
    describe,
    similarity_matrix,
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
# DINOv2 CLS cosine at which groups merge and a cluster matches the references.
# Not fitted here (no DINOv2 weights on the development machine): the value
# re-identification work with DINOv2-S commonly uses between views of one
# object, above the 0.3-0.5 that unrelated objects on a plain ground reach.
DEFAULT_EMBEDDING_THRESHOLD = 0.6
# Alpha above this (of 255) is the character: its soft edge is half covered there.
MASK_ALPHA = 127


def character_descriptor(image_bgra: np.ndarray) -> Signature:
    """The cut-out's appearance signature, described like a frame instance (with tone hypotheses)."""
    if image_bgra.dtype != np.uint8 or image_bgra.ndim != 3 or image_bgra.shape[2] != 4:
        raise ValueError(f"expected a uint8 BGRA cut-out, got {image_bgra.dtype} {image_bgra.shape}")
    mask = image_bgra[..., 3] > MASK_ALPHA
    if int(np.count_nonzero(mask)) < MIN_INSTANCE_PIXELS:
        raise ValueError(f"the cut-out's alpha covers fewer than {MIN_INSTANCE_PIXELS} pixels")
    return describe(np.ascontiguousarray(image_bgra[..., :3]), mask, tone_gammas=TONE_GAMMAS)


def reference_descriptors(references: str | os.PathLike | np.ndarray | Iterable) -> list[Signature]:
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
    return [signature for matcher in matchers for signature in matcher.signatures]


def cluster_identities(descriptors: dict[str, Signature],
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
    directed = similarity_matrix(signatures, signatures)
    groups = _average_linkage(np.maximum(directed, directed.T), threshold)
    clusters = [sorted(ids[index] for index in group) for group in groups]
    return sorted(clusters, key=lambda cluster: (-len(cluster), cluster[0]))


def cluster_embeddings(embeddings: dict[str, np.ndarray],
                       threshold: float = DEFAULT_EMBEDDING_THRESHOLD) -> list[list[str]]:
    """``cluster_identities`` on unit-length embeddings: similarity is their cosine."""
    _check_threshold(threshold)
    ids = sorted(embeddings)
    if not ids:
        return []
    vectors = np.stack([np.asarray(embeddings[key], np.float64) for key in ids])
    groups = _average_linkage(vectors @ vectors.T, threshold)
    clusters = [sorted(ids[index] for index in group) for group in groups]
    return sorted(clusters, key=lambda cluster: (-len(cluster), cluster[0]))


def best_reference_scores(descriptors: dict[str, Signature], references: list[Signature]) -> dict[str, float]:
    """Each cut-out's similarity to its closest reference (classical signatures)."""
    ids = sorted(descriptors)
    best = similarity_matrix([descriptors[key] for key in ids], references).max(axis=1)
    return dict(zip(ids, (float(score) for score in best)))


def best_reference_cosines(embeddings: dict[str, np.ndarray], references: list[np.ndarray]) -> dict[str, float]:
    """Each cut-out's cosine to its closest reference (unit-length embeddings)."""
    ids = sorted(embeddings)
    vectors = np.stack([np.asarray(embeddings[key], np.float64) for key in ids])
    best = (vectors @ np.stack(references).astype(np.float64).T).max(axis=1)
    return dict(zip(ids, (float(score) for score in best)))


def pick_target_cluster(clusters: list[list[str]], best_reference: dict[str, float] | None,
                        threshold: float = DEFAULT_PICK_THRESHOLD,
                        supported: set[int] | None = None) -> tuple[int | None, list[float], str]:
    """(index of the user's character's cluster or None, a score per cluster, a one-line reason).

    ``best_reference``: each member's similarity to its closest reference
    (``best_reference_scores`` / ``best_reference_cosines``), None without
    references. With references a cluster scores the median over its members
    (a few odd shots do not sway it), and the best cluster must reach
    ``threshold``; without, the score is the cluster's share of all cut-outs
    and the pick is the largest cluster among ``supported`` (the clusters with
    character evidence, default all); with none supported there is no pick.
    """
    _check_threshold(threshold)
    if not clusters:
        return None, [], "no clusters to pick from"
    if best_reference is None:
        total = sum(len(cluster) for cluster in clusters)
        shares = [round(len(cluster) / total, 3) for cluster in clusters]
        candidates = sorted(range(len(clusters)) if supported is None else supported)
        if not candidates:
            return None, shares, ("no reference images and no cluster has character support (a face or a "
                                  "detected character behind its cut-outs): none chosen")
        best = max(candidates, key=lambda index: (len(clusters[index]), -index))
        return best, shares, (f"no reference images: cluster {best} is the largest with character support "
                              f"({len(clusters[best])} of {total} cut-outs); {_runner_up(shares, best)}")
    score_of = best_reference
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
    """Groups of row indices (each sorted, by first member): average linkage (UPGMA, scipy) on
    the distance 1 - similarity, merging while a pair of groups' mean similarity >= threshold."""
    if len(similarity) == 1:
        return [[0]]
    distance = np.clip(1.0 - similarity.astype(np.float64), 0.0, None)
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="average")
    labels = fcluster(tree, t=1.0 - threshold, criterion="distance")
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        groups.setdefault(int(label), []).append(index)
    return sorted(groups.values())
