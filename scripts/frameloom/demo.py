"""Synthetic "3D animated character" frames with exact ground truth.

The demo run, the analysis tests, the workflow tests and the benchmarks all
need frames whose content is known: how many characters, who they are, where
their heads are, how much of the main one a foreground object hides, and how
the frame was degraded. ``render_frame`` draws such a frame from a
``FrameSpec``: shaded figures (Lambert + Blinn-Phong key light, hemispheric
fill, rim light, soft contact shadow) with big heads and cartoon eyes, in front
of a studio backdrop or a busy scene, optionally behind a defocused occluder,
then degraded (blur, underexposure, downscale, sensor noise) with the same
pure helpers the analysis tests reuse.

Everything is drawn with numpy/cv2 on bounding-box patches, so a 640x360 frame
takes a few tens of milliseconds. All randomness comes from
``np.random.default_rng`` seeded by the spec, one stream per aspect, so the
clean picture of a seed does not change when only its degradations change.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from .imageio import read_json, write_image, write_json

BACKGROUNDS = ("plain", "cluttered")
SHOTS = ("close-up", "medium", "full-body", "far")
OCCLUDERS = (None, "left", "right", "bottom", "pole")
LIGHTINGS = ("studio", "side")

# The character the demo dataset is about; the others appear as extras.
DEMO_TARGET_IDENTITY = 0

# A character whose visible area is below this share of its in-frame area is
# counted as hidden (a sliver no detector or annotator would report).
HIDDEN_VISIBLE_SHARE = 0.03
# A head counts as visible (face box reported) from this share of its disc.
FACE_VISIBLE_SHARE = 0.3

# Independent random streams per aspect of a frame (see module docstring).
_STREAM_CAST, _STREAM_LAYOUT, _STREAM_BACKDROP, _STREAM_POSE, _STREAM_LIGHT, _STREAM_OCCLUDER = range(6)


@dataclass(frozen=True)
class FrameSpec:
    """What one synthetic frame shows and how it is degraded."""

    seed: int
    width: int = 640
    height: int = 360
    n_characters: int = 1  # 1..3
    background: str = "plain"  # "plain" studio gradient | "cluttered" busy set
    shot: str = "medium"  # "close-up" | "medium" | "full-body" | "far": scale of the main character
    occluder: str | None = None  # None | "left" | "right" | "bottom" | "pole": hides part of the main character
    blur_sigma: float = 0.0  # Gaussian blur of the whole frame
    noise_std: float = 0.0  # additive Gaussian noise, 0..255 units
    darkness: float = 0.0  # 0 = normal exposure .. 0.8 = very dark and flat
    downscale: float = 1.0  # > 1: rendered, then shrunk by this factor
    identities: tuple[int, ...] | None = None  # indices into CHARACTERS, main first; default from seed
    lighting: str = "studio"  # extension: "side" = grazing key, weak fill (sharp but mediocre frame)

    def __post_init__(self) -> None:
        if self.identities is not None:
            object.__setattr__(self, "identities", tuple(int(i) for i in self.identities))
        problems = []
        if self.width < 32 or self.height < 32:
            problems.append(f"frame must be at least 32x32, got {self.width}x{self.height}")
        if not 1 <= self.n_characters <= 3:
            problems.append(f"n_characters must be 1..3, got {self.n_characters}")
        if self.background not in BACKGROUNDS:
            problems.append(f"background must be one of {BACKGROUNDS}, got {self.background!r}")
        if self.shot not in SHOTS:
            problems.append(f"shot must be one of {SHOTS}, got {self.shot!r}")
        if self.occluder not in OCCLUDERS:
            problems.append(f"occluder must be one of {OCCLUDERS}, got {self.occluder!r}")
        if self.lighting not in LIGHTINGS:
            problems.append(f"lighting must be one of {LIGHTINGS}, got {self.lighting!r}")
        if self.blur_sigma < 0 or self.noise_std < 0:
            problems.append("blur_sigma and noise_std must be >= 0")
        if not 0 <= self.darkness < 1:
            problems.append(f"darkness must be in [0, 1), got {self.darkness}")
        if self.downscale < 1:
            problems.append(f"downscale must be >= 1, got {self.downscale}")
        if self.identities is not None:
            if len(self.identities) != self.n_characters:
                problems.append(f"identities {self.identities} do not match n_characters={self.n_characters}")
            if len(set(self.identities)) != len(self.identities):
                problems.append(f"identities must be distinct, got {self.identities}")
            if any(not 0 <= i < len(CHARACTERS) for i in self.identities):
                problems.append(f"identities must be in 0..{len(CHARACTERS) - 1}, got {self.identities}")
        if problems:
            raise ValueError("; ".join(problems))


# ----------------------------------------------------------------------------
# Degradations: pure functions on uint8 BGR images, shared with the tests.


def apply_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (defocus / motion-blur stand-in); sigma <= 0 returns a copy."""
    if sigma <= 0:
        return image.copy()
    return cv2.GaussianBlur(image, (0, 0), sigmaX=float(sigma), borderType=cv2.BORDER_REFLECT_101)


