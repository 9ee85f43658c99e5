"""Per-image dataset curation: quality filters, colour normalisation, alpha clean-up.

The curation rule reads the files and the config and writes the report; the
functions here take and return OpenCV uint8 BGR or BGRA arrays. A BGRA image
is a character cut-out (``strategies.cutout``): it is measured on the
character's opaque pixels only, so its flat grey backdrop neither passes for a
blurred area nor drags the brightness towards grey, and the cut edge itself is
not taken for detail.

Detail measures (``laplacian_variance``, ``edge_score``) are taken on the same
copy as the analysis step's (``analysis.detail_copy``), so the
seed's blur threshold means the same for a frame and for its 4x upscale, and
``edge_score`` is the analysis ``sharpness`` metric.

Nothing here keeps state, so every function may run in several threads at
once. ``refine_alpha`` imports pymatting on first use: its numba kernels
compile when it is imported (about 100 s on 2 cores) and are cached on disk
(numba ``cache=True``), after which the import takes 1.5-4 s.
"""

from __future__ import annotations

import cv2
import numpy as np

from .imageops import clip01, masked_norm, resize_longest
from .measures import DECIMALS, SHARPNESS_EDGE_L1, detail_copy
from .quiet import silenced_stdout

# The seed's filters. Ranges are inclusive; brightness is a grey level 0..255.
QUALITY_DEFAULTS = {"min_face_size": 64, "blur_threshold": 80.0, "brightness_range": [30, 220],
                    "saturation_range": [0.3, 2.0], "edge_score": 0.3}

# edge_score = ratio / (ratio + EDGE_SCORE_HALF) of analysis.edge_width_ratio over
# the whole image: the seed's edge_score 0.3 means a ratio of 0.43 on this scale.
# (The analysis maps the same ratio, read where the character is, with its own
# constant, fitted on real frames to the seed's low_sharpness.)
EDGE_SCORE_HALF = 1.0
OPAQUE_ABOVE = 127  # alpha: a cut-out pixel above this is the character's
# Opaque pixels this close (detail-copy px) to a cut-out's alpha edge are left
# out of the detail measures: the soft edge spans ~2 px and the 3x3 Laplacian
# and Sobel kernels reach one more, so the cut would otherwise count as detail.
CUT_EDGE_BAND = 4
GREY_SATURATION = 4.0  # mean HSV saturation (0..255) under which a source has no colour to compare with
ASPECT_TOLERANCE = 0.02  # a cut-out and its source crop may differ this much in aspect (rounding, upscale)

# Grey-world white balance corrects a camera-style cast only: a stronger
# cast is the scene's look (sunset, night) and is left to the grade.
WHITE_BALANCE_GAINS = (0.8, 1.25)
# cv2's BGR2GRAY weights. Lightness is a linear mix of the channels, so a gain
# common to the three (which keeps the hue) moves it by exactly that gain.
LUMA_BGR = np.array([0.114, 0.587, 0.299], np.float32)
LUMA_FLOOR = 0.5  # grey levels: below this a pixel is black and gains no colour

MASK_LEVEL = 0.5  # alpha at which the rough mask's edge is taken to lie
# Longest side of the crop the matting is solved on. Closed-form matting
# allocates ~200 bytes per crop pixel and takes up to a second at 512 px.
MATTING_SIZE = 512
TRIMAP_UNKNOWN = 0.5  # pymatting reads >= 0.9 as foreground, <= 0.1 as background
# Diagonal shifts tried in turn for the incomplete Cholesky preconditioner. pymatting starts at 0;
# started at 1e-4 or 1e-3 it failed (and printed a warning) on 18 and 6 of 20 generated mattes, at 1e-2 on none.
ICHOL_SHIFTS = (1e-2, 0.1, 1.0, 10.0)
# A shrunk matting pixel stays definite when all of it was; the area average
# of ones can come out a rounding error below 1.
DEFINITE_SHARE = 1.0 - 1e-4


# ----------------------------------------------------------------------------
# Quality measurement and filters.


def _colour_and_opaque(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BGR colour and the uint8 mask (255) of the pixels that count: all of a
    BGR image, the opaque ones of a BGRA cut-out."""
    if image.shape[2] == 4:
        return image[..., :3], cv2.threshold(image[..., 3], OPAQUE_ABOVE, 255, cv2.THRESH_BINARY)[1]
    return image, np.full(image.shape[:2], 255, np.uint8)


def _away_from_cut(opaque: np.ndarray) -> np.ndarray:
    """Opaque pixels at least CUT_EDGE_BAND px from a transparent one (the
    image border is not a cut: erosion leaves it alone, so a BGR mask stays full)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * CUT_EDGE_BAND + 1,) * 2)
    return cv2.erode(opaque, kernel)


