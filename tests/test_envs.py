"""One list of versions: constraints.txt. The install uses it, the conda envs for
`--sdm conda` agree with it, and the installed packages are the ones it names, so an
upstream release (a new pyyaml, numpy, ...) never changes what the tests run."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "constraints.txt"
ENVS = sorted((REPO / "envs").glob("*.yaml"))
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)$")
POST_DEPLOY_PIN = re.compile(r"pip install .*?([A-Za-z0-9_\-]+)==([0-9][A-Za-z0-9_.+\-]*)")


def normalized(name: str) -> str:
    """PEP 503: PyYAML, pyyaml and py_yaml are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def constraint_pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"constraints.txt: {line!r} is not pinned with =="
        assert normalized(match[1]) not in pins, f"constraints.txt: {match[1]} pinned twice"
        pins[normalized(match[1])] = match[2]
    return pins


def env_pins(env_file: Path) -> dict[str, str]:
    env = yaml.safe_load(env_file.read_text())
    assert "nodefaults" in env["channels"], f"{env_file.name}: add nodefaults"
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    found = {}
    for requirement in pip_section:
        match = PIN.match(requirement)
        assert match, f"{env_file.name}: {requirement!r} is not pinned with =="
        found[normalized(match[1])] = match[2]
    post_deploy = env_file.with_name(env_file.stem + ".post-deploy.sh")
    if post_deploy.exists():
        found |= {normalized(name): version for name, version in POST_DEPLOY_PIN.findall(post_deploy.read_text())}
    return found


def test_there_are_envs():
    assert ENVS


def test_every_model_step_has_its_own_env():
    from frameloom.models import requirement_env
    from frameloom.registry import MODEL_STEPS

    assert {f"{requirement_env(requirement)}.yaml" for *_, requirement in MODEL_STEPS.values()} <= {
        env.name for env in ENVS}


def test_install_script_installs_with_the_constraints():
    script = (REPO / "scripts" / "install.sh").read_text()
    assert "-c constraints.txt" in script
    # Every pip call goes through the helper that adds the constraints, and pins
    # nothing of its own (one place for each version).
    assert ".venv/bin/pip " in script and script.count(".venv/bin/pip ") == 1
    assert not re.search(r"pip install [^\n]*==", script), "install.sh pins a version: pin it in constraints.txt"


# The one env with pins of its own: simple-lama-inpainting 0.1.2 requires numpy<2, pillow<10 and
# fire<0.6 (the default install keeps one environment and installs it --no-deps), so under
# `--sdm conda` LaMa runs in envs/lama.yaml with versions that meet those requirements.
OWN_PINS = {"lama.yaml": {"numpy": "<2", "pillow": ">=9.5,<10", "fire": ">=0.5,<0.6",
                          "opencv-python": ">=4.8,<4.11"}}  # 4.14, the constraint, requires numpy>=2; 4.10 takes 1.x


@pytest.mark.parametrize("env_file", ENVS, ids=lambda p: p.name)
def test_env_pins_equal_the_constraints(env_file):
    from packaging.specifiers import SpecifierSet

    constraints = constraint_pins()
    own = OWN_PINS.get(env_file.name, {})
    for name, version in env_pins(env_file).items():
        if name in own:
            assert version in SpecifierSet(own[name]), f"{env_file.name}: {name}=={version} is not {own[name]}"
            continue
        assert name in constraints, f"{env_file.name}: {name} is not in constraints.txt"
        assert constraints[name] == version, (
            f"{env_file.name}: {name}=={version}, constraints.txt says {constraints[name]}")


def test_installed_packages_are_the_constrained_versions():
    """install.sh installs with constraints.txt, so what runs the tests is what it names."""
    absent, wrong = [], []
    for name, version in constraint_pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            absent.append(name)
            continue
        if installed.split("+")[0] != version.split("+")[0]:
            wrong.append(f"{name}: constraints.txt {version}, installed {installed}")
    assert not wrong, "reinstall with scripts/install.sh: " + "; ".join(wrong)
    if absent:
        pytest.skip(f"not installed here (install with --models): {', '.join(absent[:8])}"
                    + (f" and {len(absent) - 8} more" if len(absent) > 8 else ""))
