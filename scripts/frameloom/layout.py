"""Where every file goes: the seed's output tree, one definition for the rules and the merge.

Patterns contain the ``{frame}`` wildcard. Each strategy also writes
``<strategy>/meta/{frame}.json`` listing what it produced and which backend made it.
"""

from __future__ import annotations

import hashlib

from .registry import STRATEGIES, STRATEGY_REGISTRY

# What `frameloom run` / `preview` were given, kept in the output folder so `merge OUT`
# and `review OUT` configure themselves like that run.
RUN_FLAGS_FILE = "frameloom-run.yaml"


BATCH_ID_HEX = 12  # digits of a batch id (its first frame's hash)


def _frame_hash(frame: str) -> int:
    return int.from_bytes(hashlib.sha256(frame.encode()).digest()[:8], "big")


def _cuts_before(frame: str, length: int, size: int) -> bool:
    """Whether a batch of ``length`` frames ends before ``frame``: where the frame's hash says
    so, one frame in ``size``; past twice ``size``, one in a quarter of it (still the frame's
    own choice, so cuts after a change fall back in step); at four times ``size``, always."""
    digest = _frame_hash(frame)
    return (digest % size == 0 or (length >= 2 * size and digest % max(1, size // 4) == 0)
            or length >= 4 * size)


def content_batches(frames, size: int) -> dict[str, list[str]]:
    """Frames (sorted) in batches of about ``size`` (at most four times it), cut where the
    frames' own hashes say so (``_cuts_before``), not by position: adding, removing or
    re-planning one frame changes its own batch and seldom a neighbour, so a model step
    reruns that batch only. A batch is named by its first frame's hash."""
    batches: dict[str, list[str]] = {}
    current: list[str] = []
    for frame in sorted(frames):
        if current and _cuts_before(frame, len(current), size):
            batches[f"{_frame_hash(current[0]):016x}"[:BATCH_ID_HEX]] = current
            current = []
        current.append(frame)
    if current:
        batches[f"{_frame_hash(current[0]):016x}"[:BATCH_ID_HEX]] = current
    return batches


def logs_dir(out: str) -> str:
    """Every job's log and benchmark of a run, under its output folder: runs into other
    folders never mix, and the report's stage times are that run's only."""
    return f"{out}/logs"


def analysis(out: str) -> str:
    return f"{out}/analysis/{{frame}}.json"


def decisions_dir(out: str) -> str:
    """Written by the decide checkpoint (one job decides every frame), only the files that change."""
    return f"{out}/decisions"


def decision(out: str) -> str:
    return f"{decisions_dir(out)}/{{frame}}.json"


def curated(out: str, strategy: str) -> str:
    """Curated copies of a frame's training images + curated.json, written by the strategy's own job."""
    return f"{out}/curated/{strategy}/{{frame}}"


def curated_dirs(out: str, plan: dict[str, str]) -> list[str]:
    """The curated folder of every frame the plan gives a strategy (not excluded, not failed)."""
    return [curated(out, status).format(frame=frame) for frame, status in plan.items() if status in STRATEGIES]


def strategy_meta(out: str, strategy: str) -> str:
    """What a strategy's job made of one frame, and which backend made it; written last."""
    return f"{out}/{strategy}/meta/{{frame}}.json"


def strategy_outputs(out: str, strategy: str, cfg: dict) -> dict[str, str | list[str]]:
    """Named outputs of one strategy's rule, from that strategy's config block: its meta file and
    the registry's patterns (registry.STRATEGY_REGISTRY) under ``<out>/<strategy>/``."""
    folder = f"{out}/{strategy}"
    outputs: dict[str, str | list[str]] = {"meta": strategy_meta(out, strategy)}
    for name, pattern in STRATEGY_REGISTRY[strategy].outputs(cfg).items():
        outputs[name] = [f"{folder}/{p}" for p in pattern] if isinstance(pattern, list) else f"{folder}/{pattern}"
    return outputs


def frame_outputs(patterns: dict, frame: str) -> dict:
    """A strategy's output patterns filled in for one frame (lists stay lists)."""
    return {
        name: [p.format(frame=frame) for p in pattern] if isinstance(pattern, list) else pattern.format(frame=frame)
        for name, pattern in patterns.items()
    }


def finder_batch(out: str) -> str:
    """A character-finder job's folder: one detection file per frame of its batch."""
    return f"{out}/detections/batches/{{batch}}"


def step_manifest(out: str, step: str) -> str:
    """What a model step's batch job made: {frame: cache key} and the frames that failed."""
    return f"{out}/steps/{step}/{{batch}}.json"


def job_parameters(out: str, step: str) -> str:
    """A batched job's parameters file (rule job_parameters); ``step`` may be a wildcard."""
    return f"{out}/params/{step}/{{batch}}.json"


def cache_dir(out: str) -> str:
    """Content-addressed results of the batched steps: model steps, captions, the finder
    (frameloom.stepcache)."""
    return f"{out}/.cache"


def training_dir(out: str) -> str:
    return f"{out}/training"


def demo_frames_dir(out: str) -> str:
    """Where the demo renders its frames (the input folder of a demo run)."""
    return f"{out}/demo/frames"
