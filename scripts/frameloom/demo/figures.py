"""The characters: pose, body, head, hair, eyes and mouth."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .paint import CLOTH, EYE, GLOSSY, HAIR, SHOE, SKIN, Painter, fixed
from .spec import CharacterDesign, hex_bgr

# ----------------------------------------------------------------------------
# Characters.


@dataclass(frozen=True)
class _Pose:
    arm_angles: tuple[float, float]  # radians from straight down, outwards; > pi/2 = raised
    stance: float
    head_tilt: float
    yaw: float  # -1..1, turns the face features sideways
    gaze: tuple[float, float]


def random_pose(rng: np.random.Generator) -> _Pose:
    arms = [math.radians(rng.uniform(8, 32)), math.radians(rng.uniform(8, 32))]
    if rng.random() < 0.25:  # a wave
        arms[int(rng.integers(2))] = math.radians(rng.uniform(135, 155))
    return _Pose(arm_angles=(arms[0], arms[1]), stance=float(rng.uniform(0.0, 0.04)),
                 head_tilt=math.radians(rng.uniform(-8, 8)), yaw=float(rng.uniform(-0.6, 0.6)),
                 gaze=(float(rng.uniform(-1, 1)), float(rng.uniform(-0.6, 0.6))))


def draw_character(painter: Painter, owner: int, design: CharacterDesign, pose: _Pose,
                    foot_x: float, ground_y: float, scale: float) -> None:
    def at(x: float, y: float) -> tuple[float, float]:
        return foot_x + x * scale, ground_y - y * scale

    skin, shirt, pants = hex_bgr(design.skin), hex_bgr(design.shirt), hex_bgr(design.pants)
    black = np.zeros(3, np.float32)
    limb = design.limb_thickness
    torso_top, torso_w = design.torso_top, design.torso_width
    torso_h = torso_top - design.leg_length

    painter.soft_spot(at(0, 0), (0.36 * scale, 0.06 * scale), black, 0.6)
    painter.soft_spot(at(0, 0), (0.2 * scale, 0.03 * scale), black, 0.45)

    for side in (-1, 1):
        foot = side * (torso_w * 0.24 + pose.stance)
        painter.limb(owner, at(side * torso_w * 0.22, design.leg_length + 0.04), at(foot, 0.07),
                     limb * 1.2 * scale, pants, CLOTH)
        painter.ellipsoid(owner, at(foot + side * 0.02, 0.04), (0.085 * scale, 0.048 * scale),
                          hex_bgr(design.shoes), SHOE, roundness=0.8)

    painter.ellipsoid(owner, at(0, design.leg_length + torso_h / 2),
                      (torso_w / 2 * scale, (torso_h / 2 + 0.035) * scale),
                      shirt, CLOTH, power=design.torso_power, roundness=0.85)
    # Trim stripe across the chest, shaded like the shirt it sits on.
    painter.ellipsoid(owner, at(0, torso_top - torso_h * 0.38), (torso_w / 2 * 0.97 * scale, 0.025 * scale),
                      hex_bgr(design.accent), CLOTH, power=design.torso_power, roundness=0.5)
    painter.ellipsoid(owner, at(0, design.leg_length + 0.02), (torso_w / 2 * 0.96 * scale, 0.03 * scale),
                      pants * 0.7, CLOTH, roundness=0.6)

    for side, angle in zip((-1, 1), pose.arm_angles):
        shoulder = (side * (torso_w / 2 - limb * 0.35), torso_top - 0.045)
        hand = (shoulder[0] + side * design.arm_length * math.sin(angle),
                shoulder[1] - design.arm_length * math.cos(angle))
        painter.limb(owner, at(*shoulder), at(*hand), limb * scale, shirt * 0.92, CLOTH)
        painter.ellipsoid(owner, at(*hand), (limb * 0.72 * scale, limb * 0.75 * scale), skin, SKIN)

    painter.ellipsoid(owner, at(0, torso_top + 0.01), (0.055 * scale, 0.05 * scale), skin * 0.85, SKIN)
    head_center = at(0, 1.0 - design.head_radius)
    head_r = design.head_radius * scale
    painter.soft_spot((head_center[0], head_center[1] + 0.95 * head_r), (0.75 * head_r, 0.32 * head_r),
                      black, 0.4, only_owner=owner)
    _draw_head(painter, owner, design, pose, head_center, head_r)


def _draw_head(painter: Painter, owner: int, design: CharacterDesign, pose: _Pose, center, r: float) -> None:
    cos_t, sin_t = math.cos(pose.head_tilt), math.sin(pose.head_tilt)
    tilt = pose.head_tilt

    def hp(x: float, y: float) -> tuple[float, float]:
        """Head-local point (head radii, y down) to pixels."""
        return center[0] + (x * cos_t - y * sin_t) * r, center[1] + (x * sin_t + y * cos_t) * r

    skin, hair = hex_bgr(design.skin), hex_bgr(design.hair)
    style = design.hair_style
    # Back layers first: they are hidden wherever the head is drawn over them.
    if style == "bob":
        painter.ellipsoid(owner, hp(0, 0.05), (1.2 * r, 1.1 * r), hair * 0.8, HAIR, angle=tilt,
                          cut=(0.62, 0.25, 0.04, 5.0))
    if style == "bun":
        painter.ellipsoid(owner, hp(0.1, -1.02), (0.42 * r, 0.4 * r), hair, HAIR, angle=tilt)
        painter.ellipsoid(owner, hp(0.1, -0.8), (0.3 * r, 0.1 * r), hex_bgr(design.accent), GLOSSY, angle=tilt)
    if style != "bob":
        for side in (-1, 1):
            painter.ellipsoid(owner, hp(side * 0.97, 0.1), (0.2 * r, 0.27 * r), skin * 0.95, SKIN, angle=tilt)

    painter.ellipsoid(owner, center, (r, 0.98 * r), skin, SKIN, angle=tilt, is_head=True)
    _draw_hair(painter, owner, design, hp, r, tilt)

    feature_x = pose.yaw * 0.3
    _draw_eyes(painter, owner, design, pose, [hp(feature_x + side * 0.38, 0.04) for side in (-1, 1)], r, tilt, hair)
    painter.ellipsoid(owner, hp(feature_x * 1.25, 0.3), (0.12 * r, 0.1 * r), skin * np.float32([0.92, 0.92, 1.0]),
                      SKIN, angle=tilt)
    for side in (-1, 1):
        painter.soft_spot(hp(feature_x + side * 0.6, 0.38), (0.17 * r, 0.1 * r), hex_bgr("#FF7A8A"), 0.28,
                          only_owner=owner)
    _draw_mouth(painter, design, hp(feature_x, 0.58), r, tilt)
    if style == "short":  # rex's moustache
        for side in (-1, 1):
            painter.ellipsoid(owner, hp(feature_x + side * 0.17, 0.45), (0.2 * r, 0.085 * r), hair, HAIR,
                              angle=tilt + side * 0.25)


def _draw_hair(painter: Painter, owner: int, design: CharacterDesign, hp, r: float, tilt: float) -> None:
    hair = hex_bgr(design.hair)
    style = design.hair_style
    if style == "bob":
        painter.ellipsoid(owner, hp(0, -0.1), (1.1 * r, 1.0 * r), hair, HAIR, angle=tilt, cut=(-0.38, 0.95, 0.07, 4.0))
    elif style == "spiky":
        for k in range(7):
            spike = math.radians(-75 + 25 * k)
            painter.ellipsoid(owner, hp(0.85 * math.sin(spike), -0.85 * math.cos(spike)), (0.2 * r, 0.5 * r), hair,
                              HAIR, angle=tilt + spike)
        painter.ellipsoid(owner, hp(0, -0.08), (1.05 * r, 0.98 * r), hair, HAIR, angle=tilt,
                          cut=(-0.3, 0.55, 0.08, 5.0))
    elif style == "cap":
        hat = hex_bgr(design.accent)
        painter.ellipsoid(owner, hp(0, 0.0), (1.06 * r, 0.99 * r), hair, HAIR, angle=tilt, cut=(-0.1, 0.9, 0.06, 6.0))
        painter.ellipsoid(owner, hp(0, -0.22), (1.09 * r, 0.98 * r), hat, CLOTH, angle=tilt,
                          cut=(-0.12, 0.0, 0.0, 0.0))
        painter.ellipsoid(owner, hp(0, -0.33), (1.18 * r, 0.19 * r), hat * 0.8, CLOTH, angle=tilt, roundness=0.5)
        painter.ellipsoid(owner, hp(0, -1.18), (0.12 * r, 0.1 * r), hat * 0.9, CLOTH, angle=tilt)
    elif style == "bun":
        painter.ellipsoid(owner, hp(0, -0.05), (1.04 * r, 0.99 * r), hair, HAIR, angle=tilt,
                          cut=(-0.45, 0.6, 0.03, 2.0))
    elif style == "curly":
        painter.ellipsoid(owner, hp(0, -0.06), (1.05 * r, 0.99 * r), hair, HAIR, angle=tilt,
                          cut=(-0.4, 0.7, 0.05, 6.0))
        for k in range(11):
            curl = math.radians(-105 + 21 * k)
            painter.ellipsoid(owner, hp(0.95 * math.sin(curl), -0.95 * math.cos(curl)), (0.3 * r, 0.3 * r),
                              hair * (0.9 + 0.1 * (k % 2)), HAIR)
    else:  # short
        painter.ellipsoid(owner, hp(0, -0.03), (1.03 * r, 1.0 * r), hair, HAIR, angle=tilt, cut=(-0.5, 0.8, 0.02, 3.0))


def _draw_eyes(painter: Painter, owner: int, design: CharacterDesign, pose: _Pose, centers, r: float,
               tilt: float, brow_colour: np.ndarray) -> None:
    """Glossy eyeballs with iris and pupil, then glints, lashes and brows as one decal each for both eyes."""
    eye_w, eye_h = 0.21 * r, 0.26 * r
    lx, ly, _ = painter.light.direction
    glints = []
    for center in centers:
        painter.ellipsoid(owner, center, (eye_w, eye_h), hex_bgr("#F7F7F2"), EYE, angle=tilt, roundness=0.55)
        iris = (center[0] + pose.gaze[0] * 0.07 * r, center[1] + pose.gaze[1] * 0.06 * r + 0.02 * r)
        painter.ellipsoid(owner, iris, (0.135 * r, 0.155 * r), hex_bgr(design.iris), GLOSSY, angle=tilt, roundness=0.35)
        painter.ellipsoid(owner, iris, (0.07 * r, 0.08 * r), hex_bgr("#0B0B10"), GLOSSY, angle=tilt, roundness=0.3)
        glints.append((iris[0] + lx * 0.08 * r, iris[1] + ly * 0.08 * r))
    middle = ((centers[0][0] + centers[1][0]) / 2, (centers[0][1] + centers[1][1]) / 2 - 0.15 * r)
    extent = abs(centers[1][0] - centers[0][0]) / 2 + 0.55 * r + 2
    glint_r = max(0.045 * r, 0.6)
    lash = max(1, round(0.055 * r))
    lid_deg = math.degrees(tilt)
    brow_up = (0.36 * r * math.sin(tilt), -0.36 * r * math.cos(tilt))

    def draw_glints(patch, ox, oy):
        for x, y in glints:
            cv2.circle(patch, (fixed(x - ox), fixed(y - oy)), fixed(glint_r), 255, -1, cv2.LINE_AA, 4)

    def draw_lashes(patch, ox, oy):
        for x, y in centers:
            cv2.ellipse(patch, (fixed(x - ox), fixed(y - oy)), (fixed(eye_w * 1.02), fixed(eye_h * 1.02)),
                        lid_deg, 200, 340, 255, lash, cv2.LINE_AA, 4)

    def draw_brows(patch, ox, oy):
        for x, y in centers:
            cv2.ellipse(patch, (fixed(x + brow_up[0] - ox), fixed(y + brow_up[1] - oy)),
                        (fixed(0.2 * r), fixed(0.08 * r)), lid_deg, 200, 340, 255, max(1, round(0.07 * r)),
                        cv2.LINE_AA, 4)

    painter.decal(middle, extent, draw_glints, np.ones(3, np.float32))
    painter.decal(middle, extent, draw_lashes, hex_bgr("#1A1010"))
    painter.decal(middle, extent, draw_brows, brow_colour * 0.8)


def _draw_mouth(painter: Painter, design: CharacterDesign, center, r: float, tilt: float) -> None:
    tilt_deg = math.degrees(tilt)
    origin = (center[0], center[1] - 0.05 * r)
    if design.mouth == "smile":
        painter.decal(center, 0.3 * r + 2, lambda patch, ox, oy: cv2.ellipse(
            patch, (fixed(origin[0] - ox), fixed(origin[1] - oy)), (fixed(0.22 * r), fixed(0.13 * r)),
            tilt_deg, 15, 165, 255, max(1, round(0.06 * r)), cv2.LINE_AA, 4), hex_bgr("#6A1F1F"))
        return
    painter.decal(center, 0.3 * r + 2, lambda patch, ox, oy: cv2.ellipse(
        patch, (fixed(origin[0] - ox), fixed(origin[1] - oy)), (fixed(0.24 * r), fixed(0.17 * r)),
        tilt_deg, 0, 180, 255, -1, cv2.LINE_AA, 4), hex_bgr("#4A1414"))
    tongue = (origin[0], origin[1] + 0.11 * r)
    painter.decal(tongue, 0.15 * r + 2, lambda patch, ox, oy: cv2.ellipse(
        patch, (fixed(tongue[0] - ox), fixed(tongue[1] - oy)), (fixed(0.12 * r), fixed(0.05 * r)),
        tilt_deg, 180, 360, 255, -1, cv2.LINE_AA, 4), hex_bgr("#E0707A"))
    painter.decal(origin, 0.3 * r + 2, lambda patch, ox, oy: cv2.ellipse(
        patch, (fixed(origin[0] - ox), fixed(origin[1] - oy)), (fixed(0.2 * r), fixed(0.04 * r)),
        tilt_deg, 0, 180, 255, -1, cv2.LINE_AA, 4), hex_bgr("#FAFAF5"))
