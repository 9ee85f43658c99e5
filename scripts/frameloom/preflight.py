"""Checks before any job starts: the output folder can be written and has room.

A read-only or full disk would otherwise surface as a traceback from whichever
job writes first; here it is one line naming the folder and what to do.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .joblog import DISK_ERRORS
from .schema import ConfigError

# Measured on the demo: results take about 7x the input frames' bytes
# (outputs, curated copies, augmented variants, links); 10x leaves margin.
OUTPUT_BYTES_PER_INPUT_BYTE = 10
MIN_FREE_BYTES = 50 * 2**20


def _mb(size: int) -> str:
    return f"{size / 2**20:.0f} MB"


def check_output_dir(out_dir: Path, input_bytes: int, frames: int) -> None:
    """Raise ConfigError (one line) when ``out_dir`` cannot be created and written, or lacks the room
    ``frames`` input frames of ``input_bytes`` in all are expected to need."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out_dir, prefix=".frameloom-write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        reason = DISK_ERRORS.get(error.errno, error.strerror or str(error))
        raise ConfigError(f"output_dir {out_dir}: cannot write there ({reason}); point output_dir at a "
                          "writable folder") from None
    needed = max(MIN_FREE_BYTES, input_bytes * OUTPUT_BYTES_PER_INPUT_BYTE)
    free = shutil.disk_usage(out_dir).free
    if free < needed:
        raise ConfigError(f"output_dir {out_dir}: {_mb(free)} free, but {frames} frames need about {_mb(needed)} "
                          f"({OUTPUT_BYTES_PER_INPUT_BYTE}x their {_mb(input_bytes)}, at least {_mb(MIN_FREE_BYTES)});"
                          " free some space or point output_dir elsewhere")
