"""Seeds for the random streams (occluders, augmentation): one place, one rule.

A seed comes from a name that is the same wherever the run's folder lies (a frame
id, an image's file name), never from an absolute path: the same frames give the
same dataset in any output folder and on any machine.
"""

from __future__ import annotations

import hashlib


def stable_seed(name: str) -> int:
    """A 32-bit seed from ``name`` (its sha256), the same in every process and Python."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")
