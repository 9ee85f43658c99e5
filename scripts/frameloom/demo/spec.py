"""What a demo frame shows: its spec, the cast of character designs, the constants."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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
STREAM_CAST, STREAM_LAYOUT, STREAM_BACKDROP, STREAM_POSE, STREAM_LIGHT, STREAM_OCCLUDER = range(6)


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


def hex_bgr(hex_rgb: str) -> np.ndarray:
    red, green, blue = (int(hex_rgb[i:i + 2], 16) / 255.0 for i in (1, 3, 5))
    return np.array([blue, green, red], dtype=np.float32)