def apply_noise(image: np.ndarray, std: float, seed: int) -> np.ndarray:
    """Additive Gaussian sensor noise of ``std`` (0..255 units), reproducible by seed."""
    if std <= 0:
        return image.copy()
    noise = np.random.default_rng(seed).standard_normal(image.shape, dtype=np.float32)
    noisy = image.astype(np.float32) + noise * np.float32(std)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def apply_darkness(image: np.ndarray, amount: float) -> np.ndarray:
    """Underexposure: gain 1-amount plus a shadow-crushing gamma, so mean and contrast drop."""
    if amount <= 0:
        return image.copy()
    levels = np.arange(256, dtype=np.float64) / 255.0
    curve = (1.0 - amount) * levels ** (1.0 + 0.8 * amount)
    lut = np.clip(np.round(curve * 255.0), 0, 255).astype(np.uint8)
    return cv2.LUT(image, lut)


def downscaled_size(width: int, height: int, factor: float) -> tuple[int, int]:
    """Output (width, height) of ``apply_downscale`` for a frame of width x height."""
    if factor <= 1:
        return width, height
    return max(1, round(width / factor)), max(1, round(height / factor))


def apply_downscale(image: np.ndarray, factor: float) -> np.ndarray:
    """Shrink by ``factor`` (area averaging, like a low-resolution source); <= 1 returns a copy."""
    if factor <= 1:
        return image.copy()
    size = downscaled_size(image.shape[1], image.shape[0], factor)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


# ----------------------------------------------------------------------------
# Character designs.


@dataclass(frozen=True)
class CharacterDesign:
    """One identity: palette and proportions. Lengths are in figure heights (soles to crown = 1)."""

    name: str
    skin: str
    hair: str
    shirt: str
    pants: str
    shoes: str
    iris: str
    hair_style: str  # bob | spiky | cap | bun | curly | short
    head_radius: float
    leg_length: float
    torso_width: float
    torso_power: float  # superellipse exponent: 2 = round belly, 3 = boxy jacket
    limb_thickness: float
    mouth: str  # smile | grin
    accent: str = "#000000"  # hat / shirt trim colour

    @property
    def torso_top(self) -> float:
        return 1.0 - 2.0 * self.head_radius - 0.03

    @property
    def arm_length(self) -> float:
        return 0.8 * (self.torso_top - self.leg_length) + 0.06

    @property
    def hair_height(self) -> float:
        """How far hair or hat rises above the crown."""
        return {"spiky": 0.45, "bun": 0.55, "cap": 0.35, "curly": 0.3}.get(self.hair_style, 0.12) * self.head_radius

    @property
    def half_width(self) -> float:
        """Widest horizontal extent from the centre line (arms at their widest pose)."""
        arms = self.torso_width / 2 + self.arm_length * math.sin(math.radians(40)) + self.limb_thickness
        return max(arms, 1.3 * self.head_radius)


CHARACTERS: tuple[CharacterDesign, ...] = (
    CharacterDesign("mira", skin="#F2C4A0", hair="#4A2A1A", shirt="#D8343A", pants="#2B3A67", shoes="#F4F1EA",
                    iris="#3C9A5F", hair_style="bob", head_radius=0.19, leg_length=0.33, torso_width=0.26,
                    torso_power=2.6, limb_thickness=0.075, mouth="smile", accent="#F4F1EA"),
    CharacterDesign("bolt", skin="#8D5A3B", hair="#1C1A1A", shirt="#2F74D0", pants="#B59B6A", shoes="#D04A2F",
                    iris="#5A3A22", hair_style="spiky", head_radius=0.18, leg_length=0.30, torso_width=0.36,
                    torso_power=3.0, limb_thickness=0.095, mouth="grin", accent="#F2F2F2"),
    CharacterDesign("pip", skin="#F7D9C4", hair="#E0762B", shirt="#F2C230", pants="#4C6FA8", shoes="#3A3A3A",
                    iris="#3F7FD0", hair_style="cap", head_radius=0.23, leg_length=0.25, torso_width=0.27,
                    torso_power=2.4, limb_thickness=0.075, mouth="grin", accent="#3FA34D"),
    CharacterDesign("nova", skin="#B9A4E0", hair="#ECEBF5", shirt="#1FA5A0", pants="#4B2C5E", shoes="#ECEBF5",
                    iris="#D03C8C", hair_style="bun", head_radius=0.165, leg_length=0.38, torso_width=0.24,
                    torso_power=2.8, limb_thickness=0.065, mouth="smile", accent="#F2D14B"),
    CharacterDesign("tess", skin="#E8B98F", hair="#F0C75E", shirt="#7B3FB0", pants="#7A7A80", shoes="#6B3B22",
                    iris="#4D8FD6", hair_style="curly", head_radius=0.2, leg_length=0.32, torso_width=0.28,
                    torso_power=2.2, limb_thickness=0.07, mouth="smile", accent="#F5D76E"),
    CharacterDesign("rex", skin="#5C3A28", hair="#A0A0A4", shirt="#F08A24", pants="#55612F", shoes="#2A2A2A",
                    iris="#6B4A2A", hair_style="short", head_radius=0.19, leg_length=0.24, torso_width=0.40,
                    torso_power=2.0, limb_thickness=0.09, mouth="grin", accent="#FFFFFF"),
)


