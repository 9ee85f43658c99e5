"""Per-frame analysis: the metrics the decision engine reads.

Every scalar metric lies in [0, 1] and is finite for any image the loader
accepts (1x1 up to multi-megapixel, flat, pure noise); ``laplacian_variance``
is the one raw, unbounded value. Each metric's formula and normalisation
constants sit next to its code. What decides which frames are kept and how
(sharpness, the picture area, exposure, title cards, the characters found,
shot type) is fitted on labelled real frames from six open films
(../shared/data, read by bench/judgement.py), and each such constant says
so; the demo frames the project renders test the mechanics, not the
calibration. Complexity, lighting and occlusion keep constants set on the
demo frames and checked on real Sintel frames, so that the seed's decision
thresholds (complexity 0.3, lighting 0.7, occlusion 0.2) separate clean
frames from cluttered, dark and occluded ones.

Work happens on copies made once per frame (one decode, done by the caller):
* ``detail`` grey, the frame halved while its longest side exceeds
  1.5 x DETAIL_SIZE (so 768 < longest <= 1536 for large frames): sharpness
  and noise (fine detail must survive, so this copy is larger);
* ``work``   colour, longest side <= WORK_SIZE: complexity, lighting, occlusion;
* ``layer``  colour, longest side <= LAYER_SIZE: backdrop model, instances.
Whole-factor halving is OpenCV's vectorised 2x2 box filter, ~20x faster than
an arbitrary-ratio INTER_AREA resize (0.7 against 17.8 ms for a 1920x1080
frame on one core), and each detail pixel still averages whole source pixels.
Resolution adequacy uses the true size; faces come from the detector passed in.

``analyze_image`` keeps no state and is safe to call from several threads as
long as each thread has its own face detector (``load_face_detector`` gives
each thread its own).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from .faces import FaceDetector, load_face_detector
from .imageio import FrameDecodeError, read_image
from .imageops import clip01, masked_norm, resize_longest

ANALYSIS_VERSION = 3

WORK_SIZE = 512
DETAIL_SIZE = 1024
LAYER_SIZE = 192
DECIMALS = 4

SHOT_TYPES = ("close-up", "medium", "full-body", "far")
NO_CHARACTER_SHOT = "none"  # the shot type of a frame in which no character is found


def _halve(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)


def detail_copy(image: np.ndarray) -> np.ndarray:
    """The frame halved while its longest side exceeds 1.5 x DETAIL_SIZE.

    Sharpness and Laplacian variance are read on this copy, here and in
    curation, so a frame and its 4x upscale are measured at the same scale."""
    while max(image.shape[:2]) > 1.5 * DETAIL_SIZE:
        image = _halve(image)
    return image


def _work_copy(detail_bgr: np.ndarray) -> np.ndarray:
    """Longest side <= WORK_SIZE: halvings first, one INTER_AREA step for the rest."""
    while max(detail_bgr.shape[:2]) >= 2 * WORK_SIZE:
        detail_bgr = _halve(detail_bgr)
    return resize_longest(detail_bgr, WORK_SIZE)


_KERNEL_3X3 = np.ones((3, 3), np.uint8)


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


def _complexity(work_bgr: np.ndarray, work_gray: np.ndarray, edges: np.ndarray,
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


def _background_mask(instances: list[dict], shape: tuple[int, int], width: int, height: int) -> np.ndarray:
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


def _lighting(work_gray: np.ndarray, exposure: dict) -> tuple[float, dict]:
    # dynamic_range: luminance spread between the 1st and 99th percentile
    # (``_exposure``, 0..1) over DYNAMIC_RANGE_FULL.
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


def _sharpness(detail_gray: np.ndarray, subject_boxes: list) -> tuple[float, float, dict]:
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


def _subject_boxes(faces: list[dict], cast, scale: float) -> list:
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


def _noise(detail_gray: np.ndarray) -> float:
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


def _quality(sharpness: float, noise: float, width: int, height: int) -> tuple[float, dict]:
    # resolution: true pixel count over a 512x512 training crop.
    resolution = clip01(width * height / RESOLUTION_FULL_PIXELS)
    # The worst of sharpness, 1 - noise and resolution counts half, their
    # mean the other half: one bad aspect is enough to make a frame poor.
    goods = (sharpness, 1.0 - noise, resolution)
    quality = 0.5 * min(goods) + 0.5 * sum(goods) / 3.0
    return quality, {"sharpness": sharpness, "noise": noise, "resolution": resolution}


# ----------------------------------------------------------------------------
# Backdrop model: what departs from a smooth backdrop is foreground.

BACKDROP_BAND = 0.06  # border band (share of the shorter side) the backdrop is fitted to
BACKDROP_MAX_SIGMA = 8.0  # Lab units: a rougher border is a set, not a backdrop
BACKDROP_MIN_INLIERS = 0.5  # share of the border the fitted backdrop must explain
FOREGROUND_MIN_DISTANCE = 14.0  # Lab units from the fitted backdrop
FOREGROUND_SIGMAS = 4.0  # ... and at least this many backdrop residual sigmas
SPANNING_COVERAGE = 0.97  # a row/column this covered is crossed by one object


@dataclass
class _Layer:
    mask: np.ndarray | None  # uint8 foreground at layer size; None: no backdrop model
    spanning_share: float  # share of rows or columns crossed end to end
    crossed_columns: np.ndarray | None  # bool per column / row, cleared from the mask
    crossed_rows: np.ndarray | None
    scale: float  # layer pixels per image pixel


@functools.lru_cache(maxsize=8)
def _quadratic_design(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fit's design rows 1, x, y, x^2, xy, y^2 per pixel (x, y in [0, 1)),
    the flat indices of the border band and its rows. Frames of a film share
    one size, so they are built once per job (a third of the fit's time)."""
    ys, xs = np.mgrid[0:height, 0:width]
    xs, ys = xs.ravel() / width, ys.ravel() / height
    design = np.stack([np.ones_like(xs), xs, ys, xs * xs, xs * ys, ys * ys], axis=1)
    band = max(1, round(BACKDROP_BAND * min(height, width)))
    border = np.zeros((height, width), bool)
    border[:band] = border[-band:] = True
    border[:, :band] = border[:, -band:] = True
    samples = np.flatnonzero(border)
    cached = (design, samples, design[samples])
    for array in cached:
        array.flags.writeable = False
    return cached


