"""Image and file I/O shared by every stage.

Every write goes to a temporary file in the destination directory and is then
renamed over the target, so a crash never leaves a half-written output behind.
Reads go through ``np.fromfile`` + ``cv2.imdecode`` so that paths with spaces,
quotes or non-ASCII characters work on every platform. Before decoding, the
header (read by Pillow, which decodes nothing yet) gives the size, checked
against ``MAX_FRAME_PIXELS`` so a decompression bomb is refused without
allocating it, and the EXIF orientation, applied after decoding.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
# 100 megapixels: above any film frame (8K is 35 MP) and its 4x upscale of 2K;
# a 20000x20000 PNG of zeros is 400 KB on disk and 1.2 GB decoded.
MAX_FRAME_PIXELS = 100_000_000
# The size check above is ours (it names the size and the limit); Pillow's own
# guard would refuse large headers before we could read them.
Image.MAX_IMAGE_PIXELS = None
EXIF_ORIENTATION = 0x0112


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; outputs get the usual permissions instead.
FILE_MODE = 0o666 & ~_current_umask()


class FrameDecodeError(ValueError):
    """The file exists but is not an image OpenCV can decode."""


class FrameTooLarge(FrameDecodeError):
    """The header announces more pixels than ``MAX_FRAME_PIXELS`` (a decompression bomb, or a mistake)."""


def _orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) the way viewers (and Pillow's exif_transpose) do."""
    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: a.swapaxes(0, 1)[:, ::-1],
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: a.swapaxes(0, 1)[::-1],
    }
    transform = transforms.get(orientation)
    return np.ascontiguousarray(transform(image)) if transform else image


def _header(path: Path) -> int:
    """Check the size the header announces; returns the EXIF orientation (1 when none).

    A file Pillow cannot identify is left to OpenCV, which names the failure."""
    try:
        with Image.open(path) as header:
            width, height = header.size
            # Pillow decodes a whole PNG to look for an eXIf chunk after the pixels: only
            # one before them (already in .info) is read, so nothing is decoded twice.
            png_without_exif = header.format == "PNG" and "exif" not in header.info
            orientation = 1 if png_without_exif else header.getexif().get(EXIF_ORIENTATION, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return 1
    if width * height > MAX_FRAME_PIXELS:
        raise FrameTooLarge(f"{width}x{height} is {width * height / 1e6:.0f} MP, over the "
                            f"{MAX_FRAME_PIXELS / 1e6:.0f} MP limit: {path.name}")
    return orientation if isinstance(orientation, int) else 1


def read_image(path: str | os.PathLike, *, keep_alpha: bool = False) -> np.ndarray:
    """Decode an image file to uint8 BGR (or BGRA when ``keep_alpha``), upright per its EXIF.

    Grayscale, palette, CMYK and 16-bit inputs are converted to 8-bit BGR so
    every stage sees one layout. Raises ``FrameDecodeError`` (or
    ``FrameTooLarge``) with a one-line reason.
    """
    path = Path(path)
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size == 0:
        raise FrameDecodeError(f"empty file: {path.name}")
    orientation = _header(path)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FrameDecodeError(f"not a decodable image: {path.name}")
    image = _orient(image, orientation)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4 and not keep_alpha:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.shape[2] == 3 and keep_alpha:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    return image


def _atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        # A failed write names no file; say which output it was (same errno, same subclass).
        raise OSError(error.errno, error.strerror, str(path)) from error
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def building_folder(final: str | os.PathLike) -> Iterator[Path]:
    """An empty temporary sibling of ``final`` to build a folder output in. When the block
    ends it is renamed to ``final`` (an old ``final`` moved aside first and deleted after), so
    readers see the old folder or the new one, never a mix; when the block raises it is
    removed, and the old ``final`` stays as it was."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_current_umask())
        aside = None
        if final.exists():
            aside = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".old"))
            os.replace(final, aside / final.name)
        os.replace(staging, final)
        if aside is not None:
            shutil.rmtree(aside)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def update_json_folder(folder: str | os.PathLike, payloads: dict[str, Any]) -> tuple[int, int]:
    """``{name}.json`` per entry, each written atomically and only when its bytes change; other
    ``*.json`` files in the folder are removed. Unchanged files keep their mtime, so a rerun
    that reads them redoes nothing. Returns (files written, files removed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, payload in payloads.items():
        path = folder / f"{name}.json"
        text = _json_text(payload).encode("utf-8")
        try:
            unchanged = path.read_bytes() == text
        except FileNotFoundError:
            unchanged = False
        if not unchanged:
            _atomic_write_bytes(path, text)
            written += 1
    stale = [path for path in folder.glob("*.json") if path.stem not in payloads]
    for path in stale:
        path.unlink()
    return written, len(stale)


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Encode by the target's extension (PNG keeps alpha) and write atomically."""
    ext = Path(path).suffix.lower() or ".png"
    ok, encoded = cv2.imencode(ext, image)
    if not ok:
        raise ValueError(f"cannot encode image as {ext}: {path}")
    _atomic_write_bytes(path, encoded.tobytes())


def write_text(path: str | os.PathLike, text: str) -> None:
    _atomic_write_bytes(path, text.encode("utf-8"))


def _json_text(payload: Any) -> str:
    """Stable JSON: sorted keys, so identical content gives identical bytes."""
    return json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(path: str | os.PathLike, payload: Any) -> None:
    write_text(path, _json_text(payload))


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Hard-link when the filesystem allows, else copy: for files that are only ever replaced by
    rename, never edited in place (the run's outputs), so a link cannot change under its reader."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy bytes atomically (outputs must never be hard links into the input tree)."""
    _atomic_write_bytes(dst, Path(src).read_bytes())
