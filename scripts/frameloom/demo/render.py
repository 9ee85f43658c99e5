"""Scene layout and rendering: a FrameSpec to a frame and its ground truth."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict

import cv2
import numpy as np

from .degrade import apply_blur, apply_darkness, apply_downscale, apply_noise
from .figures import draw_character, random_pose
from .paint import Painter, make_light
from .scenery import cluttered_backdrop, occluder_layer, plain_backdrop
from .spec import (
    CHARACTERS,
    FACE_VISIBLE_SHARE,
    HIDDEN_VISIBLE_SHARE,
    STREAM_BACKDROP,
    STREAM_CAST,
    STREAM_LAYOUT,
    STREAM_LIGHT,
    STREAM_OCCLUDER,
    STREAM_POSE,
    CharacterDesign,
    FrameSpec,
)

# ----------------------------------------------------------------------------
# Scene layout and rendering.


def _shot_framing(shot: str, design: CharacterDesign, rng: np.random.Generator, width: int, height: int,
                  n_characters: int) -> tuple[float, float]:
    """Pixels per figure height and ground line for the main character of a shot."""
    top = 1.0 + design.hair_height
    if shot == "full-body":
        scale = height * rng.uniform(0.72, 0.82) / top
        ground_y = height * (1.0 - rng.uniform(0.05, 0.09))
    elif shot == "far":
        scale = height * rng.uniform(0.15, 0.22) / top
        ground_y = height * rng.uniform(0.62, 0.82)
    else:
        if shot == "medium":  # crown to mid-thigh
            scale = height * rng.uniform(0.88, 0.96) / (top - 0.5 * design.leg_length)
        else:  # close-up: the head fills about two thirds of the frame height
            scale = height * rng.uniform(0.58, 0.68) / (2.0 * design.head_radius)
        ground_y = None
    # Everyone has to fit side by side.
    scale = min(scale, 0.92 * width / (n_characters * 2.0 * design.half_width))
    if ground_y is None:
        ground_y = height * rng.uniform(0.03, 0.07) + top * scale
    return scale, ground_y


def _layout(spec: FrameSpec, designs: Sequence[CharacterDesign], rng: np.random.Generator):
    """(index, foot_x, ground_y, scale) per character, in painting order (back to front, main last)."""
    width, height, count = spec.width, spec.height, spec.n_characters
    main_scale, main_ground = _shot_framing(spec.shot, designs[0], rng, width, height, count)
    if count == 1:
        centres = [rng.uniform(0.25, 0.75) if spec.shot == "far" else rng.uniform(0.42, 0.58)]
        if spec.occluder == "left":
            centres = [rng.uniform(0.3, 0.4)]
        elif spec.occluder == "right":
            centres = [rng.uniform(0.6, 0.7)]
        main_slot = 0
    else:
        centres = [(k + 0.5) / count + rng.uniform(-0.03, 0.03) for k in range(count)]
        if spec.occluder == "left":
            main_slot = 0
        elif spec.occluder == "right":
            main_slot = count - 1
        else:
            main_slot = int(rng.integers(count))
    slots = [main_slot] + [k for k in range(count) if k != main_slot]
    placements = []
    for index, design in enumerate(designs):
        if index == 0:
            scale, ground_y = main_scale, main_ground
        else:
            shrink = rng.uniform(0.8, 0.95)
            scale = main_scale * shrink
            if spec.shot in ("full-body", "far"):
                ground_y = main_ground - (1.0 - shrink) * main_scale * 0.6
            else:  # keep the head in frame: same top margin as the main character
                main_top = main_ground - (1.0 + designs[0].hair_height) * main_scale
                ground_y = main_top + (1.0 + design.hair_height) * scale
        half = design.half_width * scale
        foot_x = float(np.clip(centres[slots[index]] * width, min(half, width / 2), max(width - half, width / 2)))
        placements.append((index, foot_x, ground_y, scale))
    # Further characters (higher ground line) are painted first; the main one always last.
    return sorted(placements, key=lambda p: (p[0] == 0, p[2]))


def _default_identities(spec: FrameSpec) -> tuple[int, ...]:
    rng = np.random.default_rng([spec.seed, STREAM_CAST])
    return tuple(int(i) for i in rng.permutation(len(CHARACTERS))[: spec.n_characters])


def _box(mask: np.ndarray) -> list[int] | None:
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    if not rows.any():
        return None
    y0, y1 = np.flatnonzero(rows)[[0, -1]]
    x0, x1 = np.flatnonzero(cols)[[0, -1]]
    return [int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)]


def _shrink_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Mask at the output size: pixels at least half covered, or for a figure thinner than
    that, its best-covered pixels (it is still visible, just tiny)."""
    if (mask.shape[1], mask.shape[0]) == size:
        return mask
    coverage = cv2.resize(mask.astype(np.uint8) * 255, size, interpolation=cv2.INTER_AREA)
    half_covered = coverage >= 128
    if half_covered.any():
        return half_covered
    return coverage >= max(1, int(coverage.max()) // 2)


def render_frame(spec: FrameSpec) -> tuple[np.ndarray, dict]:
    """uint8 BGR image (H, W, 3) and its ground truth.

    Ground truth, at the output resolution, per visible character in spec order
    (the main character first, so ``target_index`` is 0; characters hidden
    below HIDDEN_VISIBLE_SHARE are left out):

    - ``instance_count``, ``identities``
    - ``boxes``: [x, y, w, h] of the visible part
    - ``face_boxes``: [x, y, w, h] of the visible part of the head, None when
      less than FACE_VISIBLE_SHARE of it shows
    - ``masks``: (H, W) bool arrays of the visible part (the only entry that is
      not JSON-serialisable)
    - ``target_index``: index of the main character (None if it were hidden)
    - ``occluded_fraction``: share of the main character's in-frame silhouette
      hidden by the occluder
    - ``image_size`` [w, h], the spec's ``shot``, ``background``, ``occluder``,
      ``lighting``, ``blur_sigma``, ``noise_std``, ``darkness``, ``downscale``,
      and ``spec`` (the spec as a dict).
    """
    identities = spec.identities if spec.identities is not None else _default_identities(spec)
    designs = [CHARACTERS[i] for i in identities]
    width, height = spec.width, spec.height
    layout_rng = np.random.default_rng([spec.seed, STREAM_LAYOUT])
    placements = _layout(spec, designs, layout_rng)

    main_scale, main_ground = next((p[3], p[2]) for p in placements if p[0] == 0)
    horizon = float(np.clip(main_ground - 0.3 * main_scale, 0.35 * height, 0.8 * height))
    backdrop_rng = np.random.default_rng([spec.seed, STREAM_BACKDROP])
    if spec.background == "plain":
        image = plain_backdrop(backdrop_rng, width, height, horizon)
    else:
        image = cluttered_backdrop(backdrop_rng, width, height, horizon)
    image = np.ascontiguousarray(image, dtype=np.float32)

    light = make_light(np.random.default_rng([spec.seed, STREAM_LIGHT]), spec.lighting)
    painter = Painter(image, light, len(designs))
    pose_rng = np.random.default_rng([spec.seed, STREAM_POSE])
    poses = [random_pose(pose_rng) for _ in designs]
    for index, foot_x, ground_y, scale in placements:
        draw_character(painter, index, designs[index], poses[index], foot_x, ground_y, scale)

    owner = painter.ownership([index for index, *_ in placements])
    hidden = np.zeros((height, width), bool)
    main_full = painter.full_masks[0]
    if spec.occluder is not None and main_full.any():
        occluder_rng = np.random.default_rng([spec.seed, STREAM_OCCLUDER])
        head_rows = np.flatnonzero(painter.head_masks[0].any(axis=1))
        chin_y = float(head_rows[-1]) + 2.0 if head_rows.size else 0.0
        colour, alpha, (y0, y1, x0, x1) = occluder_layer(spec.occluder, occluder_rng, main_full, chin_y,
                                                          width, height, light)
        region = image[y0:y1, x0:x1]
        region[...] = cv2.add(cv2.multiply(region, cv2.merge([1.0 - alpha] * 3)), colour)
        hidden[y0:y1, x0:x1] = alpha > 0.5

    frame = cv2.convertScaleAbs(image, alpha=255.0)  # shading is never negative: this rounds and saturates
    frame = apply_blur(frame, spec.blur_sigma)
    frame = apply_darkness(frame, spec.darkness)
    frame = apply_downscale(frame, spec.downscale)
    frame = apply_noise(frame, spec.noise_std, spec.seed)

    output_size = (frame.shape[1], frame.shape[0])
    kept_identities, boxes, face_boxes, masks = [], [], [], []
    target_index = None
    for index, identity in enumerate(identities):
        full = painter.full_masks[index]
        visible = (owner == index) & ~hidden
        visible_area = int(visible.sum())
        if visible_area == 0 or visible_area < HIDDEN_VISIBLE_SHARE * full.sum():
            continue
        small = _shrink_mask(visible, output_size)
        if not small.any():
            continue
        head = painter.head_masks[index] & visible
        design = designs[index]
        scale = next(p[3] for p in placements if p[0] == index)
        head_disc_area = math.pi * (design.head_radius * scale) ** 2 * 0.98
        face_box = _box(_shrink_mask(head, output_size)) if head.sum() >= FACE_VISIBLE_SHARE * head_disc_area else None
        if index == 0:
            target_index = len(kept_identities)
        kept_identities.append(int(identity))
        boxes.append(_box(small))
        face_boxes.append(face_box)
        masks.append(small)

    main_area = int(main_full.sum())
    occluded_fraction = float((main_full & hidden).sum() / main_area) if main_area else 0.0
    spec_dict = asdict(spec)
    spec_dict["identities"] = list(spec.identities) if spec.identities is not None else None
    truth = {
        "instance_count": len(kept_identities),
        "identities": kept_identities,
        "boxes": boxes,
        "face_boxes": face_boxes,
        "masks": masks,
        "target_index": target_index,
        "shot": spec.shot,
        "background": spec.background,
        "occluder": spec.occluder,
        "lighting": spec.lighting,
        "blur_sigma": float(spec.blur_sigma),
        "noise_std": float(spec.noise_std),
        "darkness": float(spec.darkness),
        "downscale": float(spec.downscale),
        "occluded_fraction": round(occluded_fraction, 4),
        "image_size": [output_size[0], output_size[1]],
        "spec": spec_dict,
    }
    return frame, truth


def render_reference(identity: int, size: int = 256, seed: int = 0) -> np.ndarray:
    """A clean medium view of one identity on a studio backdrop (a 'reference image' of that character)."""
    image, _ = render_frame(FrameSpec(seed=seed, width=size, height=size, shot="medium", identities=(identity,)))
    return image
