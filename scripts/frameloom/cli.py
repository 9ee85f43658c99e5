"""frameloom: one command over the Snakemake workflow, with the design documents' flags.

    frameloom run INPUT --output-dir OUT [--decision-config F] [--strategy-config F]
                  [--dataset-needs F.json] [--limit N] [--device cpu|cuda|auto] [--cores N]
                  [--profile P] [--character NAME] [--trigger WORD] [--reference-images DIR]
    frameloom preview INPUT --output-dir OUT ...   analysis and decisions only, then the expected dataset
    frameloom merge OUT [--output-dir DEST]        redo the merge and reports of a finished run
    frameloom expand CURATED --frames-dir F --output-dir OUT [--window-size 3]
                                                   curated frames and their neighbours
    frameloom review [OUT]                         the review page of a run (python -m frameloom.review)
    frameloom download-models [--models ...]       model weights (python -m frameloom.download)

Scheduling is Snakemake's: the command builds its command line (--config
keys named after the flags) and runs it in the current folder, which holds
.snakemake/; each run's job logs are in its output folder's logs/. Exit
codes: 0 every frame done or excluded on purpose; 1 some frames failed (the
summary names the first) or a job failed; 2 a configuration or environment
error, in one line naming what to fix.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import yaml

from . import layout
from .config import RunConfig, load_project_config
from .imageio import building_folder, link_or_copy, write_json, write_text
from .layout import RUN_FLAGS_FILE
from .registry import STRATEGIES, STRATEGY_REGISTRY
from .schema import ConfigError, load_schema
from .summary import CLI_ENV, CONFIG_ERROR, FRAMES_FAILED, OK, current_report, exit_code, mix_line, summary_lines

WORKFLOW_DIR = Path(__file__).resolve().parents[2]
SNAKEFILE = WORKFLOW_DIR / "Snakefile"
SCRIPTS_DIR = Path(__file__).resolve().parents[1]  # holds the package and the logger plugin


class CliError(Exception):
    """A configuration or environment problem, said in one line (exit 2)."""


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="folder of frames (and videos), or 'demo'")
    parser.add_argument("--output-dir", required=True, help="where every result goes")
    parser.add_argument("--decision-config", help="decision thresholds YAML (config: decision_thresholds)")
    parser.add_argument("--strategy-config", help="strategy configs YAML (config: strategy_configs)")
    parser.add_argument("--dataset-needs", help="JSON of dataset needs (config: dataset_needs_file)")
    parser.add_argument("--limit", type=int, help="only the first N frames by path")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), help="where models run")
    parser.add_argument("--cores", type=int, default=2, help="CPU cores Snakemake may use (default: 2)")
    parser.add_argument("--profile", help="a Snakemake profile, e.g. profiles/slurm")
    parser.add_argument("--character", help="character name (config: character.name)")
    parser.add_argument("--trigger", help="trigger word, first in every caption (config: character.trigger_word)")
    parser.add_argument("--reference-images", help="images of the character (config: character.reference_images)")
    parser.add_argument("--quiet", action="store_true", help="only errors and the final summary")


def config_overrides(args: argparse.Namespace) -> dict:
    """The run's config keys the flags set (flags not given leave the config file's values)."""
    config: dict = {"input_dir": args.input, "output_dir": args.output_dir}
    for flag, key in (("decision_config", "decision_thresholds"), ("strategy_config", "strategy_configs"),
                      ("dataset_needs", "dataset_needs_file"), ("limit", "limit"), ("device", "device")):
        if getattr(args, flag) is not None:
            config[key] = getattr(args, flag)
    character = {key: value for key, value in (("name", args.character), ("trigger_word", args.trigger))
                 if value is not None}
    if args.reference_images is not None:
        character["reference_images"] = [args.reference_images]
    if character:
        config["character"] = character
    return config


def check_config(overrides: dict):
    """Validate the merged config exactly as the workflow will; a problem is a CliError."""
    try:
        return load_project_config(Path.cwd(), WORKFLOW_DIR, overrides)
    except ConfigError as error:
        raise CliError(f"configuration error: {error}") from None


def snakemake_command(overrides: dict, cores: int, profile: str | None, targets: list[str],
                      quiet: bool, options: tuple[str, ...] = ()) -> list[str]:
    """The Snakemake command line: the targets first (several options take every word after
    them), then ``options``, and every config key after --config as one line of JSON (which
    YAML reads too): a multi-line YAML value would not survive Snakemake passing --config on
    to the jobs it submits to a cluster."""
    if not SNAKEFILE.is_file():
        raise CliError(f"the workflow is not beside the package ({SNAKEFILE} missing): install with "
                       "`pip install -e .` from a checkout")
    command = [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(SNAKEFILE), "--cores", str(cores),
               *options]
    if profile:
        command += ["--profile", profile]
    if quiet:
        command += ["--quiet", "all"]  # the Snakefile's onerror still prints the errors
    return command + ["--config", *(f"{key}={json.dumps(value)}" for key, value in overrides.items())]


class Progress:
    """A line per stage a person can follow: frames done / total, rate and ETA, from the run's
    job events (the frameloom logger plugin, ``snakemake_logger_plugin_frameloom``).

    Totals come from Snakemake's job table, and for the strategy rules (known only after the
    decide checkpoint) from the plan it writes. A stage's rate counts from its first job's start,
    so jobs that end together, as a SLURM group job's do, give a true rate."""

    # The target rule and the model jobs' parameters files: bookkeeping, not stages a person follows.
    NOT_STAGES = ("all", "job_parameters")

    def __init__(self, plan_path: Path, write=sys.stderr.write, clock=time.monotonic, every: float = 2.0):
        self.plan_path, self.write, self.clock, self.every = plan_path, write, clock, every
        self.totals: dict[str, int] = {}
        self.rules: dict[int, str] = {}  # jobid -> rule
        self.done: Counter = Counter()
        self.started: dict[str, float] = {}
        self.shown: dict[str, float] = {}

    def handle(self, event: dict) -> None:
        if event["event"] == "run_info":
            self.totals |= {rule: count for rule, count in event["stats"].items() if rule != "total"}
        elif event["event"] == "job_info":
            self.rules[event["jobid"]] = event["rule"]
            self.started.setdefault(event["rule"], self.clock())
        elif event["event"] == "job_finished":
            rule = self.rules.get(event["jobid"])
            if rule is not None and rule not in self.NOT_STAGES:
                self._finished(rule)

    def _finished(self, rule: str) -> None:
        now = self.clock()
        self.done[rule] += 1
        if rule == "decide" and self.plan_path.is_file():
            from .plan import read_plan

            self.totals |= Counter(read_plan(str(self.plan_path)).values())
        total = max(self.totals.get(rule, 0), self.done[rule])
        if self.done[rule] < total and now - self.shown.get(rule, -self.every) < self.every:
            return
        self.shown[rule] = now
        elapsed = now - self.started[rule]
        # A stage of one job has no rate to speak of (an in-process job starts and ends at once).
        rate = self.done[rule] / elapsed if elapsed > 0 and total > 1 else 0.0
        eta = f", ETA {(total - self.done[rule]) / rate:.0f} s" if rate and self.done[rule] < total else ""
        self.write(f"frameloom: {rule} {self.done[rule]}/{total}"
                   + (f" ({rate:.1f}/s{eta})" if rate else "") + "\n")


