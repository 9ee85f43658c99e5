"""Find the user's character among a frame's instances by comparing them with reference images.

Users may give a few pictures of their character (``character.reference_images``:
full frames or cut-outs, with or without alpha). Every segmented instance of
a frame is scored 0..1 against them; the best instance at or above the
threshold is the target, and a frame where none reaches it is reported as
having no match instead of falling back to a guess.

The score compares three signatures of an instance with each reference's and
keeps the best reference:

* colour: a hue x saturation x brightness histogram of the whole instance
  (grey, white and black parts in brightness bins of their own), compared with
  the Bhattacharyya coefficient. Brightness is measured relative to the
  instance's bright end, and the instance is also tried under a few inverse
  tone curves (gamma), so an underexposed or crushed shot still matches its
  well-lit reference;
* layout: the same histogram of the head (the largest inscribed disc near the
  top of the mask, plus everything above its centre) and of the rest, so
  colours have to sit in the same places (hair on the head, not on the shoes);
* proportions: the mask's width at fixed depths below the head centre, in
  head radii, compared only at depths both silhouettes show (shots crop the
  legs, the frame edge cuts a side) with the worst quarter of the rows
  ignored (a raised arm, an occluder).

All three are normalised to the head or to the instance, so far shots,
close-ups and partly hidden characters compare with the same reference. The
weights are a logistic fit of same / other character (304 instances of 150
generated frames with 1-3 characters, all shots, plain and cluttered, with
darkened, side-lit, blurred, noisy, low-resolution and occluded variants,
against three references of each of the six demo identities), divided by
their sum: the score is their weighted mean, 1 for identical signatures, and
the fit's even-odds point is DEFAULT_THRESHOLD. On those instances it accepts
93% of the genuine pairs (the misses: figures of a few hundred pixels that
are also blurred or downscaled, and side-lit pale palettes) and 0.13% of the
others.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from .imageio import IMAGE_EXTENSIONS, read_image
from .segmentation import GrabCutSegmenter

DEFAULT_THRESHOLD = 0.73

# Instances are described on a copy whose longest side is at most this:
# histograms need no more pixels, and the cost per instance stays flat.
WORK_LONGEST_SIDE = 160
# Fewer pixels than this cannot be told apart from anyone else.
MIN_INSTANCE_PIXELS = 24

# Histogram layout. Pixels below SATURATION_EDGES[0] or DARK_VALUE (relative
# brightness) have no reliable hue and go to ACHROMATIC_BINS brightness bins;
# the others are binned by hue (linearly shared between the two nearest
# bins), saturation band and whether they are brighter than BRIGHT_VALUE,
# which separates e.g. a dark-skinned from a light-skinned character.
HUE_BINS = 18
SATURATION_EDGES = (0.22, 0.5, 0.75)
BRIGHT_VALUE = 0.55
DARK_VALUE = 0.12
ACHROMATIC_BINS = 3
# The instance's bright end (this percentile of its brightest channel) is
# scaled to 1 before binning: the same character under less light matches.
EXPOSURE_PERCENTILE = 95
# Inverse tone curves tried on an instance (references are taken as shot):
# 1.7 undoes a strong underexposure curve such as the demo's darkness 0.8.
TONE_GAMMAS = (1.0, 1.3, 1.7)

# The head is the largest inscribed disc whose centre lies at most
# HEAD_SEARCH_DEPTH radii below the top of the mask (hair, hats and buns
# above it); its region reaches HEAD_EXTENT radii around the centre.
HEAD_SEARCH_DEPTH = 1.8
HEAD_EXTENT = 1.35
# A body part smaller than this share of the head region is not compared.
MIN_BODY_SHARE = 0.1

# Width profile: mask width over a band PROFILE_BAND radii high at each depth
# (in head radii below the head centre); PROFILE_KEEP of the compared rows
# with the smallest differences count, at least PROFILE_MIN_ROWS of them.
PROFILE_DEPTHS = tuple(-1.0 + 0.25 * step for step in range(21))  # -1 .. 4 radii
PROFILE_BAND = 0.25
PROFILE_KEEP = 0.75
PROFILE_MIN_ROWS = 4
# Mean log width ratio at which proportions count as nothing alike.
PROFILE_DISSIMILAR = 0.5
# Widths this close to zero are compared as this (log of an absent row).
PROFILE_FLOOR = 0.05

# Weighted mean of the three similarities (logistic fit, see module docstring);
# without a comparable width profile the other two carry the score.
COLOUR_WEIGHT = 0.33
LAYOUT_WEIGHT = 0.52
PROPORTION_WEIGHT = 0.15


@dataclass(frozen=True)
class Signature:
    """What an instance is compared by; one histogram per tone hypothesis."""

    colour: tuple[np.ndarray, ...]
    head: tuple[np.ndarray, ...]
    body: tuple[np.ndarray | None, ...]  # None: too little below the head
    widths: np.ndarray  # per PROFILE_DEPTHS, NaN where the silhouette does not show it


class ReferenceMatcher:
    """Scores instances against reference images of the target character."""

    name = "reference-match(colour+layout+proportions)"

    def __init__(self, reference_images: list[np.ndarray], threshold: float = DEFAULT_THRESHOLD):
        if not reference_images:
            raise ValueError("at least one reference image is needed")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in 0..1, got {threshold}")
        self.threshold = float(threshold)
        self._references = []
        for number, image in enumerate(reference_images):
            bgr, mask = _reference_cutout(image, number)
            self._references.append(describe(bgr, mask, tone_gammas=(1.0,)))

    @classmethod
    def from_paths(cls, paths: str | os.PathLike | Iterable[str | os.PathLike],
                   threshold: float = DEFAULT_THRESHOLD) -> ReferenceMatcher:
        """Read references from image files and folders (their images, sorted by name)."""
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        files = []
        for path in map(Path, paths):
            if path.is_dir():
                files += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            elif path.is_file():
                files.append(path)
            else:
                raise FileNotFoundError(f"reference image or folder not found: {path}")
        if not files:
            raise ValueError(f"no reference images ({', '.join(IMAGE_EXTENSIONS)}) in {[str(p) for p in paths]}")
        return cls([read_image(path, keep_alpha=True) for path in files], threshold)

    @property
    def signatures(self) -> list[Signature]:
        """The references' signatures (one tone each)."""
        return list(self._references)

    def score(self, image_bgr: np.ndarray, mask: np.ndarray) -> float:
        """0..1 similarity of the instance ``mask`` covers to the closest reference."""
        if mask.shape != image_bgr.shape[:2]:
            raise ValueError(f"mask {mask.shape} does not match image {image_bgr.shape[:2]}")
        if int(np.count_nonzero(mask)) < MIN_INSTANCE_PIXELS:
            return 0.0
        instance = describe(image_bgr, mask.astype(bool), tone_gammas=TONE_GAMMAS)
        return round(float(similarity_matrix([instance], self._references).max()), 3)

    def pick(self, image_bgr: np.ndarray, instance_masks: list[np.ndarray]) -> tuple[int | None, float, str]:
        """(index of the target instance or None, its score, a one-line note naming the runner-up)."""
        if not instance_masks:
            return None, 0.0, "no instances to match against the references"
        scores = [self.score(image_bgr, mask) for mask in instance_masks]
        best = int(np.argmax(scores))
        others = scores[:best] + scores[best + 1:]
        runner_up = f"runner-up {max(others):.3f}" if others else "no other instance"
        if scores[best] < self.threshold:
            return None, scores[best], (f"no instance matches the references: best {scores[best]:.3f} "
                                        f"(instance {best}) < threshold {self.threshold:.3f}; {runner_up}")
        return best, scores[best], f"instance {best} matches the references ({scores[best]:.3f}); {runner_up}"


