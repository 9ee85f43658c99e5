"""Character segmentation: find every character instance and cut out the target.

The classical backend is GrabCut seeded from the frame analysis (subject box,
face boxes, instance boxes). Each subject is cut coarse-to-fine on downscaled
copies for speed; the target's alpha is then refined at full resolution with a
colour guided filter restricted to a thin band around the boundary, so the
edge follows the real image edge and stays anti-aliased without blurring the
interior.

A neural backend (SAM2, in ``sam2_backend``) replaces this behind the same
interface: an object with a ``name`` and ``segment(image_bgr, hint) ->
Segmentation``; it reuses ``pick_target`` from here and ``soft_alpha`` (frameloom.matte).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from .matte import soft_alpha

# GrabCut's max-flow gets slow fast with image size, so each subject is cut
# coarse-to-fine: a full GrabCut on a small copy of its region, then a second
# one on the working copy (the frame at WORKING_LONGEST_SIDE) where only a thin
# band around the coarse edge is open.
COARSE_LONGEST_SIDE = 160
WORKING_LONGEST_SIDE = 384
FINE_ITERATIONS = 1
# Half-width of the open band of the fine pass, in coarse pixels.
FINE_BAND = 1.5
# Extra room around a hinted box: detectors' boxes are tight, GrabCut treats
# everything outside its box as certain background.
BOX_PADDING = 0.08
# Background colours are learnt from this much context around each box; a
# local model separates better than a whole-frame one on busy backgrounds.
CONTEXT_PADDING = 0.25
# Below this much certain background (share of the box), the backdrop's
# colours are sampled from the frame border instead (see _label_background_colours).
LOW_CONTEXT_SHARE = 0.25
BORDER_SAMPLE_SHARE = 0.05
COLOUR_BINS = 16
MAX_HINTED_INSTANCES = 6
# A component covering more of the frame than this is background, not a character.
BACKGROUND_AREA_FRACTION = 0.8
# Parts closer than this (working px) belong to the same character.
PART_MERGE_GAP = 2
FACE_COVERAGE_TO_PICK = 0.3
# Boundary colour difference (Lab units) at which a cut counts as fully confident.
CONFIDENT_BOUNDARY_CONTRAST = 30.0
GRABCUT_RNG_SEED = 12345
Box = tuple[int, int, int, int]


@dataclass
class Segmentation:
    target_alpha: np.ndarray  # HxW float32 in 0..1, soft edge, the target character
    instance_masks: list[np.ndarray]  # HxW bool, every character instance (target included)
    target_index: int | None  # index into instance_masks; None when nothing usable was found
    target_score: float  # 0..1 how confident the pick is
    backend: str
    notes: str  # one line: why this target, or why none

    @classmethod
    def nothing_found(cls, height: int, width: int, backend: str, notes: str) -> Segmentation:
        return cls(np.zeros((height, width), np.float32), [], None, 0.0, backend, notes)


class Segmenter(Protocol):
    name: str

    def segment(self, image_bgr: np.ndarray, hint: dict | None = None) -> Segmentation: ...


@dataclass
class _Instance:
    mask: np.ndarray  # HxW bool
    soft: np.ndarray  # HxW float32: the working-resolution cut, upsampled linearly
    pixel_size: float  # full-resolution pixels per working pixel (how coarse the edge is)


class GrabCutSegmenter:
    name = "grabcut"

    def __init__(self, min_instance_size: int = 64, iterations: int = 4):
        self.min_instance_size = min_instance_size
        self.iterations = iterations

    def segment(self, image_bgr: np.ndarray, hint: dict | None = None) -> Segmentation:
        hint = hint or {}
        height, width = image_bgr.shape[:2]
        faces = faces_from_hint(hint, width, height)
        seed_boxes, seed_source = _seed_boxes(hint, faces, width, height)

        cuts = [(cut, box) for box in seed_boxes if (cut := self._cut(image_bgr, box, faces)) is not None]
        if len(seed_boxes) > 1:
            # One box per hinted instance: its cut is that character, even in pieces.
            _resolve_overlaps(cuts)
            instances = [cut for cut, _ in cuts]
        else:
            instances = [part for cut, _ in cuts for part in _split_parts(cut)]

        kept = [
            instance
            for instance in instances
            if _longest_side(instance.mask) >= self.min_instance_size
            and instance.mask.mean() <= BACKGROUND_AREA_FRACTION
        ]
        if not kept:
            return Segmentation.nothing_found(height, width, self.name,
                                              f"no character above {self.min_instance_size} px found ({seed_source})")

        masks = [instance.mask for instance in kept]
        target_index, target_score, why = pick_target(image_bgr, masks, hint)
        target = kept[target_index]
        return Segmentation(
            target_alpha=soft_alpha(image_bgr, target.soft, target.pixel_size),
            instance_masks=masks,
            target_index=target_index,
            target_score=target_score,
            backend=self.name,
            notes=f"{why}; {len(kept)} instance(s) from {seed_source}",
        )

    def _cut(self, image: np.ndarray, box: Box, faces: list[tuple[Box, float]]) -> _Instance | None:
        """Coarse-to-fine GrabCut of the subject in ``box``; None when nothing was cut."""
        height, width = image.shape[:2]
        box = _pad_box(box, BOX_PADDING, width, height)
        cx, cy, cw, ch = _pad_box(box, CONTEXT_PADDING, width, height)
        region = image[cy : cy + ch, cx : cx + cw]
        local_box = (box[0] - cx, box[1] - cy, box[2], box[3])

        # The coarse pass sees just this region, small enough for a fast full
        # GrabCut; the fine pass works at the frame's working scale (or finer
        # for a small subject, whose coarse copy may already be full size).
        coarse_scale = min(1.0, COARSE_LONGEST_SIDE / max(cw, ch))
        fine_scale = max(coarse_scale, min(1.0, WORKING_LONGEST_SIDE / max(height, width)))
        coarse = _resize(region, coarse_scale, cv2.INTER_AREA)
        coarse_h, coarse_w = coarse.shape[:2]
        labels = np.full((coarse_h, coarse_w), cv2.GC_BGD, np.uint8)
        x, y, w, h = _scale_box(local_box, coarse_scale, coarse_w, coarse_h)
        labels[y : y + h, x : x + w] = cv2.GC_PR_FGD
        for (fx, fy, fw, fh), _ in faces:
            # The middle of a face inside this box is certain foreground.
            if box[0] <= fx + fw / 2 < box[0] + box[2] and box[1] <= fy + fh / 2 < box[1] + box[3]:
                inner = (fx - cx + fw // 4, fy - cy + fh // 4, fw // 2, fh // 2)
                ix, iy, iw, ih = _scale_box(inner, coarse_scale, coarse_w, coarse_h)
                labels[iy : iy + ih, ix : ix + iw] = cv2.GC_FGD
        if (labels == cv2.GC_BGD).sum() < LOW_CONTEXT_SHARE * w * h:
            at_border = {"left": cx == 0, "right": cx + cw == width, "top": cy == 0}
            _label_background_colours(coarse, labels, at_border)
        mask = _grabcut(coarse, labels, self.iterations)
        if not mask.any():
            return None
        scale = coarse_scale

        if fine_scale > 1.2 * coarse_scale:
            fine = _resize(region, fine_scale, cv2.INTER_AREA)
            fine_size = (fine.shape[1], fine.shape[0])
            coarse_cut = cv2.resize(mask.astype(np.uint8), fine_size, interpolation=cv2.INTER_NEAREST)
            band = max(1, round(FINE_BAND * fine_scale / coarse_scale))
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1,) * 2)
            labels = np.full(coarse_cut.shape, cv2.GC_BGD, np.uint8)
            labels[cv2.dilate(coarse_cut, kernel) > 0] = cv2.GC_PR_BGD
            labels[coarse_cut > 0] = cv2.GC_PR_FGD
            labels[cv2.erode(coarse_cut, kernel) > 0] = cv2.GC_FGD
            refined = _grabcut(fine, labels, FINE_ITERATIONS)
            if refined.any():
                mask, scale = refined, fine_scale

        soft = np.zeros((height, width), np.float32)
        soft[cy : cy + ch, cx : cx + cw] = cv2.resize(
            mask.astype(np.float32), (cw, ch), interpolation=cv2.INTER_LINEAR
        )
        return _Instance(soft >= 0.5, soft, 1.0 / scale)


def _label_background_colours(image: np.ndarray, labels: np.ndarray, at_border: dict[str, bool]) -> None:
    """Start pixels coloured like the background as probable background.

    When a box fills (nearly) the whole frame there is too little certain
    background for GrabCut to learn from, and its foreground model would be
    mostly backdrop. The backdrop is sampled from the certain background and
    the frame's top, left and right borders (characters leave frames at the
    bottom); colours more common there than inside the box start as background.
    """
    height, width = labels.shape
    ring_x = max(1, round(BORDER_SAMPLE_SHARE * width))
    ring_y = max(1, round(BORDER_SAMPLE_SHARE * height))
    samples = labels == cv2.GC_BGD
    if at_border["left"]:
        samples[:, :ring_x] = True
    if at_border["right"]:
        samples[:, -ring_x:] = True
    if at_border["top"]:
        samples[:ring_y, :] = True
    unknown = (labels == cv2.GC_PR_FGD) & ~samples
    quantised = (image // (256 // COLOUR_BINS)).astype(np.int32)
    colour = (quantised[..., 0] * COLOUR_BINS + quantised[..., 1]) * COLOUR_BINS + quantised[..., 2]
    share_outside = _colour_histogram(colour[samples])
    share_inside = _colour_histogram(colour[unknown])
    looks_like_background = share_outside[colour] > 0.5 * share_inside[colour]
    labels[(labels == cv2.GC_PR_FGD) & looks_like_background] = cv2.GC_PR_BGD


def _colour_histogram(colour_indices: np.ndarray) -> np.ndarray:
    """Share of samples per colour bin, spread to neighbouring bins so gradients match."""
    counts = np.bincount(colour_indices, minlength=COLOUR_BINS**3).astype(np.float32)
    cube = counts.reshape((COLOUR_BINS,) * 3)
    for axis in range(3):
        padded = np.pad(cube, [(1, 1) if a == axis else (0, 0) for a in range(3)])
        cube = sum(np.take(padded, range(offset, offset + COLOUR_BINS), axis=axis) for offset in range(3))
    return cube.ravel() / max(1.0, float(cube.sum()))


def _grabcut(image: np.ndarray, labels: np.ndarray, iterations: int) -> np.ndarray:
    """Run GrabCut from ``labels``; the cleaned foreground as a bool mask."""
    background = (labels == cv2.GC_BGD) | (labels == cv2.GC_PR_BGD)
    if background.all() or not background.any():
        # GrabCut needs samples of both colour models.
        return ~background
    background_model = np.zeros((1, 65), np.float64)
    foreground_model = np.zeros((1, 65), np.float64)
    # GrabCut seeds its colour models with k-means on OpenCV's global RNG.
    cv2.setRNGSeed(GRABCUT_RNG_SEED)
    cv2.grabCut(
        np.ascontiguousarray(image), labels, None, background_model, foreground_model,
        iterations, cv2.GC_INIT_WITH_MASK,
    )
    return _clean_mask((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD))


def _resize(image: np.ndarray, scale: float, interpolation: int) -> np.ndarray:
    if scale == 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=interpolation)


def mask_bounding_box(mask: np.ndarray) -> Box | None:
    """x, y, w, h of a mask's true pixels; None for an empty mask."""
    if not mask.any():
        return None
    return cv2.boundingRect(mask.astype(np.uint8))


