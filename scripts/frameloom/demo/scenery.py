"""Backdrops and occluders: what stands behind and in front of the characters."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np

from .paint import GLOSSY, Light, fixed, shade_surface
from .spec import hex_bgr

# ----------------------------------------------------------------------------
# Backdrops.

_STUDIO_BACKDROPS = (  # (wall top, wall bottom, floor) RGB
    ("#8FA9C9", "#DCE6F2", "#C9D3E0"),
    ("#B9A893", "#EEE5DA", "#D9CEC0"),
    ("#93BFAE", "#E2F0EA", "#C8DDD4"),
    ("#C9A2C2", "#F2E4EF", "#DCC9D8"),
    ("#A3A8B8", "#E4E6EC", "#CDD0D8"),
    ("#D2B48C", "#F6EBDD", "#E3D4BF"),
)


def plain_backdrop(rng: np.random.Generator, width: int, height: int, horizon: float) -> np.ndarray:
    """Studio cove: a soft vertical gradient, a blurred wall/floor seam and a vignette."""
    top, bottom, floor = (hex_bgr(c) for c in _STUDIO_BACKDROPS[int(rng.integers(len(_STUDIO_BACKDROPS)))])
    rows = np.arange(height, dtype=np.float32)[:, None] / np.float32(height)
    wall = top + (bottom - top) * rows ** 0.8
    floor_weight = 1.0 / (1.0 + np.exp((horizon / height - rows) / 0.06))  # (H, 1)
    column = (wall * (1.0 - floor_weight) + floor * floor_weight)[:, None, :]  # (H, 1, 3)
    light_x = rng.uniform(0.3, 0.7)
    xs = (np.arange(width, dtype=np.float32)[None, :] / np.float32(width) - np.float32(light_x)) * 1.6
    ys = rows - np.float32(0.45)
    vignette = 1.08 - 0.32 * (xs * xs + ys * ys * 2.2)
    return cv2.merge([column[:, :, channel] * vignette for channel in range(3)])


def _random_colours(rng: np.random.Generator, count: int) -> list[tuple[int, int, int]]:
    """Saturated, mid-to-bright BGR colours of any hue (one cv2 call for all of them)."""
    hsv = np.stack([rng.integers(0, 180, count), rng.integers(90, 256, count), rng.integers(90, 256, count)], 1)
    bgr = cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2BGR)[0]
    return [tuple(colour) for colour in bgr.tolist()]


def cluttered_backdrop(rng: np.random.Generator, width: int, height: int, horizon: float) -> np.ndarray:
    """A busy set: patterned wall, tiled floor and dozens of outlined props in many colours."""
    colours = itertools.cycle(_random_colours(rng, 128))  # shelves can hold many books: never runs dry
    # Patterns are built as a per-pixel palette index, then looked up once (cv2.LUT is the fastest lookup).
    palette = np.zeros((256, 1, 3), np.uint8)
    palette[:4, 0] = [next(colours) for _ in range(4)]  # wall a/b, floor a/b
    xs = np.arange(width + height, dtype=np.int32)
    period = max(4, int(width * rng.uniform(0.02, 0.05)))
    style = int(rng.integers(3))
    horizon_row = int(np.clip(horizon, 0, height))
    index = np.empty((height, width), np.uint8)
    if style == 0:  # vertical stripes
        index[:horizon_row] = ((xs[:width] // period) % 2)[None, :]
    elif style == 1:  # bricks: two row patterns, alternating per course, with mortar lines
        brick_h = max(4, int(height * rng.uniform(0.04, 0.07)))
        brick_w = 2 * brick_h + 3
        courses = np.stack([(xs[:width] + shift) % brick_w > 1 for shift in (0, brick_w // 2)]).astype(np.uint8)
        rows = np.arange(horizon_row)
        index[:horizon_row] = courses[(rows // brick_h) % 2] * (rows % brick_h > 1)[:, None]
    else:  # diagonal stripes: row y is the 1-D pattern shifted by y
        diagonal = ((xs // period) % 2).astype(np.uint8)
        index[:horizon_row] = np.lib.stride_tricks.sliding_window_view(diagonal, width)[:horizon_row]
    tile = max(4, int(width * rng.uniform(0.04, 0.08)))
    tile_rows = np.arange(horizon_row, height)
    checker = np.stack([(xs[:width] // tile + parity) % 2 for parity in (0, 1)]).astype(np.uint8) + 2
    index[horizon_row:] = checker[(tile_rows // tile) % 2]
    image = cv2.LUT(cv2.merge([index, index, index]), palette)

    line = cv2.LINE_AA
    for _ in range(int(rng.integers(28, 42))):
        colour = next(colours)
        dark = tuple(c // 3 for c in colour)
        cx, cy = rng.uniform(-0.05, 1.05) * width, rng.uniform(-0.05, 1.0) * height
        size = rng.uniform(0.04, 0.16) * width
        kind = int(rng.integers(6))
        if kind == 0:  # crate with a lit top face
            x0, y0, x1, y1 = int(cx - size / 2), int(cy - size / 2), int(cx + size / 2), int(cy + size / 2)
            depth = int(size * 0.25)
            top = np.array([[x0, y0], [x0 + depth, y0 - depth], [x1 + depth, y0 - depth], [x1, y0]], np.int32)
            cv2.fillPoly(image, [top], tuple(min(255, c + 60) for c in colour), line)
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, -1, line)
            cv2.rectangle(image, (x0, y0), (x1, y1), dark, 2, line)
            cv2.line(image, (x0, y0), (x1, y1), dark, 2, line)
        elif kind == 1:  # ball with a highlight
            radius = int(size / 2)
            cv2.circle(image, (int(cx), int(cy)), radius, colour, -1, line)
            glint = (int(cx - radius / 3), int(cy - radius / 3))
            cv2.circle(image, glint, max(1, radius // 4), (245, 245, 245), -1, line)
            cv2.circle(image, (int(cx), int(cy)), radius, dark, 2, line)
        elif kind == 2:  # angular shape
            corners = int(rng.integers(3, 6))
            angles = np.sort(rng.uniform(0, 2 * math.pi, corners))
            points = np.stack([cx + np.cos(angles) * size / 2, cy + np.sin(angles) * size / 2], 1).astype(np.int32)
            cv2.fillPoly(image, [points], colour, line)
            cv2.polylines(image, [points], True, dark, 2, line)
        elif kind == 3:  # shelf of books
            x0, y0, y1 = int(cx - size), int(cy - size * 0.4), int(cy + size * 0.4)
            cv2.rectangle(image, (x0, y0), (int(cx + size), y1), dark, -1)
            x = x0 + 3
            while x < cx + size - 4:
                book_w = int(rng.integers(3, max(5, int(size / 6))))
                book_top = y0 + int(rng.integers(2, max(3, int(size * 0.25))))
                cv2.rectangle(image, (x, book_top), (x + book_w, y1 - 2), next(colours), -1)
                x += book_w + 1
        elif kind == 4:  # window / picture frame with muntins
            x0, y0, x1, y1 = int(cx - size / 2), int(cy - size / 2), int(cx + size / 2), int(cy + size * 0.6)
            cv2.rectangle(image, (x0, y0), (x1, y1), tuple(min(255, c + 90) for c in colour), -1)
            for k in range(1, 3):
                cv2.line(image, (x0 + (x1 - x0) * k // 3, y0), (x0 + (x1 - x0) * k // 3, y1), (250, 250, 250), 3)
                cv2.line(image, (x0, y0 + (y1 - y0) * k // 3), (x1, y0 + (y1 - y0) * k // 3), (250, 250, 250), 3)
            cv2.rectangle(image, (x0, y0), (x1, y1), dark, 4)
        else:  # standing lamp
            cv2.line(image, (int(cx), int(cy)), (int(cx), int(cy + size * 1.5)), dark, 3, line)
            cv2.ellipse(image, (int(cx), int(cy)), (int(size * 0.45), int(size * 0.3)), 0, 180, 360, colour, -1, line)
            cv2.ellipse(image, (int(cx), int(cy)), (int(size * 0.45), int(size * 0.3)), 0, 180, 360, dark, 2, line)

    rows = np.arange(height, dtype=np.float32)[:, None] / np.float32(height)
    cols = np.arange(width, dtype=np.float32)[None, :] / np.float32(width) - np.float32(0.5)
    lighting = (1.05 - 0.25 * (cols * cols * 2.0 + (rows - 0.4) ** 2)) * np.float32(1 / 255)
    return cv2.multiply(image.astype(np.float32), cv2.merge([lighting, lighting, lighting]))


# ----------------------------------------------------------------------------
# Occluders: foreground objects between camera and the main character.


def occluder_layer(kind: str, rng: np.random.Generator, main_mask: np.ndarray, chin_y: float, width: int,
                    height: int, light: Light):
    """Premultiplied BGR and alpha of the (defocused) occluder, and the window (y0, y1, x0, x1) they cover.

    Edges sit at quantiles of the main character's pixel mass, so a side or
    bottom occluder hides roughly the drawn share of it (an outstretched arm
    does not fool it); a bottom one stays below ``chin_y`` so close-ups keep
    their face.
    """
    column_share = np.cumsum(main_mask.sum(axis=0)) / main_mask.sum()
    row_share = np.cumsum(main_mask.sum(axis=1)) / main_mask.sum()
    box_w = int(np.searchsorted(column_share, 0.98) - np.searchsorted(column_share, 0.02)) + 1
    leaf = float(np.clip(0.5 * box_w, 4.0, 0.12 * height))  # foliage in scale with the figure it hides
    if kind == "pole":
        pole_x = float(np.searchsorted(column_share, rng.uniform(0.3, 0.7)))
        pole_r = max(1.0, 0.08 * box_w)
        window = (0, height, max(0, int(pole_x - pole_r) - 8), min(width, int(pole_x + pole_r) + 9))
        colour, alpha = _draw_pole(rng, window, pole_x, pole_r, light)
        sigma = rng.uniform(0.8, 1.5)
    elif kind in ("left", "right"):
        share = rng.uniform(0.2, 0.45)
        edge = float(np.searchsorted(column_share, share if kind == "left" else 1.0 - share))
        sigma = rng.uniform(2.5, 4.5)
        reach = int(leaf + 4 * sigma)
        if kind == "left":
            window, span = (0, height, 0, min(width, int(edge) + reach)), (0.0, edge)
        else:
            window, span = (0, height, max(0, int(edge) - reach), width), (edge, float(width))
        if rng.random() < 0.5:
            colour, alpha = _draw_leaves(rng, window, span, (0.0, float(height)), leaf,
                                         "right" if kind == "left" else "left")
        else:
            colour, alpha = _draw_wall_edge(rng, window, span, edge, width, light)
    else:  # bottom
        edge = max(float(np.searchsorted(row_share, 1.0 - rng.uniform(0.25, 0.45))), chin_y)
        sigma = rng.uniform(2.5, 4.5)
        window = (min(height - 1, max(0, int(edge - leaf - 4 * sigma))), height, 0, width)
        if rng.random() < 0.5:
            colour, alpha = _draw_leaves(rng, window, (0.0, float(width)), (edge, float(height)), leaf, "top")
        else:
            colour, alpha = _draw_counter(rng, window, edge)
    return cv2.GaussianBlur(colour, (0, 0), sigma), cv2.GaussianBlur(alpha, (0, 0), sigma), window


def _draw_pole(rng, window, pole_x: float, pole_r: float, light: Light):
    """A lamp post / tree trunk: a vertical shaded cylinder."""
    wy0, wy1, wx0, wx1 = window
    across = (np.arange(wx0, wx1, dtype=np.float32) - np.float32(pole_x)) / np.float32(pole_r)
    nx = np.clip(across, -1.0, 1.0)[None, :]
    shaded = shade_surface(nx, np.zeros_like(nx), np.sqrt(1.0 - nx * nx),
                    hex_bgr(["#8A8F98", "#6B4A2E", "#2F5D3A"][int(rng.integers(3))]), GLOSSY, light)
    alpha_row = np.clip((1.0 - np.abs(across)) * pole_r + 0.5, 0.0, 1.0)
    premultiplied = shaded * alpha_row[None, :, None]
    rows = wy1 - wy0
    return np.ascontiguousarray(np.broadcast_to(premultiplied, (rows,) + premultiplied.shape[1:])), \
        np.ascontiguousarray(np.broadcast_to(alpha_row[None, :], (rows, alpha_row.size)))


def _draw_leaves(rng, window, x_span, y_span, leaf: float, open_side: str):
    """Foliage: a shadowed solid core filling the span, leaves along its ``open_side``
    ("left", "right" or "top") for a leafy silhouette, and a few lit leaves inside.

    The solid core guarantees the cover matches the span whatever the leaf size.
    Leaves are drawn over black, so the colour layer is already premultiplied by
    the cover; the defocus blur that follows makes anti-aliasing unnecessary.
    """
    wy0, wy1, wx0, wx1 = window
    leaves = np.zeros((wy1 - wy0, wx1 - wx0, 3), np.uint8)
    cover = np.zeros((wy1 - wy0, wx1 - wx0), np.uint8)
    (x0, x1), (y0, y1) = x_span, y_span
    base = hex_bgr(["#3E8E41", "#5DA130", "#2E7D5B"][int(rng.integers(3))]) * 255
    inset = 0.3 * leaf  # the core stops short of the edge; boundary leaves reach past it
    core = [x0, y0, x1, y1]
    boundary_index = {"left": 0, "right": 2, "top": 1}[open_side]
    core[boundary_index] += inset if open_side in ("left", "top") else -inset
    cv2.rectangle(leaves, (int(core[0]) - wx0, int(core[1]) - wy0), (int(core[2]) - wx0, int(core[3]) - wy0),
                  tuple(float(c) for c in base * 0.4), -1)
    cv2.rectangle(cover, (int(core[0]) - wx0, int(core[1]) - wy0), (int(core[2]) - wx0, int(core[3]) - wy0), 255, -1)

    def leaf_at(cx: float, cy: float, brightness: float) -> None:
        center = (fixed(cx - wx0), fixed(cy - wy0))
        axes = (fixed(leaf * rng.uniform(0.5, 0.8)), fixed(leaf * rng.uniform(0.18, 0.3)))
        angle = rng.uniform(0, 180)
        shade = tuple(float(c) for c in np.clip(base * brightness, 0, 255))
        cv2.ellipse(leaves, center, axes, angle, 0, 360, shade, -1, cv2.LINE_8, 4)
        cv2.ellipse(cover, center, axes, angle, 0, 360, 255, -1, cv2.LINE_8, 4)

    interior = int(np.clip((x1 - x0) * (y1 - y0) / (leaf * leaf), 4, 60))
    for _ in range(interior):
        leaf_at(rng.uniform(x0, x1), rng.uniform(y0, y1), rng.uniform(0.5, 1.0))
    along_x = open_side == "top"
    start, stop = (x0, x1) if along_x else (y0, y1)
    boundary = core[boundary_index]
    for position in np.arange(start, stop + 1e-6, 0.45 * leaf):
        across = boundary + rng.uniform(-0.35, 0.2) * leaf * (1 if open_side == "right" else -1)
        along = position + rng.uniform(-0.2, 0.2) * leaf
        leaf_at(*((along, across) if along_x else (across, along)), rng.uniform(0.6, 1.15))
    return leaves.astype(np.float32) * np.float32(1 / 255), cover.astype(np.float32) * np.float32(1 / 255)


def _draw_wall_edge(rng, window, x_span, edge: float, width: int, light: Light):
    """A door frame / wall corner: flat slab, bevelled lit edge, vertical light falloff."""
    wy0, wy1, wx0, wx1 = window
    base = hex_bgr(["#8B6B4A", "#C8C2B8", "#5E6B7A", "#A05A3C"][int(rng.integers(4))])
    xs = np.arange(wx0, wx1, dtype=np.float32)
    inside = ((xs >= x_span[0]) & (xs < x_span[1])).astype(np.float32)
    bevel = np.exp(-np.abs(xs - np.float32(edge)) / np.float32(max(2.0, 0.012 * width)))
    rows = np.arange(wy0, wy1, dtype=np.float32)[:, None] / np.float32(wy1)
    brightness = ((0.55 + 0.45 * bevel) * inside)[None, :] * (1.0 - 0.3 * rows) * np.float32(light.key + light.ambient)
    colour = cv2.merge([brightness * base[channel] for channel in range(3)])
    return colour, np.ascontiguousarray(np.broadcast_to(inside[None, :], brightness.shape))


def _draw_counter(rng, window, top: float):
    """A table/counter edge across the bottom: lit rim, darker front face."""
    wy0, wy1, wx0, wx1 = window
    base = hex_bgr(["#8B5A3C", "#D9D2C5", "#4F5B66"][int(rng.integers(3))])
    below = np.arange(wy0, wy1, dtype=np.float32) - np.float32(top)
    rim = max(3.0, 0.03 * wy1)
    brightness = np.where(below < rim, 1.15, 0.75 - 0.25 * np.minimum(below / max(1.0, wy1 - top), 1.0))
    inside = (below >= 0).astype(np.float32)
    column = (base * (brightness * inside)[:, None]).astype(np.float32)
    shape = (wy1 - wy0, wx1 - wx0)
    return (np.ascontiguousarray(np.broadcast_to(column[:, None, :], shape + (3,))),
            np.ascontiguousarray(np.broadcast_to(inside[:, None], shape)))
