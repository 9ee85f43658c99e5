"""A read-only or full output disk gives one clear line, before the run or from the job that hit it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from frameloom.imageio import write_text
from frameloom.joblog import OutputDiskError, job_log
from frameloom.preflight import check_output_dir
from frameloom.schema import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _can_mount() -> str | None:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return "mounting a small tmpfs needs root"
    return None


@pytest.fixture()
def small_disk(tmp_path):
    """Mount a tmpfs of the given size (and read-only or not) at a fresh folder; unmounted after."""
    if _can_mount():
        pytest.skip(_can_mount())
    mounted = []

    def mount(size: str, read_only: bool = False) -> Path:
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", str(where)], check=False)


def test_a_writable_roomy_folder_passes(tmp_path):
    check_output_dir(tmp_path / "results", 1000, 2)
    assert (tmp_path / "results").is_dir() and list((tmp_path / "results").iterdir()) == []


def test_read_only_and_full_disks_are_named(small_disk):
    read_only = small_disk("1m", read_only=True)
    with pytest.raises(ConfigError, match=r"results: cannot write there \(read-only file system\); point output_dir"):
        check_output_dir(read_only / "results", 1000, 2)
    tiny = small_disk("4m")
    with pytest.raises(ConfigError, match=r"results: 4 MB free, but 3 frames need about 100 MB \(10x their 10 MB"):
        check_output_dir(tiny / "results", 10 * 2**20 - 1, 3)


def test_a_job_that_fills_the_disk_fails_with_one_line(small_disk, tmp_path):
    full = small_disk("64k")
    with pytest.raises(OutputDiskError, match=r"^no space left on device writing .*big\.txt$"):
        with job_log(str(tmp_path / "job.log"), "stage"):
            write_text(full / "big.txt", "x" * 200_000)
    log = (tmp_path / "job.log").read_text()
    assert "Traceback" in log and "OutputDiskError: no space left on device writing" in log
    assert [p.name for p in full.iterdir()] == [], "the atomic write left no partial file"


@pytest.mark.slow
def test_the_workflow_stops_before_any_job_on_a_read_only_or_full_disk(small_disk, tmp_path):
    for disk, message in ((small_disk("1m", read_only=True), "cannot write there (read-only file system)"),
                          (small_disk("4m"), "4 MB free, but 24 frames need about 50 MB")):
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "1",
             "--directory", str(tmp_path), "--config", f"output_dir={disk / 'results'}"],
            capture_output=True, text=True, timeout=300)
        assert result.returncode == 2  # an environment error, by the one exit-code rule
        lines = [line for line in result.stderr.splitlines() if line.startswith("frameloom: ")]
        assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
        assert "Traceback" not in result.stderr


def test_a_live_job_log_shows_each_line_at_once_and_survives_a_kill(tmp_path):
    """The batched model jobs log as they go: a line is in the file when it is added, and a job
    killed mid-batch (SIGKILL: no handler runs) leaves the lines it had written."""
    import signal
    import subprocess
    import sys

    log = tmp_path / "logs" / "job.log"
    with job_log(str(log), "stage", live=True) as lines:
        lines.append("frame_0001: done")
        assert log.read_text() == "frame_0001: done\n"
        lines += ["frame_0002: done"]
        assert log.read_text().splitlines() == ["frame_0001: done", "frame_0002: done"]
    assert log.read_text().splitlines()[:2] == ["frame_0001: done", "frame_0002: done"]
    assert log.read_text().splitlines()[-1].startswith("stage: ")

    killed = tmp_path / "killed.log"
    script = ("import os, signal\nfrom frameloom.joblog import job_log\n"
              f"with job_log({str(killed)!r}, 'stage', live=True) as lines:\n"
              "    lines.append('frame_0001: done')\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL
    assert killed.read_text() == "frame_0001: done\n"


def test_job_seconds_reads_the_timing_line_a_job_log_ends_with(tmp_path):
    from frameloom.joblog import job_seconds, timing_line

    with job_log(str(tmp_path / "a.log"), "masks batch") as lines:
        lines.append("frame: error: no mask: 3 s of work")  # colons inside lines do not confuse it
    assert job_seconds((tmp_path / "a.log").read_text()) is not None
    assert job_seconds("frame done\n" + timing_line("analyze", 1.25) + "\n") == 1.25
    assert job_seconds("frame_0001: done\n") is None  # a job killed before its last line
    assert job_seconds("") is None
