"""The characters of a frame without a character finder: a backdrop model (what departs from a
smooth backdrop is foreground), instances from that and the faces, and the shot type.
See frameloom.analysis."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from .imageops import resize_longest
from .measures import KERNEL_3X3

LAYER_SIZE = 192
SHOT_TYPES = ("close-up", "medium", "full-body", "far")
NO_CHARACTER_SHOT = "none"  # the shot type of a frame in which no character is found


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


def backdrop_layer(work_bgr: np.ndarray, image_width: int) -> _Layer:
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
    mask = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_OPEN, KERNEL_3X3), cv2.MORPH_CLOSE, KERNEL_3X3)
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
class Cast:
    instances: list[dict]  # [{"box", "area_fraction"}], largest first
    measured: bool  # boxes come from the foreground mask (not guessed from faces)
    near_share: float  # share of the frame held by objects crossing or entering it


def find_cast(layer: _Layer, faces: list[dict], width: int, height: int) -> Cast:
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
        return Cast(sorted_instances(from_faces, frame_area), False, 0.0)
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
        return Cast(sorted_instances(from_faces, frame_area), False, 0.0)
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
        box = clip_box((x0 / layer.scale, y0 / layer.scale, (x1 - x0) / layer.scale, (y1 - y0) / layer.scale),
                        width, height)
        group_faces = sorted((face_boxes[f] for i in group for f in faces_of[i]), key=lambda b: b[0] + b[2] / 2)
        if len(group_faces) < 2:
            found.append((box, pixels))
            continue
        # Several faces in one blob: split it between them at the midpoints.
        centres = [b[0] + b[2] / 2 for b in group_faces]
        cuts = [box[0]] + [(a + b) / 2 for a, b in zip(centres, centres[1:])] + [box[0] + box[2]]
        for left, right in zip(cuts, cuts[1:]):
            part = clip_box((left, box[1], right - left, box[3]), width, height)
            found.append((part, pixels * part[2] / box[2]))
    found += [from_faces[f] for f in unplaced_faces]
    return Cast(sorted_instances(found, frame_area), True, max(near_share, layer.spanning_share))


def _face_body_box(face_box, width: int, height: int) -> list[int]:
    fx, fy, fw, fh = face_box
    dx, dy, sw, sh = BODY_FROM_FACE
    return clip_box((fx + dx * fw, fy + dy * fh, sw * fw, sh * fh), width, height)


def clip_box(box, width: int, height: int) -> list[int]:
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


def sorted_instances(found: list[tuple[list[int], float | None]], frame_area: float) -> list[dict]:
    instances = [
        {"box": box, "area_fraction": box[2] * box[3] / frame_area if pixels is None else pixels}
        for box, pixels in found
    ]
    instances.sort(key=lambda inst: (-inst["box"][2] * inst["box"][3], inst["box"][0], inst["box"][1]))
    return instances



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


def shot_type_of(faces: list[dict], measured_subject_box: list[int] | None, height: int) -> str:
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


