"""Hostile and unusual input files, generated: each with what reading it must give.

Used by the reader's unit tests and by the workflow test that runs them all.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from frameloom.demo import FrameSpec, render_frame


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def decompression_bomb_png(path: Path, side: int = 20000) -> None:
    """A valid greyscale PNG of side x side zeros: ~400 KB on disk, side^2 bytes decoded."""
    packer = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat)
                     + _png_chunk(b"IEND", b""))


def frame(seed: int = 1) -> np.ndarray:
    return render_frame(FrameSpec(seed=seed))[0]


def write_bad_inputs(folder: Path) -> dict[str, str | tuple[int, int]]:
    """Write every case into ``folder``; returns {file name: (height, width) it must read as,
    or the error text the reader must raise (``Name: reason``)}."""
    folder.mkdir(parents=True, exist_ok=True)
    image = frame()
    rgb = Image.fromarray(image[:, :, ::-1])
    png = cv2.imencode(".png", image)[1].tobytes()
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    expected: dict[str, str | tuple[int, int]] = {}

    (folder / "zero byte.png").write_bytes(b"")
    expected["zero byte.png"] = "FrameDecodeError: empty file: zero byte.png"
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    expected["truncated.png"] = "FrameDecodeError: not a decodable image: truncated.png"
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    expected["truncated.jpg"] = "FrameDecodeError: not a decodable image: truncated.jpg"
    (folder / "text.png").write_text("this is a text file\n")
    expected["text.png"] = "FrameDecodeError: not a decodable image: text.png"
    decompression_bomb_png(folder / "bomb.png")
    expected["bomb.png"] = "FrameTooLarge: 20000x20000 is 400 MP, over the 100 MP limit: bomb.png"

    cv2.imwrite(str(folder / "sixteen bit.png"), image.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "grey.png"), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "rgba.png"), cv2.cvtColor(image, cv2.COLOR_BGR2BGRA))
    rgb.convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    for name in ("sixteen bit.png", "grey.png", "rgba.png", "palette.png", "cmyk.jpg"):
        expected[name] = image.shape[:2]
    cv2.imwrite(str(folder / "one pixel.png"), image[:1, :1])
    expected["one pixel.png"] = (1, 1)
    cv2.imwrite(str(folder / "eight.png"), image[:8, :8])
    expected["eight.png"] = (8, 8)
    # Stored landscape, shown portrait: orientation 6 rotates 90 degrees clockwise.
    exif = rgb.getexif()
    exif[0x0112] = 6
    rgb.save(folder / "exif rotated.jpg", exif=exif, quality=95)
    expected["exif rotated.jpg"] = (image.shape[1], image.shape[0])

    # Hostile names on good frames: each must process like any other frame.
    for seed, name in enumerate(("with space.png", "ünïcödé 名前.png", "quote's \"double\".png",
                                 "$(touch PWNED).png", "semi;colon `tick`.png", "-leading-dash.png"), start=2):
        cv2.imencode(".png", frame(seed))[1].tofile(str(folder / name))
        expected[name] = image.shape[:2]
    return expected
