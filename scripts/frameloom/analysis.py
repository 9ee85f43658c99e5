"""Per-frame analysis: the metrics the decision engine reads.

Every scalar metric lies in [0, 1] and is finite for any image the loader
accepts (1x1 up to multi-megapixel, flat, pure noise); ``laplacian_variance``
is the one raw, unbounded value. Each metric's formula and normalisation
constants sit next to its code. The constants were calibrated on the
project's generated demo frames (known ground truth) and checked on real
Sintel frames, so that the seed's decision thresholds (complexity 0.3,
lighting 0.7, occlusion 0.2, quality 0.5, sharpness 0.4) separate clean
frames from cluttered, dark, occluded and degraded ones.

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

ANALYSIS_VERSION = 1

WORK_SIZE = 512
DETAIL_SIZE = 1024
LAYER_SIZE = 192
DECIMALS = 4

SHOT_TYPES = ("close-up", "medium", "full-body", "far")


def _clip01(value: float) -> float:
    """Clamp to [0, 1]; NaN (only possible from degenerate input) becomes 0."""
    if not math.isfinite(value):
        return 0.0
    return min(1.0, max(0.0, float(value)))


def _resize_longest(image: np.ndarray, longest: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = longest / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


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
    return _resize_longest(detail_bgr, WORK_SIZE)


_KERNEL_3X3 = np.ones((3, 3), np.uint8)


def _percentile_u8(gray: np.ndarray, percent: float) -> int:
    """Lowest grey level with at least ``percent`` % of the pixels at or below it."""
    cumulative = np.cumsum(cv2.calcHist([gray], [0], None, [256], [0, 256]).ravel())
    return int(np.searchsorted(cumulative, percent / 100.0 * gray.size))


def _masked_norm(values: np.ndarray, mask: np.ndarray, norm_type: int) -> float:
    """cv2.norm over the mask's pixels (zeroing the rest first is ~6x faster
    than cv2.norm's own mask argument)."""
    return cv2.norm(cv2.bitwise_and(values, values, mask=mask), norm_type)


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
    edge_density = _clip01(cv2.mean(edges, mask=background)[0] / 255.0 / EDGE_DENSITY_FULL)
    # color_diversity: Shannon entropy of the colour histogram at 8 levels per
    # channel, (bits - COLOR_BITS_PLAIN) / COLOR_BITS_SPAN. Entropy, unlike a
    # count of distinct colours, ignores the long tail noise and gradients make.
    counts = cv2.calcHist([work_bgr], [0, 1, 2], background, [8, 8, 8], [0, 256] * 3).ravel()
    probabilities = counts[counts > 0] / counts.sum()
    entropy_bits = float(-(probabilities * np.log2(probabilities)).sum())
    color_diversity = _clip01((entropy_bits - COLOR_BITS_PLAIN) / COLOR_BITS_SPAN)
    # texture: mean local (5x5) standard deviation of grey / TEXTURE_FULL.
    texture = _clip01(cv2.mean(_local_std(work_gray, 5), mask=background)[0] / TEXTURE_FULL)
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


