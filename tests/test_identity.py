"""Identity clustering of character cut-outs made from the demo renderer's frames and truth masks."""

from __future__ import annotations

import functools
from math import comb

import numpy as np
import pytest

from frameloom.demo import CHARACTERS, SHOTS, FrameSpec, render_frame, render_reference
from frameloom.identity import (
    DEFAULT_CLUSTER_THRESHOLD,
    DEFAULT_EMBEDDING_THRESHOLD,
    DEFAULT_PICK_THRESHOLD,
    _average_linkage,
    best_reference_cosines,
    best_reference_scores,
    character_descriptor,
    cluster_embeddings,
    cluster_identities,
    pick_target_cluster,
    reference_descriptors,
)
from frameloom.imageio import write_image
from frameloom.imageops import NEUTRAL_GREY
from frameloom.matte import soft_alpha
from frameloom.strategies import cutout
from frameloom.target import (
    COLOUR_WEIGHT,
    LAYOUT_WEIGHT,
    PROFILE_DISSIMILAR,
    PROFILE_FLOOR,
    PROFILE_KEEP,
    PROFILE_MIN_ROWS,
    PROPORTION_WEIGHT,
    similarity_matrix,
)

OCCLUDERS = ("left", "right", "bottom", "pole")
# Film-like casts: the main character (first) in every frame, the others now and then.
DUO = (0, 3)
TRIO = (2, 4, 1)
DUO_FRAMES = 24
TRIO_FRAMES = 30