def _detail_measures(grey: np.ndarray, inner: np.ndarray) -> tuple[float, float]:
    """(edge_score, laplacian_variance) over the ``inner`` pixels.

    edge_score is the analysis's whole-frame edge-width ratio with its edge
    pixels limited to ``inner``: the Laplacian energy over the Sobel gradient
    energy / 64 on pixels with Sobel |gx| + |gy| >= SHARPNESS_EDGE_L1, a ratio
    set by edge width (blur), not by contrast or edge count; ratio / (ratio +
    EDGE_SCORE_HALF), 0 without edges.
    """
    laplacian = cv2.Laplacian(grey, cv2.CV_16S, ksize=1)
    laplacian_variance = float(cv2.meanStdDev(laplacian, mask=inner)[1][0, 0]) ** 2
    gradients = [cv2.Sobel(grey, cv2.CV_16S, dx, 1 - dx) for dx in (0, 1)]
    l1 = cv2.add(*(cv2.convertScaleAbs(gradient) for gradient in gradients))
    support = cv2.bitwise_and(cv2.threshold(l1, SHARPNESS_EDGE_L1 - 1, 255, cv2.THRESH_BINARY)[1], inner)
    if cv2.countNonZero(support) == 0:
        return 0.0, laplacian_variance
    gradient_energy = sum(masked_norm(gradient, support, cv2.NORM_L2SQR) for gradient in gradients) / 64.0
    ratio = masked_norm(laplacian, support, cv2.NORM_L2SQR) / gradient_energy
    return clip01(ratio / (ratio + EDGE_SCORE_HALF)), laplacian_variance


def _mean_saturation(bgr: np.ndarray, mask: np.ndarray) -> float:
    return cv2.mean(cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)[..., 1], mask=mask)[0]


def _source_on(source: np.ndarray, colour: np.ndarray, opaque: np.ndarray,
               image_has_alpha: bool) -> tuple[np.ndarray, np.ndarray]:
    """The source's colour and the mask to measure it on, like for like with the image.

    A BGRA source is measured on its own opaque pixels. A BGR source behind a
    cut-out must be the frame crop the cut-out was made from (any scale): it
    is resized onto the cut-out and measured under the cut-out's alpha, so the
    character is compared with the same character, not with the whole frame.
    """
    if source.shape[2] == 4 or not image_has_alpha:
        return _colour_and_opaque(detail_copy(source))
    height, width = colour.shape[:2]
    source_height, source_width = source.shape[:2]
    if abs(source_width * height / (source_height * width) - 1.0) > ASPECT_TOLERANCE:
        raise ValueError(f"a BGR source for a cut-out must be its frame crop: source {source_width}x"
                         f"{source_height} does not have the cut-out's aspect ({width}x{height})")
    return cv2.resize(source, (width, height), interpolation=cv2.INTER_AREA), opaque


def _saturation_ratio(colour: np.ndarray, opaque: np.ndarray, source: np.ndarray | None,
                      image_has_alpha: bool) -> float:
    if source is None:
        return 1.0
    source_saturation = _mean_saturation(*_source_on(source, colour, opaque, image_has_alpha))
    if source_saturation < GREY_SATURATION:
        return 1.0
    return _mean_saturation(colour, opaque) / source_saturation


def measure_quality(image: np.ndarray, source: np.ndarray | None = None,
                    faces: list[list[int]] | None = None) -> dict:
    """Measurements of one produced image (BGR or BGRA), rounded like the analysis record.

    A BGRA image counts only its opaque pixels (alpha > OPAQUE_ABOVE), and
    its detail measures also leave out CUT_EDGE_BAND px along the alpha edge.
    Measured on the analysis detail copy (``analysis.detail_copy``):
      laplacian_variance: variance of the 3x3 Laplacian of the grey image;
      brightness: mean grey level 0..255;
      saturation_ratio: mean HSV saturation of the image over that of
        ``source`` (the frame or crop it was made from, see _source_on);
        1.0 without a source or when the source is grey;
      edge_score: the analysis sharpness metric 0..1 (see _detail_measures);
      face_size: height in px of the largest of ``faces`` ([x, y, w, h] in
        this image's coordinates), None when no face box was given.
    """
    has_alpha = image.shape[2] == 4
    colour, opaque = _colour_and_opaque(detail_copy(image))
    grey = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    edge_score, laplacian_variance = _detail_measures(grey, _away_from_cut(opaque))
    return {
        "laplacian_variance": round(laplacian_variance, DECIMALS),
        "brightness": round(cv2.mean(grey, mask=opaque)[0], DECIMALS),
        "saturation_ratio": round(_saturation_ratio(colour, opaque, source, has_alpha), DECIMALS),
        "edge_score": round(edge_score, DECIMALS),
        "face_size": int(max(faces, key=lambda box: box[2] * box[3])[3]) if faces else None,
    }