def follow_events(path: Path, handle, finished: threading.Event, poll: float = 0.1) -> None:
    """Hand each JSON line of ``path`` to ``handle`` as it is written, until ``finished`` is set
    and the file is read to its end."""
    with open(path, encoding="utf-8") as events:
        pending = ""
        while True:
            pending += events.readline()
            if pending.endswith("\n"):
                handle(json.loads(pending))
                pending = ""
            elif finished.is_set():
                rest = pending + events.read()
                for line in rest.splitlines():
                    handle(json.loads(line))
                return
            else:
                time.sleep(poll)


def _run_workflow(args: argparse.Namespace, targets) -> tuple[int, Path, RunConfig]:
    """Validate, then run Snakemake; ``targets(run)`` names what to build (none: everything).
    Returns Snakemake's exit code, the output folder and the validated config."""
    overrides = config_overrides(args)
    run = check_config(overrides)
    out_dir = run.resolve(run.output_dir)
    write_text(out_dir / RUN_FLAGS_FILE, yaml.safe_dump(overrides, sort_keys=True))
    command = snakemake_command(overrides, args.cores, args.profile, targets(run), args.quiet)
    environment = {**os.environ, CLI_ENV: "1"}  # this command prints the summary itself
    if args.quiet:
        return subprocess.run(command, env=environment).returncode, out_dir, run
    # Progress from the job events the frameloom logger plugin writes (scripts/ on the path finds it).
    events = Path(layout.logs_dir(str(out_dir))) / "frameloom-run-events.jsonl"
    write_text(events, "")
    command += ["--logger", "frameloom", "--logger-frameloom-path", str(events)]
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SCRIPTS_DIR), environment.get("PYTHONPATH")]))
    progress, finished = Progress(out_dir / "plan.tsv"), threading.Event()
    follower = threading.Thread(target=follow_events, args=(events, progress.handle, finished), daemon=True)
    follower.start()
    with subprocess.Popen(command, env=environment) as snakemake:
        snakemake.wait()
    finished.set()
    follower.join()
    return snakemake.returncode, out_dir, run