def frame_spec(cast: tuple[int, ...], index: int, seed: int) -> FrameSpec:
    """The index-th frame of a cast: the main character alone or with one or two others, every shot,
    plain and cluttered, some side-lit, darkened, blurred, noisy, low-resolution or occluded."""
    rng = np.random.default_rng([seed, index])
    others = [int(k) for k in rng.permutation(cast[1:])]
    identities = (cast[0], *others[: index % len(cast)])
    return FrameSpec(seed=seed * 1000 + index, n_characters=len(identities), identities=identities,
                     shot=SHOTS[index % len(SHOTS)], background=("plain", "cluttered")[(index // 2) % 2],
                     lighting="side" if index % 5 == 4 else "studio", darkness=0.4 if index % 3 == 2 else 0.0,
                     blur_sigma=2.0 if index % 7 == 6 else 0.0, noise_std=12.0 if index % 8 == 3 else 0.0,
                     downscale=2.0 if index % 9 == 5 else 1.0,
                     occluder=OCCLUDERS[index % 4] if index % 4 == 1 else None)


@functools.cache
def cast_cutouts(cast: tuple[int, ...], frames: int, seed: int) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """(id -> BGRA cut-out, id -> identity) of every character the cast's frames show,
    cut out as the segment strategy does (soft alpha of the true mask, premultiplied onto grey)."""
    images, identities = {}, {}
    for index in range(frames):
        image, truth = render_frame(frame_spec(cast, index, seed))
        for number, (identity, mask) in enumerate(zip(truth["identities"], truth["masks"])):
            key = f"frame{index:03d}_{number}"
            images[key], _ = cutout(image, soft_alpha(image, mask))
            identities[key] = identity
    return images, identities


@functools.cache
def cast_descriptors(cast: tuple[int, ...], frames: int, seed: int) -> tuple[dict, dict[str, int]]:
    images, identities = cast_cutouts(cast, frames, seed)
    return {key: character_descriptor(image) for key, image in images.items()}, identities


@functools.cache
def references_of(identity: int, count: int = 2) -> list:
    return reference_descriptors([render_reference(identity, seed=seed) for seed in range(count)])


def pair_precision_recall(clusters: list[list[str]], truth: dict[str, int]) -> tuple[float, float]:
    """Share of same-cluster pairs that are one identity, and of same-identity pairs that share a cluster."""
    cluster_of = {key: number for number, cluster in enumerate(clusters) for key in cluster}
    keys = sorted(truth)
    together = same = both = 0
    for position, first in enumerate(keys):
        for second in keys[position + 1:]:
            clustered = cluster_of[first] == cluster_of[second]
            identical = truth[first] == truth[second]
            together, same, both = together + clustered, same + identical, both + (clustered and identical)
    return both / max(together, 1), both / max(same, 1)


def adjusted_rand_index(clusters: list[list[str]], truth: dict[str, int]) -> float:
    labels = sorted(set(truth.values()))
    table = np.array([[sum(truth[key] == label for key in cluster) for label in labels] for cluster in clusters])
    pairs = sum(comb(int(n), 2) for n in table.ravel())
    cluster_pairs = sum(comb(int(n), 2) for n in table.sum(axis=1))
    identity_pairs = sum(comb(int(n), 2) for n in table.sum(axis=0))
    expected = cluster_pairs * identity_pairs / comb(len(truth), 2)
    return (pairs - expected) / ((cluster_pairs + identity_pairs) / 2 - expected)


def majority_identity(cluster: list[str], truth: dict[str, int]) -> int:
    values, counts = np.unique([truth[key] for key in cluster], return_counts=True)
    return int(values[np.argmax(counts)])


@pytest.mark.parametrize("cast, frames, seed", [(DUO, DUO_FRAMES, 1), (TRIO, TRIO_FRAMES, 2)])
def test_clusters_separate_the_identities(cast, frames, seed):
    descriptors, truth = cast_descriptors(cast, frames, seed)
    clusters = cluster_identities(descriptors)
    precision, recall = pair_precision_recall(clusters, truth)
    ari = adjusted_rand_index(clusters, truth)
    sizes = [(len(cluster), majority_identity(cluster, truth)) for cluster in clusters]
    assert precision >= 0.9 and recall >= 0.9 and ari >= 0.9, (precision, recall, ari, sizes)
    assert sorted(majority_identity(cluster, truth) for cluster in clusters[: len(cast)]) == sorted(cast), sizes


def pair_similarity(instance, reference) -> float:
    """The score of one pair written out plainly (the oracle for the matrix form): Bhattacharyya
    colour under the instance's best tone, head (+ body) layout under it, trimmed mean log width ratio."""
    def bhattacharyya(p, q):
        return float(np.sqrt(p * q).sum())

    per_tone = [bhattacharyya(histogram, reference.colour[0]) for histogram in instance.colour]
    tone = int(np.argmax(per_tone))
    head = bhattacharyya(instance.head[tone], reference.head[0])
    both_bodies = instance.body[tone] is not None and reference.body[0] is not None
    layout = 0.5 * (head + bhattacharyya(instance.body[tone], reference.body[0])) if both_bodies else head
    common = ~np.isnan(instance.widths) & ~np.isnan(reference.widths)
    if np.count_nonzero(common) < PROFILE_MIN_ROWS:
        return (COLOUR_WEIGHT * per_tone[tone] + LAYOUT_WEIGHT * layout) / (COLOUR_WEIGHT + LAYOUT_WEIGHT)
    differences = np.sort(np.abs(np.log(np.maximum(instance.widths[common], PROFILE_FLOOR))
                                 - np.log(np.maximum(reference.widths[common], PROFILE_FLOOR))))
    kept = differences[: max(PROFILE_MIN_ROWS, int(PROFILE_KEEP * differences.size))]
    proportions = max(0.0, 1.0 - float(kept.mean()) / PROFILE_DISSIMILAR)
    return COLOUR_WEIGHT * per_tone[tone] + LAYOUT_WEIGHT * layout + PROPORTION_WEIGHT * proportions


def test_batched_similarity_is_the_pairwise_score():
    descriptors, _ = cast_descriptors(TRIO, TRIO_FRAMES, 2)
    signatures = [descriptors[key] for key in sorted(descriptors)[::3]]
    references = references_of(TRIO[0]) + references_of(5)
    for columns in (signatures, references):
        batched = similarity_matrix(signatures, columns)
        expected = np.array([[pair_similarity(row, column) for column in columns] for row in signatures])
        np.testing.assert_allclose(batched, expected, rtol=0, atol=1e-12)


def test_no_two_clusters_are_as_alike_as_the_threshold():
    descriptors, _ = cast_descriptors(TRIO, TRIO_FRAMES, 2)
    keys = sorted(descriptors)
    directed = similarity_matrix([descriptors[key] for key in keys], [descriptors[key] for key in keys])
    similarity = np.maximum(directed, directed.T)
    clusters = cluster_identities(descriptors)
    rows = [[keys.index(key) for key in cluster] for cluster in clusters]
    for first in range(len(rows)):
        for second in range(first + 1, len(rows)):
            assert similarity[np.ix_(rows[first], rows[second])].mean() < DEFAULT_CLUSTER_THRESHOLD


def test_average_linkage_merges_by_group_mean():
    similarity = np.array([
        [1.0, 0.9, 0.75, 0.1],
        [0.9, 1.0, 0.55, 0.1],
        [0.75, 0.55, 1.0, 0.2],
        [0.1, 0.1, 0.2, 1.0],
    ])
    # {0, 1} first; then {0, 1} with 2 has mean (0.75 + 0.55) / 2 = 0.65.
    assert _average_linkage(similarity, 0.7) == [[0, 1], [2], [3]]
    assert _average_linkage(similarity, 0.6) == [[0, 1, 2], [3]]
    assert _average_linkage(similarity, 0.95) == [[0], [1], [2], [3]]
    assert _average_linkage(similarity[:1, :1], 0.5) == [[0]]


def test_clustering_is_deterministic_and_ordered():
    descriptors, _ = cast_descriptors(DUO, DUO_FRAMES, 1)
    clusters = cluster_identities(descriptors)
    shuffled = dict(reversed(list(descriptors.items())))
    assert cluster_identities(shuffled) == clusters
    assert sorted(key for cluster in clusters for key in cluster) == sorted(descriptors)
    assert all(cluster == sorted(cluster) for cluster in clusters)
    assert [len(cluster) for cluster in clusters] == sorted((len(cluster) for cluster in clusters), reverse=True)
    assert cluster_identities({}) == []
    only = next(iter(descriptors))
    assert cluster_identities({only: descriptors[only]}) == [[only]]


@pytest.mark.parametrize("cast, frames, seed", [(DUO, DUO_FRAMES, 1), (TRIO, TRIO_FRAMES, 2)])
def test_references_pick_their_identitys_cluster(cast, frames, seed):
    descriptors, truth = cast_descriptors(cast, frames, seed)
    clusters = cluster_identities(descriptors)
    for identity in cast:
        picked, scores, reason = pick_target_cluster(
            clusters, best_reference_scores(descriptors, references_of(identity)))
        assert picked is not None and majority_identity(clusters[picked], truth) == identity, reason
        assert len(scores) == len(clusters) and scores[picked] == max(scores)
        assert reason.startswith(f"cluster {picked}, {len(clusters[picked])} cut-outs matches the references")


@pytest.mark.parametrize("cast, frames, seed", [(DUO, DUO_FRAMES, 1), (TRIO, TRIO_FRAMES, 2)])
def test_references_of_an_absent_identity_pick_nothing(cast, frames, seed):
    descriptors, _ = cast_descriptors(cast, frames, seed)
    clusters = cluster_identities(descriptors)
    for identity in (k for k in range(len(CHARACTERS)) if k not in cast):
        picked, scores, reason = pick_target_cluster(
            clusters, best_reference_scores(descriptors, references_of(identity)))
        assert picked is None and max(scores) < DEFAULT_PICK_THRESHOLD, reason
        assert reason.startswith("no cluster matches the references: best")


def test_without_references_the_largest_cluster_is_picked():
    # The main character is in every frame, as in a film about them.
    descriptors, truth = cast_descriptors(TRIO, TRIO_FRAMES, 2)
    clusters = cluster_identities(descriptors)
    picked, shares, reason = pick_target_cluster(clusters, None)
    assert picked == 0 and majority_identity(clusters[0], truth) == TRIO[0]
    assert shares == [round(len(cluster) / len(descriptors), 3) for cluster in clusters]
    assert reason.startswith(f"no reference images: cluster 0 is the largest with character support "
                             f"({len(clusters[0])} of {len(descriptors)}")
    assert pick_target_cluster([["b"], ["a", "c"]], None)[0] == 1
    assert pick_target_cluster([], None) == (None, [], "no clusters to pick from")


def test_without_references_only_a_supported_cluster_is_picked():
    """Texture cut-outs can outnumber the character: the largest cluster with a face or a
    detected character behind it is the pick, and with none there is no pick."""
    clusters = [["wall_1", "wall_2", "wall_3"], ["hero_1", "hero_2"]]
    assert pick_target_cluster(clusters, None, supported={1})[0] == 1
    picked, _, reason = pick_target_cluster(clusters, None, supported=set())
    assert picked is None and "no cluster has character support" in reason


def test_embeddings_cluster_by_cosine_and_match_references():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 64))

    def around(centre, n):
        vectors = centres[centre] + 0.3 * rng.normal(size=(n, 64))
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    embeddings = {f"a{i}": v for i, v in enumerate(around(0, 6))} | {f"b{i}": v for i, v in enumerate(around(1, 4))}
    clusters = cluster_embeddings(embeddings)
    assert clusters == [[f"a{i}" for i in range(6)], [f"b{i}" for i in range(4)]]
    best = best_reference_cosines(embeddings, list(around(1, 1)))
    picked, scores, reason = pick_target_cluster(clusters, best, DEFAULT_EMBEDDING_THRESHOLD)
    assert picked == 1 and scores[1] >= DEFAULT_EMBEDDING_THRESHOLD > scores[0], reason