def quality_failures(measures: dict, cfg: dict, face_expected: bool) -> list[dict]:
    """Every filter the image fails, as {"filter", "value", "limit"}, in QUALITY_DEFAULTS order.

    ``cfg`` holds the filters' limits; a key it lacks takes QUALITY_DEFAULTS.
    The face size is judged only when a face is expected and one was given:
    whether a face should have been found is the caller's question.
    """
    limits = {**QUALITY_DEFAULTS, **cfg}
    face_size = measures["face_size"]
    low_brightness, high_brightness = limits["brightness_range"]
    low_saturation, high_saturation = limits["saturation_range"]
    checks = (
        ("min_face_size", face_size,
         face_expected and face_size is not None and face_size < limits["min_face_size"]),
        ("blur_threshold", measures["laplacian_variance"], measures["laplacian_variance"] < limits["blur_threshold"]),
        ("brightness_range", measures["brightness"], not low_brightness <= measures["brightness"] <= high_brightness),
        ("saturation_range", measures["saturation_ratio"],
         not low_saturation <= measures["saturation_ratio"] <= high_saturation),
        ("edge_score", measures["edge_score"], measures["edge_score"] < limits["edge_score"]),
    )
    return [{"filter": name, "value": value, "limit": limits[name]} for name, value, failed in checks if failed]


# ----------------------------------------------------------------------------
# Colour normalisation.


def _grey_world_gains(colour: np.ndarray, opaque: np.ndarray) -> np.ndarray:
    """Per-channel gains that bring the channel means together, within WHITE_BALANCE_GAINS."""
    means = np.maximum(np.array(cv2.mean(colour, mask=opaque)[:3], np.float32), 1.0)
    return np.clip(means.mean() / means, *WHITE_BALANCE_GAINS).astype(np.float32)


def _spread_from_opaque(values: np.ndarray, opaque: np.ndarray) -> np.ndarray:
    """``values`` with every other pixel given its nearest opaque pixel's value,
    so a cut-out's backdrop adds no spike of its own to the CLAHE histograms."""
    if cv2.countNonZero(opaque) == opaque.size:
        return values
    labels = cv2.distanceTransformWithLabels(cv2.bitwise_not(opaque), cv2.DIST_L2, 3,
                                             labelType=cv2.DIST_LABEL_PIXEL)[1]
    # DIST_LABEL_PIXEL numbers the opaque (zero) pixels 1.. in raster order.
    return values[opaque > 0][labels - 1]


