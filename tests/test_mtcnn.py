"""The NumPy MTCNN: its layers against direct loops, its NMS, and the packaged weights."""

from __future__ import annotations

import numpy as np
import pytest

from frameloom import mtcnn


def test_convolution_matches_a_direct_loop():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 7, 6, 3)).astype(np.float32)
    weight = rng.normal(size=(3, 2, 3, 4)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    expected = np.zeros((2, 5, 5, 4), np.float32)
    for n in range(2):
        for i in range(5):
            for j in range(5):
                expected[n, i, j] = np.einsum("abc,abco->o", x[n, i:i + 3, j:j + 2], weight) + bias
    np.testing.assert_allclose(mtcnn._conv(x, weight, bias), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size, stride, same, length, out", [
    (2, 2, True, 7, 4), (3, 2, True, 22, 11), (3, 2, False, 10, 4), (2, 2, True, 6, 3)])
def test_max_pool_follows_tensorflow_padding(size, stride, same, length, out):
    x = np.arange(length * length, dtype=np.float32).reshape(1, length, length, 1)
    pooled = mtcnn._max_pool(x, size, stride, same)
    assert pooled.shape == (1, out, out, 1)
    for i in range(out):
        for j in range(out):
            window = x[0, i * stride:i * stride + size, j * stride:j * stride + size, 0]
            assert pooled[0, i, j, 0] == window.max()  # 'same' pads after, so windows start alike


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 9, 9, 0.8], [1, 1, 10, 10, 0.9], [50, 50, 59, 59, 0.7], [2, 2, 5, 5, 0.95]])
    assert list(mtcnn._nms(boxes, 0.5, "union")) == [3, 1, 2]  # the small box overlaps little by union
    assert list(mtcnn._nms(boxes, 0.5, "min")) == [3, 2]  # but lies inside the others


def test_packaged_weights_load_and_find_nothing_on_blank_or_tiny_images():
    path = mtcnn.weights_path()
    assert path is not None and path.is_file(), "scripts/install.sh installs the mtcnn wheel"
    detector = mtcnn.MTCNN(path)
    assert detector.detect(np.full((120, 160, 3), 128, np.uint8)) == []
    assert detector.detect(np.zeros((10, 10, 3), np.uint8)) == []
