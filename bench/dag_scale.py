"""DAG building at scale: `snakemake -n` over N frames, before and after the plan exists.

Before the plan, the DAG ends at the plan checkpoint (analysis, decisions).
After it, the dry run builds the whole DAG: every strategy job (each curates
its own images), the model batches and the aggregates. The frames are small random-texture images; their analyses
and decisions are made with the real stage functions, in this process, so
the dry run sees a real plan.

    .venv/bin/python bench/dag_scale.py --frames 10000
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from frameloom import layout, stages  # noqa: E402
from frameloom.config import load_run_config  # noqa: E402


def write_frames(folder: Path, count: int, size: int = 64) -> dict[str, Path]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    frames = {}
    for index in range(count):
        image = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (size, size),
                           interpolation=cv2.INTER_CUBIC)
        frames[f"f{index:05d}"] = folder / f"f{index:05d}.png"
        cv2.imwrite(str(frames[f"f{index:05d}"]), image)
    return frames


def dry_run(workdir: Path) -> tuple[float, int, float]:
    """Seconds, jobs in the DAG and Snakemake's peak RSS in MiB."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2",
             "--directory", str(workdir), "-n", "--quiet", "rules"],
            stdout=stdout, stderr=subprocess.DEVNULL, text=True,
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status):
            raise subprocess.CalledProcessError(os.waitstatus_to_exitcode(status), process.args)
        stdout.seek(0)
        total = re.search(r"^total\s+(\d+)$", stdout.read(), re.MULTILINE)
    return seconds, int(total[1]) if total else 0, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="frameloom-dag-") as tmp:
        root = Path(tmp)
        frames = write_frames(root / "frames", args.frames)
        config = {"input_dir": str(root / "frames"), "models_dir": str(root / "models")}
        (root / "config").mkdir()
        (root / "config" / "config.yaml").write_text(yaml.safe_dump(config))
        before, jobs_before, peak_before = dry_run(root)

        started = time.perf_counter()
        run = load_run_config(dict(config), root, workflow_dir=REPO)
        out = root / run.output_dir
        analyses = []
        for frame, path in frames.items():
            analyses.append(str(out / layout.analysis("").format(frame=frame).lstrip("/")))
            stages.analyze(str(path), frame, path.name, analyses[-1], str(root / "models"), {}, str(root / "log"))
        stages.decide(analyses, str(out / "plan.tsv"), str(out / layout.decisions_dir("").lstrip("/")), run.decision,
                      run.enabled_strategies, run.overrides, str(root / "log"))
        planning = time.perf_counter() - started
        after, jobs_after, peak_after = dry_run(root)

        print(f"frames: {args.frames}")
        print(f"dry run before the plan: {before:6.1f} s, {jobs_before} jobs (to the plan checkpoint), "
              f"peak RSS {peak_before:.0f} MiB")
        print(f"(analyses and decisions made in-process in {planning:.1f} s)")
        print(f"dry run of the full DAG:  {after:6.1f} s, {jobs_after} jobs, peak RSS {peak_after:.0f} MiB")


if __name__ == "__main__":
    main()