def valid_box(value, width: int, height: int) -> Box | None:
    """Clip an [x, y, w, h] hint to the frame; None when malformed or empty."""
    if value is None or len(value) != 4:
        return None
    x, y, w, h = (int(round(float(v))) for v in value)
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1 - x0, y1 - y0


def faces_from_hint(hint: dict, width: int, height: int) -> list[tuple[Box, float]]:
    """The analysis' face boxes clipped to the frame, with their detection scores."""
    faces = []
    for face in hint.get("faces") or []:
        box = valid_box(face.get("box"), width, height)
        if box is not None:
            faces.append((box, float(face.get("score", 1.0) or 0.0)))
    return faces


def _seed_boxes(hint: dict, faces: list[tuple[Box, float]], width: int, height: int) -> tuple[list[Box], str]:
    """Boxes to run GrabCut on, and a few words on where they came from."""
    frame_area = width * height
    instance_boxes = [
        box
        for box in (valid_box(inst.get("box"), width, height) for inst in hint.get("instances") or [])
        if box is not None and box[2] * box[3] <= BACKGROUND_AREA_FRACTION * frame_area
    ]
    if len(instance_boxes) > 1:
        instance_boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
        return instance_boxes[:MAX_HINTED_INSTANCES], f"{len(instance_boxes)} hinted instance boxes"
    subject = valid_box(hint.get("foreground_box"), width, height)
    if subject is not None:
        return [subject], "the foreground box"
    if instance_boxes:
        return instance_boxes, "the hinted instance box"
    if faces:
        # A character's body hangs below its face: widen sideways, extend down.
        (fx, fy, fw, fh), _ = max(faces, key=lambda f: f[0][2] * f[0][3])
        body = valid_box((fx - fw, fy - 0.4 * fh, 3 * fw, 6 * fh), width, height)
        return [body], "a body box below the largest face"
    centre = (round(0.15 * width), round(0.08 * height), round(0.7 * width), round(0.9 * height))
    return [centre], "the centre box (no hint)"


