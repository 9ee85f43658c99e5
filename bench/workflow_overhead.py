"""Workflow overhead: `snakemake --cores N` against one Python loop doing the same calls.

Both sides process the same generated frames with the same library functions
and write the same files; the ratio is snakemake wall time / loop wall time.
With several frame counts it is also the scaling benchmark: ms per frame
stays flat when the cost grows linearly.

    .venv/bin/python bench/workflow_overhead.py --frames 500 1000 2000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from frameloom import layout, stages  # noqa: E402
from frameloom.config import load_run_config  # noqa: E402
from frameloom.demo import write_demo_set  # noqa: E402
from frameloom.discovery import discover_frames  # noqa: E402
from frameloom.imageio import read_json  # noqa: E402
from frameloom.model_step import run_frame_steps  # noqa: E402
from frameloom.strategies import EXPORTERS  # noqa: E402


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_snakemake(workdir: Path, cores: int) -> tuple[float, float, float]:
    """Wall s, CPU s (Snakemake and its jobs) and Snakemake's peak RSS in MiB."""
    cpu_before = children_cpu()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", str(cores),
         "--directory", str(workdir), "--quiet", "all"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, process.args)
    return time.perf_counter() - started, children_cpu() - cpu_before, usage.ru_maxrss / 1024


def run_loop(workdir: Path, config: dict) -> tuple[float, float]:
    """Wall and CPU seconds of the stage loop, run in ``workdir`` with relative paths as
    Snakemake writes them (so both reports name the same files)."""
    cpu_before = own_cpu() + children_cpu()
    started = time.perf_counter()
    previous = os.getcwd()
    os.chdir(workdir)
    try:
        loop_stages(workdir, config)
    finally:
        os.chdir(previous)
    return time.perf_counter() - started, own_cpu() + children_cpu() - cpu_before


def loop_stages(workdir: Path, config: dict) -> None:
    """The same stage functions the rules call, one frame after another, in one process."""
    run = load_run_config(dict(config), workdir, workflow_dir=REPO)
    out = run.output_dir
    logs = Path("logs")
    frames = discover_frames(run.resolve(run.run["input_dir"]))
    analyses = []
    for frame, path in frames.items():
        analyses.append(layout.analysis(out).format(frame=frame))
        stages.analyze(str(path), frame, path.name, analyses[-1], str(run.resolve(run.run["models_dir"])),
                       run.face_weights(), str(logs / "analyze" / f"{frame}.log"))
    stages.decide(analyses, f"{out}/plan.tsv", layout.decisions_dir(out), run.decision, run.enabled_strategies,
                  run.overrides, str(logs / "decide.log"))
    curation = {"cfg": run.run["curation"], "good_lighting": run.decision["thresholds"]["good_lighting"]}
    metas, curated = {}, []
    for frame, path in frames.items():
        strategy = read_json(layout.decision(out).format(frame=frame))["strategy"]
        if strategy is None:
            continue
        outputs = layout.frame_outputs(layout.strategy_outputs(out, strategy, run.strategy_cfg(strategy)), frame)
        curated.append(layout.curated(out, strategy).format(frame=frame))
        analysis, settings = layout.analysis(out).format(frame=frame), run.strategy_settings(frame, strategy)
        log = str(logs / strategy / f"{frame}.log")
        metas[frame] = outputs["meta"]
        if strategy not in EXPORTERS:
            stages.run_strategy(strategy, str(path), analysis, {**outputs, "curated": curated[-1]}, settings,
                                curation, log)
            continue
        manifests = run_frame_steps(strategy, frame, str(path), analysis, run, layout.cache_dir(out), f"{out}/steps")
        stages.export_model_frame(strategy, frame, {"frame": str(path), "analysis": analysis, **manifests},
                                  {**outputs, "curated": curated[-1]},
                                  SimpleNamespace(cache=layout.cache_dir(out), settings=settings, curation=curation),
                                  log)
    selection = f"{out}/curation/selection.json"
    stages.select_dataset(curated, run.run["curation"], run.references(), selection, f"{out}/curation/augmented",
                          str(logs / "select_dataset.log"))
    stages.merge(out, metas, SimpleNamespace(plan=f"{out}/plan.tsv", captions=[], detections=[], selection=selection),
                 SimpleNamespace(training=layout.training_dir(out), rejected=f"{out}/rejected",
                                 kohya=f"{out}/exports/kohya_dataset.toml",
                                 onetrainer=f"{out}/exports/onetrainer_concepts.json",
                                 report=f"{out}/processing_report.json"),
                 {"decision": run.decision, "enabled": run.enabled_strategies, "merge": run.run["merge"],
                  "trigger_word": run.run["character"]["trigger_word"], "captioner": run.caption_status()},
                 {frame: str(path) for frame, path in frames.items()}, str(logs / "merge.log"))
    stages.html_report(f"{out}/processing_report.json",
                       SimpleNamespace(report=f"{out}/report.html", review=f"{out}/review.html"), out,
                       str(run.resolve(run.run["input_dir"])), "logs", run.run["report"]["contact_sheet_frames"],
                       run.enabled_strategies, str(logs / "html_report.log"))


def compare(frames: int, cores: int, width: int, height: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="frameloom-bench-") as tmp:
        root = Path(tmp)
        frames_dir = root / "frames"
        write_demo_set(frames_dir, frames, width=width, height=height, truth_dir=root / "truth")
        # One models dir for both sides: backend names (fallbacks name the path) must match.
        config = {"input_dir": str(frames_dir), "models_dir": str(root / "models")}
        for side in ("snakemake", "loop"):
            (root / side / "config").mkdir(parents=True)
            (root / side / "config" / "config.yaml").write_text(yaml.safe_dump(config))
        loop_wall, loop_cpu = run_loop(root / "loop", config)
        smk_wall, smk_cpu, smk_peak = run_snakemake(root / "snakemake", cores)
        same = (json.loads((root / "loop/results/processing_report.json").read_text())["summary"]
                == json.loads((root / "snakemake/results/processing_report.json").read_text())["summary"])
    return {"frames": frames, "loop": (loop_wall, loop_cpu), "snakemake": (smk_wall, smk_cpu), "peak": smk_peak,
            "same": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[500])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    args = parser.parse_args()

    print(f"generated {args.width}x{args.height} frames, snakemake --cores {args.cores}; "
          f"peak: the largest RSS (MiB) among Snakemake and its jobs\n")
    print(f"{'frames':>7} {'side':<10}{'wall s':>9}{'cpu s':>9}{'ms/frame':>10}{'ratio wall':>12}{'ratio cpu':>11}"
          f"{'peak':>7}  same summary")
    for count in args.frames:
        result = compare(count, args.cores, args.width, args.height)
        (loop_wall, loop_cpu), (smk_wall, smk_cpu) = result["loop"], result["snakemake"]
        print(f"{count:>7} {'loop':<10}{loop_wall:9.1f}{loop_cpu:9.1f}{1000 * loop_wall / count:10.1f}")
        print(f"{count:>7} {'snakemake':<10}{smk_wall:9.1f}{smk_cpu:9.1f}{1000 * smk_wall / count:10.1f}"
              f"{smk_wall / loop_wall:12.2f}{smk_cpu / loop_cpu:11.2f}{result['peak']:7.0f}  {result['same']}",
              flush=True)


if __name__ == "__main__":
    main()
