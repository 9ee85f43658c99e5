"""Synthetic occlusion: copies of a frame with something between camera and character.

Two kinds, both confined to one side of the frame (left, right, top or bottom)
so the claimed position is where the pixels change:

* ``edge_blur``: a band along the border blurred hard and slightly darkened,
  with a wavy, ramped inner edge, like an out-of-focus object right in front
  of the lens.
* ``overlay``: semi-transparent foreground elements (leaves, a railing, a
  person's silhouette) drawn so they reach partly across the subject.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

POSITIONS = ("left", "right", "top", "bottom")
OVERLAY_STYLES = ("leaves", "railing", "silhouette")
# How far across the subject an occluder reaches, as a fraction of its size.
SUBJECT_COVERAGE = (0.2, 0.45)
# An occluder never takes more than this share of the frame along its axis,
# so the other half of the frame is always untouched.
MAX_DEPTH_FRACTION = 0.5
MIN_DEPTH_FRACTION = 0.15
# Below this mean level (0..255) under an overlay, dark elements would not show.
DARK_SCENE_LEVEL = 90


@dataclass
class OcclusionVariant:
    image: np.ndarray
    kind: str  # "edge_blur" | "overlay"
    position: str  # the frame border the occluder comes from
    description: str  # caption tag from the config's occlusion_descriptions


def make_occlusion_variants(
    image_bgr: np.ndarray, cfg: dict, seed: int, subject_box=None
) -> list[OcclusionVariant]:
    """``cfg`` is the create_occlusion block; deterministic in (image, cfg, seed)."""
    kinds = list(cfg["occlusion_types"])
    positions = list(cfg["blur_positions"])
    descriptions = list(cfg.get("occlusion_descriptions") or [""])
    for kind in kinds:
        if kind not in ("edge_blur", "overlay"):
            raise ValueError(f"unknown occlusion type {kind!r}")
    for position in positions:
        if position not in POSITIONS:
            raise ValueError(f"unknown occlusion position {position!r} (expected one of {POSITIONS})")
    height, width = image_bgr.shape[:2]
    subject = _subject_box(subject_box, width, height)

    variants = []
    for index in range(int(cfg["variations_per_image"])):
        kind, position = _combination(index, kinds, positions)
        rng = np.random.default_rng([seed, index])
        if kind == "edge_blur":
            image = _edge_blur(image_bgr, position, subject, float(cfg["blur_radius"]), rng)
        else:
            image = _overlay(image_bgr, position, subject, float(cfg["overlay_opacity"]), rng)
        variants.append(OcclusionVariant(image, kind, position, descriptions[index % len(descriptions)]))
    return variants


def _combination(index: int, kinds: list[str], positions: list[str]) -> tuple[str, str]:
    """Step kind and position together so neighbouring variants differ in both.

    Within each block of lcm(K, P) variants the pairs are distinct; shifting the
    position by one per block walks through all K*P pairs in K*P variants.
    """
    block = math.lcm(len(kinds), len(positions))
    shift = index // block
    return kinds[index % len(kinds)], positions[(index + shift) % len(positions)]


def _subject_box(box, width: int, height: int) -> tuple[float, float, float, float]:
    if box is not None and len(box) == 4 and box[2] > 0 and box[3] > 0:
        x, y, w, h = (float(v) for v in box)
        x0, y0 = min(max(0.0, x), width - 1.0), min(max(0.0, y), height - 1.0)
        return x0, y0, max(1.0, min(width, x + w) - x0), max(1.0, min(height, y + h) - y0)
    # No subject known: assume the usual framing, a figure in the middle.
    return 0.3 * width, 0.15 * height, 0.4 * width, 0.8 * height


def _reach(position: str, subject, width: int, height: int, rng) -> int:
    """How far (px) from its border the occluder extends: partly across the subject."""
    x, y, w, h = subject
    coverage = rng.uniform(*SUBJECT_COVERAGE)
    extent = {
        "left": (x + coverage * w, width),
        "right": (width - (x + w) + coverage * w, width),
        "top": (y + coverage * h, height),
        "bottom": (height - (y + h) + coverage * h, height),
    }
    distance, dimension = extent[position]
    return max(1, int(np.clip(distance, MIN_DEPTH_FRACTION * dimension, MAX_DEPTH_FRACTION * dimension)))


def _distance_from_border(position: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel distance from the position's border, and the coordinate along that border."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return {
        "left": (xs, ys),
        "right": (width - 1 - xs, ys),
        "top": (ys, xs),
        "bottom": (height - 1 - ys, xs),
    }[position]


def _wave(along: np.ndarray, length: int, rng) -> np.ndarray:
    """A smooth random wobble in -1..1 along the border, so edges look like objects, not rulers."""
    wave = np.zeros_like(along)
    for cycles in (1.0, 2.3, 4.7):
        wave += np.sin(2 * np.pi * (cycles * along / length + rng.uniform())) / cycles
    return wave / 1.8


def _edge_blur(image: np.ndarray, position: str, subject, blur_radius: float, rng) -> np.ndarray:
    height, width = image.shape[:2]
    depth = _reach(position, subject, width, height, rng)
    distance, along = _distance_from_border(position, width, height)
    length = height if position in ("left", "right") else width
    # The inner edge wobbles inward only, so the band never passes `depth`.
    edge = depth * (1.0 - 0.12 * (1.0 + _wave(along, length, rng)) / 2)
    ramp = 0.4 * depth
    weight = np.clip((edge - distance) / ramp, 0.0, 1.0)
    weight = weight * weight * (3.0 - 2.0 * weight)  # smoothstep: no visible ramp ends
    # Out-of-focus foreground objects are usually in shadow relative to the lit subject.
    shade = rng.uniform(0.75, 0.95)
    # blur_radius is the Gaussian sigma: a strong blur, like a lens focused far behind the object.
    sigma = max(1.0, blur_radius)
    blurred = cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT).astype(np.float32) * shade
    return _blend(image, blurred, weight)


def _overlay(image: np.ndarray, position: str, subject, opacity: float, rng) -> np.ndarray:
    height, width = image.shape[:2]
    depth = _reach(position, subject, width, height, rng)
    # A figure hanging from the top edge makes no sense; it comes from the sides or below.
    styles = [s for s in OVERLAY_STYLES if not (s == "silhouette" and position == "top")]
    style = styles[rng.integers(len(styles))]
    # Draw in a canvas whose column 0 is the occluder's border, then turn it into place.
    # (8-bit, because OpenCV anti-aliases shapes only on 8-bit images.)
    along_length = height if position in ("left", "right") else width
    canvas = np.zeros((along_length, depth), np.uint8)
    if style == "leaves":
        colour = _draw_leaves(canvas, rng)
    elif style == "railing":
        colour = _draw_railing(canvas, rng)
    else:
        colour = _draw_silhouette(canvas, rng, stands_along_border=position in ("left", "right"))
    # Slightly out of focus, like anything that close to the lens.
    coverage = cv2.GaussianBlur(canvas.astype(np.float32) / 255.0, (0, 0), max(1.0, depth / 120))
    layer = np.zeros((height, width), np.float32)
    if position == "left":
        layer[:, :depth] = coverage
    elif position == "right":
        layer[:, width - depth :] = coverage[:, ::-1]
    elif position == "top":
        layer[:depth, :] = coverage.T
    else:
        layer[height - depth :, :] = coverage.T[::-1, :]
    layer = np.clip(layer, 0.0, 1.0)
    colour = np.asarray(colour, np.float32)
    covered = layer > 0.5
    if covered.any() and image[covered].mean() < DARK_SCENE_LEVEL:
        # Dark shapes vanish at low opacity over a dark scene: light them from behind.
        colour = 255.0 - 0.35 * (255.0 - colour)
    return _blend(image, np.broadcast_to(colour, image.shape), opacity * layer)


def _draw_leaves(canvas: np.ndarray, rng) -> tuple[float, float, float]:
    """A spray of leaves on twigs growing in from the border."""
    length, depth = canvas.shape
    for _ in range(rng.integers(2, 4)):
        start_along = rng.uniform(0.1, 0.9) * length
        tip = (rng.uniform(0.85, 1.0) * depth, start_along + rng.uniform(-0.2, 0.2) * length)
        cv2.line(canvas, (0, int(start_along)), (int(tip[0]), int(tip[1])), 255, max(1, depth // 60), cv2.LINE_AA)
        for _ in range(rng.integers(6, 12)):
            t = rng.uniform(0.2, 1.0)
            # Sized by the frame, not the band, so a shallow band still gets real leaves.
            leaf = float(np.clip(rng.uniform(0.05, 0.08) * length, 4.0, 0.3 * depth))
            centre_x = min(t * tip[0], depth - 1.2 * leaf)
            centre_y = start_along + t * (tip[1] - start_along)
            cv2.ellipse(
                canvas, (int(centre_x), int(centre_y)), (int(leaf), int(leaf * 0.45)),
                rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA,
            )
    return (30.0, rng.uniform(70, 100), 40.0)


def _draw_railing(canvas: np.ndarray, rng) -> tuple[float, float, float]:
    """Rails parallel to the border joined by evenly spaced posts."""
    length, depth = canvas.shape
    rail_width = max(3, depth // 14)
    # The inner rail sits at the occluder's full reach, where it crosses the subject.
    rails = [rng.uniform(0.35, 0.6) * depth, rng.uniform(0.88, 0.98) * depth]
    for rail in rails:
        cv2.rectangle(canvas, (int(rail) - rail_width, 0), (int(rail), length), 255, -1, cv2.LINE_AA)
    spacing = rng.uniform(0.12, 0.2) * length
    post_width = max(2, int(spacing * 0.15))
    for start in np.arange(rng.uniform(0, spacing), length, spacing):
        cv2.rectangle(canvas, (0, int(start)), (int(rails[-1]), int(start) + post_width), 255, -1, cv2.LINE_AA)
    return (40.0, 55.0, 75.0)


def _draw_silhouette(canvas: np.ndarray, rng, stands_along_border: bool) -> tuple[float, float, float]:
    """Head and shoulders of a bystander close to the camera, seen from behind."""
    length, depth = canvas.shape
    if stands_along_border:
        # Beside a side border: the figure rises from the frame's bottom (the canvas' last row).
        head = min(0.3 * depth, 0.12 * length)
        shoulder_top = length - rng.uniform(0.25, 0.35) * length
        cv2.ellipse(
            canvas, (int(0.45 * depth), length), (int(0.5 * depth), int(length - shoulder_top)),
            0, 0, 360, 255, -1, cv2.LINE_AA,
        )
        cv2.circle(canvas, (int(0.5 * depth), int(shoulder_top - 0.7 * head)), int(head), 255, -1, cv2.LINE_AA)
    else:
        # From the bottom border: the figure rises away from it (along the canvas' columns).
        centre = rng.uniform(0.3, 0.7) * length
        shoulder = rng.uniform(0.15, 0.25) * length
        cv2.ellipse(canvas, (0, int(centre)), (int(0.55 * depth), int(shoulder)), 0, -90, 90, 255, -1, cv2.LINE_AA)
        head = min(0.22 * depth, 0.4 * shoulder)
        cv2.circle(canvas, (int(0.55 * depth + 0.7 * head), int(centre)), int(head), 255, -1, cv2.LINE_AA)
    return (25.0, 22.0, 20.0)


def _blend(image: np.ndarray, occluder: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Mix ``occluder`` in by ``weight``; pixels with zero weight stay byte-identical."""
    touched = weight > 0
    result = image.copy()
    w = weight[touched][:, None]
    mixed = image[touched].astype(np.float32) * (1.0 - w) + occluder[touched] * w
    result[touched] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return result
