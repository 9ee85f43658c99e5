"""The workflow profiles: what they name exists, and the workstation GPU cap yields to SLURM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from frameloom.devices import keeps_workstation_gpu_cap

REPO = Path(__file__).resolve().parents[1]


def test_the_cluster_profile_names_only_rules_that_exist(tmp_path):
    listed = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                             "--directory", str(tmp_path), "--list-rules"], capture_output=True, text=True, check=True)
    rules = set(listed.stdout.split())
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    named = set(profile["groups"]) | set(profile["set-resources"])
    assert named and named <= rules, named - rules
    assert set(profile["groups"].values()) == set(profile["group-components"])


def test_cluster_model_batches_know_their_number_of_tries():
    """Jobs on the nodes run with --retries 0; the profile tells the model step how many tries it has."""
    from frameloom.registry import MODEL_STEPS

    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    for step in MODEL_STEPS:
        assert profile["set-resources"][step]["attempts"] == profile["retries"] + 1, step


@pytest.mark.parametrize(("cluster", "command_line", "kept"), [
    (False, ["--cores", "2"], True),
    (True, ["--profile", "profiles/slurm"], False),
    (True, ["--profile", "profiles/slurm", "--resources", "gpu=4"], True),
    (True, ["--res=gpu=4"], True),
    (True, ["--rerun-incomplete"], False),
])
def test_the_workstation_gpu_cap_holds_locally_and_yields_to_slurm(cluster, command_line, kept):
    assert keeps_workstation_gpu_cap(cluster, command_line) is kept