def _backdrop_layer(work_bgr: np.ndarray, image_width: int) -> _Layer:
    """Fit a smooth backdrop to the frame border; flag what departs from it.

    Studio backdrops, skies and plain walls are smooth colour gradients, so
    each Lab channel is modelled as a quadratic in (x, y), fitted to a band
    around the border: two least-trimmed-squares steps (refit on the best 60%)
    push out characters and occluders touching the border, then 3-sigma steps
    settle the residual sigma. The model is trusted only when it explains
    most of the border with a small residual; busy sets fail that test and
    the caller falls back to faces. Rows or columns covered end to end belong
    to an object crossing the frame (pole, door frame, counter, foliage):
    their share is kept as occlusion evidence and they are cleared, so they
    do not glue characters together.
    """
    small = resize_longest(work_bgr, LAYER_SIZE)
    height, width = small.shape[:2]
    scale = width / image_width
    if min(height, width) < 8:
        return _Layer(None, 0.0, None, None, scale)
    # A light blur keeps sensor noise from passing for a rough border.
    lab = cv2.cvtColor(cv2.GaussianBlur(small, (0, 0), 1.0), cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(np.float64)
    design, samples, border_design = _quadratic_design(height, width)
    border_lab = lab[samples]
    inliers = np.ones(samples.size, bool)
    sigma = 0.0
    for step in range(5):
        solved, coefficients = cv2.solve(border_design[inliers], border_lab[inliers],
                                         flags=cv2.DECOMP_NORMAL | cv2.DECOMP_SVD)
        residual = np.sqrt(((border_lab - border_design @ coefficients) ** 2).sum(axis=1))
        if step < 2:
            rank = int(0.6 * (residual.size - 1))
            inliers = residual <= np.partition(residual, rank)[rank]
        else:
            sigma = 1.4826 * float(np.median(residual[inliers]))
            inliers = residual <= max(3.0 * sigma, 2.0)
    if not solved or inliers.mean() < BACKDROP_MIN_INLIERS or sigma > BACKDROP_MAX_SIGMA:
        return _Layer(None, 0.0, None, None, scale)
    distance = np.linalg.norm(lab - design @ coefficients, axis=1).reshape(height, width)
    mask = (distance > max(FOREGROUND_MIN_DISTANCE, FOREGROUND_SIGMAS * sigma)).astype(np.uint8)
    mask = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_OPEN, _KERNEL_3X3), cv2.MORPH_CLOSE, _KERNEL_3X3)
    # Crossing = touching both opposite edges and covered almost throughout
    # (a character's head stops short of the top edge).
    full_columns = (mask.mean(axis=0) >= SPANNING_COVERAGE) & (mask[0] > 0) & (mask[-1] > 0)
    full_rows = (mask.mean(axis=1) >= SPANNING_COVERAGE) & (mask[:, 0] > 0) & (mask[:, -1] > 0)
    mask[:, full_columns] = 0
    mask[full_rows, :] = 0
    return _Layer(mask, max(float(full_columns.mean()), float(full_rows.mean())), full_columns, full_rows, scale)