def _lighting(work_gray: np.ndarray) -> tuple[float, dict]:
    low, high = _percentile_u8(work_gray, 1), _percentile_u8(work_gray, 99)
    # dynamic_range: luminance spread between the 1st and 99th percentile
    # (/255) over DYNAMIC_RANGE_FULL.
    dynamic_range = _clip01((high - low) / 255.0 / DYNAMIC_RANGE_FULL)
    # local_consistency: 1 - std of the 8x8 patch mean brightnesses (/255)
    # over PATCH_SPREAD_ZERO; blotchy or half-shadowed lighting spreads them.
    grid = (min(PATCH_GRID, work_gray.shape[1]), min(PATCH_GRID, work_gray.shape[0]))
    patch_means = cv2.resize(work_gray, grid, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    local_consistency = _clip01(1.0 - patch_means.std() / PATCH_SPREAD_ZERO)
    # brightness_balance: 1 for a mean inside BALANCED_MEAN, falling linearly
    # to 0 over BALANCE_FALLOFF beyond it (under- or over-exposure).
    mean = float(work_gray.mean()) / 255.0
    excess = max(BALANCED_MEAN[0] - mean, mean - BALANCED_MEAN[1], 0.0)
    brightness_balance = _clip01(1.0 - excess / BALANCE_FALLOFF)
    lighting = 0.4 * dynamic_range + 0.2 * local_consistency + 0.4 * brightness_balance
    return lighting, {
        "dynamic_range": dynamic_range,
        "local_consistency": local_consistency,
        "brightness_balance": brightness_balance,
    }


# ----------------------------------------------------------------------------
# Sharpness, noise, resolution, quality.

SHARPNESS_HALF = 1.0  # edge Laplacian/gradient energy ratio that maps to 0.5
SHARPNESS_EDGE_L1 = 40  # Sobel |gx| + |gy| of an edge pixel: a step of >= 10 grey levels
NOISE_FLAT_PERCENTILE = 40  # the flattest 40% of pixels carry the noise estimate
NOISE_FREE_SIGMA = 1.0  # estimated sigma that renders and codecs leave anyway
NOISE_FULL_SIGMA = 8.0  # estimated sigma of heavy noise (Gaussian std ~12 grey levels)
RESOLUTION_FULL_PIXELS = 512 * 512  # one SD-sized training crop
# Immerkaer's kernel [[1, -2, 1], [-2, 4, -2], [1, -2, 1]] is this row times itself.
IMMERKAER_ROW = np.array([1, -2, 1], np.float32)


def _sharpness(detail_gray: np.ndarray) -> tuple[float, float]:
    """(sharpness 0..1, raw Laplacian variance of the detail copy).

    Raw Laplacian variance grows with the amount of content as much as with
    focus (a sharp character on a plain backdrop scores below a blurred busy
    street), so it is normalised by the gradient energy on the same pixels:
    ratio = sum(Lap^2) / sum(|Sobel grad|^2 / 64) over edge pixels (Sobel
    |gx| + |gy| >= SHARPNESS_EDGE_L1). That depends on edge width (blur), not
    on contrast or edge count: a crisp step gives ~4, a Gaussian blur of
    sigma s divides it by roughly 1 + s^2.
    sharpness = ratio / (ratio + SHARPNESS_HALF); 0 when there are no edges.
    """
    laplacian = cv2.Laplacian(detail_gray, cv2.CV_16S, ksize=1)
    laplacian_variance = float(cv2.meanStdDev(laplacian)[1][0, 0]) ** 2
    gradients = [cv2.Sobel(detail_gray, cv2.CV_16S, dx, 1 - dx) for dx in (0, 1)]
    l1 = cv2.add(*(cv2.convertScaleAbs(gradient) for gradient in gradients))
    support = cv2.threshold(l1, SHARPNESS_EDGE_L1 - 1, 255, cv2.THRESH_BINARY)[1]
    if cv2.countNonZero(support) == 0:
        return 0.0, laplacian_variance
    gradient_energy = sum(_masked_norm(gradient, support, cv2.NORM_L2SQR) for gradient in gradients) / 64.0
    ratio = _masked_norm(laplacian, support, cv2.NORM_L2SQR) / gradient_energy
    return _clip01(ratio / (ratio + SHARPNESS_HALF)), laplacian_variance


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
    mean_residual = _masked_norm(residual, flat, cv2.NORM_L1) / max(1, cv2.countNonZero(flat))
    sigma = math.sqrt(math.pi / 2.0) / 6.0 * mean_residual
    return _clip01((sigma - NOISE_FREE_SIGMA) / (NOISE_FULL_SIGMA - NOISE_FREE_SIGMA))


def _quality(sharpness: float, noise: float, width: int, height: int) -> tuple[float, dict]:
    # resolution: true pixel count over a 512x512 training crop.
    resolution = _clip01(width * height / RESOLUTION_FULL_PIXELS)
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
    small = _resize_longest(work_bgr, LAYER_SIZE)
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
    if not characters and entering:
        # Nobody else is there: the largest entering blob is the subject
        # (a faceless character fused with an occluder or cut by the side).
        entering.remove(max(entering, key=lambda group: _group_area(group, stats)))
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
    border_edge_density = _clip01(density / BORDER_EDGE_DENSITY_FULL)
    # border_edge_variance: std of the edge share of 24 border segments over
    # BORDER_EDGE_SPREAD_FULL (something entering from one side makes the
    # border uneven).
    segment_shares = [
        np.count_nonzero(chunk) / chunk.size
        for side, count in zip(sides, BORDER_SEGMENTS)
        for chunk in np.array_split(side, min(count, side.shape[1]), axis=1)
    ]
    border_edge_variance = _clip01(float(np.std(segment_shares)) / BORDER_EDGE_SPREAD_FULL)
    # depth_discontinuity: evidence of a nearer layer, the larger of (a) the
    # frame share of objects crossing or entering the frame in front of the
    # backdrop (see _cast) over NEAR_SHARE_FULL, and (b) defocus layering.
    depth_discontinuity = max(_clip01(near_share / NEAR_SHARE_FULL), _defocus_layering(work_gray))
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
    return _clip01((soft * sharp - DEFOCUS_LAYERING_FLOOR) / DEFOCUS_LAYERING_SPAN)


# ----------------------------------------------------------------------------
# Shot type.

# Boundaries as shares of the frame height.
CLOSE_UP_FACE = 0.45  # a face this tall is a close-up
FAR_SUBJECT = 0.35  # a measured subject shorter than this is far away
SUBJECT_CUT = 0.985  # a measured subject reaching this low is cut by the frame: medium
# Without a measured subject, by face height alone (human proportions: a
# full figure is ~7 heads, so its face is ~0.13 of a frame it fills).
MEDIUM_FACE = 0.15
FULL_BODY_FACE = 0.06


def _shot_type(faces: list[dict], measured_subject_box: list[int] | None, height: int) -> str:
    """close-up / medium / full-body / far from face height and subject box.

    The largest face decides close-ups. Otherwise a subject box measured on
    the foreground mask decides: short = far, cut by the bottom edge =
    medium, whole = full-body. Without one the face height alone decides;
    with neither, "medium" (no evidence either way).
    """
    face_share = max((face["box"][3] for face in faces), default=0) / height
    if face_share >= CLOSE_UP_FACE:
        return "close-up"
    if measured_subject_box is not None:
        _, top, _, tall = measured_subject_box
        if tall / height < FAR_SUBJECT:
            return "far"
        return "medium" if (top + tall) / height >= SUBJECT_CUT else "full-body"
    if not faces or face_share >= MEDIUM_FACE:
        return "medium"
    return "full-body" if face_share >= FULL_BODY_FACE else "far"


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


def _faces_on_work_copy(face_detector: FaceDetector, work_bgr: np.ndarray, width: int, height: int) -> list[dict]:
    """Detect on the work copy (the detector would make the same one) and map
    the boxes back to the frame."""
    upscale = width / work_bgr.shape[1]
    if upscale == 1.0:
        return face_detector.detect(work_bgr)
    faces = []
    for face in face_detector.detect(work_bgr):
        x, y, w, h = face["box"]
        box = _clip_box((x * upscale, y * upscale, w * upscale, h * upscale), width, height)
        faces.append({**face, "box": box})
    return faces


def analyze_image(image_bgr: np.ndarray, face_detector: FaceDetector) -> dict:
    """All metrics of one decoded uint8 BGR frame (see the module docstring).

    Returns the record without ``frame``/``source``/``ok``/``error``, which
    ``analyze_file`` adds. Deterministic: same pixels, same record.
    """
    if image_bgr.ndim == 2:
        image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
    height, width = image_bgr.shape[:2]
    detail = detail_copy(image_bgr)
    work = _work_copy(detail)
    work_gray = cv2.cvtColor(work, cv2.COLOR_BGR2GRAY)
    detail_gray = cv2.cvtColor(detail, cv2.COLOR_BGR2GRAY)
    # Canny on a lightly smoothed copy: single-pixel noise is not structure.
    edges = cv2.Canny(cv2.GaussianBlur(work_gray, (3, 3), 0), 60, 140)

    faces = _faces_on_work_copy(face_detector, work, width, height)
    cast = _cast(_backdrop_layer(work, width), faces, width, height)
    subject_box = cast.instances[0]["box"] if cast.instances else None
    background = _background_mask(cast.instances, work_gray.shape, width, height)
    complexity, complexity_parts = _complexity(work, work_gray, edges, background)
    lighting, lighting_parts = _lighting(work_gray)
    occlusion, occlusion_parts = _occlusion(work_gray, edges, cast.near_share)
    sharpness, laplacian_variance = _sharpness(detail_gray)
    noise = _noise(detail_gray)
    quality, quality_parts = _quality(sharpness, noise, width, height)
    return _rounded({
        "width": width,
        "height": height,
        "complexity": complexity,
        "complexity_parts": complexity_parts,
        "lighting": lighting,
        "lighting_parts": lighting_parts,
        "occlusion": occlusion,
        "occlusion_parts": occlusion_parts,
        "quality": quality,
        "quality_parts": quality_parts,
        "sharpness": sharpness,
        "laplacian_variance": laplacian_variance,
        "noise": noise,
        "instance_count": len(cast.instances),
        "instances": cast.instances,
        "faces": faces,
        "face_detector": face_detector.name,
        "foreground_box": subject_box,
        "shot_type": _shot_type(faces, subject_box if cast.measured else None, height),
        "brightness_mean": float(work_gray.mean()) / 255.0,
    })


def analyze_file(path, frame_id: str, source: str, models_dir=None, yunet_path=None, cascade_path=None) -> dict:
    """Decode and analyse one frame file; bad input gives ok=False, never raises.

    Face weights: the explicit paths (the config's ``model_paths``) when given,
    else the default file names under ``{models_dir}/faces/``."""
    head = {"frame": frame_id, "source": source}
    try:
        image = read_image(path)
    except (FrameDecodeError, cv2.error, OSError) as error:
        lines = str(error).strip().splitlines()
        return {**head, "ok": False, "error": f"{type(error).__name__}: {lines[0] if lines else 'unreadable'}"}
    record = analyze_image(image, load_face_detector(models_dir, yunet_path, cascade_path))
    return {**head, "ok": True, "error": None, **record}
