"""MTCNN (Zhang et al. 2016) in NumPy and OpenCV: the face detector the base install carries.

YuNet's weights cannot come with ``pip install`` (they live on GitHub); MTCNN's do: the
``mtcnn`` 0.1.1 wheel (MIT) ships the original Caffe networks converted to Keras layout as
``mtcnn/data/mtcnn_weights.npy``. That package runs them with TensorFlow, which the base
install does not have, so only its data file is read (found without importing the package)
and the three small networks run here. The cascade follows that package's reference code:
P-Net over a scale pyramid, R-Net on 24-px crops, O-Net on 48-px crops with five landmarks;
the networks see transposed images, as the Caffe originals were trained on.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

WEIGHTS_PACKAGE = "mtcnn"
WEIGHTS_FILE = "data/mtcnn_weights.npy"
# The reference defaults: pyramid step, per-stage score thresholds.
SCALE_FACTOR = 0.709
STAGE_THRESHOLDS = (0.6, 0.7, 0.7)
PNET_CELL = 12  # P-Net's receptive field; it steps 2 px over the scaled image
PNET_STRIDE = 2


def weights_path() -> Path | None:
    """The packaged weight file, or None when the ``mtcnn`` wheel is not installed."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / WEIGHTS_FILE
        if candidate.is_file():
            return candidate
    return None