def _bgr(hex_rgb: str) -> np.ndarray:
    red, green, blue = (int(hex_rgb[i:i + 2], 16) / 255.0 for i in (1, 3, 5))
    return np.array([blue, green, red], dtype=np.float32)


# ----------------------------------------------------------------------------
# Lighting and shading.

# (wrap, specular strength, shininess): wrap softens the terminator like subsurface scattering.
_SKIN = (0.35, 0.22, 28.0)
_CLOTH = (0.15, 0.06, 8.0)
_HAIR = (0.2, 0.4, 36.0)
_EYE = (0.3, 0.7, 90.0)
_GLOSSY = (0.1, 0.9, 70.0)
_SHOE = (0.1, 0.45, 30.0)


class _Light:
    def __init__(self, direction, key, ambient, rim, rim_direction, key_tint, ambient_tint, rim_tint):
        self.direction = tuple(float(c) for c in np.asarray(direction) / np.linalg.norm(direction))
        half = np.asarray(self.direction) + np.array([0.0, 0.0, 1.0])
        self.half_vector = tuple(float(c) for c in half / np.linalg.norm(half))
        self.rim_direction = tuple(float(c) for c in np.asarray(rim_direction) / np.linalg.norm(rim_direction))
        self.key, self.ambient, self.rim = float(key), float(ambient), float(rim)
        self.key_tint, self.ambient_tint, self.rim_tint = _bgr(key_tint), _bgr(ambient_tint), _bgr(rim_tint)


def _make_light(rng: np.random.Generator, lighting: str) -> _Light:
    side = float(rng.choice([-1.0, 1.0]))
    if lighting == "side":
        return _Light((side * 0.97, -0.12, 0.2), key=1.0, ambient=0.16, rim=0.2, rim_direction=(-side, -0.3),
                      key_tint="#FFE2C0", ambient_tint="#B0C0E0", rim_tint="#FFFFFF")
    direction = (side * rng.uniform(0.3, 0.55), -rng.uniform(0.45, 0.65), rng.uniform(0.65, 0.8))
    return _Light(direction, key=0.78, ambient=0.46, rim=0.6, rim_direction=(-side * 0.8, -0.6),
                  key_tint="#FFF6EA", ambient_tint="#DCE6FF", rim_tint="#FFFFFF")


def _shade(nu, nv, nz, albedo: np.ndarray, material, light: _Light, angle: float = 0.0) -> np.ndarray:
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


def _fixed(value: float) -> int:
    """cv2 drawing coordinates with 4 fractional bits (shift=4) for sub-pixel placement."""
    return int(round(value * 16))


class _Painter:
    """Paints shaded primitives onto a float BGR canvas and records each character's silhouette.

    Characters are painted one after the other, so which one owns a pixel
    follows from the silhouettes and the painting order (``ownership``).
    """

    def __init__(self, image: np.ndarray, light: _Light, n_owners: int):
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
        color = _shade(nu * in_plane, nv * in_plane, depth * inverse_norm, albedo, material, self.light, angle)
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


# ----------------------------------------------------------------------------
# Characters.


@dataclass(frozen=True)
class _Pose:
    arm_angles: tuple[float, float]  # radians from straight down, outwards; > pi/2 = raised
    stance: float
    head_tilt: float
    yaw: float  # -1..1, turns the face features sideways
    gaze: tuple[float, float]


def _random_pose(rng: np.random.Generator) -> _Pose:
    arms = [math.radians(rng.uniform(8, 32)), math.radians(rng.uniform(8, 32))]
    if rng.random() < 0.25:  # a wave
        arms[int(rng.integers(2))] = math.radians(rng.uniform(135, 155))
    return _Pose(arm_angles=(arms[0], arms[1]), stance=float(rng.uniform(0.0, 0.04)),
                 head_tilt=math.radians(rng.uniform(-8, 8)), yaw=float(rng.uniform(-0.6, 0.6)),
                 gaze=(float(rng.uniform(-1, 1)), float(rng.uniform(-0.6, 0.6))))


