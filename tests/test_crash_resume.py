"""Kill the whole snakemake process group mid-run with SIGKILL, rerun, and get what an uninterrupted run gets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_workflow import REPO, faces_only_models_dir, snakemake, write_config

from frameloom.demo import write_demo_set

pytestmark = pytest.mark.slow
# report.html lists each stage's run time: the one output that differs between two good runs.
TIMED = {"report.html"}


def project(root: Path, models: Path) -> Path:
    """Ten generated frames; both projects share one models folder (model-cache keys name the weights' path)."""
    write_demo_set(root / "frames", 10, seed=21, truth_dir=root / "truth")
    write_config(root, models_dir=str(models))
    return root


def tree(workdir: Path) -> dict[str, bytes]:
    """Every result file's bytes, with the project's own path written as <workdir> (the job logs
    under results/logs record times and attempts: a record of the run, not a result; Snakemake's
    .snakemake_timestamp marks when it checked a folder output, and exists or not by timing)."""
    out = workdir / "results"
    return {
        str(path.relative_to(out)): path.read_bytes().replace(str(workdir).encode(), b"<workdir>")
        for path in sorted(out.rglob("*"))
        if path.is_file() and path.name not in TIMED and path.name != ".snakemake_timestamp"
        and path.relative_to(out).parts[0] != "logs"
    }


def test_sigkill_mid_run_then_rerun_gives_identical_outputs(tmp_path):
    models = faces_only_models_dir(tmp_path)
    reference = project(tmp_path / "reference", models)
    snakemake(reference)

    crashed = project(tmp_path / "crashed", models)
    run = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2",
         "--directory", str(crashed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    # Kill once some frames have strategy outputs and others have not been decided yet
    # (or, on a fast machine, as soon as any strategy job has finished).
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:
        if list((crashed / "results" / "curated").glob("*/*")):
            break
        time.sleep(0.05)
    assert run.poll() is None, "the run finished before it could be killed"
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    assert not (crashed / "results" / "processing_report.json").exists(), "killed before the end"

    # A killed Snakemake leaves its lock: --unlock (documented), then the plain command again;
    # the default profile sets rerun-incomplete, so jobs cut short are redone.
    snakemake(crashed, "--unlock")
    snakemake(crashed)
    leftovers = [p for p in (crashed / "results").rglob("*") if p.name.endswith((".tmp", ".old"))]
    assert leftovers == [], "no half-written file or staging folder survives"
    expected, got = tree(reference), tree(crashed)
    assert sorted(set(got) - set(expected)) == [] and sorted(set(expected) - set(got)) == []
    assert [name for name in expected if got[name] != expected[name]] == []