# ----------------------------------------------------------------------------
# Characters: instances from the foreground mask and faces.

MIN_INSTANCE_SHARE = 0.0015  # of the frame: a far-shot figure at 640x360 covers ~0.3%
MIN_INSTANCE_RELATIVE = 0.08  # faceless blobs below this share of the largest are props
MAX_FACELESS_BLOBS = 4  # more separate faceless blobs: the "backdrop" is a scene
MERGE_GAP = 0.04  # fragments closer than this (share of the layer width) ...
MERGE_OVERLAP = 0.5  # ... and overlapping this much across the gap are one body
# A fragment under this share of its neighbour's area (a hand beyond a pole)
# joins it across up to SMALL_FRAGMENT_GAP.
SMALL_FRAGMENT_SHARE = 0.3
SMALL_FRAGMENT_GAP = 0.1
# Body box hung below a face when no foreground mask is available, in face
# sizes (the same proportions the segmentation stage uses).
BODY_FROM_FACE = (-1.5, -0.5, 4.0, 6.5)


@dataclass
class _Cast:
    instances: list[dict]  # [{"box", "area_fraction"}], largest first
    measured: bool  # boxes come from the foreground mask (not guessed from faces)
    near_share: float  # share of the frame held by objects crossing or entering it


def _cast(layer: _Layer, faces: list[dict], width: int, height: int) -> _Cast:
    """Who is in the frame.

    With a backdrop model: connected foreground blobs (fragments of one body
    merged, props dropped), each counted once per face it holds (touching
    characters share a blob but not a face), plus faces found outside every
    blob. Faceless blobs cut by the left, right or top edge are scenery or
    occluders, not characters (a character is cut by the bottom edge at
    most; unless no other blob is left): they count as near layer for the
    occlusion metric when they reach a character.
    Without a model, or when it leaves more faceless blobs than a cast (it
    is picking up scenery): one body box per detected face.
    area_fraction is the share of the frame an instance covers: its pixels,
    or its box when it is estimated from a face.
    """
    frame_area = float(width * height)
    face_boxes = [face["box"] for face in faces]
    from_faces = [(_face_body_box(box, width, height), None) for box in face_boxes]
    if layer.mask is None:
        return _Cast(_sorted_instances(from_faces, frame_area), False, 0.0)
    layer_h, layer_w = layer.mask.shape
    layer_area = float(layer_h * layer_w)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(layer.mask, connectivity=8)
    blobs = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= MIN_INSTANCE_SHARE * layer_area]
    faces_of = {i: [] for i in blobs}
    unplaced_faces = []
    for face_index, (fx, fy, fw, fh) in enumerate(face_boxes):
        cx = min(int((fx + fw / 2) * layer.scale), layer_w - 1)
        cy = min(int((fy + fh / 2) * layer.scale), layer_h - 1)
        owner = int(labels[cy, cx])
        if owner not in faces_of:
            owner = next((i for i in blobs if _box_contains(stats[i], cx, cy)), None)
        if owner is None:
            unplaced_faces.append(face_index)
        else:
            faces_of[owner].append(face_index)
    groups = _merge_fragments(blobs, stats, faces_of, layer)
    faceless = [group for group in groups if not any(faces_of[i] for i in group)]
    if len(faceless) > MAX_FACELESS_BLOBS:
        return _Cast(_sorted_instances(from_faces, frame_area), False, 0.0)
    entering = [group for group in faceless if _touches_side_or_top(group, stats, layer_w)]
    characters = [group for group in groups if group not in entering]
    candidates = [group for group in entering if not _spans_width(group, stats, layer_w)]
    if not characters and candidates:
        # Nobody else is there: the largest entering blob is the subject
        # (a faceless character fused with an occluder or cut by the side),
        # unless it spans the frame from side to side: that is ground, a
        # hillside or a building (fitted on the labelled real frames:
        # Caminandes 3's snowy hut and railway were taken for characters).
        entering.remove(max(candidates, key=lambda group: _group_area(group, stats)))
        characters = [group for group in groups if group not in entering]
    largest = max((_group_area(group, stats) for group in characters), default=0)
    props = [group for group in faceless if _group_area(group, stats) < MIN_INSTANCE_RELATIVE * largest]
    characters = [group for group in characters if group not in props]
    # An entering object occludes when it reaches a character (scenery at
    # the far side of the frame does not).
    reach = MERGE_GAP * layer_w
    near_share = sum(
        _group_area(group, stats) for group in entering
        if any(_box_gap(_group_box(group, stats), _group_box(other, stats)) <= reach for other in characters)
    ) / layer_area

    found = []
    for group in characters:
        x0, y0, x1, y1 = _group_box(group, stats)
        pixels = _group_area(group, stats) / layer_area
        box = _clip_box((x0 / layer.scale, y0 / layer.scale, (x1 - x0) / layer.scale, (y1 - y0) / layer.scale),
                        width, height)
        group_faces = sorted((face_boxes[f] for i in group for f in faces_of[i]), key=lambda b: b[0] + b[2] / 2)
        if len(group_faces) < 2:
            found.append((box, pixels))
            continue
        # Several faces in one blob: split it between them at the midpoints.
        centres = [b[0] + b[2] / 2 for b in group_faces]
        cuts = [box[0]] + [(a + b) / 2 for a, b in zip(centres, centres[1:])] + [box[0] + box[2]]
        for left, right in zip(cuts, cuts[1:]):
            part = _clip_box((left, box[1], right - left, box[3]), width, height)
            found.append((part, pixels * part[2] / box[2]))
    found += [from_faces[f] for f in unplaced_faces]
    return _Cast(_sorted_instances(found, frame_area), True, max(near_share, layer.spanning_share))