def test_reference_files_and_arrays_give_the_same_descriptors(tmp_path):
    identity = TRIO[1]
    images, _ = cast_cutouts(TRIO, TRIO_FRAMES, 2)
    views = [render_reference(identity, seed=seed) for seed in range(2)]
    for number, view in enumerate(views):
        write_image(tmp_path / "refs" / f"view_{number}.png", view)
    cutout_view = next(iter(images.values()))
    write_image(tmp_path / "cutout.png", cutout_view)
    from_arrays = reference_descriptors(views + [cutout_view])
    from_files = reference_descriptors([tmp_path / "refs", str(tmp_path / "cutout.png")])
    from_mixed = reference_descriptors([views[0], tmp_path / "refs" / "view_1.png", cutout_view])
    descriptors, _ = cast_descriptors(TRIO, TRIO_FRAMES, 2)
    instances = list(descriptors.values())
    expected = similarity_matrix(instances, from_arrays)
    np.testing.assert_array_equal(similarity_matrix(instances, from_files), expected)
    np.testing.assert_array_equal(similarity_matrix(instances, from_mixed).max(axis=1), expected.max(axis=1))
    assert len(reference_descriptors(views[0])) == len(reference_descriptors(tmp_path / "refs" / "view_0.png")) == 1


def test_degenerate_inputs(tmp_path):
    with pytest.raises(ValueError, match="uint8 BGRA"):
        character_descriptor(np.zeros((32, 32, 3), np.uint8))
    transparent = np.full((32, 32, 4), NEUTRAL_GREY, np.uint8)
    transparent[..., 3] = 0
    with pytest.raises(ValueError, match="fewer than"):
        character_descriptor(transparent)
    with pytest.raises(ValueError, match="at least one"):
        reference_descriptors([])
    with pytest.raises(FileNotFoundError):
        reference_descriptors(tmp_path / "missing")
    with pytest.raises(ValueError, match="threshold"):
        cluster_identities({}, threshold=1.5)
    with pytest.raises(ValueError, match="threshold"):
        pick_target_cluster([], None, threshold=-0.1)
