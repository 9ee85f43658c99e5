"""Lighting, shading and the painter that draws shaded shapes with exact per-owner masks."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from .spec import hex_bgr

# ----------------------------------------------------------------------------
# Lighting and shading.

# (wrap, specular strength, shininess): wrap softens the terminator like subsurface scattering.
SKIN = (0.35, 0.22, 28.0)
CLOTH = (0.15, 0.06, 8.0)
HAIR = (0.2, 0.4, 36.0)
EYE = (0.3, 0.7, 90.0)
GLOSSY = (0.1, 0.9, 70.0)
SHOE = (0.1, 0.45, 30.0)


class Light:
    def __init__(self, direction, key, ambient, rim, rim_direction, key_tint, ambient_tint, rim_tint):
        self.direction = tuple(float(c) for c in np.asarray(direction) / np.linalg.norm(direction))
        half = np.asarray(self.direction) + np.array([0.0, 0.0, 1.0])
        self.half_vector = tuple(float(c) for c in half / np.linalg.norm(half))
        self.rim_direction = tuple(float(c) for c in np.asarray(rim_direction) / np.linalg.norm(rim_direction))
        self.key, self.ambient, self.rim = float(key), float(ambient), float(rim)
        self.key_tint, self.ambient_tint, self.rim_tint = hex_bgr(key_tint), hex_bgr(ambient_tint), hex_bgr(rim_tint)


def make_light(rng: np.random.Generator, lighting: str) -> Light:
    side = float(rng.choice([-1.0, 1.0]))
    if lighting == "side":
        return Light((side * 0.97, -0.12, 0.2), key=1.0, ambient=0.16, rim=0.2, rim_direction=(-side, -0.3),
                      key_tint="#FFE2C0", ambient_tint="#B0C0E0", rim_tint="#FFFFFF")
    direction = (side * rng.uniform(0.3, 0.55), -rng.uniform(0.45, 0.65), rng.uniform(0.65, 0.8))
    return Light(direction, key=0.78, ambient=0.46, rim=0.6, rim_direction=(-side * 0.8, -0.6),
                  key_tint="#FFF6EA", ambient_tint="#DCE6FF", rim_tint="#FFFFFF")


def shade_surface(nu, nv, nz, albedo: np.ndarray, material, light: Light, angle: float = 0.0) -> np.ndarray:
    """(h, w, 3) BGR colour of a surface patch from its unit normal components.

    The normals (nu, nv, nz) live in a frame rotated by ``angle`` in the image
    plane (image axes: x right, y down, z to the viewer); the light is rotated
    into that frame instead of every normal out of it. Terms: hemispheric sky
    fill, wrapped Lambert key, Blinn-Phong specular, and a rim light.
    """
    wrap, specular, shininess = material
    cos_a, sin_a = math.cos(angle), math.sin(angle)

    def local(x: float, y: float) -> tuple[float, float]:
        return x * cos_a + y * sin_a, y * cos_a - x * sin_a

    down_u, down_v = local(0.0, 1.0)
    key_u, key_v = local(light.direction[0], light.direction[1])
    half_u, half_v = local(light.half_vector[0], light.half_vector[1])
    rim_u, rim_v = local(*light.rim_direction)
    wrap_scale = 1.0 / (1.0 + wrap)
    sky = 0.72 - 0.28 * (nu * down_u + nv * down_v)  # up-facing surfaces see more of the sky fill
    diffuse = np.clip((nu * key_u + nv * key_v + nz * light.direction[2] + wrap) * wrap_scale, 0.0, 1.0)
    facing = np.clip(nu * half_u + nv * half_v + nz * light.half_vector[2], 0.0, 1.0)
    glossy = facing / (shininess - (shininess - 1.0) * facing)  # Schlick's cheap pow(facing, shininess)
    edge = 1.0 - nz
    rim = edge * edge * edge * np.clip(0.25 + 0.75 * (nu * rim_u + nv * rim_v), 0.0, 1.0)
    ambient = albedo * (light.ambient * light.ambient_tint)
    key = albedo * (light.key * light.key_tint)
    highlight = (specular * light.key) * light.key_tint
    rim_colour = light.rim * light.rim_tint
    return cv2.merge([np.asarray(sky * float(ambient[c]) + diffuse * float(key[c]) + glossy * float(highlight[c])
                                 + rim * float(rim_colour[c]), dtype=np.float32) for c in range(3)])


def fixed(value: float) -> int:
    """cv2 drawing coordinates with 4 fractional bits (shift=4) for sub-pixel placement."""
    return int(round(value * 16))


class Painter:
    """Paints shaded primitives onto a float BGR canvas and records each character's silhouette.

    Characters are painted one after the other, so which one owns a pixel
    follows from the silhouettes and the painting order (``ownership``).
    """

    def __init__(self, image: np.ndarray, light: Light, n_owners: int):
        self.image = image
        self.light = light
        self.height, self.width = image.shape[:2]
        self.full_masks = [np.zeros((self.height, self.width), bool) for _ in range(n_owners)]
        self.head_masks = [np.zeros((self.height, self.width), bool) for _ in range(n_owners)]

    def ownership(self, painting_order: Sequence[int]) -> np.ndarray:
        """Index of the character seen at each pixel (-1: none), later ones covering earlier ones."""
        owner = np.full((self.height, self.width), -1, np.int8)
        for index in painting_order:
            owner[self.full_masks[index]] = index
        return owner

    def _window(self, cx: float, cy: float, half_w: float, half_h: float):
        x0, x1 = max(int(cx - half_w) - 1, 0), min(int(cx + half_w) + 2, self.width)
        y0, y1 = max(int(cy - half_h) - 1, 0), min(int(cy + half_h) + 2, self.height)
        if x0 >= x1 or y0 >= y1:
            return None
        return y0, y1, x0, x1

    def _local_coords(self, window, cx, cy, ax, ay, angle):
        """Normalised coordinates along the primitive's two axes, built from 1-D rows and columns."""
        y0, y1, x0, x1 = window
        cos_a, sin_a = math.cos(angle), math.sin(angle)
        dx = np.arange(x0, x1, dtype=np.float32) - np.float32(cx)
        dy = np.arange(y0, y1, dtype=np.float32) - np.float32(cy)
        u = (dy * np.float32(sin_a / ax))[:, None] + dx * np.float32(cos_a / ax)
        v = (dy * np.float32(cos_a / ay))[:, None] - dx * np.float32(sin_a / ay)
        return u, v

    def ellipsoid(self, owner: int, center, radii, albedo: np.ndarray, material, *, angle: float = 0.0,
                  power: float = 2.0, roundness: float = 1.0, cut=None, is_head: bool = False) -> None:
        """A shaded ellipsoid (superellipsoid for power != 2) seen along its axis.

        ``angle`` rotates it in the image plane (radians); ``roundness`` < 1 flattens
        the bulge; ``cut`` = (level, curve, amplitude, frequency) keeps only the part
        above the wavy line v = level + curve*u^2 + amplitude*cos(frequency*pi*u)
        in normalised local coordinates (hairlines, hat rims).
        """
        cx, cy = center
        ax, ay = max(float(radii[0]), 0.6), max(float(radii[1]), 0.6)
        cos_a, sin_a = math.cos(angle), math.sin(angle)
        window = self._window(cx, cy, math.hypot(ax * cos_a, ay * sin_a), math.hypot(ax * sin_a, ay * cos_a))
        if window is None:
            return
        u, v = self._local_coords(window, cx, cy, ax, ay, angle)
        if power == 2.0:
            squared = u * u + v * v
            radius = np.sqrt(squared)
            nu, nv = u, v
        else:
            abs_u, abs_v = np.abs(u), np.abs(v)
            radius = (abs_u ** power + abs_v ** power) ** (1.0 / power)
            grad_u, grad_v = np.sign(u) * abs_u ** (power - 1), np.sign(v) * abs_v ** (power - 1)
            scale = np.minimum(radius, 1.0) / (np.sqrt(grad_u * grad_u + grad_v * grad_v) + 1e-6)
            nu, nv = grad_u * scale, grad_v * scale
            squared = nu * nu + nv * nv
        alpha = np.clip((1.0 - radius) * min(ax, ay) + 0.5, 0.0, 1.0)  # ~1 px anti-aliased rim
        if cut is not None:
            level, curve, amplitude, frequency = cut
            edge = level + curve * u * u + amplitude * np.cos((frequency * math.pi) * u)
            alpha = np.minimum(alpha, np.clip((edge - v) * ay + 0.5, 0.0, 1.0))
        depth = np.sqrt(np.maximum(1.0 - squared, 0.0))
        # Flattening scales the in-plane normal by `roundness`, then renormalises.
        inverse_norm = 1.0 / np.sqrt(squared * (roundness * roundness) + depth * depth + 1e-6)
        in_plane = inverse_norm * roundness
        color = shade_surface(nu * in_plane, nv * in_plane, depth * inverse_norm, albedo, material, self.light, angle)
        self._composite(window, alpha, color, owner, is_head)

    def limb(self, owner: int, start, end, thickness: float, albedo: np.ndarray, material) -> None:
        """A capsule-like ellipsoid from ``start`` to ``end`` (pixel points)."""
        dx, dy = end[0] - start[0], end[1] - start[1]
        length = math.hypot(dx, dy)
        center = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        self.ellipsoid(owner, center, (thickness / 2, length / 2 + thickness / 2), albedo, material,
                       angle=math.atan2(-dx, dy))

    def soft_spot(self, center, radii, color: np.ndarray, strength: float, *, only_owner: int | None = None) -> None:
        """A soft-edged tint (contact shadows, blush, chin shadow); not part of any silhouette.

        ``only_owner`` restricts it to that character's surface painted so far.
        """
        ax, ay = max(float(radii[0]), 0.6), max(float(radii[1]), 0.6)
        window = self._window(center[0], center[1], ax, ay)
        if window is None:
            return
        u, v = self._local_coords(window, center[0], center[1], ax, ay, 0.0)
        falloff = np.clip(1.0 - (u * u + v * v), 0.0, 1.0)
        alpha = strength * falloff * np.sqrt(falloff)
        if only_owner is not None:
            y0, y1, x0, x1 = window
            alpha = alpha * self.full_masks[only_owner][y0:y1, x0:x1]  # its own surface, painted last
        self._composite(window, alpha, color, None, False)

    def decal(self, center, extent: float, draw: Callable[[np.ndarray, float, float], None],
              color: np.ndarray) -> None:
        """Flat marks drawn with cv2 (mouths, brows, lashes, eye glints) on an existing surface.

        ``draw(patch, ox, oy)`` paints 255 into a uint8 patch whose top-left pixel is (ox, oy).
        """
        window = self._window(center[0], center[1], extent, extent)
        if window is None:
            return
        y0, y1, x0, x1 = window
        patch = np.zeros((y1 - y0, x1 - x0), np.uint8)
        draw(patch, x0, y0)
        alpha = patch.astype(np.float32) * np.float32(1 / 255)
        self._composite(window, alpha, color, None, False)

    def _composite(self, window, alpha: np.ndarray, color: np.ndarray, owner: int | None, is_head: bool) -> None:
        y0, y1, x0, x1 = window
        region = self.image[y0:y1, x0:x1]
        # cv2 blends 3 channels with a per-pixel weight far faster than numpy broadcasting.
        if color.ndim == 1:
            color = np.broadcast_to(color, region.shape).copy()
        region[...] = cv2.blendLinear(color, region, alpha, 1.0 - alpha)
        if owner is None:
            return
        solid = alpha > 0.5
        self.full_masks[owner][y0:y1, x0:x1] |= solid
        if is_head:
            self.head_masks[owner][y0:y1, x0:x1] |= solid
