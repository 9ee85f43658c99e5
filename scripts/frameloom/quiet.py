"""Silencing a library's prints without losing the process's stdout.

``contextlib.redirect_stdout`` swaps the process-wide ``sys.stdout``: two threads
(the Snakemake process runs cheap jobs in threads) that enter it at once restore
each other's StringIO, and every later print of the process (the end-of-run
summary among them) vanishes. One lock makes the swaps nest properly.
"""

from __future__ import annotations

import contextlib
import io
import threading

_STDOUT_SWAP = threading.RLock()


@contextlib.contextmanager
def silenced_stdout():
    """Swallow what the block prints to stdout; safe to use from several threads."""
    with _STDOUT_SWAP, contextlib.redirect_stdout(io.StringIO()):
        yield