def _draw_character(painter: _Painter, owner: int, design: CharacterDesign, pose: _Pose,
                    foot_x: float, ground_y: float, scale: float) -> None:
    def at(x: float, y: float) -> tuple[float, float]:
        return foot_x + x * scale, ground_y - y * scale

    skin, shirt, pants = _bgr(design.skin), _bgr(design.shirt), _bgr(design.pants)
    black = np.zeros(3, np.float32)
    limb = design.limb_thickness
    torso_top, torso_w = design.torso_top, design.torso_width
    torso_h = torso_top - design.leg_length

    painter.soft_spot(at(0, 0), (0.36 * scale, 0.06 * scale), black, 0.6)
    painter.soft_spot(at(0, 0), (0.2 * scale, 0.03 * scale), black, 0.45)

    for side in (-1, 1):
        foot = side * (torso_w * 0.24 + pose.stance)
        painter.limb(owner, at(side * torso_w * 0.22, design.leg_length + 0.04), at(foot, 0.07),
                     limb * 1.2 * scale, pants, _CLOTH)
        painter.ellipsoid(owner, at(foot + side * 0.02, 0.04), (0.085 * scale, 0.048 * scale),
                          _bgr(design.shoes), _SHOE, roundness=0.8)

    painter.ellipsoid(owner, at(0, design.leg_length + torso_h / 2),
                      (torso_w / 2 * scale, (torso_h / 2 + 0.035) * scale),
                      shirt, _CLOTH, power=design.torso_power, roundness=0.85)
    # Trim stripe across the chest, shaded like the shirt it sits on.
    painter.ellipsoid(owner, at(0, torso_top - torso_h * 0.38), (torso_w / 2 * 0.97 * scale, 0.025 * scale),
                      _bgr(design.accent), _CLOTH, power=design.torso_power, roundness=0.5)
    painter.ellipsoid(owner, at(0, design.leg_length + 0.02), (torso_w / 2 * 0.96 * scale, 0.03 * scale),
                      pants * 0.7, _CLOTH, roundness=0.6)

    for side, angle in zip((-1, 1), pose.arm_angles):
        shoulder = (side * (torso_w / 2 - limb * 0.35), torso_top - 0.045)
        hand = (shoulder[0] + side * design.arm_length * math.sin(angle),
                shoulder[1] - design.arm_length * math.cos(angle))
        painter.limb(owner, at(*shoulder), at(*hand), limb * scale, shirt * 0.92, _CLOTH)
        painter.ellipsoid(owner, at(*hand), (limb * 0.72 * scale, limb * 0.75 * scale), skin, _SKIN)

    painter.ellipsoid(owner, at(0, torso_top + 0.01), (0.055 * scale, 0.05 * scale), skin * 0.85, _SKIN)
    head_center = at(0, 1.0 - design.head_radius)
    head_r = design.head_radius * scale
    painter.soft_spot((head_center[0], head_center[1] + 0.95 * head_r), (0.75 * head_r, 0.32 * head_r),
                      black, 0.4, only_owner=owner)
    _draw_head(painter, owner, design, pose, head_center, head_r)


def _draw_head(painter: _Painter, owner: int, design: CharacterDesign, pose: _Pose, center, r: float) -> None:
    cos_t, sin_t = math.cos(pose.head_tilt), math.sin(pose.head_tilt)
    tilt = pose.head_tilt

    def hp(x: float, y: float) -> tuple[float, float]:
        """Head-local point (head radii, y down) to pixels."""
        return center[0] + (x * cos_t - y * sin_t) * r, center[1] + (x * sin_t + y * cos_t) * r

    skin, hair = _bgr(design.skin), _bgr(design.hair)
    style = design.hair_style
    # Back layers first: they are hidden wherever the head is drawn over them.
    if style == "bob":
        painter.ellipsoid(owner, hp(0, 0.05), (1.2 * r, 1.1 * r), hair * 0.8, _HAIR, angle=tilt,
                          cut=(0.62, 0.25, 0.04, 5.0))
    if style == "bun":
        painter.ellipsoid(owner, hp(0.1, -1.02), (0.42 * r, 0.4 * r), hair, _HAIR, angle=tilt)
        painter.ellipsoid(owner, hp(0.1, -0.8), (0.3 * r, 0.1 * r), _bgr(design.accent), _GLOSSY, angle=tilt)
    if style != "bob":
        for side in (-1, 1):
            painter.ellipsoid(owner, hp(side * 0.97, 0.1), (0.2 * r, 0.27 * r), skin * 0.95, _SKIN, angle=tilt)

    painter.ellipsoid(owner, center, (r, 0.98 * r), skin, _SKIN, angle=tilt, is_head=True)
    _draw_hair(painter, owner, design, hp, r, tilt)

    feature_x = pose.yaw * 0.3
    _draw_eyes(painter, owner, design, pose, [hp(feature_x + side * 0.38, 0.04) for side in (-1, 1)], r, tilt, hair)
    painter.ellipsoid(owner, hp(feature_x * 1.25, 0.3), (0.12 * r, 0.1 * r), skin * np.float32([0.92, 0.92, 1.0]),
                      _SKIN, angle=tilt)
    for side in (-1, 1):
        painter.soft_spot(hp(feature_x + side * 0.6, 0.38), (0.17 * r, 0.1 * r), _bgr("#FF7A8A"), 0.28,
                          only_owner=owner)
    _draw_mouth(painter, design, hp(feature_x, 0.58), r, tilt)
    if style == "short":  # rex's moustache
        for side in (-1, 1):
            painter.ellipsoid(owner, hp(feature_x + side * 0.17, 0.45), (0.2 * r, 0.085 * r), hair, _HAIR,
                              angle=tilt + side * 0.25)


