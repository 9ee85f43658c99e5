"""profiles/slurm against a REAL single-node SLURM (tests/slurm_cluster.py).

Skipped without root or the SLURM packages; `.ci/run` installs them. Every
Snakemake call runs under `timeout -s KILL`: without accounting the plugin
can wait forever on a job squeue no longer knows.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from slurm_cluster import SlurmCluster, unavailable_reason

from frameloom.demo import write_demo_set
from frameloom.plan import read_plan
from frameloom.registry import MODEL_STEPS
from frameloom.summary import current_report, exit_code

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
if unavailable_reason():
    pytest.skip(unavailable_reason(), allow_module_level=True)
pytest.importorskip("snakemake_executor_plugin_slurm")

FRAMES = 20
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")
# Status polls start after 2 s instead of 40: the test cluster answers at once.
FAST_POLLING = ("--slurm-init-seconds-before-status-checks", "2")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    slurm = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    slurm.start()
    yield slurm
    slurm.stop()


def snakemake(workdir: Path, *args: str, limit: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["timeout", "-s", "KILL", str(limit), sys.executable, "-m", "snakemake", "--directory", str(workdir), *args],
        capture_output=True, text=True,
    )


def demo_workdir(root: Path, models_dir: Path) -> Path:
    """A working directory for the demo; one models dir for both runs (the report names its path)."""
    (root / "config").mkdir(parents=True)
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(
        {"demo": {"frames": FRAMES, "width": 256, "height": 144}, "models_dir": str(models_dir)}))
    return root


def training_files(workdir: Path) -> dict[str, bytes]:
    root = workdir / "results" / "training"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name != ".snakemake_timestamp"}


def test_the_workflow_runs_on_slurm_like_locally(cluster, tmp_path):
    on_slurm = demo_workdir(tmp_path / "slurm", tmp_path / "no-models")
    run = snakemake(on_slurm, "--snakefile", str(REPO / "Snakefile"), "--profile", str(REPO / "profiles" / "slurm"),
                    "--cores", "2", *FAST_POLLING)
    log = run.stdout + run.stderr
    # The one exit-code rule: 1 when the report has failed frames (a tiny demo frame can).
    assert run.returncode == exit_code(current_report(on_slurm / "results")), run.stdout[-3000:] + log[-2000:]
    # Every job with an action went through sbatch, but the target `all` and the model jobs'
    # parameters files (a few lines of JSON from the plan, written where the workflow runs).
    assert set(re.findall(r"^localrule (\w+):", log, re.MULTILINE)) == {"all", "job_parameters"}, log[-3000:]
    # The profile's retries reach the model steps inside the SLURM job: a failing frame gets its retry.
    batch_logs = sorted(p for step in MODEL_STEPS for p in (on_slurm / "results" / "logs" / step).glob("*.log"))
    assert batch_logs and all("; attempt 1 of 2" in p.read_text() for p in batch_logs)
    submissions = SUBMITTED.findall(log)
    controller = (Path(cluster.root) / "slurmctld.log").read_text()
    assert submissions and all(f"JobId={job} " in controller for job in submissions)
    # Per-frame jobs went out grouped: far fewer submissions than jobs.
    jobs = int(re.search(r"^(\d+) of \1 steps \(100%\) done", log, re.MULTILINE)[1])
    print(f"\n{jobs} jobs in {len(submissions)} SLURM submissions")
    assert len(submissions) < jobs / 3

    local = demo_workdir(tmp_path / "local", tmp_path / "no-models")
    assert snakemake(local, "--snakefile", str(REPO / "Snakefile"), "--cores", "2").returncode == \
        exit_code(current_report(local / "results"))
    assert training_files(on_slurm) == training_files(local)
    summaries = [json.loads((w / "results" / "processing_report.json").read_text())["summary"]
                 for w in (on_slurm, local)]
    assert summaries[0] == summaries[1]


def test_a_failing_rule_fails_the_run(cluster, tmp_path):
    run = snakemake(tmp_path, "--snakefile", str(REPO / "tests" / "slurm" / "Snakefile"),
                    "--profile", str(REPO / "profiles" / "slurm"), "--retries", "0", *FAST_POLLING, "broken.txt",
                    limit=300)
    assert run.returncode != 0
    assert len(SUBMITTED.findall(run.stdout + run.stderr)) == 1
    assert "Error in rule broken" in run.stdout + run.stderr


def test_retries_resubmit_a_flaky_job(cluster, tmp_path):
    run = snakemake(tmp_path, "--snakefile", str(REPO / "tests" / "slurm" / "Snakefile"),
                    "--profile", str(REPO / "profiles" / "slurm"), "--retries", "1", *FAST_POLLING, limit=300)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    assert len(SUBMITTED.findall(log)) == 2, "the first attempt fails, the retry is a second sbatch job"
    assert (tmp_path / "flaky.txt").read_text() == "attempt 2\n"


def test_the_frameloom_command_shows_progress_on_slurm(cluster, tmp_path):
    """`frameloom run --profile profiles/slurm`: per-stage progress from the cluster run's job events."""
    write_demo_set(tmp_path / "frames", 6, width=256, height=144, seed=3)
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    profile["slurm-init-seconds-before-status-checks"] = 2  # FAST_POLLING, as a profile key
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / "config.yaml").write_text(yaml.safe_dump(profile))
    run = subprocess.run(["timeout", "-s", "KILL", "600", sys.executable, "-m", "frameloom.cli", "run", "frames",
                          "--output-dir", "out", "--profile", str(tmp_path / "profile")],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode in (0, 1), run.stderr[-3000:]  # 1: a frame the classical fallbacks could not cut out
    assert SUBMITTED.search(run.stderr), "the jobs went through sbatch"
    progress = re.findall(r"^frameloom: (\w+) (\d+)/(\d+)", run.stderr, re.MULTILINE)
    last = {rule: (int(done), int(total)) for rule, done, total in progress}
    assert last["analyze"] == (6, 6), run.stderr[-3000:]
    planned = Counter(read_plan(str(tmp_path / "out" / "plan.tsv")).values())
    for strategy in set(planned) & {"keep_full", "create_occlusion"}:
        assert last[strategy] == (planned[strategy], planned[strategy]), (strategy, run.stderr[-3000:])
    # Rates count from each stage's submission: a group's jobs end together, yet no stage of
    # this 2-core cluster reaches 50 frames/s.
    rates = [float(rate) for rate in re.findall(r"^frameloom: .*\((\d+\.\d)/s", run.stderr, re.MULTILINE)]
    assert rates and max(rates) < 50, rates
    assert "frames 6: " in run.stdout and f"report: {tmp_path / 'out' / 'report.html'}" in run.stdout


def gpu_probes(workdir: Path) -> list[tuple[float, str, float]]:
    """(start, CUDA_VISIBLE_DEVICES, end) of each gpu_probe job."""
    probes = []
    for path in sorted((workdir / "gpu_probe").glob("*.txt")):
        start, card, end = path.read_text().split()
        probes.append((float(start), card, float(end)))
    return probes


def test_gpu_jobs_get_a_card_each_and_run_side_by_side(cluster, tmp_path):
    """GPU rules ask SLURM for `gpu` (the plugin's --gpus, a real GRES request). The workflow
    profile's workstation cap (gpu: 1, loaded with the cluster profile too) does not hold them
    back on the cluster; a --resources cap on the command line does."""
    probe = ("--snakefile", str(REPO / "tests" / "slurm" / "Snakefile"), "--profile", str(REPO / "profiles" / "slurm"),
             "--workflow-profile", str(REPO / "profiles" / "default"), *FAST_POLLING,
             "gpu_probe/0.txt", "gpu_probe/1.txt")
    (tmp_path / "cluster").mkdir()
    run = snakemake(tmp_path / "cluster", *probe, limit=300)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    jobs = SUBMITTED.findall(log)
    assert len(jobs) == 2, log[-6000:]
    for job in jobs:
        # MinJobAge keeps finished jobs in the controller: each asked SLURM for one GPU.
        shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
        assert "gres:gpu:1" in shown, shown
    (start_a, card_a, end_a), (start_b, card_b, end_b) = gpu_probes(tmp_path / "cluster")
    assert {card_a, card_b} == {"0", "1"}, "each job got its own card"
    assert start_b < end_a and start_a < end_b, "the two GPU jobs ran at the same time"

    (tmp_path / "capped").mkdir()
    capped = snakemake(tmp_path / "capped", *probe, "--resources", "gpu=1", limit=300)
    assert capped.returncode == 0, (capped.stdout + capped.stderr)[-3000:]
    (start_a, _, end_a), (start_b, _, end_b) = gpu_probes(tmp_path / "capped")
    assert start_b >= end_a or start_a >= end_b, "--resources gpu=1 runs them one after the other"
