"""Job logs: what every stage and batched step writes, and how a full disk reads in them.

Cheap stages run inside the Snakemake process (``run:`` rules executed in
threads), so they must not print or touch global state: every job writes what it
did, or the traceback of what failed, to its rule's log file.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import time
import traceback
from pathlib import Path

from .imageio import write_text

DISK_ERRORS = {errno.ENOSPC: "no space left on device", errno.EROFS: "read-only file system",
               errno.EDQUOT: "disk quota exceeded", errno.EACCES: "permission denied"}


def timing_line(stage: str, seconds: float) -> str:
    """The line every job log ends with: the job's wall time (read back by ``job_seconds``)."""
    return f"{stage}: {seconds:.3f} s"


def job_seconds(log_text: str) -> float | None:
    """The wall time a finished job's log ends with; None for a log cut short (a killed job)."""
    last = log_text.rstrip().rpartition("\n")[2]
    stage, _, seconds = last.rpartition(": ")
    if not stage or not seconds.endswith(" s"):
        return None
    try:
        return float(seconds[:-2])
    except ValueError:
        return None


class OutputDiskError(OSError):
    """A write failed because the disk is full or read-only (the message is one line)."""


def disk_error_line(error: OSError) -> str | None:
    """A one-line reason for a write that failed because of the disk (None for other errors)."""
    reason = DISK_ERRORS.get(error.errno)
    if reason is None or error.errno == errno.EACCES:
        return None
    where = f" writing {error.filename}" if error.filename else ""
    return f"OutputDiskError: {reason}{where}"


class _LiveLines(list):
    """Log lines that also go to the log file as they are added, so a batched job that runs for
    minutes shows its progress, and one that is killed leaves what it had done."""

    def __init__(self, handle):
        super().__init__()
        self._handle = handle

    def append(self, line: str) -> None:
        super().append(line)
        with contextlib.suppress(OSError, ValueError):  # a full disk or a closed log: the final write decides
            self._handle.write(f"{line}\n")
            self._handle.flush()

    def extend(self, lines) -> None:
        for line in lines:
            self.append(line)

    def __iadd__(self, lines):
        self.extend(lines)
        return self


@contextlib.contextmanager
def job_log(log_path: str, stage: str, live: bool = False):
    """Collect log lines; write them (and a traceback on failure) atomically at the end.
    ``live`` (the batched model jobs): each line also reaches the log file when it is added."""
    with contextlib.ExitStack() as stack:
        handle = None
        if live:
            with contextlib.suppress(OSError):
                Path(log_path).parent.mkdir(parents=True, exist_ok=True)
                handle = stack.enter_context(open(log_path, "w", encoding="utf-8"))
        with _collected(log_path, stage, _LiveLines(handle) if handle else []) as lines:
            yield lines


@contextlib.contextmanager
def _collected(log_path: str, stage: str, lines: list[str]):
    started = time.perf_counter()
    try:
        yield lines
    except OSError as error:
        reason = disk_error_line(error)
        lines.append(traceback.format_exc())
        if reason is None:
            raise
        # A full or read-only disk: one line for the user, the traceback stays in the log.
        lines.append(reason)
        raise OutputDiskError(reason.removeprefix("OutputDiskError: ")) from None
    except BaseException:
        lines.append(traceback.format_exc())
        raise
    finally:
        lines.append(timing_line(stage, time.perf_counter() - started))
        with contextlib.suppress(OSError):  # the log may not fit on a full disk either
            write_text(log_path, "\n".join(lines) + "\n")


def batch_step_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """The arguments every batched shell step takes (model_step, caption_step); callers add their own."""
    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch and OpenCV")
    parser.add_argument("--log", required=True)
    return parser