def _face_body_box(face_box, width: int, height: int) -> list[int]:
    fx, fy, fw, fh = face_box
    dx, dy, sw, sh = BODY_FROM_FACE
    return _clip_box((fx + dx * fw, fy + dy * fh, sw * fw, sh * fh), width, height)


def _clip_box(box, width: int, height: int) -> list[int]:
    x0 = min(max(int(round(box[0])), 0), width - 1)
    y0 = min(max(int(round(box[1])), 0), height - 1)
    x1 = min(max(int(round(box[0] + box[2])), x0 + 1), width)
    y1 = min(max(int(round(box[1] + box[3])), y0 + 1), height)
    return [x0, y0, x1 - x0, y1 - y0]


def _box_contains(stat: np.ndarray, x: int, y: int) -> bool:
    return (stat[cv2.CC_STAT_LEFT] <= x < stat[cv2.CC_STAT_LEFT] + stat[cv2.CC_STAT_WIDTH]
            and stat[cv2.CC_STAT_TOP] <= y < stat[cv2.CC_STAT_TOP] + stat[cv2.CC_STAT_HEIGHT])


def _group_box(group: list[int], stats: np.ndarray) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 (exclusive) of the union of the group's blobs."""
    return (
        min(stats[i, cv2.CC_STAT_LEFT] for i in group),
        min(stats[i, cv2.CC_STAT_TOP] for i in group),
        max(stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] for i in group),
        max(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] for i in group),
    )


