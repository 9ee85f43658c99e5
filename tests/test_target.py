"""Reference matching against the demo renderer's identities and ground-truth instance masks."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from frameloom.demo import CHARACTERS, SHOTS, FrameSpec, render_frame, render_reference
from frameloom.imageio import write_image
from frameloom.target import DEFAULT_THRESHOLD, MIN_INSTANCE_PIXELS, ReferenceMatcher

MIXED_FRAMES = 36
ABSENT_FRAMES = 24
OCCLUDERS = ("left", "right", "bottom", "pole")


@functools.cache
def matcher_for(identity: int, reference_count: int) -> ReferenceMatcher:
    """A matcher on the first ``reference_count`` clean reference views of one identity (no alpha)."""
    return ReferenceMatcher([render_reference(identity, seed=seed) for seed in range(reference_count)])


def mixed_spec(index: int, target_present: bool = True) -> tuple[FrameSpec, int, int]:
    """(spec, target identity, reference count) of the index-th test frame: 2-3 characters,
    plain and cluttered in turn, every shot, some occluded or darkened; the target anywhere
    in the cast (or left out of it)."""
    rng = np.random.default_rng([7, index, target_present])
    count = 2 + index % 2
    target = int(rng.integers(len(CHARACTERS)))
    others = [int(k) for k in rng.permutation([k for k in range(len(CHARACTERS)) if k != target])]
    if target_present:
        slot = int(rng.integers(count))
        identities = (*others[:slot], target, *others[slot:count - 1])
    else:
        identities = tuple(others[:count])
    spec = FrameSpec(
        seed=7000 + index + (0 if target_present else 1000), n_characters=count, identities=identities,
        background=("plain", "cluttered")[index % 2], shot=SHOTS[(index // 2) % len(SHOTS)],
        occluder=OCCLUDERS[index % 4] if index % 5 == 4 else None, darkness=0.5 if index % 6 == 3 else 0.0,
    )
    return spec, target, 1 + index % 3


def test_picks_the_target_in_mixed_frames():
    hits = {"plain": [], "cluttered": []}
    for index in range(MIXED_FRAMES):
        spec, target, reference_count = mixed_spec(index)
        image, truth = render_frame(spec)
        assert target in truth["identities"], f"frame {index}: the target is hidden, pick another seed"
        picked, score, note = matcher_for(target, reference_count).pick(image, truth["masks"])
        correct = picked is not None and truth["identities"][picked] == target
        hits[spec.background].append((correct, f"frame {index} ({spec.shot}, {spec.background}): {note}"))
    # Measured: 36/36 here (18/18 plain, 18/18 cluttered); on 200 such frames 100/100 plain and
    # 99/100 cluttered, the miss a "no match" (0.718), never a wrong instance.
    misses = [why for results in hits.values() for correct, why in results if not correct]
    for background, results in hits.items():
        accuracy = np.mean([correct for correct, _ in results])
        assert accuracy >= 0.85, f"{background}: accuracy {accuracy:.2f}; misses: {misses}"
    accuracy = 1 - len(misses) / MIXED_FRAMES
    assert accuracy >= 0.9, f"accuracy {accuracy:.2f}; misses: {misses}"


def test_frames_without_the_target_match_nobody():
    rejected, accepted = 0, []
    for index in range(ABSENT_FRAMES):
        spec, target, reference_count = mixed_spec(index, target_present=False)
        image, truth = render_frame(spec)
        picked, score, note = matcher_for(target, reference_count).pick(image, truth["masks"])
        if picked is None:
            rejected += 1
            assert score < DEFAULT_THRESHOLD and note.startswith("no instance matches")
        else:
            accepted.append(f"frame {index}: target {target}, cast {truth['identities']}: {note}")
    # Measured: 24/24 here; 200/200 on 200 such frames.
    assert rejected / ABSENT_FRAMES >= 0.9, accepted


def test_note_names_the_pick_and_the_runner_up():
    spec, target, reference_count = mixed_spec(0)
    image, truth = render_frame(spec)
    picked, score, note = matcher_for(target, reference_count).pick(image, truth["masks"])
    others = [matcher_for(target, reference_count).score(image, mask)
              for index, mask in enumerate(truth["masks"]) if index != picked]
    assert 0.0 <= max(others) < score <= 1.0
    assert note == f"instance {picked} matches the references ({score:.3f}); runner-up {max(others):.3f}"


def test_matching_is_deterministic():
    for index in (1, 6, 11):
        spec, target, reference_count = mixed_spec(index)
        image, truth = render_frame(spec)
        references = [render_reference(target, seed=seed) for seed in range(reference_count)]
        first = ReferenceMatcher(references).pick(image, truth["masks"])
        second = ReferenceMatcher([reference.copy() for reference in references]).pick(image.copy(), truth["masks"])
        assert first == second


def reference_cutout(identity: int, seed: int, backdrop_bgr: tuple[int, int, int] | None = None) -> np.ndarray:
    """The reference view of ``render_reference`` as a BGRA cut-out: alpha is the true silhouette,
    the backdrop optionally painted over (a transparent backdrop must not matter)."""
    image, truth = render_frame(FrameSpec(seed=seed, width=256, height=256, shot="medium", identities=(identity,)))
    assert np.array_equal(image, render_reference(identity, seed=seed))
    silhouette = truth["masks"][0]
    if backdrop_bgr is not None:
        image[~silhouette] = backdrop_bgr
    return np.dstack([image, np.where(silhouette, 255, 0).astype(np.uint8)])


def test_references_with_and_without_alpha_agree():
    identity = 4
    opaque = matcher_for(identity, 2)
    cutouts = ReferenceMatcher([reference_cutout(identity, seed, backdrop_bgr=(255, 0, 255)) for seed in range(2)])
    extras = [k for k in range(len(CHARACTERS)) if k != identity]
    for index in range(12):
        cast = (extras[index % len(extras)], identity, extras[(index + 2) % len(extras)])
        image, truth = render_frame(FrameSpec(seed=7500 + index, n_characters=3, identities=cast,
                                              background=("plain", "cluttered")[index % 2],
                                              shot=SHOTS[index % len(SHOTS)]))
        assert opaque.pick(image, truth["masks"])[0] == cutouts.pick(image, truth["masks"])[0]
        for mask in truth["masks"]:
            assert abs(opaque.score(image, mask) - cutouts.score(image, mask)) <= 0.05


def test_from_paths_reads_a_folder_of_bgra_cutouts(tmp_path):
    identity = 2
    folder = tmp_path / "refs"
    for seed in range(2):
        write_image(folder / f"view_{seed}.png", reference_cutout(identity, seed, backdrop_bgr=(0, 255, 0)))
    (folder / "notes.txt").write_text("not an image")
    (folder / "nested").mkdir()
    from_folder = ReferenceMatcher.from_paths(folder)
    from_files = ReferenceMatcher.from_paths([folder / "view_0.png", str(folder / "view_1.png")], threshold=0.6)
    assert from_files.threshold == 0.6 and from_folder.threshold == DEFAULT_THRESHOLD
    in_memory = ReferenceMatcher([reference_cutout(identity, seed, backdrop_bgr=(0, 255, 0)) for seed in range(2)])

    image, truth = render_frame(FrameSpec(seed=31, n_characters=3, identities=(5, identity, 0), shot="full-body",
                                          background="cluttered"))
    picked, score, _ = from_folder.pick(image, truth["masks"])
    assert truth["identities"][picked] == identity
    assert from_files.pick(image, truth["masks"])[:2] == (picked, score)
    assert in_memory.pick(image, truth["masks"]) == from_folder.pick(image, truth["masks"])


def test_from_paths_reports_missing_or_empty_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        ReferenceMatcher.from_paths(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no reference images"):
        ReferenceMatcher.from_paths(tmp_path / "empty")


def test_degenerate_inputs():
    with pytest.raises(ValueError, match="at least one"):
        ReferenceMatcher([])
    with pytest.raises(ValueError, match="threshold"):
        ReferenceMatcher([render_reference(0, size=128)], threshold=1.5)
    with pytest.raises(ValueError, match="uint8"):
        ReferenceMatcher([np.zeros((64, 64), np.uint8)])
    matcher = matcher_for(0, 1)
    image, truth = render_frame(FrameSpec(seed=3, width=160, height=90, n_characters=2, identities=(0, 1)))
    assert matcher.pick(image, []) == (None, 0.0, "no instances to match against the references")
    speck = np.zeros(image.shape[:2], bool)
    speck[40, 40:40 + MIN_INSTANCE_PIXELS - 1] = True
    assert matcher.score(image, speck) == 0.0
    with pytest.raises(ValueError, match="does not match"):
        matcher.score(image, truth["masks"][0][:-1])
    picked, _, note = matcher.pick(image, truth["masks"][:1])
    assert picked == 0 and note.endswith("no other instance")


def test_every_instance_of_a_small_far_frame_is_scored():
    # Regression: a float32 saturation exactly at a bin edge once produced a negative bin index here.
    image, truth = render_frame(FrameSpec(seed=7134, n_characters=2, identities=(1, 2), shot="far", occluder="bottom"))
    scores = [matcher_for(2, 1).score(image, mask) for mask in truth["masks"]]
    assert all(0.0 <= score <= 1.0 for score in scores)
    assert np.argmax(scores) == truth["identities"].index(2)