def _stopped(code: int) -> int:
    print(f"frameloom: the workflow stopped (snakemake exit {code}); see the output folder's logs/ and "
          ".snakemake/log/", file=sys.stderr)
    return FRAMES_FAILED


def _finished(code: int, out_dir: Path) -> int:
    """After Snakemake: the summary of the run when its report is current, and the exit code,
    which the Snakefile's onsuccess set by the one rule (summary.exit_code)."""
    if code == CONFIG_ERROR:
        return code  # the Snakefile printed the line
    report = current_report(out_dir)
    if report is None:
        return _stopped(code)
    print("\n".join(summary_lines(report, out_dir)))
    return code or exit_code(report)


def command_run(args: argparse.Namespace) -> int:
    code, out_dir, _ = _run_workflow(args, lambda run: [])
    return _finished(code, out_dir)


def expected_images(counts: Counter, strategy_cfg: dict) -> dict[str, int]:
    """Training images each strategy would produce before curation (the seed's arithmetic)."""
    return {name: counts[name] * STRATEGY_REGISTRY[name].images_per_frame(strategy_cfg[name]) for name in STRATEGIES}


def preview_lines(plan: dict[str, str], analyses: list[dict], decisions: dict[str, dict], run) -> list[str]:
    """The expected strategy mix against the targets (and what binds), the frames' distributions
    and the image count."""
    from .distributions import distribution, frame_classes
    from .plan import EXCLUDED, FAILED
    from .planner import plan_constraints

    counts = Counter(plan.values())
    decided = sum(counts[name] for name in STRATEGIES)
    targets = run.decision["strategy_targets"]
    lines = [f"frames {len(plan)}: {decided} decided, {counts[EXCLUDED]} excluded, {counts[FAILED]} failed"]
    binding = plan_constraints(decisions, run.decision, run.enabled_strategies)
    lines += [mix_line(name, counts[name], counts[name] / decided if decided else 0.0, targets[name],
                        binding[name]["binding"]) for name in STRATEGIES]
    classes = distribution([frame_classes(a, run.decision["thresholds"]) for a in analyses if a.get("ok", True)])
    for dimension in ("shot_type", "lighting", "background"):
        total = sum(classes[dimension].values()) or 1
        lines.append(f"{dimension}: " + ", ".join(f"{name} {count / total:.0%}"
                                                  for name, count in classes[dimension].items()))
    images = expected_images(counts, run.strategy["strategies"])
    lines.append(f"expected: {decided} frames -> ~{sum(images.values())} images before curation ("
                 + ", ".join(f"{name} {count}" for name, count in images.items()) + ")")
    return lines


def command_preview(args: argparse.Namespace) -> int:
    from .plan import read_plan

    code, out_dir, run = _run_workflow(args, lambda run: [f"{run.output_dir}/plan.tsv"])
    # FRAMES_FAILED here is an earlier full run's report speaking: the preview itself went through.
    if code not in (OK, FRAMES_FAILED) or not (out_dir / "plan.tsv").is_file():
        return _stopped(code)
    plan = read_plan(str(out_dir / "plan.tsv"))
    analyses = [json.loads(Path(layout.analysis(str(out_dir)).format(frame=frame)).read_text(encoding="utf-8"))
                for frame in plan]
    decisions = {frame: json.loads(Path(layout.decision(str(out_dir)).format(frame=frame)).read_text(encoding="utf-8"))
                 for frame in plan}
    print("\n".join(preview_lines(plan, analyses, decisions, run)))
    return OK