def _box_gap(first: tuple, second: tuple) -> int:
    """Chebyshev gap between two x0, y0, x1, y1 boxes (0 when they touch or overlap)."""
    return max(first[0] - second[2], second[0] - first[2], first[1] - second[3], second[1] - first[3], 0)


def _group_area(group: list[int], stats: np.ndarray) -> int:
    return sum(int(stats[i, cv2.CC_STAT_AREA]) for i in group)


def _touches_side_or_top(group: list[int], stats: np.ndarray, layer_width: int) -> bool:
    return any(
        stats[i, cv2.CC_STAT_LEFT] == 0
        or stats[i, cv2.CC_STAT_TOP] == 0
        or stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] >= layer_width
        for i in group
    )


def _spans_width(group: list[int], stats: np.ndarray, layer_width: int) -> bool:
    x0, _, x1, _ = _group_box(group, stats)
    return x0 == 0 and x1 >= layer_width


def _merge_fragments(blobs: list[int], stats: np.ndarray, faces_of: dict, layer: _Layer) -> list[list[int]]:
    """Group blobs that are pieces of one body (split by an arm gap or a pole)."""
    groups = [[i] for i in blobs]
    merged = True
    while merged:
        merged = False
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                if _fragments_of_one_body(groups[a], groups[b], stats, faces_of, layer):
                    groups[a] += groups.pop(b)
                    merged = True
                    break
            if merged:
                break
    return groups


def _fragments_of_one_body(first, second, stats, faces_of, layer: _Layer) -> bool:
    """Close side by side (or stacked), overlapping across the gap, not two faces.

    Columns or rows cleared as a crossing object do not count towards the gap:
    a pole in front of a character splits it without separating it.
    """
    if any(faces_of[i] for i in first) and any(faces_of[i] for i in second):
        return False

    def extent(group, start, size):
        return min(stats[i, start] for i in group), max(stats[i, start] + stats[i, size] for i in group)

    (ax0, ax1), (bx0, bx1) = (extent(g, cv2.CC_STAT_LEFT, cv2.CC_STAT_WIDTH) for g in (first, second))
    (ay0, ay1), (by0, by1) = (extent(g, cv2.CC_STAT_TOP, cv2.CC_STAT_HEIGHT) for g in (first, second))
    smaller, larger = sorted((_group_area(first, stats), _group_area(second, stats)))
    allowed_gap = (SMALL_FRAGMENT_GAP if smaller < SMALL_FRAGMENT_SHARE * larger else MERGE_GAP) * layer.mask.shape[1]
    side_by_side = ((min(ax1, bx1), max(ax0, bx0)), layer.crossed_columns,
                    min(ay1, by1) - max(ay0, by0), min(ay1 - ay0, by1 - by0))
    stacked = ((min(ay1, by1), max(ay0, by0)), layer.crossed_rows,
               min(ax1, bx1) - max(ax0, bx0), min(ax1 - ax0, bx1 - bx0))
    for (gap_start, gap_end), crossed, overlap, shorter in (side_by_side, stacked):
        gap = gap_end - gap_start - int(crossed[gap_start:max(gap_start, gap_end)].sum())
        if gap <= allowed_gap and overlap >= MERGE_OVERLAP * shorter:
            return True
    return False


def _sorted_instances(found: list[tuple[list[int], float | None]], frame_area: float) -> list[dict]:
    instances = [
        {"box": box, "area_fraction": box[2] * box[3] / frame_area if pixels is None else pixels}
        for box, pixels in found
    ]
    instances.sort(key=lambda inst: (-inst["box"][2] * inst["box"][3], inst["box"][0], inst["box"][1]))
    return instances


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


def _occlusion(work_gray: np.ndarray, edges: np.ndarray, near_share: float) -> tuple[float, dict]:
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
    # backdrop (see _cast) over NEAR_SHARE_FULL, and (b) defocus layering.
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


def _exposure(work_gray: np.ndarray) -> dict:
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


def _plain_ground(work_gray: np.ndarray) -> dict:
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


# ----------------------------------------------------------------------------
# Shot type.