def _draw_hair(painter: _Painter, owner: int, design: CharacterDesign, hp, r: float, tilt: float) -> None:
    hair = _bgr(design.hair)
    style = design.hair_style
    if style == "bob":
        painter.ellipsoid(owner, hp(0, -0.1), (1.1 * r, 1.0 * r), hair, _HAIR, angle=tilt, cut=(-0.38, 0.95, 0.07, 4.0))
    elif style == "spiky":
        for k in range(7):
            spike = math.radians(-75 + 25 * k)
            painter.ellipsoid(owner, hp(0.85 * math.sin(spike), -0.85 * math.cos(spike)), (0.2 * r, 0.5 * r), hair,
                              _HAIR, angle=tilt + spike)
        painter.ellipsoid(owner, hp(0, -0.08), (1.05 * r, 0.98 * r), hair, _HAIR, angle=tilt,
                          cut=(-0.3, 0.55, 0.08, 5.0))
    elif style == "cap":
        hat = _bgr(design.accent)
        painter.ellipsoid(owner, hp(0, 0.0), (1.06 * r, 0.99 * r), hair, _HAIR, angle=tilt, cut=(-0.1, 0.9, 0.06, 6.0))
        painter.ellipsoid(owner, hp(0, -0.22), (1.09 * r, 0.98 * r), hat, _CLOTH, angle=tilt,
                          cut=(-0.12, 0.0, 0.0, 0.0))
        painter.ellipsoid(owner, hp(0, -0.33), (1.18 * r, 0.19 * r), hat * 0.8, _CLOTH, angle=tilt, roundness=0.5)
        painter.ellipsoid(owner, hp(0, -1.18), (0.12 * r, 0.1 * r), hat * 0.9, _CLOTH, angle=tilt)
    elif style == "bun":
        painter.ellipsoid(owner, hp(0, -0.05), (1.04 * r, 0.99 * r), hair, _HAIR, angle=tilt,
                          cut=(-0.45, 0.6, 0.03, 2.0))
    elif style == "curly":
        painter.ellipsoid(owner, hp(0, -0.06), (1.05 * r, 0.99 * r), hair, _HAIR, angle=tilt,
                          cut=(-0.4, 0.7, 0.05, 6.0))
        for k in range(11):
            curl = math.radians(-105 + 21 * k)
            painter.ellipsoid(owner, hp(0.95 * math.sin(curl), -0.95 * math.cos(curl)), (0.3 * r, 0.3 * r),
                              hair * (0.9 + 0.1 * (k % 2)), _HAIR)
    else:  # short
        painter.ellipsoid(owner, hp(0, -0.03), (1.03 * r, 1.0 * r), hair, _HAIR, angle=tilt, cut=(-0.5, 0.8, 0.02, 3.0))


def _draw_eyes(painter: _Painter, owner: int, design: CharacterDesign, pose: _Pose, centers, r: float,
               tilt: float, brow_colour: np.ndarray) -> None:
    """Glossy eyeballs with iris and pupil, then glints, lashes and brows as one decal each for both eyes."""
    eye_w, eye_h = 0.21 * r, 0.26 * r
    lx, ly, _ = painter.light.direction
    glints = []
    for center in centers:
        painter.ellipsoid(owner, center, (eye_w, eye_h), _bgr("#F7F7F2"), _EYE, angle=tilt, roundness=0.55)
        iris = (center[0] + pose.gaze[0] * 0.07 * r, center[1] + pose.gaze[1] * 0.06 * r + 0.02 * r)
        painter.ellipsoid(owner, iris, (0.135 * r, 0.155 * r), _bgr(design.iris), _GLOSSY, angle=tilt, roundness=0.35)
        painter.ellipsoid(owner, iris, (0.07 * r, 0.08 * r), _bgr("#0B0B10"), _GLOSSY, angle=tilt, roundness=0.3)
        glints.append((iris[0] + lx * 0.08 * r, iris[1] + ly * 0.08 * r))
    middle = ((centers[0][0] + centers[1][0]) / 2, (centers[0][1] + centers[1][1]) / 2 - 0.15 * r)
    extent = abs(centers[1][0] - centers[0][0]) / 2 + 0.55 * r + 2
    glint_r = max(0.045 * r, 0.6)
    lash = max(1, round(0.055 * r))
    lid_deg = math.degrees(tilt)
    brow_up = (0.36 * r * math.sin(tilt), -0.36 * r * math.cos(tilt))

    def draw_glints(patch, ox, oy):
        for x, y in glints:
            cv2.circle(patch, (_fixed(x - ox), _fixed(y - oy)), _fixed(glint_r), 255, -1, cv2.LINE_AA, 4)

    def draw_lashes(patch, ox, oy):
        for x, y in centers:
            cv2.ellipse(patch, (_fixed(x - ox), _fixed(y - oy)), (_fixed(eye_w * 1.02), _fixed(eye_h * 1.02)),
                        lid_deg, 200, 340, 255, lash, cv2.LINE_AA, 4)

    def draw_brows(patch, ox, oy):
        for x, y in centers:
            cv2.ellipse(patch, (_fixed(x + brow_up[0] - ox), _fixed(y + brow_up[1] - oy)),
                        (_fixed(0.2 * r), _fixed(0.08 * r)), lid_deg, 200, 340, 255, max(1, round(0.07 * r)),
                        cv2.LINE_AA, 4)

    painter.decal(middle, extent, draw_glints, np.ones(3, np.float32))
    painter.decal(middle, extent, draw_lashes, _bgr("#1A1010"))
    painter.decal(middle, extent, draw_brows, brow_colour * 0.8)


