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

The parts: ``spec`` (what a frame shows, the character designs), ``degrade``,
``paint`` (light, shading, the painter), ``figures``, ``scenery`` (backdrops,
occluders), ``render`` (a spec to a frame and its truth), ``catalogue`` (the demo set).
"""

from .catalogue import DEMO_CYCLE, demo_kind, demo_specs, write_demo_set
from .degrade import apply_blur, apply_darkness, apply_downscale, apply_noise, downscaled_size
from .render import render_frame, render_reference
from .spec import (
    BACKGROUNDS,
    CHARACTERS,
    DEMO_TARGET_IDENTITY,
    LIGHTINGS,
    OCCLUDERS,
    SHOTS,
    CharacterDesign,
    FrameSpec,
)

__all__ = [
    "BACKGROUNDS",
    "CHARACTERS",
    "DEMO_TARGET_IDENTITY",
    "LIGHTINGS",
    "OCCLUDERS",
    "SHOTS",
    "CharacterDesign",
    "FrameSpec",
    "apply_blur",
    "apply_darkness",
    "apply_downscale",
    "apply_noise",
    "downscaled_size",
    "render_frame",
    "render_reference",
    "DEMO_CYCLE",
    "demo_kind",
    "demo_specs",
    "write_demo_set",
]
