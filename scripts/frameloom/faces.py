"""Face detection for stylised 3D characters with real, pretrained detectors.

Backends, all run by OpenCV (nothing beyond ``opencv-python`` is needed):

* ``yunet``: the OpenCV Zoo YuNet CNN, ``{models_dir}/faces/face_detection_yunet.onnx``.
  Trained on photographs, it still finds cartoon faces, with lower scores.
* ``lbp_animeface``: nagadomi's LBP anime-face cascade,
  ``{models_dir}/faces/lbpcascade_animeface.xml``.
* ``mtcnn``: MTCNN (``frameloom.mtcnn``), whose weights come with the install
  (the ``mtcnn`` wheel's data file), used when the models folder holds neither of
  the above. On the demo it finds a face in 22 of 24 frames.
* ``haar_frontalface``: OpenCV's packaged Haar cascade, the last resort when
  the ``mtcnn`` wheel is not installed either.

YuNet runs on the frame and on its mirror image and keeps the faces found
both ways (``_YuNetBackend.detect``), at a lower score than one pass would
need: cartoon faces score low. On the 194 labelled real frames of
../shared/data (six open films) that finds a face in 109 of the 179 frames
with a character and in none of the 15 without (one pass at score 0.3: 103
and 2; at 0.4 on a 512-px copy, the earlier setting: 78 and 1). The anime
cascade adds nothing to YuNet and alone finds 3% of the demo faces, so it is
used only when YuNet's weights are missing, or when asked for by path. MTCNN
finds a face in 25 of those 179 frames and in none of the 15 (score 0.9; 38 and
1 at 0.7) and adds 1 frame to YuNet's 109, so it is not run beside YuNet. The
Haar cascade finds about 1% of the demo faces: it keeps the pipeline running,
the foreground analysis then carries the character count alone.

Detections of all backends are merged by non-maximum suppression. Detection
runs on a copy whose longest side is ``WORK_SIZE`` (small frames enlarged up
to ``MAX_UPSCALE`` times); boxes come back on the input's pixel grid.

OpenCV detector objects keep per-call state and are not thread-safe, so
``load_face_detector`` keeps one instance per thread and configuration.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import mtcnn
from .models import MODEL_REGISTRY

# Under models_dir (the model registry's default paths).
YUNET_DEFAULT = MODEL_REGISTRY["yunet"].default_path
ANIME_CASCADE_DEFAULT = MODEL_REGISTRY["anime_face_cascade"].default_path
FALLBACK_CASCADE_FILE = "haarcascade_frontalface_alt2.xml"

# Longest side of the copy the detectors see: on the labelled real frames a
# 768-px copy finds faces in about a fifth more frames than a 512-px one (small faces).
WORK_SIZE = 768
MAX_UPSCALE = 4.0  # small frames are enlarged: YuNet misses faces under ~20 px
MIN_FACE_SIDE = 16  # a working copy thinner than this holds no findable face
# A face must score this in the frame and in its mirror image (fitted on the labelled
# real frames of ../shared/data: YuNet finds a face in 109 of the 179 frames with a
# character and in none of the 15 without; one pass at 0.3 found 103 and 2 false ones).
YUNET_SCORE_THRESHOLD = 0.2
# MTCNN's final score for a face (labelled real frames of ../shared/data: at 0.9 a face in
# 25 of the 179 frames with a character and none of the 15 without; at 0.7, 38 and 1).
MTCNN_SCORE_THRESHOLD = 0.9
MIRROR_IOU = 0.4  # a detection in the mirror image this close is the same face
YUNET_NMS_THRESHOLD = 0.3
YUNET_TOP_K = 50
# Cascades: neighbours needed to accept a box, and the smallest face searched
# (share of the working copy's shorter side; never below the cascade window).
CASCADE_MIN_NEIGHBORS = 4
CASCADE_SCALE_FACTOR = 1.2
CASCADE_MIN_FACE_FRACTION = 0.08
# Merging: a box is a duplicate when its IoU with a kept, higher-scored box
# exceeds MERGE_IOU, or when this share of the smaller box lies inside it.
MERGE_IOU = 0.3
MERGE_CONTAINMENT = 0.6


class FaceDetectorUnavailable(FileNotFoundError):
    """An explicitly requested weight file does not exist or does not load."""


@dataclass(frozen=True)
class _Detection:
    box: tuple[float, float, float, float]  # x, y, w, h in working-copy pixels
    score: float
    detector: str
    # YuNet's or MTCNN's five points in working-copy pixels (eyes, nose tip, mouth corners,
    # image-left first), which face restoration aligns by; cascades give none.
    landmarks: tuple[float, ...] | None = None


class _YuNetBackend:
    name = "yunet"

    def __init__(self, path: Path):
        self._model = cv2.FaceDetectorYN.create(
            str(path), "", (WORK_SIZE, WORK_SIZE), YUNET_SCORE_THRESHOLD, YUNET_NMS_THRESHOLD, YUNET_TOP_K
        )

    def _rows(self, work_bgr: np.ndarray) -> list[tuple[tuple[float, ...], float, tuple[float, ...]]]:
        height, width = work_bgr.shape[:2]
        self._model.setInputSize((width, height))
        _, rows = self._model.detect(work_bgr)
        # Row layout: x, y, w, h, 5 landmarks (10 values), score. On extreme
        # aspect ratios the network can emit infinite boxes: drop those.
        return [
            (tuple(float(v) for v in row[:4]), float(row[14]), tuple(float(v) for v in row[4:14]))
            for row in (rows if rows is not None else [])
            if np.isfinite(row[:4]).all() and np.isfinite(row[14]) and row[2] > 0 and row[3] > 0
        ]

    def detect(self, work_bgr: np.ndarray) -> list[_Detection]:
        """Faces found in the image and again in its mirror image (MIRROR_IOU), scored by
        the lower of the two scores: a face is symmetric enough to be found both ways,
        the bark, rocks and foliage YuNet mistakes for faces mostly are not."""
        width = work_bgr.shape[1]
        mirrored = [((width - x - w, y, w, h), score) for (x, y, w, h), score, _ in self._rows(cv2.flip(work_bgr, 1))]
        found = []
        for box, score, landmarks in self._rows(work_bgr):
            again = max((other for other_box, other in mirrored if box_overlap(box, other_box)[0] >= MIRROR_IOU),
                        default=0.0)
            if min(score, again) >= YUNET_SCORE_THRESHOLD:
                landmarks = landmarks if np.isfinite(landmarks).all() else None
                found.append(_Detection(box, min(score, again), self.name, landmarks))
        return found


class _MTCNNBackend:
    name = "mtcnn"

    def __init__(self, path: Path):
        self._model = mtcnn.MTCNN(path)

    def detect(self, work_bgr: np.ndarray) -> list[_Detection]:
        return [_Detection(box, score, self.name, landmarks)
                for box, score, landmarks in self._model.detect(cv2.cvtColor(work_bgr, cv2.COLOR_BGR2RGB))
                if score >= MTCNN_SCORE_THRESHOLD]


class _CascadeBackend:
    def __init__(self, path: Path, name: str):
        self.name = name
        self._model = cv2.CascadeClassifier(str(path))
        if self._model.empty():
            raise FaceDetectorUnavailable(f"cannot load cascade {path}")
        self._window = self._model.getOriginalWindowSize()

    def detect(self, work_bgr: np.ndarray) -> list[_Detection]:
        gray = cv2.equalizeHist(cv2.cvtColor(work_bgr, cv2.COLOR_BGR2GRAY))
        min_side = max(self._window[0], round(CASCADE_MIN_FACE_FRACTION * min(gray.shape)))
        if min(gray.shape) < min_side:
            return []
        boxes, neighbours = self._model.detectMultiScale2(
            gray, scaleFactor=CASCADE_SCALE_FACTOR, minNeighbors=CASCADE_MIN_NEIGHBORS, minSize=(min_side, min_side)
        )
        # Cascades give no probability; more agreeing neighbours mean more
        # confidence: score = n / (n + 2 * CASCADE_MIN_NEIGHBORS).
        return [
            _Detection(tuple(float(v) for v in box), float(count) / (count + 2.0 * CASCADE_MIN_NEIGHBORS), self.name)
            for box, count in zip(boxes, np.ravel(neighbours))
        ]


def box_overlap(a: tuple, b: tuple) -> tuple[float, float]:
    """IoU of two x, y, w, h boxes, and their intersection over the smaller area."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area_a, area_b = a[2] * a[3], b[2] * b[3]
    union = area_a + area_b - inter
    smaller = min(area_a, area_b)
    return (inter / union if union > 0 else 0.0), (inter / smaller if smaller > 0 else 0.0)