def _reference_cutout(image: np.ndarray, number: int) -> tuple[np.ndarray, np.ndarray]:
    """BGR and the character's mask: the alpha channel where it has one, else a GrabCut of the picture."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"reference {number}: expected uint8 BGR or BGRA, got {image.dtype} {image.shape}")
    bgr = np.ascontiguousarray(image[..., :3])
    if image.shape[2] == 4 and (image[..., 3] < 128).any():
        mask = image[..., 3] >= 128
    else:
        # A fully opaque picture: the character is the salient instance GrabCut
        # finds when the whole picture is the subject box.
        height, width = bgr.shape[:2]
        cut = GrabCutSegmenter().segment(bgr, {"foreground_box": [0, 0, width, height]})
        if cut.target_index is None:
            raise ValueError(f"reference {number}: no character found ({cut.notes})")
        mask = cut.instance_masks[cut.target_index]
    if int(np.count_nonzero(mask)) < MIN_INSTANCE_PIXELS:
        raise ValueError(f"reference {number}: the character covers fewer than {MIN_INSTANCE_PIXELS} pixels")
    return bgr, mask


def describe(image_bgr: np.ndarray, mask: np.ndarray, tone_gammas: tuple[float, ...]) -> Signature:
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop_mask = mask[y0:y1, x0:x1]
    colours, work_mask, scale = _working_copy(image_bgr[y0:y1, x0:x1], crop_mask)
    centre_x, centre_y, radius = _head_circle(work_mask)

    pixels = colours[work_mask]
    bright_end = max(float(np.percentile(pixels.max(axis=1), EXPOSURE_PERCENTILE)), 1.0)
    pixels = np.clip(pixels / bright_end, 0.0, 1.0)
    rows, cols = np.nonzero(work_mask)
    in_head = ((rows - centre_y) ** 2 + (cols - centre_x) ** 2 <= (HEAD_EXTENT * radius) ** 2) | (rows < centre_y)
    has_body = np.count_nonzero(~in_head) >= MIN_BODY_SHARE * np.count_nonzero(in_head)
    colour, head, body = [], [], []
    for gamma in tone_gammas:
        toned = pixels if gamma == 1.0 else pixels ** np.float32(1.0 / gamma)
        hsv = cv2.cvtColor(toned[:, None, :], cv2.COLOR_BGR2HSV)[:, 0, :]
        colour.append(_histogram(hsv))
        head.append(_histogram(hsv[in_head]))
        body.append(_histogram(hsv[~in_head]) if has_body else None)

    # Widths are measured at full resolution, where the frame edges are known.
    image_height, image_width = mask.shape
    cut_by_frame = np.zeros(y1 - y0, bool)
    if x0 == 0:
        cut_by_frame |= mask[y0:y1, 0]
    if x1 == image_width:
        cut_by_frame |= mask[y0:y1, image_width - 1]
    if y1 == image_height:
        cut_by_frame[-max(1, round(0.25 * radius / scale)):] = True
    widths = _width_profile(crop_mask, cut_by_frame, centre_y / scale, radius / scale)
    return Signature(tuple(colour), tuple(head), tuple(body), widths)


def _working_copy(crop_bgr: np.ndarray, crop_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Float BGR and mask at most WORK_LONGEST_SIDE long, colours averaged inside the mask only.

    Shrinking and the 3x3 denoising blur both divide by the mask's own
    coverage, so background never bleeds into the instance's colours.
    """
    weight = crop_mask.astype(np.float32)
    colours = crop_bgr.astype(np.float32) * weight[..., None]
    height, width = crop_mask.shape
    scale = min(1.0, WORK_LONGEST_SIDE / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        colours = cv2.resize(colours, size, interpolation=cv2.INTER_AREA)
        weight = cv2.resize(weight, size, interpolation=cv2.INTER_AREA)
    work_mask = weight >= 0.5
    if not work_mask.any():  # a hairline figure: keep its best-covered pixels
        work_mask = weight >= 0.5 * weight.max()
    inside = work_mask.astype(np.float32)
    colours = colours * (inside / np.maximum(weight, 1e-6))[..., None]
    smoothed = cv2.blur(colours, (3, 3)) / np.maximum(cv2.blur(inside, (3, 3)), 1e-6)[..., None]
    return smoothed, work_mask, scale


def _head_circle(mask: np.ndarray) -> tuple[int, int, float]:
    """(x, y, radius) of the largest inscribed disc whose centre is near the top of the mask."""
    inner = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    top = int(np.flatnonzero(mask.any(axis=1))[0])
    depth = np.arange(mask.shape[0], dtype=np.float32)[:, None] - top
    candidates = np.where(depth <= HEAD_SEARCH_DEPTH * inner, inner, 0.0)
    centre_y, centre_x = divmod(int(np.argmax(candidates)), mask.shape[1])
    return centre_x, centre_y, max(float(candidates[centre_y, centre_x]), 1.0)


def _histogram(hsv: np.ndarray) -> np.ndarray:
    """Normalised colour histogram of (N, 3) float HSV pixels (H in degrees, S and V in 0..1)."""
    hue, saturation, value = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    saturation_bands = len(SATURATION_EDGES)
    chromatic_bins = HUE_BINS * saturation_bands * 2
    counts = np.zeros(chromatic_bins + ACHROMATIC_BINS, np.float64)
    # One comparison decides both band and chromatic (-1: below the lowest edge), so a
    # float32 saturation right at an edge cannot fall between two tests.
    band = np.searchsorted(SATURATION_EDGES, saturation, side="right") - 1
    chromatic = (band >= 0) & (value > DARK_VALUE)
    band = band[chromatic]
    bright = (value[chromatic] >= BRIGHT_VALUE).astype(np.int64)
    position = hue[chromatic] * (HUE_BINS / 360.0) - 0.5
    lower = np.floor(position)
    upper_share = position - lower
    lower = lower.astype(np.int64)
    for hue_bin, share in ((lower % HUE_BINS, 1.0 - upper_share), ((lower + 1) % HUE_BINS, upper_share)):
        index = (hue_bin * saturation_bands + band) * 2 + bright
        counts[:chromatic_bins] += np.bincount(index, weights=share, minlength=chromatic_bins)
    grey_level = np.minimum((value[~chromatic] * ACHROMATIC_BINS).astype(np.int64), ACHROMATIC_BINS - 1)
    counts[chromatic_bins:] += np.bincount(grey_level, minlength=ACHROMATIC_BINS)
    return counts / max(float(counts.sum()), 1e-9)


def _width_profile(mask: np.ndarray, cut_by_frame: np.ndarray, centre_y: float, radius: float) -> np.ndarray:
    """Mean mask width around each of PROFILE_DEPTHS, in head radii; NaN outside the visible rows."""
    widths = np.count_nonzero(mask, axis=1).astype(np.float64)
    visible = np.flatnonzero(widths > 0)
    first, last = visible[0], visible[-1]
    profile = np.full(len(PROFILE_DEPTHS), np.nan)
    for index, depth in enumerate(PROFILE_DEPTHS):
        start = int(round(centre_y + (depth - PROFILE_BAND / 2) * radius))
        stop = int(round(centre_y + (depth + PROFILE_BAND / 2) * radius)) + 1
        if start < first or stop > last + 1 or cut_by_frame[start:stop].any():
            continue
        profile[index] = widths[start:stop].mean() / radius
    return profile


# Similarities are computed in blocks of instances whose largest temporary
# (instances x references x depths, float64) holds about this many elements.
BLOCK_ELEMENTS = 4_000_000


class _Stacked(NamedTuple):
    """Signatures as arrays: square-rooted histograms (tones, n, bins), body flags, log widths (n, depths)."""

    colour: np.ndarray
    head: np.ndarray
    body: np.ndarray  # zeros where a signature has no body (those coefficients go unused)
    has_body: np.ndarray
    log_widths: np.ndarray  # NaN where the silhouette does not show the depth

    @classmethod
    def of(cls, signatures: list[Signature], tones: int | None = None) -> _Stacked:
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


def similarity_matrix(instances: list[Signature], references: list[Signature]) -> np.ndarray:
    """(instances, references) similarities, 0..1, computed in blocks of instances.

    Instances carry every tone hypothesis (the best is taken per pair); references only their first."""
    rows, columns = _Stacked.of(instances), _Stacked.of(references, tones=1)
    block = max(1, BLOCK_ELEMENTS // (len(references) * len(PROFILE_DEPTHS)))
    return np.concatenate([_similarity_block(rows.rows(start, start + block), columns)
                           for start in range(0, len(instances), block)])


def _similarity_block(instances: _Stacked, references: _Stacked) -> np.ndarray:
    """The weighted colour, layout and proportion similarities of every pair.

    Colour and layout are Bhattacharyya coefficients (dot products of square-rooted
    histograms) under the instance's best colour tone; without comparable
    proportions the weights of the other two are renormalised."""
    colour = instances.colour @ references.colour[0].T  # (tones, instances, references)
    tone = np.argmax(colour, axis=0)[None]  # the instance's best tone hypothesis per pair
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
    """1 - trimmed mean |log width ratio| / PROFILE_DISSIMILAR of every (instance, reference) pair.

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