def _relit(colour: np.ndarray, luma: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Colours (float BGR) brought to lightness ``target`` with each pixel's hue kept.

    HSV hue is unchanged by any map c -> g c + w (255 - c) common to the three
    channels. First a gain g (target / luma), capped so that no channel
    passes 255; what the cap leaves short is made up by mixing towards white,
    which lowers saturation instead of clipping a channel and turning the hue.
    """
    gain = np.minimum(target / np.maximum(luma, LUMA_FLOOR), 255.0 / np.maximum(colour.max(axis=2), LUMA_FLOOR))
    scaled = colour * gain[..., None]
    reached = luma * gain
    towards_white = np.clip((target - reached) / np.maximum(255.0 - reached, LUMA_FLOOR), 0.0, 1.0)
    return scaled + towards_white[..., None] * (255.0 - scaled)


def normalize_colour(image: np.ndarray, clip_limit: float = 2.0, tile: int = 8,
                     white_balance: bool = False) -> np.ndarray:
    """Mild local contrast on the lightness only, every pixel keeping its hue.

    BGR or BGRA in, same shape and dtype out. CLAHE (``clip_limit``, a
    ``tile`` x ``tile`` grid) runs on the luma (cv2's grey); each pixel then
    moves to its new luma along its own hue (_relit). With ``white_balance``,
    grey-world gains (within WHITE_BALANCE_GAINS) are applied first. On BGRA
    only opaque pixels drive the statistics; alpha and the colour of fully
    transparent pixels are returned unchanged.
    """
    colour, opaque = _colour_and_opaque(image)
    if cv2.countNonZero(opaque) == 0:
        return image.copy()
    work = colour.astype(np.float32)
    if white_balance:
        work *= _grey_world_gains(colour, opaque)
    luma = work @ LUMA_BGR
    luma_u8 = _spread_from_opaque(np.clip(luma + 0.5, 0, 255).astype(np.uint8), opaque)
    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tile, tile))
    # The luma shift CLAHE asks for, added to the exact luma so that rounding
    # moves nothing where CLAHE changes nothing.
    target = np.clip(luma + (clahe.apply(luma_u8).astype(np.float32) - luma_u8), 0.0, 255.0)
    result = np.clip(_relit(work, luma, target) + 0.5, 0, 255).astype(np.uint8)
    if image.shape[2] == 3:
        return result
    transparent = image[..., 3] == 0
    result[transparent] = colour[transparent]
    return np.dstack([result, image[..., 3]])


# ----------------------------------------------------------------------------
# Alpha clean-up.


def _trimap(sure_foreground: np.ndarray, sure_background: np.ndarray) -> np.ndarray:
    """pymatting trimap (float64): 1 foreground, 0 background, TRIMAP_UNKNOWN between."""
    trimap = np.full(sure_foreground.shape, TRIMAP_UNKNOWN)
    trimap[sure_foreground] = 1.0
    trimap[sure_background] = 0.0
    return trimap


def _shifted_ichol(matrix):
    """pymatting's default preconditioner, incomplete Cholesky, starting from a small diagonal shift:
    the unshifted attempt often fails on matting Laplacians and prints a warning before retrying.
    The shift changes only the preconditioner, never the solution."""
    from pymatting import ichol

    # ichol prints a warning for every shift that fails; job output must stay clean (they run in
    # threads of the Snakemake process), and the next shift is taken anyway.
    with silenced_stdout():
        return ichol(matrix, shifts=ICHOL_SHIFTS)


def _solve_matte(bgr: np.ndarray, sure_foreground: np.ndarray, sure_background: np.ndarray) -> np.ndarray:
    """Closed-form matte (Levin et al. 2008) of a crop, solved at longest side <= MATTING_SIZE.

    A shrunk crop keeps a pixel definite only where every full-size pixel
    under it was, so the unknown band never vanishes; the matte is scaled back
    to the crop's size.
    """
    from pymatting import estimate_alpha_cf, jacobi  # compiles numba kernels on first import: see module docstring

    height, width = bgr.shape[:2]
    small = resize_longest(bgr, MATTING_SIZE)
    if small.shape[:2] != (height, width):
        size = (small.shape[1], small.shape[0])
        sure_foreground, sure_background = (
            cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= DEFINITE_SHARE
            for mask in (sure_foreground, sure_background))
    rgb, trimap = small.astype(np.float64) / 255.0, _trimap(sure_foreground, sure_background)
    try:
        matte = estimate_alpha_cf(rgb, trimap, preconditioner=_shifted_ichol)
    except ValueError:  # no incomplete Cholesky factor exists: the plain diagonal one always does
        matte = estimate_alpha_cf(rgb, trimap, preconditioner=jacobi)
    return cv2.resize(matte.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def refine_alpha(image: np.ndarray, alpha: np.ndarray, band: int = 4) -> np.ndarray:
    """A rough character alpha (float 0..1, HxW of the BGR ``image``) re-fitted by alpha matting.

    Trimap from the mask (alpha >= MASK_LEVEL): definite foreground is the
    mask eroded by ``band`` px, definite background outside it dilated by
    ``band`` px, and closed-form matting (pymatting) solves the band between,
    on a crop around it (_solve_matte). Only that band changes: no
    threshold or morphology touches the result, so its edge stays soft and
    the definite pixels stay exactly 1 and 0. Without definite foreground (a
    shape thinner than 2 x band) or definite background (a mask that leaves
    only slivers) there is nothing to anchor the matte to on one side, and the
    alpha comes back unchanged. Returns float32 0..1.
    """
    mask = (alpha >= MASK_LEVEL).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1,) * 2)
    sure_foreground = cv2.erode(mask, kernel).astype(bool)
    sure_background = ~cv2.dilate(mask, kernel).astype(bool)
    unknown = ~(sure_foreground | sure_background)
    if not sure_foreground.any() or not sure_background.any():
        return np.clip(alpha, 0.0, 1.0).astype(np.float32)
    refined = sure_foreground.astype(np.float32)
    if not unknown.any():
        return refined
    x, y, w, h = cv2.boundingRect(unknown.astype(np.uint8))
    # A margin of definite pixels all round: every unknown pixel gets full matting windows.
    height, width = mask.shape
    x0, y0, x1, y1 = max(0, x - band), max(0, y - band), min(width, x + w + band), min(height, y + h + band)
    crop = np.s_[y0:y1, x0:x1]
    matte = _solve_matte(image[crop], sure_foreground[crop], sure_background[crop])
    refined[crop][unknown[crop]] = np.clip(matte[unknown[crop]], 0.0, 1.0)
    return refined