def command_merge(args: argparse.Namespace) -> int:
    flags = Path(args.output_dir, RUN_FLAGS_FILE)
    if not flags.is_file():
        raise CliError(f"{args.output_dir}: no {RUN_FLAGS_FILE}: not made by `frameloom run` (with snakemake: "
                       "snakemake --forcerun merge and the run's --config)")
    overrides = {**yaml.safe_load(flags.read_text(encoding="utf-8")), "output_dir": args.output_dir}
    run = check_config(overrides)
    out_dir = run.resolve(run.output_dir)
    targets = [f"{run.output_dir}/processing_report.json", f"{run.output_dir}/report.html"]
    command = snakemake_command(overrides, args.cores, None, targets, quiet=False, options=("--forcerun", "merge"))
    code = _finished(subprocess.run(command, env={**os.environ, CLI_ENV: "1"}).returncode, out_dir)
    if args.to and current_report(out_dir) is not None:
        count = copy_folder(out_dir / "training", Path(args.to))
        print(f"training folder copied to {args.to} ({count} files)")
    return code


def copy_folder(source: Path, target: Path, files: list[Path] | None = None) -> int:
    """``source`` (or only ``files`` under it) into ``target``, replaced whole and atomically;
    hard links where the filesystem allows (outputs are only ever replaced by rename)."""
    chosen = files if files is not None else [p for p in sorted(source.rglob("*")) if p.is_file()]
    with building_folder(target) as staging:
        for path in chosen:
            destination = staging / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(path, destination)
    return len(chosen)


def command_expand(args: argparse.Namespace) -> int:
    """The seed's temporal_context_expansion: curated frames and their neighbours into OUT."""
    from .discovery import discover_frames, relative_files
    from .temporal import expand

    frames_dir, curated_dir = Path(args.frames_dir), Path(args.curated)
    for name, folder in (("curated folder", curated_dir), ("--frames-dir", frames_dir)):
        if not folder.is_dir():
            raise CliError(f"{name}: directory does not exist: {folder}")
    frames = {path.relative_to(frames_dir).as_posix(): frame for frame, path in discover_frames(frames_dir).items()}
    result = expand(relative_files(curated_dir), frames, frames_dir, args.window_size, args.phash_threshold,
                    args.ssim_threshold)
    by_id = {frame: relative for relative, frame in frames.items()}
    count = copy_folder(frames_dir, Path(args.output_dir), [frames_dir / by_id[f] for f in result["selected"]])
    write_json(Path(args.output_dir, "temporal_expansion.json"), result)
    print(f"{result['curated']} curated ({result['matched']} found) + {result['added']} neighbours, "
          f"{len(result['dropped'])} near-duplicates dropped: {count} frames in {args.output_dir}")
    return FRAMES_FAILED if result["unmatched"] else OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="frameloom", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="process frames into a training folder and reports")
    _add_run_flags(run)
    preview = commands.add_parser("preview", help="analysis and decisions only: the expected dataset, no models")
    _add_run_flags(preview)
    merge = commands.add_parser("merge", help="redo the training folder and reports of a run")
    merge.add_argument("output_dir", help="the run's --output-dir")
    merge.add_argument("--output-dir", dest="to", help="also copy the training folder here")
    merge.add_argument("--cores", type=int, default=2)
    expand = commands.add_parser("expand", help="curated frames plus their neighbours into a folder")
    expand.add_argument("curated", help="folder of hand-picked frames")
    expand.add_argument("--frames-dir", required=True, help="the full frames folder they were picked from")
    expand.add_argument("--output-dir", required=True)
    # Defaults: the config's temporal_expansion section, as the workflow uses them.
    defaults = load_schema("config")["properties"]["temporal_expansion"]["properties"]
    expand.add_argument("--window-size", type=int, default=defaults["window_size"]["default"],
                        help=f"neighbours on each side (default: {defaults['window_size']['default']})")
    expand.add_argument("--phash-threshold", type=int, default=defaults["phash_threshold"]["default"])
    expand.add_argument("--ssim-threshold", type=float, default=defaults["ssim_threshold"]["default"])
    commands.add_parser("review", help="serve the review page on 127.0.0.1", add_help=False)
    commands.add_parser("download-models", help="fetch model weights", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "review":
        from .review import main as review_main

        return review_main(rest, prog="frameloom review")
    if args.command == "download-models":
        from .download import main as download_main

        return download_main(rest, prog="frameloom download-models")
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        commands_by_name = {"run": command_run, "preview": command_preview, "merge": command_merge,
                            "expand": command_expand}
        return commands_by_name[args.command](args)
    except CliError as error:
        print(f"frameloom: {error}", file=sys.stderr)
        return CONFIG_ERROR


if __name__ == "__main__":
    sys.exit(main())
