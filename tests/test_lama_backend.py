"""LaMa adapter: loaded through simple-lama's real loader from a tiny TorchScript stand-in."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
simple_lama_model = pytest.importorskip("simple_lama_inpainting.models.model")

from frameloom.lama_backend import MAX_WORKING_SIDE, LamaInpainter  # noqa: E402

# torch 2.x deprecates TorchScript; simple-lama's loader (and LaMa's weights) still use it.
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")

BACKGROUND_BGR = (30, 90, 200)
CHARACTER_BGR = (200, 30, 90)


class MeanFill(torch.nn.Module):
    """LaMa's call signature; fills the hole with the mean colour of the known pixels.

    It refuses inputs larger than the adapter's working size (plus simple-lama's
    padding to a multiple of 8), so a test passing through it proves the bound.
    """

    def __init__(self):
        super().__init__()
        self.largest_side = MAX_WORKING_SIDE + 7

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if max(image.shape[2], image.shape[3]) > self.largest_side:
            raise RuntimeError("input larger than the working size")
        hole = mask.to(image.dtype)
        known = 1.0 - hole
        mean = (image * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True).clamp(min=1.0)
        return image * known + mean * hole


class RedFill(torch.nn.Module):
    """Fills the hole with pure red in the model's RGB convention."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hole = mask.to(image.dtype)
        red = torch.zeros_like(image)
        red[:, 0] = 1.0
        return image * (1.0 - hole) + red * hole


def save_module(module: torch.nn.Module, path) -> str:
    torch.jit.save(torch.jit.script(module), str(path))
    return str(path)


@pytest.fixture(scope="module")
def mean_fill_path(tmp_path_factory):
    return save_module(MeanFill(), tmp_path_factory.mktemp("lama") / "mean-fill.pt")


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    def refuse(url):
        raise AssertionError(f"simple-lama tried to download {url}")

    monkeypatch.setattr(simple_lama_model, "download_model", refuse)


def scene(width: int, height: int, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A flat background with a character-coloured ellipse inside ``box`` (x, y, w, h)."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND_BGR
    mask = np.zeros((height, width), np.uint8)
    x, y, w, h = box
    cv2.ellipse(mask, (x + w // 2, y + h // 2), (w // 2, h // 2), 0, 0, 360, 255, -1)
    image[mask > 0] = CHARACTER_BGR
    return image, mask > 0


def grown(mask: np.ndarray, pixels: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1,) * 2)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


@pytest.mark.parametrize(
    "width, height, box",
    [
        (97, 61, (30, 15, 30, 25)),  # neither side a multiple of 8: simple-lama pads, we crop back
        (333, 250, (40, 30, 90, 120)),  # the hole's context window is a crop of the frame
        (2001, 601, (300, 100, 1300, 400)),  # wider than the working size: filled downscaled
    ],
)
def test_fills_the_hole_and_leaves_the_rest_byte_identical(mean_fill_path, width, height, box):
    image, character = scene(width, height, box)
    dilation = 4
    result = LamaInpainter(mean_fill_path).inpaint(image, character, dilation=dilation)

    hole = grown(character, dilation)
    assert result.shape == image.shape and result.dtype == np.uint8
    assert np.array_equal(result[~hole], image[~hole])
    # The stand-in fills with the known pixels' mean: the flat background.
    fill_error = np.abs(result[hole].astype(int) - BACKGROUND_BGR).max()
    assert fill_error <= 2, f"hole filled {fill_error} levels off the background"


def test_model_sees_rgb_and_its_output_returns_as_bgr(tmp_path):
    inpainter = LamaInpainter(save_module(RedFill(), tmp_path / "red-fill.pt"))
    image, character = scene(120, 90, (40, 20, 40, 50))
    result = inpainter.inpaint(image, character, dilation=0)
    core = cv2.erode(character.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert (result[core] == (0, 0, 255)).all()


def test_feathered_edge_stays_inside_the_hole(tmp_path):
    inpainter = LamaInpainter(save_module(RedFill(), tmp_path / "red-fill.pt"))
    image, character = scene(120, 90, (40, 20, 40, 50))
    result = inpainter.inpaint(image, character, dilation=0)
    edge = character & ~cv2.erode(character.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    # The outermost ring of the hole is a blend of frame and fill, not pure fill.
    assert not (result[edge] == (0, 0, 255)).all(axis=1).any()
    assert np.array_equal(result[~character], image[~character])


def test_empty_mask_returns_an_identical_copy(mean_fill_path):
    image, _ = scene(64, 48, (10, 10, 20, 20))
    result = LamaInpainter(mean_fill_path).inpaint(image, np.zeros(image.shape[:2], bool))
    assert result is not image
    assert np.array_equal(result, image)


def test_rejects_a_mask_of_another_size(mean_fill_path):
    image, _ = scene(64, 48, (10, 10, 20, 20))
    with pytest.raises(ValueError, match="does not match image"):
        LamaInpainter(mean_fill_path).inpaint(image, np.zeros((48, 63), bool))


def test_auto_device_resolves_to_what_torch_has(mean_fill_path):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert LamaInpainter(mean_fill_path, device="auto").device == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_gives_the_cpu_result(mean_fill_path):
    image, character = scene(333, 250, (40, 30, 90, 120))
    on_cpu = LamaInpainter(mean_fill_path, device="cpu").inpaint(image, character)
    on_cuda = LamaInpainter(mean_fill_path, device="cuda").inpaint(image, character)
    assert np.abs(on_cuda.astype(int) - on_cpu).max() <= 1


def test_unknown_device_is_refused_before_loading(mean_fill_path):
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        LamaInpainter(mean_fill_path, device="tpu")


def test_missing_model_names_the_path_and_never_downloads(tmp_path, monkeypatch):
    monkeypatch.delenv("LAMA_MODEL", raising=False)
    missing = tmp_path / "inpainting" / "big-lama.pt"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        LamaInpainter(missing)
    assert "LAMA_MODEL" not in os.environ


@pytest.mark.parametrize("previous", [None, "/somewhere/else/big-lama.pt"])
def test_lama_model_env_var_is_restored(mean_fill_path, monkeypatch, previous):
    if previous is None:
        monkeypatch.delenv("LAMA_MODEL", raising=False)
    else:
        monkeypatch.setenv("LAMA_MODEL", previous)
    inpainter = LamaInpainter(mean_fill_path)
    assert os.environ.get("LAMA_MODEL") == previous
    assert inpainter.name == "lama"


def test_env_var_is_restored_when_loading_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("LAMA_MODEL", "/previous/big-lama.pt")
    corrupt = tmp_path / "big-lama.pt"
    corrupt.write_bytes(b"not a TorchScript archive")
    with pytest.raises(RuntimeError):
        LamaInpainter(corrupt)
    assert os.environ["LAMA_MODEL"] == "/previous/big-lama.pt"