def _draw_mouth(painter: _Painter, design: CharacterDesign, center, r: float, tilt: float) -> None:
    tilt_deg = math.degrees(tilt)
    origin = (center[0], center[1] - 0.05 * r)
    if design.mouth == "smile":
        painter.decal(center, 0.3 * r + 2, lambda patch, ox, oy: cv2.ellipse(
            patch, (_fixed(origin[0] - ox), _fixed(origin[1] - oy)), (_fixed(0.22 * r), _fixed(0.13 * r)),
            tilt_deg, 15, 165, 255, max(1, round(0.06 * r)), cv2.LINE_AA, 4), _bgr("#6A1F1F"))
        return
    painter.decal(center, 0.3 * r + 2, lambda patch, ox, oy: cv2.ellipse(
        patch, (_fixed(origin[0] - ox), _fixed(origin[1] - oy)), (_fixed(0.24 * r), _fixed(0.17 * r)),
        tilt_deg, 0, 180, 255, -1, cv2.LINE_AA, 4), _bgr("#4A1414"))
    tongue = (origin[0], origin[1] + 0.11 * r)
    painter.decal(tongue, 0.15 * r + 2, lambda patch, ox, oy: cv2.ellipse(
        patch, (_fixed(tongue[0] - ox), _fixed(tongue[1] - oy)), (_fixed(0.12 * r), _fixed(0.05 * r)),
        tilt_deg, 180, 360, 255, -1, cv2.LINE_AA, 4), _bgr("#E0707A"))
    painter.decal(origin, 0.3 * r + 2, lambda patch, ox, oy: cv2.ellipse(
        patch, (_fixed(origin[0] - ox), _fixed(origin[1] - oy)), (_fixed(0.2 * r), _fixed(0.04 * r)),
        tilt_deg, 0, 180, 255, -1, cv2.LINE_AA, 4), _bgr("#FAFAF5"))


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


def _plain_backdrop(rng: np.random.Generator, width: int, height: int, horizon: float) -> np.ndarray:
    """Studio cove: a soft vertical gradient, a blurred wall/floor seam and a vignette."""
    top, bottom, floor = (_bgr(c) for c in _STUDIO_BACKDROPS[int(rng.integers(len(_STUDIO_BACKDROPS)))])
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


def _cluttered_backdrop(rng: np.random.Generator, width: int, height: int, horizon: float) -> np.ndarray:
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


def _occluder_layer(kind: str, rng: np.random.Generator, main_mask: np.ndarray, chin_y: float, width: int,
                    height: int, light: _Light):
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


def _draw_pole(rng, window, pole_x: float, pole_r: float, light: _Light):
    """A lamp post / tree trunk: a vertical shaded cylinder."""
    wy0, wy1, wx0, wx1 = window
    across = (np.arange(wx0, wx1, dtype=np.float32) - np.float32(pole_x)) / np.float32(pole_r)
    nx = np.clip(across, -1.0, 1.0)[None, :]
    shaded = _shade(nx, np.zeros_like(nx), np.sqrt(1.0 - nx * nx),
                    _bgr(["#8A8F98", "#6B4A2E", "#2F5D3A"][int(rng.integers(3))]), _GLOSSY, light)
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
    base = _bgr(["#3E8E41", "#5DA130", "#2E7D5B"][int(rng.integers(3))]) * 255
    inset = 0.3 * leaf  # the core stops short of the edge; boundary leaves reach past it
    core = [x0, y0, x1, y1]
    boundary_index = {"left": 0, "right": 2, "top": 1}[open_side]
    core[boundary_index] += inset if open_side in ("left", "top") else -inset
    cv2.rectangle(leaves, (int(core[0]) - wx0, int(core[1]) - wy0), (int(core[2]) - wx0, int(core[3]) - wy0),
                  tuple(float(c) for c in base * 0.4), -1)
    cv2.rectangle(cover, (int(core[0]) - wx0, int(core[1]) - wy0), (int(core[2]) - wx0, int(core[3]) - wy0), 255, -1)

    def leaf_at(cx: float, cy: float, brightness: float) -> None:
        center = (_fixed(cx - wx0), _fixed(cy - wy0))
        axes = (_fixed(leaf * rng.uniform(0.5, 0.8)), _fixed(leaf * rng.uniform(0.18, 0.3)))
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