def _conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Valid 2-D convolution of NHWC ``x`` with an HWIO kernel."""
    kh, kw = weight.shape[:2]
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))  # N, H', W', C, kh, kw
    return np.tensordot(windows, weight.transpose(2, 0, 1, 3), axes=([3, 4, 5], [0, 1, 2])) + bias


def _prelu(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, x * alpha)


def _max_pool(x: np.ndarray, size: int, stride: int, same: bool) -> np.ndarray:
    """Max pooling with TensorFlow's padding rules ('same' pads after, with -inf)."""
    if same:
        pads = []
        for length in x.shape[1:3]:
            out = -(-length // stride)
            total = max((out - 1) * stride + size - length, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=-np.inf)
    windows = sliding_window_view(x, (size, size), axis=(1, 2))[:, ::stride, ::stride]
    return windows.max(axis=(4, 5))


def _softmax_face(logits: np.ndarray) -> np.ndarray:
    """Probability of the 'face' class (index 1) of two-class logits on the last axis."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp[..., 1] / exp.sum(axis=-1)


class MTCNN:
    """The three-stage cascade; ``detect`` takes an RGB image."""

    def __init__(self, path: Path, min_face_size: int = 20):
        weights = np.load(path, allow_pickle=True).item()  # a dict of weight lists, as shipped
        self._pnet = [np.asarray(w, np.float32) for w in weights["pnet"]]
        self._rnet = [np.asarray(w, np.float32) for w in weights["rnet"]]
        self._onet = [np.asarray(w, np.float32) for w in weights["onet"]]
        self.min_face_size = min_face_size

    def _run_pnet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = self._pnet
        x = _max_pool(_prelu(_conv(x, w[0], w[1]), w[2]), 2, 2, same=True)
        x = _prelu(_conv(x, w[3], w[4]), w[5])
        x = _prelu(_conv(x, w[6], w[7]), w[8])
        return _conv(x, w[11], w[12]), _softmax_face(_conv(x, w[9], w[10]))

    def _run_rnet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = self._rnet
        x = _max_pool(_prelu(_conv(x, w[0], w[1]), w[2]), 3, 2, same=True)
        x = _max_pool(_prelu(_conv(x, w[3], w[4]), w[5]), 3, 2, same=False)
        x = _prelu(_conv(x, w[6], w[7]), w[8]).reshape(len(x), -1)
        x = _prelu(x @ w[9] + w[10], w[11])
        return x @ w[14] + w[15], _softmax_face(x @ w[12] + w[13])

    def _run_onet(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w = self._onet
        x = _max_pool(_prelu(_conv(x, w[0], w[1]), w[2]), 3, 2, same=True)
        x = _max_pool(_prelu(_conv(x, w[3], w[4]), w[5]), 3, 2, same=False)
        x = _max_pool(_prelu(_conv(x, w[6], w[7]), w[8]), 2, 2, same=True)
        x = _prelu(_conv(x, w[9], w[10]), w[11]).reshape(len(x), -1)
        x = _prelu(x @ w[12] + w[13], w[14])
        return x @ w[17] + w[18], x @ w[19] + w[20], _softmax_face(x @ w[15] + w[16])

    def detect(self, rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], float, tuple[float, ...]]]:
        """Faces as ``((x, y, w, h), score, landmarks)``; landmarks: five x, y pairs
        (image-left eye first, then the other eye, nose, image-left and right mouth corner)."""
        height, width = rgb.shape[:2]
        image = rgb.astype(np.float32)
        boxes = self._proposals(image)
        if len(boxes):
            boxes = self._refine(image, boxes)
        if not len(boxes):
            return []
        boxes, points = self._output(image, boxes)
        found = []
        for (x0, y0, x1, y1, score), point in zip(boxes, points):
            x, y = max(0.0, float(x0)), max(0.0, float(y0))
            w, h = min(float(x1), width) - x, min(float(y1), height) - y
            if w > 0 and h > 0:
                landmarks = tuple(float(v) for pair in zip(point[:5], point[5:]) for v in pair)
                found.append(((x, y, w, h), float(score), landmarks))
        return found

    def _proposals(self, image: np.ndarray) -> np.ndarray:
        """Stage 1: P-Net over the pyramid, per-scale and global NMS, box regression, squared."""
        height, width = image.shape[:2]
        scale = PNET_CELL / self.min_face_size
        smallest = min(height, width) * scale
        candidates = []
        while smallest >= PNET_CELL:
            size = (int(np.ceil(width * scale)), int(np.ceil(height * scale)))
            scaled = (cv2.resize(image, size, interpolation=cv2.INTER_AREA) - 127.5) * 0.0078125
            regression, score = self._run_pnet(scaled.transpose(1, 0, 2)[None])
            cols, rows = np.nonzero(score[0] >= STAGE_THRESHOLDS[0])  # transposed maps: column first
            if len(cols):
                boxes = np.column_stack([
                    np.fix((PNET_STRIDE * cols + 1) / scale), np.fix((PNET_STRIDE * rows + 1) / scale),
                    np.fix((PNET_STRIDE * cols + PNET_CELL) / scale), np.fix((PNET_STRIDE * rows + PNET_CELL) / scale),
                    score[0][cols, rows], regression[0][cols, rows]])
                candidates.append(boxes[_nms(boxes, 0.5, "union")])
            scale *= SCALE_FACTOR
            smallest *= SCALE_FACTOR
        if not candidates:
            return np.empty((0, 5))
        boxes = np.concatenate(candidates)
        boxes = boxes[_nms(boxes, 0.7, "union")]
        sides = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
        corrected = boxes[:, :4] + boxes[:, 5:9] * sides
        return _fix_corners(_square(np.column_stack([corrected, boxes[:, 4]])))

    def _refine(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Stage 2: R-Net rejects and adjusts the proposals."""
        regression, score = self._run_rnet(_crops(image, boxes, 24))
        keep = score > STAGE_THRESHOLDS[1]
        boxes = np.column_stack([boxes[keep, :4], score[keep]])
        if not len(boxes):
            return boxes
        pick = _nms(boxes, 0.7, "union")
        return _square(_regress(boxes[pick], regression[keep][pick]))

    def _output(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stage 3: O-Net scores, adjusts and places the landmarks."""
        boxes = _fix_corners(boxes)
        regression, points, score = self._run_onet(_crops(image, boxes, 48))
        keep = score > STAGE_THRESHOLDS[2]
        boxes = np.column_stack([boxes[keep, :4], score[keep]])
        points = points[keep]
        sides_w = boxes[:, 2:3] - boxes[:, 0:1] + 1
        sides_h = boxes[:, 3:4] - boxes[:, 1:2] + 1
        points = np.concatenate([sides_w * points[:, :5] + boxes[:, 0:1] - 1,
                                 sides_h * points[:, 5:] + boxes[:, 1:2] - 1], axis=1)
        if not len(boxes):
            return boxes, points
        boxes = _regress(boxes, regression[keep])
        pick = _nms(boxes, 0.7, "min")
        return boxes[pick], points[pick]


def _crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Each box (1-based inclusive corners, as the reference) cut out with zero padding
    outside the image, resized to ``size`` and normalised; transposed for the networks."""
    height, width = image.shape[:2]
    batch = np.zeros((len(boxes), size, size, 3), np.float32)
    for index, (x0, y0, x1, y1) in enumerate(boxes[:, :4].astype(int)):
        box_w, box_h = x1 - x0 + 1, y1 - y0 + 1
        if box_w <= 0 or box_h <= 0:
            continue
        patch = np.zeros((box_h, box_w, 3), np.float32)
        left, top = max(x0 - 1, 0), max(y0 - 1, 0)
        right, bottom = min(x1, width), min(y1, height)
        if right > left and bottom > top:
            patch[top - (y0 - 1):bottom - (y0 - 1), left - (x0 - 1):right - (x0 - 1)] = image[top:bottom, left:right]
        batch[index] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return ((batch - 127.5) * 0.0078125).transpose(0, 2, 1, 3)


def _fix_corners(boxes: np.ndarray) -> np.ndarray:
    return np.column_stack([np.fix(boxes[:, :4]), boxes[:, 4]])


def _regress(boxes: np.ndarray, regression: np.ndarray) -> np.ndarray:
    sides = np.stack([boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1] * 2, axis=1)
    return np.column_stack([boxes[:, :4] + regression * sides, boxes[:, 4]])


def _square(boxes: np.ndarray) -> np.ndarray:
    """Each box grown to a square around its centre (the networks' crops are square)."""
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    x0 = boxes[:, 0] + width * 0.5 - side * 0.5
    y0 = boxes[:, 1] + height * 0.5 - side * 0.5
    return np.column_stack([x0, y0, x0 + side, y0 + side, boxes[:, 4]])


def _nms(boxes: np.ndarray, threshold: float, method: str) -> np.ndarray:
    """Greedy non-maximum suppression on ``x0, y0, x1, y1, score`` rows (inclusive corners);
    overlap is over the union or, for ``"min"``, over the smaller box."""
    x0, y0, x1, y1, score = (boxes[:, i] for i in range(5))
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    order = np.argsort(score, kind="stable")
    kept = []
    while len(order):
        best, rest = order[-1], order[:-1]
        kept.append(best)
        inter = (np.maximum(0.0, np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]) + 1)
                 * np.maximum(0.0, np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]) + 1))
        denominator = np.minimum(area[best], area[rest]) if method == "min" else area[best] + area[rest] - inter
        order = rest[inter / denominator <= threshold]
    return np.asarray(kept, dtype=int)
