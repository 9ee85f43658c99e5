"""Frame measures: the working copies, background complexity, lighting, sharpness, noise,
quality, occlusion and the picture (matte bars, exposure, title cards). See frameloom.analysis."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .imageops import clip01, masked_norm, resize_longest

WORK_SIZE = 512
DETAIL_SIZE = 1024
DECIMALS = 4


def _halve(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)


def detail_copy(image: np.ndarray) -> np.ndarray:
    """The frame halved while its longest side exceeds 1.5 x DETAIL_SIZE.

    Sharpness and Laplacian variance are read on this copy, here and in
    curation, so a frame and its 4x upscale are measured at the same scale."""
    while max(image.shape[:2]) > 1.5 * DETAIL_SIZE:
        image = _halve(image)
    return image


def work_copy(detail_bgr: np.ndarray) -> np.ndarray:
    """Longest side <= WORK_SIZE: halvings first, one INTER_AREA step for the rest."""
    while max(detail_bgr.shape[:2]) >= 2 * WORK_SIZE:
        detail_bgr = _halve(detail_bgr)
    return resize_longest(detail_bgr, WORK_SIZE)


KERNEL_3X3 = np.ones((3, 3), np.uint8)


def _percentiles_u8(gray: np.ndarray, percents: tuple[float, ...]) -> list[int]:
    """Per percent, the lowest grey level with at least that % of the pixels at or below it
    (one histogram for all of them)."""
    cumulative = np.cumsum(cv2.calcHist([gray], [0], None, [256], [0, 256]).ravel())
    return [int(np.searchsorted(cumulative, percent / 100.0 * gray.size)) for percent in percents]


def _percentile_u8(gray: np.ndarray, percent: float) -> int:
    return _percentiles_u8(gray, (percent,))[0]


def _gradient_magnitude_at(gray: np.ndarray, flat_indices: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude at the given pixels only (the square root
    over the whole frame would be mostly thrown away)."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3).ravel()[flat_indices]
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3).ravel()[flat_indices]
    return cv2.magnitude(gx, gy).ravel()


# ----------------------------------------------------------------------------
# Complexity: how busy the background is (edges, colours, texture).

# The decision engine asks about the *background* ("simple_background"), so
# pixels inside the character boxes are left out whenever at least
# MIN_BACKGROUND_SHARE of the frame remains. Normalisers are the values that
# map to 1.0: busy sets reach them, studio backdrops stay near 0.
EDGE_DENSITY_FULL = 0.12  # share of Canny edge pixels
COLOR_BITS_PLAIN = 3.0  # colour entropy (bits, 8 levels per channel) of a plain set
COLOR_BITS_SPAN = 3.5  # ... and how many more bits make a set fully busy
TEXTURE_FULL = 20.0  # mean 5x5 local standard deviation, grey levels
MIN_BACKGROUND_SHARE = 0.05


def measure_complexity(work_bgr: np.ndarray, work_gray: np.ndarray, edges: np.ndarray,
                background: np.ndarray) -> tuple[float, dict]:
    if cv2.countNonZero(background) < MIN_BACKGROUND_SHARE * background.size:
        background = np.full_like(background, 255)
    # edge_density: share of Canny edge pixels / EDGE_DENSITY_FULL.
    edge_density = clip01(cv2.mean(edges, mask=background)[0] / 255.0 / EDGE_DENSITY_FULL)
    # color_diversity: Shannon entropy of the colour histogram at 8 levels per
    # channel, (bits - COLOR_BITS_PLAIN) / COLOR_BITS_SPAN. Entropy, unlike a
    # count of distinct colours, ignores the long tail noise and gradients make.
    counts = cv2.calcHist([work_bgr], [0, 1, 2], background, [8, 8, 8], [0, 256] * 3).ravel()
    probabilities = counts[counts > 0] / counts.sum()
    entropy_bits = float(-(probabilities * np.log2(probabilities)).sum())
    color_diversity = clip01((entropy_bits - COLOR_BITS_PLAIN) / COLOR_BITS_SPAN)
    # texture: mean local (5x5) standard deviation of grey / TEXTURE_FULL.
    texture = clip01(cv2.mean(_local_std(work_gray, 5), mask=background)[0] / TEXTURE_FULL)
    complexity = 0.4 * edge_density + 0.3 * color_diversity + 0.3 * texture
    return complexity, {"edge_density": edge_density, "color_diversity": color_diversity, "texture": texture}


def _local_std(gray: np.ndarray, window: int) -> np.ndarray:
    values = gray.astype(np.float32)
    mean = cv2.blur(values, (window, window), borderType=cv2.BORDER_REFLECT)
    mean_sq = cv2.blur(values * values, (window, window), borderType=cv2.BORDER_REFLECT)
    return np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))


def background_mask(instances: list[dict], shape: tuple[int, int], width: int, height: int) -> np.ndarray:
    """Work-size uint8 mask (255) of what lies outside every character box."""
    background = np.full(shape, 255, np.uint8)
    scale_x, scale_y = shape[1] / width, shape[0] / height
    for instance in instances:
        x, y, w, h = instance["box"]
        background[int(y * scale_y):math.ceil((y + h) * scale_y), int(x * scale_x):math.ceil((x + w) * scale_x)] = 0
    return background


# ----------------------------------------------------------------------------
# Lighting: exposure and evenness.

DYNAMIC_RANGE_FULL = 0.7  # (p99 - p1) / 255 of a well-exposed frame
PATCH_GRID = 8  # local consistency is judged on an 8x8 grid of patch means
PATCH_SPREAD_ZERO = 0.25  # std of patch means (/255) at which consistency reaches 0
BALANCED_MEAN = (0.35, 0.75)  # mean brightness needing no correction (high-key studio sets are fine)
BALANCE_FALLOFF = 0.3  # ... and how far beyond it balance falls to 0


def measure_lighting(work_gray: np.ndarray, exposure: dict) -> tuple[float, dict]:
    # dynamic_range: luminance spread between the 1st and 99th percentile
    # (``measure_exposure``, 0..1) over DYNAMIC_RANGE_FULL.
    dynamic_range = clip01((exposure["p99"] - exposure["p1"]) / DYNAMIC_RANGE_FULL)
    # local_consistency: 1 - std of the 8x8 patch mean brightnesses (/255)
    # over PATCH_SPREAD_ZERO; blotchy or half-shadowed lighting spreads them.
    grid = (min(PATCH_GRID, work_gray.shape[1]), min(PATCH_GRID, work_gray.shape[0]))
    patch_means = cv2.resize(work_gray, grid, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    local_consistency = clip01(1.0 - patch_means.std() / PATCH_SPREAD_ZERO)
    # brightness_balance: 1 for a mean inside BALANCED_MEAN, falling linearly
    # to 0 over BALANCE_FALLOFF beyond it (under- or over-exposure).
    mean = float(work_gray.mean()) / 255.0
    excess = max(BALANCED_MEAN[0] - mean, mean - BALANCED_MEAN[1], 0.0)
    brightness_balance = clip01(1.0 - excess / BALANCE_FALLOFF)
    lighting = 0.4 * dynamic_range + 0.2 * local_consistency + 0.4 * brightness_balance
    return lighting, {
        "dynamic_range": dynamic_range,
        "local_consistency": local_consistency,
        "brightness_balance": brightness_balance,
    }


# ----------------------------------------------------------------------------
# Sharpness, noise, resolution, quality.

# Sharpness is read where the character is, and where the camera focuses.
# The subject ratio is the edge-width ratio on the edge pixels inside the
# character's face boxes (each grown by SUBJECT_FACE_MARGIN on every side),
# else inside its measured boxes: a character smeared by motion blur before
# a sharp set is blurred. The focus ratio is the FOCUS_PERCENTILE-th tile of
# a FOCUS_GRID: in film the camera focuses on the character, so a soft
# depth-of-field background does not make a frame blurred, while a frame
# smeared by motion blur or fog has no sharp tile. Tiles (or subjects) with
# too few edge pixels say nothing (sky, fur). Sharpness reads the geometric
# mean of the two (the focus ratio alone without a located character): a
# rendered face is smooth, so its own ratio runs low even in focus.
SUBJECT_FACE_MARGIN = 0.25
SUBJECT_MIN_EDGE_PIXELS = 24
FOCUS_GRID = (8, 6)
FOCUS_PERCENTILE = 90
FOCUS_MIN_EDGE_SHARE = 0.02
# Fitted on the 194 labelled real frames of ../shared/data (Big Buck Bunny,
# Caminandes 3, Sintel, Elephants Dream, Cosmos Laundromat, Spring): that
# ratio has a median of 2.8 on characters labelled sharp, of 1.7 on soft and
# motion-blurred ones and of 1.2 on unreadable ones, so a ratio of 1.7 maps
# to the seed's low_sharpness 0.4 (ratio / (ratio + SHARPNESS_HALF)) and
# 1.2 to the frame gate's unusable_sharpness 0.32.
SHARPNESS_HALF = 2.55
SHARPNESS_EDGE_L1 = 40  # Sobel |gx| + |gy| of an edge pixel: a step of >= 10 grey levels
NOISE_FLAT_PERCENTILE = 40  # the flattest 40% of pixels carry the noise estimate
NOISE_FREE_SIGMA = 1.0  # estimated sigma that renders and codecs leave anyway
NOISE_FULL_SIGMA = 8.0  # estimated sigma of heavy noise (Gaussian std ~12 grey levels)
RESOLUTION_FULL_PIXELS = 512 * 512  # one SD-sized training crop
# Immerkaer's kernel [[1, -2, 1], [-2, 4, -2], [1, -2, 1]] is this row times itself.
IMMERKAER_ROW = np.array([1, -2, 1], np.float32)


def edge_width_ratio(laplacian_energy: float, gradient_energy: float) -> float:
    """sum(Lap^2) / sum(|Sobel grad|^2 / 64) over edge pixels: ~4 for a crisp
    step, divided by roughly 1 + s^2 by a Gaussian blur of sigma s; it depends
    on edge width (blur), not on contrast or edge count."""
    return laplacian_energy / gradient_energy if gradient_energy > 0 else 0.0


def sharpness_of_ratio(ratio: float) -> float:
    return clip01(ratio / (ratio + SHARPNESS_HALF))


def measure_sharpness(detail_gray: np.ndarray, subject_boxes: list) -> tuple[float, float, dict]:
    """(sharpness 0..1, raw Laplacian variance of the detail copy, parts).

    Raw Laplacian variance grows with the amount of content as much as with
    focus (a sharp character on a plain backdrop scores below a blurred busy
    street), so sharpness reads the edge-width ratio instead
    (``edge_width_ratio``) on edge pixels (Sobel |gx| + |gy| >=
    SHARPNESS_EDGE_L1): over the whole frame (``whole_ratio``), per focus
    tile (``focus_ratio``) and inside ``subject_boxes`` (x, y, w, h on the
    detail copy; ``subject_ratio``, None without enough edges there).
    sharpness = ratio / (ratio + SHARPNESS_HALF) of the geometric mean of
    the subject and focus ratios, or of the focus ratio alone; 0 without edges.
    """
    laplacian = cv2.Laplacian(detail_gray, cv2.CV_32F, ksize=1)
    laplacian_variance = float(cv2.meanStdDev(laplacian)[1][0, 0]) ** 2
    gx = cv2.Sobel(detail_gray, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(detail_gray, cv2.CV_32F, 0, 1)
    support = ((np.abs(gx) + np.abs(gy)) >= SHARPNESS_EDGE_L1).astype(np.float32)
    laplacian_energy = laplacian * laplacian * support
    gradient_energy = (gx * gx + gy * gy) * support / 64.0
    whole = edge_width_ratio(float(laplacian_energy.sum()), float(gradient_energy.sum()))
    # Per-tile means by area resizing: one pass each instead of a loop over tiles.
    grid = (min(FOCUS_GRID[0], detail_gray.shape[1]), min(FOCUS_GRID[1], detail_gray.shape[0]))
    tile_support = cv2.resize(support, grid, interpolation=cv2.INTER_AREA)
    tile_laplacian = cv2.resize(laplacian_energy, grid, interpolation=cv2.INTER_AREA)
    tile_gradient = cv2.resize(gradient_energy, grid, interpolation=cv2.INTER_AREA)
    readable = (tile_support >= FOCUS_MIN_EDGE_SHARE) & (tile_gradient > 0)
    if readable.any():
        focus = float(np.percentile(tile_laplacian[readable] / tile_gradient[readable], FOCUS_PERCENTILE))
    else:
        focus = whole
    subject = None
    if subject_boxes:
        inside = np.zeros(detail_gray.shape, bool)
        for x, y, w, h in subject_boxes:
            inside[max(0, y):max(0, y + h), max(0, x):max(0, x + w)] = True
        if int(support[inside].sum()) >= SUBJECT_MIN_EDGE_PIXELS:
            subject = edge_width_ratio(float(laplacian_energy[inside].sum()), float(gradient_energy[inside].sum()))
    parts = {"whole_ratio": whole, "focus_ratio": focus, "subject_ratio": subject}
    read = focus if subject is None else math.sqrt(subject * focus)
    return sharpness_of_ratio(read), laplacian_variance, parts


def subject_boxes_of(faces: list[dict], cast, scale: float) -> list:
    """Where the character is, on a copy ``scale`` times the picture: its faces
    (grown by SUBJECT_FACE_MARGIN), else the measured character boxes."""
    if faces:
        boxes = [(x - SUBJECT_FACE_MARGIN * w, y - SUBJECT_FACE_MARGIN * h,
                  (1 + 2 * SUBJECT_FACE_MARGIN) * w, (1 + 2 * SUBJECT_FACE_MARGIN) * h)
                 for x, y, w, h in (face["box"] for face in faces)]
    elif cast.measured:
        boxes = [instance["box"] for instance in cast.instances]
    else:
        return []
    return [tuple(int(round(v * scale)) for v in box) for box in boxes]


def measure_noise(detail_gray: np.ndarray) -> float:
    """Sensor-style noise, 0 (clean) .. 1 (heavy).

    Immerkaer's estimator: the 3x3 kernel above cancels planar image content,
    leaving noise of std 6 sigma, so sigma = sqrt(pi/2) / 6 * mean|residual|.
    Only the flattest pixels (lowest NOISE_FLAT_PERCENTILE % of the L1
    gradient of a 7x7 box-smoothed copy) are used, so edges and texture are
    not taken for noise (a busy set and a plain one give the same estimate).
    The estimate reads about 2/3 of the true Gaussian std; the constants are
    in its units.
    noise = (sigma - NOISE_FREE_SIGMA) / (NOISE_FULL_SIGMA - NOISE_FREE_SIGMA).
    """
    residual = cv2.sepFilter2D(detail_gray, cv2.CV_16S, IMMERKAER_ROW, IMMERKAER_ROW, borderType=cv2.BORDER_REFLECT)
    smooth = cv2.blur(detail_gray, (7, 7))
    structure = cv2.add(*(cv2.convertScaleAbs(cv2.Sobel(smooth, cv2.CV_16S, dx, 1 - dx)) for dx in (0, 1)))
    flat = cv2.inRange(structure, 0, _percentile_u8(structure, NOISE_FLAT_PERCENTILE))
    mean_residual = masked_norm(residual, flat, cv2.NORM_L1) / max(1, cv2.countNonZero(flat))
    sigma = math.sqrt(math.pi / 2.0) / 6.0 * mean_residual
    return clip01((sigma - NOISE_FREE_SIGMA) / (NOISE_FULL_SIGMA - NOISE_FREE_SIGMA))


def measure_quality(sharpness: float, noise: float, width: int, height: int) -> tuple[float, dict]:
    # resolution: true pixel count over a 512x512 training crop.
    resolution = clip01(width * height / RESOLUTION_FULL_PIXELS)
    # The worst of sharpness, 1 - noise and resolution counts half, their
    # mean the other half: one bad aspect is enough to make a frame poor.
    goods = (sharpness, 1.0 - noise, resolution)
    quality = 0.5 * min(goods) + 0.5 * sum(goods) / 3.0
    return quality, {"sharpness": sharpness, "noise": noise, "resolution": resolution}



# ----------------------------------------------------------------------------
# Occlusion: something between the camera and the subject.

BORDER_BAND = 0.08  # border band width, share of the shorter side
BORDER_SEGMENTS = (8, 8, 4, 4)  # segments along the top, bottom, left, right band
BORDER_EDGE_DENSITY_FULL = 0.10  # edge share of a border band full of props
BORDER_EDGE_SPREAD_FULL = 0.06  # std of segment edge shares when one side is busy
NEAR_SHARE_FULL = 0.05  # near layer over 5% of the frame = certainly occluded
DEFOCUS_REBLUR_SIGMA = 1.0
DEFOCUS_SOFT_SIGMA = 2.0  # edges blurred beyond this (work px) are out of focus
DEFOCUS_SHARP_SIGMA = 1.2  # ... below this, in focus
# soft share x sharp share: uniformly sharp, blurred or noisy frames stay
# under the floor; a defocused foreground before a sharp subject passes span.
DEFOCUS_LAYERING_FLOOR = 0.006
DEFOCUS_LAYERING_SPAN = 0.018


def measure_occlusion(work_gray: np.ndarray, edges: np.ndarray, near_share: float) -> tuple[float, dict]:
    band = max(1, round(BORDER_BAND * min(edges.shape)))
    sides = (edges[:band], edges[-band:], edges[:, :band].T, edges[:, -band:].T)
    # border_edge_density: Canny edge share in the band around the frame
    # over BORDER_EDGE_DENSITY_FULL.
    density = sum(np.count_nonzero(side) for side in sides) / sum(side.size for side in sides)
    border_edge_density = clip01(density / BORDER_EDGE_DENSITY_FULL)
    # border_edge_variance: std of the edge share of 24 border segments over
    # BORDER_EDGE_SPREAD_FULL (something entering from one side makes the
    # border uneven).
    segment_shares = [
        np.count_nonzero(chunk) / chunk.size
        for side, count in zip(sides, BORDER_SEGMENTS)
        for chunk in np.array_split(side, min(count, side.shape[1]), axis=1)
    ]
    border_edge_variance = clip01(float(np.std(segment_shares)) / BORDER_EDGE_SPREAD_FULL)
    # depth_discontinuity: evidence of a nearer layer, the larger of (a) the
    # frame share of objects crossing or entering the frame in front of the
    # backdrop (see find_cast) over NEAR_SHARE_FULL, and (b) defocus layering.
    depth_discontinuity = max(clip01(near_share / NEAR_SHARE_FULL), _defocus_layering(work_gray))
    occlusion = 0.15 * border_edge_density + 0.15 * border_edge_variance + 0.7 * depth_discontinuity
    return occlusion, {
        "border_edge_density": border_edge_density,
        "border_edge_variance": border_edge_variance,
        "depth_discontinuity": depth_discontinuity,
    }


def _defocus_layering(work_gray: np.ndarray) -> float:
    """In-focus and strongly out-of-focus edges in one frame (depth layers).

    Edge blur per edge pixel by re-blurring (Zhuo & Sim 2011): with
    R = |grad I| / |grad (I * G_s0)|, the edge's own blur is s0 / sqrt(R^2 - 1).
    Low Canny thresholds, so that soft defocused edges are found at all; the
    shares are weighted by gradient magnitude over the stronger half of the
    edges, so faint shading does not count. Returns
    (soft share x sharp share - FLOOR) / SPAN, clipped.
    """
    edges = np.flatnonzero(cv2.Canny(work_gray, 10, 30))
    if edges.size < 16:
        return 0.0
    strength = _gradient_magnitude_at(work_gray, edges)
    reblurred = _gradient_magnitude_at(cv2.GaussianBlur(work_gray.astype(np.float32), (0, 0), DEFOCUS_REBLUR_SIGMA),
                                       edges)
    strong = strength >= np.median(strength)
    strength, reblurred = strength[strong], reblurred[strong]
    total = float(strength.sum())
    if total <= 0:
        return 0.0
    ratio = strength / np.maximum(reblurred, 1e-3)
    blur = DEFOCUS_REBLUR_SIGMA / np.sqrt(np.maximum(ratio * ratio - 1.0, 1e-4))
    soft = float(strength[blur >= DEFOCUS_SOFT_SIGMA].sum()) / total
    sharp = float(strength[blur < DEFOCUS_SHARP_SIGMA].sum()) / total
    return clip01((soft * sharp - DEFOCUS_LAYERING_FLOOR) / DEFOCUS_LAYERING_SPAN)


# ----------------------------------------------------------------------------
# The picture: matte bars, exposure, title cards.

# A film frame often carries letterbox (or pillarbox) bars: black rows or
# columns, equal on both sides, that are no part of the picture. Left in,
# they darken the lighting, fake a busy border and make every subject look
# smaller. A row or column is a bar when its brightest pixel is at most
# MATTE_LEVEL; bars are cut only as deep as both opposite sides have them,
# and only while the picture keeps MATTE_MIN_PICTURE of the side (a frame
# dark throughout is a dark frame, not bars).
MATTE_LEVEL = 20
MATTE_MIN_PICTURE = 0.5


def picture_area(gray: np.ndarray) -> tuple[int, int, int, int]:
    """x, y, w, h of the frame without its letterbox or pillarbox bars."""
    height, width = gray.shape[:2]
    lit_rows = np.flatnonzero(cv2.reduce(gray, 1, cv2.REDUCE_MAX).ravel() > MATTE_LEVEL)
    lit_columns = np.flatnonzero(cv2.reduce(gray, 0, cv2.REDUCE_MAX).ravel() > MATTE_LEVEL)
    if lit_rows.size == 0 or lit_columns.size == 0:
        return 0, 0, width, height
    bar_y = min(int(lit_rows[0]), height - 1 - int(lit_rows[-1]))
    bar_x = min(int(lit_columns[0]), width - 1 - int(lit_columns[-1]))
    if height - 2 * bar_y < MATTE_MIN_PICTURE * height:
        bar_y = 0
    if width - 2 * bar_x < MATTE_MIN_PICTURE * width:
        bar_x = 0
    return bar_x, bar_y, width - 2 * bar_x, height - 2 * bar_y


def measure_exposure(work_gray: np.ndarray) -> dict:
    """The 1st and 99th brightness percentiles (0..1), read by the lighting's dynamic
    range and by the frame gate: a frame whose 99th percentile is near black is a black
    frame or a fade, one whose 1st percentile is near white a flash or a fade to white."""
    low, high = _percentiles_u8(work_gray, (1, 99))
    return {"p1": low / 255.0, "p99": high / 255.0}


# Title and credit cards: lines of glyphs on a plain ground. The ground is
# plain when TEXT_GROUND_FLAT of the picture has a local (5x5) grey std under
# FLAT_STD; glyphs are small blobs that stand out from their neighbourhood
# (a top-hat of either polarity), and a card has TEXT_MIN_LINES rows holding
# TEXT_MIN_GLYPHS_PER_LINE glyphs of similar height each. Fitted on the
# labelled real frames: Big Buck Bunny's credit cards have a flat share of
# 0.81 to 0.94 and 3 to 8 such lines; of the 190 other frames none has both
# (textures make glyph-like blobs, but never on a plain ground).
FLAT_STD = 2.5
TEXT_GROUND_FLAT = 0.8
TEXT_GLYPH_HEIGHT = (0.012, 0.06)  # of the picture height
TEXT_GLYPH_MAX_ASPECT = 3.0  # width over height of one glyph (or two touching)
TEXT_CONTRAST = 40  # grey levels above (or below) the surroundings
TEXT_MIN_GLYPHS_PER_LINE = 5
TEXT_MIN_LINES = 3


def measure_plain_ground(work_gray: np.ndarray) -> dict:
    """``flat_share`` of the picture and, on a plain ground, its ``text_lines``."""
    flat_share = float((_local_std(cv2.GaussianBlur(work_gray, (0, 0), 1.0), 5) < FLAT_STD).mean())
    text_lines = _text_lines(work_gray) if flat_share >= TEXT_GROUND_FLAT else 0
    return {"flat_share": flat_share, "text_lines": text_lines,
            "title_card": flat_share >= TEXT_GROUND_FLAT and text_lines >= TEXT_MIN_LINES}


def _text_lines(work_gray: np.ndarray) -> int:
    """How many lines of glyphs the picture holds (see TEXT_*)."""
    height = work_gray.shape[0]
    size = max(3, int(round(TEXT_GLYPH_HEIGHT[1] * height)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    lines = 0
    for operation in (cv2.MORPH_TOPHAT, cv2.MORPH_BLACKHAT):
        marks = cv2.threshold(cv2.morphologyEx(work_gray, operation, kernel), TEXT_CONTRAST, 255,
                              cv2.THRESH_BINARY)[1]
        count, _, stats, _ = cv2.connectedComponentsWithStats(marks, connectivity=8)
        glyph_heights = stats[1:count, cv2.CC_STAT_HEIGHT] / height
        widths = stats[1:count, cv2.CC_STAT_WIDTH]
        glyphs = stats[1:count][(glyph_heights >= TEXT_GLYPH_HEIGHT[0]) & (glyph_heights <= TEXT_GLYPH_HEIGHT[1])
                                & (widths <= TEXT_GLYPH_MAX_ASPECT * stats[1:count, cv2.CC_STAT_HEIGHT])]
        if len(glyphs) < TEXT_MIN_GLYPHS_PER_LINE * TEXT_MIN_LINES:
            continue
        # Rows of glyphs: glyphs whose vertical centres lie within half a glyph height.
        centres = np.sort(glyphs[:, cv2.CC_STAT_TOP] + glyphs[:, cv2.CC_STAT_HEIGHT] / 2.0)
        tolerance = 0.5 * float(np.median(glyphs[:, cv2.CC_STAT_HEIGHT]))
        run = 1
        for previous, current in zip(centres, centres[1:]):
            if current - previous <= tolerance:
                run += 1
                continue
            lines += run >= TEXT_MIN_GLYPHS_PER_LINE
            run = 1
        lines += run >= TEXT_MIN_GLYPHS_PER_LINE
    return lines


