"""Image and file I/O shared by every stage.

Every write goes to a temporary file in the destination directory and is then
renamed over the target, so a crash never leaves a half-written output behind.
Reads go through ``np.fromfile`` + ``cv2.imdecode`` so that paths with spaces,
quotes or non-ASCII characters work on every platform.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; outputs get the usual permissions instead.
FILE_MODE = 0o666 & ~_current_umask()


class FrameDecodeError(ValueError):
    """The file exists but is not an image OpenCV can decode."""


def read_image(path: str | os.PathLike, *, keep_alpha: bool = False) -> np.ndarray:
    """Decode an image file to uint8 BGR (or BGRA when ``keep_alpha``).

    Grayscale, palette and 16-bit inputs are converted to 8-bit BGR so every
    stage sees one layout. Raises ``FrameDecodeError`` with a one-line reason.
    """
    path = Path(path)
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size == 0:
        raise FrameDecodeError(f"empty file: {path.name}")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FrameDecodeError(f"not a decodable image: {path.name}")
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
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def staged_folder(final: str | os.PathLike) -> Path:
    """An empty temporary sibling of ``final`` to build a folder output in (see ``swap_in_folder``)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))


def swap_in_folder(staging: Path, final: str | os.PathLike) -> None:
    """Rename a complete ``staging`` folder to ``final``; an old ``final`` is moved aside first and
    deleted after, so readers see the old folder or the new one, never a mix."""
    final = Path(final)
    os.chmod(staging, 0o777 & ~_current_umask())
    aside = None
    if final.exists():
        aside = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".old"))
        os.replace(final, aside / final.name)
    os.replace(staging, final)
    if aside is not None:
        shutil.rmtree(aside)


def write_json_folder(folder: str | os.PathLike, payloads: dict[str, Any]) -> None:
    """``{name}.json`` per entry, all at once: built in a staged folder, then swapped in."""
    staging = staged_folder(folder)
    try:
        for name, payload in payloads.items():
            (staging / f"{name}.json").write_text(_json_text(payload), encoding="utf-8")
        swap_in_folder(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


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


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy bytes atomically (outputs must never be hard links into the input tree)."""
    _atomic_write_bytes(dst, Path(src).read_bytes())