def _merge(detections: list[_Detection]) -> list[_Detection]:
    """Greedy NMS across backends, highest score first (stable on ties)."""
    kept: list[_Detection] = []
    for candidate in sorted(detections, key=lambda d: -d.score):
        overlaps = (box_overlap(candidate.box, k.box) for k in kept)
        if all(iou <= MERGE_IOU and containment <= MERGE_CONTAINMENT for iou, containment in overlaps):
            kept.append(candidate)
    return kept


class FaceDetector:
    """One backend or a merged combination; ``name`` says which."""

    def __init__(self, backends: list, name: str):
        self._backends = backends
        self.name = name

    def detect(self, image_bgr: np.ndarray) -> list[dict]:
        """Faces as ``{"box": [x, y, w, h], "score": 0..1, "detector", "landmarks"}``, largest first;
        ``landmarks``: five [x, y] points (YuNet, MTCNN) or None (cascades)."""
        if image_bgr.ndim == 2:
            image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
        height, width = image_bgr.shape[:2]
        scale = min(MAX_UPSCALE, WORK_SIZE / max(height, width))
        work_bgr = image_bgr
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            work_bgr = cv2.resize(image_bgr, size, interpolation=interpolation)
        if min(work_bgr.shape[:2]) < MIN_FACE_SIDE:
            return []
        detections = _merge([d for backend in self._backends for d in backend.detect(work_bgr)])
        return _to_records(detections, 1.0 / scale, width, height)