def _draw_wall_edge(rng, window, x_span, edge: float, width: int, light: _Light):
    """A door frame / wall corner: flat slab, bevelled lit edge, vertical light falloff."""
    wy0, wy1, wx0, wx1 = window
    base = _bgr(["#8B6B4A", "#C8C2B8", "#5E6B7A", "#A05A3C"][int(rng.integers(4))])
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
    base = _bgr(["#8B5A3C", "#D9D2C5", "#4F5B66"][int(rng.integers(3))])
    below = np.arange(wy0, wy1, dtype=np.float32) - np.float32(top)
    rim = max(3.0, 0.03 * wy1)
    brightness = np.where(below < rim, 1.15, 0.75 - 0.25 * np.minimum(below / max(1.0, wy1 - top), 1.0))
    inside = (below >= 0).astype(np.float32)
    column = (base * (brightness * inside)[:, None]).astype(np.float32)
    shape = (wy1 - wy0, wx1 - wx0)
    return (np.ascontiguousarray(np.broadcast_to(column[:, None, :], shape + (3,))),
            np.ascontiguousarray(np.broadcast_to(inside[:, None], shape)))


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
    rng = np.random.default_rng([spec.seed, _STREAM_CAST])
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
    layout_rng = np.random.default_rng([spec.seed, _STREAM_LAYOUT])
    placements = _layout(spec, designs, layout_rng)

    main_scale, main_ground = next((p[3], p[2]) for p in placements if p[0] == 0)
    horizon = float(np.clip(main_ground - 0.3 * main_scale, 0.35 * height, 0.8 * height))
    backdrop_rng = np.random.default_rng([spec.seed, _STREAM_BACKDROP])
    if spec.background == "plain":
        image = _plain_backdrop(backdrop_rng, width, height, horizon)
    else:
        image = _cluttered_backdrop(backdrop_rng, width, height, horizon)
    image = np.ascontiguousarray(image, dtype=np.float32)

    light = _make_light(np.random.default_rng([spec.seed, _STREAM_LIGHT]), spec.lighting)
    painter = _Painter(image, light, len(designs))
    pose_rng = np.random.default_rng([spec.seed, _STREAM_POSE])
    poses = [_random_pose(pose_rng) for _ in designs]
    for index, foot_x, ground_y, scale in placements:
        _draw_character(painter, index, designs[index], poses[index], foot_x, ground_y, scale)

    owner = painter.ownership([index for index, *_ in placements])
    hidden = np.zeros((height, width), bool)
    main_full = painter.full_masks[0]
    if spec.occluder is not None and main_full.any():
        occluder_rng = np.random.default_rng([spec.seed, _STREAM_OCCLUDER])
        head_rows = np.flatnonzero(painter.head_masks[0].any(axis=1))
        chin_y = float(head_rows[-1]) + 2.0 if head_rows.size else 0.0
        colour, alpha, (y0, y1, x0, x1) = _occluder_layer(spec.occluder, occluder_rng, main_full, chin_y,
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


# ----------------------------------------------------------------------------
# The demo set.

# One cycle of the demo catalogue. Shares per cycle: 7/20 clean, 6/20 cluttered
# or multi-character, 3/20 occluded or mediocre, 4/20 degraded; the first 12
# entries already cover every category.
DEMO_CYCLE = (
    "clean-close-up", "cluttered", "blurred", "clean-medium", "multi-2", "occluded-side",
    "noisy", "clean-close-up", "multi-3-cluttered", "dark", "far-cluttered", "low-res",
    "clean-medium", "side-lit", "clean-close-up", "multi-2-cluttered", "occluded-front", "clean-medium",
    "far-multi-3", "clean-medium",
)


def _demo_spec(kind: str, rng: np.random.Generator, width: int, height: int) -> FrameSpec:
    params: dict = {"shot": "medium"}
    if kind == "clean-close-up":
        params["shot"] = "close-up"
    elif kind == "cluttered":
        params.update(background="cluttered", shot=str(rng.choice(["medium", "full-body"])))
    elif kind == "blurred":
        # Soft, as enhance_segment is for: a rendered frame blurred by a sigma of 0.8 or
        # more reads as unusable blur on the scale fitted on real frames, and is gated out.
        params["blur_sigma"] = round(float(rng.uniform(0.45, 0.6)), 2)
    elif kind == "multi-2":
        params.update(n_characters=2, shot="full-body")
    elif kind == "occluded-side":
        params["occluder"] = str(rng.choice(["left", "right"]))
    elif kind == "noisy":
        params.update(shot="full-body", noise_std=round(float(rng.uniform(15, 30)), 1))
    elif kind == "multi-3-cluttered":
        params.update(n_characters=3, background="cluttered", shot="full-body")
    elif kind == "dark":
        params["darkness"] = round(float(rng.uniform(0.6, 0.8)), 2)
    elif kind == "far-cluttered":
        params.update(background="cluttered", shot="far")
    elif kind == "low-res":
        params.update(shot=str(rng.choice(["close-up", "medium"])), downscale=round(float(rng.uniform(3, 4)), 2))
    elif kind == "side-lit":
        params.update(lighting="side", darkness=round(float(rng.uniform(0.2, 0.35)), 2))
    elif kind == "multi-2-cluttered":
        params.update(n_characters=2, background="cluttered")
    elif kind == "occluded-front":
        params.update(shot="full-body", occluder=str(rng.choice(["pole", "bottom"])))
    elif kind == "far-multi-3":
        params.update(n_characters=3, shot="far")
    elif kind != "clean-medium":
        raise ValueError(f"unknown demo kind {kind!r}")
    extras = [int(i) for i in rng.permutation([i for i in range(len(CHARACTERS)) if i != DEMO_TARGET_IDENTITY])]
    count = params.get("n_characters", 1)
    identities = (DEMO_TARGET_IDENTITY, *extras[: count - 1])
    return FrameSpec(seed=int(rng.integers(0, 2**31 - 1)), width=width, height=height, identities=identities, **params)


def demo_specs(n: int, seed: int = 7, width: int = 640, height: int = 360) -> list[FrameSpec]:
    """A deterministic, balanced mix cycling through DEMO_CYCLE; demo_specs(m)[:n] == demo_specs(n)."""
    return [_demo_spec(DEMO_CYCLE[i % len(DEMO_CYCLE)], np.random.default_rng([seed, i]), width, height)
            for i in range(n)]


def demo_kind(index: int) -> str:
    """The catalogue category of the index-th demo frame."""
    return DEMO_CYCLE[index % len(DEMO_CYCLE)]


_DEMO_FRAME = re.compile(r"demo_\d{4,}\.png")
_DEMO_TRUTH = re.compile(r"demo_\d{4,}(_mask\d+\.png|\.json)")


def _same_pixels(path: Path, image: np.ndarray) -> bool:
    if not path.is_file():
        return False
    existing = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    return existing is not None and existing.shape == image.shape and np.array_equal(existing, image)


def _write_image_if_changed(path: Path, image: np.ndarray) -> None:
    if not _same_pixels(path, image):
        write_image(path, image)


def _write_json_if_changed(path: Path, payload: dict) -> None:
    if path.is_file():
        try:
            if read_json(path) == payload:
                return
        except ValueError:  # corrupt or truncated: rewrite it
            pass
    write_json(path, payload)


def write_demo_set(out_dir, n: int, seed: int = 7, width: int = 640, height: int = 360, *,
                   truth_dir=None) -> list[Path]:
    """Render demo_specs(n) to out_dir/demo_0000.png ... and their truth to truth_dir.

    truth_dir defaults to out_dir/../demo_truth: it must lie outside out_dir,
    because the workflow treats every image under the frames folder as a frame.
    Each truth JSON names its mask PNGs (same folder). Unchanged files are left
    alone (mtimes kept); demo files of an earlier, larger or different set that
    are not part of this one are removed so the folder holds exactly this set.
    """
    out_dir = Path(out_dir)
    truth_dir = Path(truth_dir) if truth_dir is not None else out_dir.parent / "demo_truth"
    if truth_dir.resolve().is_relative_to(out_dir.resolve()):
        raise ValueError(f"truth_dir {truth_dir} must not be inside the frames folder {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    frames, truth_files = [], set()
    for index, spec in enumerate(demo_specs(n, seed=seed, width=width, height=height)):
        stem = f"demo_{index:04d}"
        image, truth = render_frame(spec)
        frame_path = out_dir / f"{stem}.png"
        _write_image_if_changed(frame_path, image)
        mask_names = []
        for k, mask in enumerate(truth["masks"]):
            mask_names.append(f"{stem}_mask{k}.png")
            _write_image_if_changed(truth_dir / mask_names[-1], mask.astype(np.uint8) * 255)
        record = {**truth, "masks": mask_names, "frame": frame_path.name, "kind": demo_kind(index)}
        _write_json_if_changed(truth_dir / f"{stem}.json", record)
        frames.append(frame_path)
        truth_files.update(mask_names + [f"{stem}.json"])
    keep_frames = {p.name for p in frames}
    for stale in out_dir.iterdir():
        if _DEMO_FRAME.fullmatch(stale.name) and stale.name not in keep_frames:
            stale.unlink()
    for stale in truth_dir.iterdir():
        if _DEMO_TRUTH.fullmatch(stale.name) and stale.name not in truth_files:
            stale.unlink()
    return frames
