"""Conda envs for `--sdm conda`: they parse, and their pins equal the versions the tests run."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml

ENVS = sorted((Path(__file__).resolve().parents[1] / "envs").glob("*.yaml"))
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)$")
POST_DEPLOY_PIN = re.compile(r"pip install .*?([A-Za-z0-9_\-]+)==([0-9][A-Za-z0-9_.+\-]*)")


def pins(env_file: Path) -> dict[str, str]:
    env = yaml.safe_load(env_file.read_text())
    assert "nodefaults" in env["channels"], f"{env_file.name}: add nodefaults"
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    found = {}
    for requirement in pip_section:
        match = PIN.match(requirement)
        assert match, f"{env_file.name}: {requirement!r} is not pinned with =="
        found[match[1].lower()] = match[2]
    post_deploy = env_file.with_name(env_file.stem + ".post-deploy.sh")
    if post_deploy.exists():
        found |= {name.lower(): version for name, version in POST_DEPLOY_PIN.findall(post_deploy.read_text())}
    return found


def test_there_are_envs():
    assert ENVS


@pytest.mark.parametrize("env_file", ENVS, ids=lambda p: p.name)
def test_pins_match_the_tested_versions(env_file):
    absent = []
    for name, version in pins(env_file).items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            absent.append(name)
            continue
        assert installed.split("+")[0] == version, f"{env_file.name}: {name}=={version}, tests run {installed}"
    if absent:
        pytest.skip(f"not installed here (install with --models): {', '.join(absent)}")