# Boundaries as shares of the picture height. With a face, the largest one
# decides; the constants were fitted on the labelled real frames of
# ../shared/data (116 frames with a character found): cartoon heads are
# large, so Big Buck Bunny's medium shots have faces of 0.34 to 0.44 of the
# height, its close-ups 0.45 and up.
CLOSE_UP_FACE = 0.45  # a face this tall is a close-up
MEDIUM_FACE = 0.3  # ... this tall, a medium shot
FAR_SUBJECT = 0.35  # a whole figure shorter than this is far away
HEADS_PER_FIGURE = 4  # cartoon proportions: a figure is about four heads tall
FAR_FACE = FAR_SUBJECT / HEADS_PER_FIGURE  # ... so a face under this is a far shot
# Between: with at least this many face heights of picture below the face
# the whole body fits (full-body), with less it is cut (medium). Labelled
# full-body shots have 4.2 to 6.1 below; medium ones mostly 0.6 to 3.9.
FULL_BODY_ROOM = 4.0
# Without a face, a subject box measured on the foreground mask decides.
SUBJECT_CUT = 0.985  # a measured subject reaching this low is cut by the frame: medium


def _shot_type(faces: list[dict], measured_subject_box: list[int] | None, height: int) -> str:
    """close-up / medium / full-body / far from the largest face, else from
    the measured subject box (short = far, cut by the bottom edge = medium,
    whole = full-body); with neither, "medium" (no evidence either way)."""
    if faces:
        _, top, _, tall = max((face["box"] for face in faces), key=lambda box: box[3])
        share = tall / height
        if share >= CLOSE_UP_FACE:
            return "close-up"
        if share >= MEDIUM_FACE:
            return "medium"
        if share < FAR_FACE:
            return "far"
        return "full-body" if (height - top - tall) / tall >= FULL_BODY_ROOM else "medium"
    if measured_subject_box is not None:
        _, top, _, tall = measured_subject_box
        if tall / height < FAR_SUBJECT:
            return "far"
        return "medium" if (top + tall) / height >= SUBJECT_CUT else "full-body"
    return "medium"


# ----------------------------------------------------------------------------
# Entry points.


def _rounded(value):
    if isinstance(value, float):
        return round(value, DECIMALS)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def _faces_on_copy(face_detector: FaceDetector, copy_bgr: np.ndarray, width: int, height: int) -> list[dict]:
    """Detect on a reduced copy of the picture (the detector reduces it further
    to its own working size) and map the boxes back to the picture."""
    upscale = width / copy_bgr.shape[1]
    if upscale == 1.0:
        return face_detector.detect(copy_bgr)
    faces = []
    for face in face_detector.detect(copy_bgr):
        x, y, w, h = face["box"]
        box = _clip_box((x * upscale, y * upscale, w * upscale, h * upscale), width, height)
        faces.append({**face, "box": box, "landmarks": _shifted(face.get("landmarks"), 0, 0, upscale)})
    return faces


def _shifted(points: list | None, left: float, top: float, scale: float = 1.0) -> list | None:
    """Landmarks scaled, then moved by (left, top); None stays None."""
    return None if points is None else [[round(x * scale + left, 1), round(y * scale + top, 1)] for x, y in points]


CLASSICAL_FINDER = "classical"  # characters from faces and the backdrop model (_cast)


def _found_cast(detections: dict, classical: _Cast, left: int, top: int, width: int, height: int) -> _Cast:
    """The cast the character finder (frameloom.detect_step) found: its boxes, on the
    picture's grid; the nearer-layer evidence stays the backdrop model's."""
    found = [(_clip_box((d["box"][0] - left, d["box"][1] - top, d["box"][2], d["box"][3]), width, height), None)
             for d in detections["detections"]]
    return _Cast(_sorted_instances(found, float(width * height)), True, classical.near_share)