def _scale_box(box: Box, scale: float, width: int, height: int) -> Box:
    x0 = min(width - 1, int(box[0] * scale))
    y0 = min(height - 1, int(box[1] * scale))
    x1 = max(x0 + 1, min(width, math.ceil((box[0] + box[2]) * scale)))
    y1 = max(y0 + 1, min(height, math.ceil((box[1] + box[3]) * scale)))
    return x0, y0, x1 - x0, y1 - y0


def _pad_box(box: Box, fraction: float, width: int, height: int) -> Box:
    x, y, w, h = box
    pad_x, pad_y = round(fraction * w) + 2, round(fraction * h) + 2
    x0, y0 = max(0, x - pad_x), max(0, y - pad_y)
    x1, y1 = min(width, x + w + pad_x), min(height, y + h + pad_y)
    return x0, y0, x1 - x0, y1 - y0


def _clean_mask(mask: np.ndarray) -> np.ndarray:
    """Drop speckles and fill small enclosed holes (GrabCut leaves both on shading)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask
    largest = stats[1:, cv2.CC_STAT_AREA].max()
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= max(9, 0.02 * largest)
    mask = keep[labels]
    holes = ~mask
    count, labels, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=4)
    height, width = mask.shape
    for index in range(1, count):
        x, y, w, h, area = stats[index]
        touches_border = x == 0 or y == 0 or x + w == width or y + h == height
        if not touches_border and area < 0.01 * largest:
            mask[labels == index] = True
    return mask


def _split_parts(instance: _Instance) -> list[_Instance]:
    """Connected components, with parts separated by a hairline gap kept together."""
    gap = max(1, round(PART_MERGE_GAP * instance.pixel_size))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * gap + 1,) * 2)
    bridged = cv2.dilate(instance.mask.astype(np.uint8), kernel)
    count, labels = cv2.connectedComponents(bridged, connectivity=8)
    if count <= 2:
        return [instance]
    parts = []
    for index in range(1, count):
        part = labels == index
        parts.append(_Instance(instance.mask & part, instance.soft * part, instance.pixel_size))
    return parts


def _resolve_overlaps(cuts: list[tuple[_Instance, Box]]) -> None:
    """A pixel claimed by several instance boxes goes to the box whose centre is nearest."""
    if len(cuts) < 2:
        return
    claims = np.sum([instance.mask for instance, _ in cuts], axis=0)
    ys, xs = np.nonzero(claims > 1)
    if ys.size == 0:
        return
    distances = np.stack([
        np.where(instance.mask[ys, xs], np.hypot(xs - (b[0] + b[2] / 2), ys - (b[1] + b[3] / 2)), np.inf)
        for instance, b in cuts
    ])
    nearest = distances.argmin(axis=0)
    for index, (instance, _) in enumerate(cuts):
        lost = nearest != index
        instance.mask[ys[lost], xs[lost]] = False
        instance.soft[ys[lost], xs[lost]] = np.minimum(instance.soft[ys[lost], xs[lost]], 0.49)


def _longest_side(mask: np.ndarray) -> int:
    if not mask.any():
        return 0
    _, _, w, h = cv2.boundingRect(mask.astype(np.uint8))
    return max(w, h)


def pick_target(
    image_bgr: np.ndarray, instance_masks: list[np.ndarray], hint: dict | None
) -> tuple[int | None, float, str]:
    """Which instance is the frame's character: (index, score 0..1, one-line reason).

    The instance holding the largest hinted face wins; otherwise the largest
    central one, unless another lies in the analysis' foreground box. The score
    is the pick's confidence discounted by how weakly the cut's boundary
    separates from its surroundings. None when there are no instances.
    """
    if not instance_masks:
        return None, 0.0, "no instances to pick from"
    hint = hint or {}
    height, width = instance_masks[0].shape
    faces = faces_from_hint(hint, width, height)
    index, confidence, reason = _pick_instance(instance_masks, faces, hint)
    contrast = _boundary_contrast(image_bgr, instance_masks[index])
    score = confidence * min(1.0, contrast / CONFIDENT_BOUNDARY_CONTRAST)
    return index, round(float(score), 3), f"{reason}; boundary contrast {contrast:.0f}"


def _pick_instance(masks: list[np.ndarray], faces, hint: dict) -> tuple[int, float, str]:
    """(index, confidence 0..1, reason): largest face first, then the analysis' subject, then salience."""
    height, width = masks[0].shape
    if faces:
        (x, y, w, h), face_score = max(faces, key=lambda face: face[0][2] * face[0][3])
        coverage = [float(mask[y : y + h, x : x + w].mean()) for mask in masks]
        best = int(np.argmax(coverage))
        if coverage[best] >= FACE_COVERAGE_TO_PICK:
            # A character rarely fills more than ~60% of its face box (hair, round head).
            confidence = min(1.0, coverage[best] / 0.6) * min(1.0, 0.5 + face_score)
            return best, confidence, f"instance {best} holds the largest face ({coverage[best]:.0%} of its box)"

    half_diagonal = math.hypot(width, height) / 2
    salience = []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        offset = math.hypot(xs.mean() - width / 2, ys.mean() - height / 2) / half_diagonal
        salience.append(math.sqrt(mask.mean()) * (1.0 - 0.7 * offset))
    if len(masks) == 1:
        return 0, 1.0, "the only instance"
    best = int(np.argmax(salience))
    reason = f"instance {best} is the largest central one"
    subject = valid_box(hint.get("foreground_box"), width, height)
    if subject is not None:
        x, y, w, h = subject
        inside = [mask[y : y + h, x : x + w].sum() / mask.sum() for mask in masks]
        chosen = int(np.argmax([share * value for share, value in zip(inside, salience)]))
        if inside[chosen] >= 0.5:
            best, reason = chosen, f"instance {chosen} lies in the analysis' foreground box"
    runner_up = max(value for index, value in enumerate(salience) if index != best)
    confidence = salience[best] / (salience[best] + runner_up) if salience[best] > 0 else 0.0
    return best, confidence, reason


def _boundary_contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """Median Lab distance between the mean colours just inside and just outside the cut."""
    scale = min(1.0, WORKING_LONGEST_SIDE / max(mask.shape))
    lab = cv2.cvtColor(_resize(image, scale, cv2.INTER_AREA), cv2.COLOR_BGR2LAB).astype(np.float32)
    inside = _resize(mask.astype(np.float32), scale, cv2.INTER_AREA)
    outside = 1.0 - inside
    kernel = (9, 9)
    weight_in = cv2.blur(inside, kernel)
    weight_out = cv2.blur(outside, kernel)
    boundary = (weight_in > 0.2) & (weight_out > 0.2)
    if not boundary.any():
        return 0.0
    colour_in = cv2.blur(lab * inside[..., None], kernel)[boundary] / weight_in[boundary, None]
    colour_out = cv2.blur(lab * outside[..., None], kernel)[boundary] / weight_out[boundary, None]
    return float(np.median(np.linalg.norm(colour_in - colour_out, axis=1)))