def _to_records(detections: list[_Detection], upscale: float, width: int, height: int) -> list[dict]:
    records = []
    for det in detections:
        x0 = min(max(round(det.box[0] * upscale), 0), width)
        y0 = min(max(round(det.box[1] * upscale), 0), height)
        x1 = min(max(round((det.box[0] + det.box[2]) * upscale), 0), width)
        y1 = min(max(round((det.box[1] + det.box[3]) * upscale), 0), height)
        if x1 > x0 and y1 > y0:
            score = round(min(1.0, max(0.0, det.score)), 4)
            landmarks = None if det.landmarks is None else [
                [round(det.landmarks[i] * upscale, 1), round(det.landmarks[i + 1] * upscale, 1)]
                for i in range(0, 10, 2)]
            records.append({"box": [x0, y0, x1 - x0, y1 - y0], "score": score, "detector": det.detector,
                            "landmarks": landmarks})
    records.sort(key=lambda r: (-r["box"][2] * r["box"][3], -r["score"], r["box"][0], r["box"][1]))
    return records


def _build_detector(models_dir: Path | None, yunet_path: Path | None, cascade_path: Path | None) -> FaceDetector:
    for explicit in (yunet_path, cascade_path):
        if explicit is not None and not explicit.is_file():
            raise FaceDetectorUnavailable(f"face weights not found: {explicit}")
    faces_dir = models_dir / "faces" if models_dir is not None else None
    if yunet_path is None and models_dir is not None and (models_dir / YUNET_DEFAULT).is_file():
        yunet_path = models_dir / YUNET_DEFAULT
    if cascade_path is None and yunet_path is None and models_dir is not None:
        if (models_dir / ANIME_CASCADE_DEFAULT).is_file():
            cascade_path = models_dir / ANIME_CASCADE_DEFAULT
    backends: list = []
    if yunet_path is not None:
        backends.append(_YuNetBackend(yunet_path))
    if cascade_path is not None:
        backends.append(_CascadeBackend(cascade_path, "lbp_animeface"))
    if backends:
        return FaceDetector(backends, "+".join(b.name for b in backends))
    where = faces_dir if faces_dir is not None else "none given"
    packaged = mtcnn.weights_path()
    if packaged is not None:
        return FaceDetector([_MTCNNBackend(packaged)], f"mtcnn (packaged: no face weights in {where})")
    fallback = _CascadeBackend(Path(cv2.data.haarcascades) / FALLBACK_CASCADE_FILE, "haar_frontalface")
    return FaceDetector([fallback], f"haar_frontalface (fallback: no face weights in {where}, no mtcnn wheel)")


_per_thread = threading.local()


def load_face_detector(
    models_dir: str | Path | None,
    yunet_path: str | Path | None = None,
    cascade_path: str | Path | None = None,
) -> FaceDetector:
    """The detector for this configuration, built once per thread and reused.

    Weights come from ``{models_dir}/faces/``; explicit paths add to or
    replace them and must exist. With neither weight file present, the packaged
    MTCNN is used (OpenCV's Haar cascade when that wheel is missing too) and
    ``name`` says so.
    """
    key = tuple(
        Path(path).expanduser().resolve() if path is not None else None
        for path in (models_dir, yunet_path, cascade_path)
    )
    cache = getattr(_per_thread, "detectors", None)
    if cache is None:
        cache = _per_thread.detectors = {}
    if key not in cache:
        cache[key] = _build_detector(*key)
    return cache[key]