def analyze_image(image_bgr: np.ndarray, face_detector: FaceDetector, detections: dict | None = None) -> dict:
    """All metrics of one decoded uint8 BGR frame (see the module docstring).

    Metrics are read on the picture inside any letterbox bars
    (``picture_area``); boxes are given in the frame's own pixels. With
    ``detections`` (the character finder's record for this frame), the
    characters are its boxes and ``finder`` names it; otherwise they come
    from faces and the backdrop model (``finder: classical``).
    Returns the record without ``frame``/``source``/``ok``/``error``, which
    ``analyze_file`` adds. Deterministic: same pixels, same record.
    """
    if image_bgr.ndim == 2:
        image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
    frame_height, frame_width = image_bgr.shape[:2]
    left, top, width, height = picture_area(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY))
    picture = image_bgr[top:top + height, left:left + width]
    detail = detail_copy(picture)
    work = _work_copy(detail)
    work_gray = cv2.cvtColor(work, cv2.COLOR_BGR2GRAY)
    detail_gray = cv2.cvtColor(detail, cv2.COLOR_BGR2GRAY)
    # Canny on a lightly smoothed copy: single-pixel noise is not structure.
    edges = cv2.Canny(cv2.GaussianBlur(work_gray, (3, 3), 0), 60, 140)

    faces = _faces_on_copy(face_detector, detail, width, height)
    cast = _cast(_backdrop_layer(work, width), faces, width, height)
    finder = CLASSICAL_FINDER
    if detections is not None and detections.get("ok"):
        cast = _found_cast(detections, cast, left, top, width, height)
        finder = detections["finder"]
    subject_box = cast.instances[0]["box"] if cast.instances else None
    background = _background_mask(cast.instances, work_gray.shape, width, height)
    complexity, complexity_parts = _complexity(work, work_gray, edges, background)
    exposure = _exposure(work_gray)
    lighting, lighting_parts = _lighting(work_gray, exposure)
    occlusion, occlusion_parts = _occlusion(work_gray, edges, cast.near_share)
    sharpness, laplacian_variance, sharpness_parts = _sharpness(
        detail_gray, _subject_boxes(faces, cast, detail.shape[1] / width))
    noise = _noise(detail_gray)
    quality, quality_parts = _quality(sharpness, noise, width, height)

    def framed(box):
        return None if box is None else [box[0] + left, box[1] + top, box[2], box[3]]

    return _rounded({
        "width": frame_width,
        "height": frame_height,
        "picture": [left, top, width, height],
        "complexity": complexity,
        "complexity_parts": complexity_parts,
        "lighting": lighting,
        "lighting_parts": lighting_parts,
        "exposure": exposure,
        "plain_ground": _plain_ground(work_gray),
        "occlusion": occlusion,
        "occlusion_parts": occlusion_parts,
        "quality": quality,
        "quality_parts": quality_parts,
        "sharpness": sharpness,
        "sharpness_parts": sharpness_parts,
        "laplacian_variance": laplacian_variance,
        "noise": noise,
        "finder": finder,
        "instance_count": len(cast.instances),
        "instances": [{**instance, "box": framed(instance["box"])} for instance in cast.instances],
        "faces": [{**face, "box": framed(face["box"]), "landmarks": _shifted(face.get("landmarks"), left, top)}
                  for face in faces],
        "face_detector": face_detector.name,
        "foreground_box": framed(subject_box),
        "shot_type": _shot_type(faces, subject_box if cast.measured else None, height)
        if cast.instances else NO_CHARACTER_SHOT,
        "brightness_mean": float(work_gray.mean()) / 255.0,
    })


def analyze_file(path, frame_id: str, source: str, models_dir=None, yunet_path=None, cascade_path=None,
                 detections: dict | None = None) -> dict:
    """Decode and analyse one frame file; bad input gives ok=False, never raises.

    Face weights: the explicit paths (the config's ``model_paths``) when given,
    else the default file names under ``{models_dir}/faces/``. ``detections``:
    the character finder's record for the frame, when it ran."""
    head = {"frame": frame_id, "source": source}
    try:
        image = read_image(path)
    except (FrameDecodeError, cv2.error, OSError) as error:
        lines = str(error).strip().splitlines()
        return {**head, "ok": False, "error": f"{type(error).__name__}: {lines[0] if lines else 'unreadable'}"}
    record = analyze_image(image, load_face_detector(models_dir, yunet_path, cascade_path), detections)
    return {**head, "ok": True, "error": None, **record}
