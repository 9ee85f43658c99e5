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

import cv2
import numpy as np

from .cast import (
    NO_CHARACTER_SHOT,
    Cast,
    backdrop_layer,
    clip_box,
    find_cast,
    shot_type_of,
    sorted_instances,
)
from .faces import FaceDetector, load_face_detector
from .imageio import FrameDecodeError, read_image
from .measures import (
    DECIMALS,
    background_mask,
    detail_copy,
    measure_complexity,
    measure_exposure,
    measure_lighting,
    measure_noise,
    measure_occlusion,
    measure_plain_ground,
    measure_quality,
    measure_sharpness,
    picture_area,
    subject_boxes_of,
    work_copy,
)

ANALYSIS_VERSION = 3


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
        box = clip_box((x * upscale, y * upscale, w * upscale, h * upscale), width, height)
        faces.append({**face, "box": box, "landmarks": _shifted(face.get("landmarks"), 0, 0, upscale)})
    return faces


def _shifted(points: list | None, left: float, top: float, scale: float = 1.0) -> list | None:
    """Landmarks scaled, then moved by (left, top); None stays None."""
    return None if points is None else [[round(x * scale + left, 1), round(y * scale + top, 1)] for x, y in points]


CLASSICAL_FINDER = "classical"  # characters from faces and the backdrop model (find_cast)


def _found_cast(detections: dict, classical: Cast, left: int, top: int, width: int, height: int) -> Cast:
    """The cast the character finder (frameloom.detect_step) found: its boxes, on the
    picture's grid; the nearer-layer evidence stays the backdrop model's."""
    found = [(clip_box((d["box"][0] - left, d["box"][1] - top, d["box"][2], d["box"][3]), width, height), None)
             for d in detections["detections"]]
    return Cast(sorted_instances(found, float(width * height)), True, classical.near_share)


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
    work = work_copy(detail)
    work_gray = cv2.cvtColor(work, cv2.COLOR_BGR2GRAY)
    detail_gray = cv2.cvtColor(detail, cv2.COLOR_BGR2GRAY)
    # Canny on a lightly smoothed copy: single-pixel noise is not structure.
    edges = cv2.Canny(cv2.GaussianBlur(work_gray, (3, 3), 0), 60, 140)

    faces = _faces_on_copy(face_detector, detail, width, height)
    cast = find_cast(backdrop_layer(work, width), faces, width, height)
    finder = CLASSICAL_FINDER
    if detections is not None and detections.get("ok"):
        cast = _found_cast(detections, cast, left, top, width, height)
        finder = detections["finder"]
    subject_box = cast.instances[0]["box"] if cast.instances else None
    background = background_mask(cast.instances, work_gray.shape, width, height)
    complexity, complexity_parts = measure_complexity(work, work_gray, edges, background)
    exposure = measure_exposure(work_gray)
    lighting, lighting_parts = measure_lighting(work_gray, exposure)
    occlusion, occlusion_parts = measure_occlusion(work_gray, edges, cast.near_share)
    sharpness, laplacian_variance, sharpness_parts = measure_sharpness(
        detail_gray, subject_boxes_of(faces, cast, detail.shape[1] / width))
    noise = measure_noise(detail_gray)
    quality, quality_parts = measure_quality(sharpness, noise, width, height)

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
        "plain_ground": measure_plain_ground(work_gray),
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
        "shot_type": shot_type_of(faces, subject_box if cast.measured else None, height)
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

