"""The end-of-run summary, the same for `frameloom run` and a plain `snakemake` run.

The Snakefile's onsuccess handler prints it (``end_of_run``) and turns it into
the exit code; onerror prints where to look (``stopped``). One exit-code rule
for every entry point: 0 every frame done or excluded on purpose, 1 some
frames failed (or a job failed), 2 a configuration or environment error.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

from .layout import logs_dir
from .registry import STRATEGIES

OK, FRAMES_FAILED, CONFIG_ERROR = 0, 1, 2
# Set by `frameloom run` and `frameloom preview` for the Snakemake they start: they print their own
# progress and summary, so the Snakefile's handlers only set the exit code.
CLI_ENV = "FRAMELOOM_CLI"


def mix_line(name: str, frames: int, share: float, target: float, binding: str) -> str:
    why = f": {binding}" if binding and binding != "on target" else ""
    return f"  {name:<17} {frames:>6} frames  {share:>4.0%} (target {target:.0%}{why})"


def summary_lines(report: dict, out_dir: Path) -> list[str]:
    """The end-of-run table: strategies, successes, failures with the first reasons, backends, and
    the time per stage from the job logs of that run (its output folder's logs/)."""
    from .merge import short_backend
    from .report_html import stage_times

    summary = report["summary"]
    lines = [f"frames {summary['total_frames']}: {summary['successful']} done, {summary['failed']} failed"
             + (f", {summary['excluded']} excluded" if summary.get("excluded") else "")]
    lines += [mix_line(name, summary["strategies"][name], summary["strategy_mix"][name],
                        summary["strategy_targets"][name], summary.get("plan", {}).get(name, {}).get("binding"))
              for name in STRATEGIES]
    if summary.get("excluded_reasons"):
        lines.append("excluded: " + ", ".join(f"{reason} x{count}"
                                              for reason, count in summary["excluded_reasons"].items()))
    reasons = Counter(r["error"].split(":")[0] for r in report["results"] if r["error"] and not r.get("excluded"))
    if reasons:
        first = next(r for r in report["results"] if r["error"] and not r.get("excluded"))
        lines.append("failures: " + ", ".join(f"{reason} x{count}" for reason, count in reasons.most_common())
                     + f" (first: {first['frame']}: {first['error']})")
    lines.append("backends: " + ", ".join(f"{short_backend(name)} x{count}"
                                          for name, count in summary["backends"].items()))
    if summary.get("model_devices"):
        lines.append("devices: " + ", ".join(f"{name} on {where['device']} ({where['precision']})"
                                             for name, where in summary["model_devices"].items()))
    times = stage_times(Path(logs_dir(str(out_dir))), report["results"])
    if times:
        lines.append("time per stage: " + ", ".join(
            f"{stage} {t['seconds']:.1f} s ({t['jobs']} jobs)"
            for stage, t in sorted(times.items(), key=lambda item: -item[1]["seconds"])))
    lines += [f"warning: {warning}" for warning in summary.get("warnings", [])]
    lines.append(f"training images: {summary['training_images']} in {out_dir / 'training'}")
    lines.append(f"report: {out_dir / 'report.html'} ({out_dir / 'processing_report.json'})")
    return lines



def current_report(out_dir: str | Path) -> dict | None:
    """The run's processing_report.json when it belongs to the current plan (a run stopped at
    the decisions, a preview or a changed threshold leave none, or an older one)."""
    report_path, plan_path = Path(out_dir, "processing_report.json"), Path(out_dir, "plan.tsv")
    if not report_path.is_file() or (plan_path.is_file() and plan_path.stat().st_mtime > report_path.stat().st_mtime):
        return None
    return json.loads(report_path.read_text(encoding="utf-8"))


def exit_code(report: dict | None) -> int:
    return FRAMES_FAILED if report and report["summary"]["failed"] else OK


def end_of_run(out_dir: str) -> int:
    """The Snakefile's onsuccess: print the summary of the run (unless `frameloom` started it
    and prints its own); the exit code it implies."""
    report = current_report(out_dir)
    if report is not None and not os.environ.get(CLI_ENV):
        print("\n".join(["", "frameloom summary", *summary_lines(report, Path(out_dir))]), flush=True)
    return exit_code(report)


ERROR_START = re.compile(r"^(Error in rule|RuleException|WorkflowError|MissingInputException|.*Error:)")
ERROR_CONTEXT = 8  # lines printed after each error's first line (the job, its log, the message)


def error_lines(log_text: str) -> list[str]:
    """The error blocks of a Snakemake log: each error's first line and the lines after it."""
    lines = log_text.splitlines()
    starts = [i for i, line in enumerate(lines) if ERROR_START.match(line)]
    shown: list[str] = []
    for start in starts:
        block = [line for line in lines[start:start + 1 + ERROR_CONTEXT] if line.strip()]
        shown += [line for line in block if line not in shown]
    return shown


def stopped(log: str | list[str] | None, out_dir: str) -> None:
    """The Snakefile's onerror: the errors of the run (also under `--quiet all`) and where its logs are.
    ``log``: Snakemake's log file, or (as Snakemake 9 passes it) a list of them."""
    paths = [log] if isinstance(log, str) else list(log or [])
    log_path = next((path for path in paths if Path(path).is_file()), None)
    text = Path(log_path).read_text(encoding="utf-8", errors="replace") if log_path else ""
    print("\n".join(["", "frameloom: the run stopped before its report:", *error_lines(text),
                      f"Snakemake's log: {log_path}; each job's log: {logs_dir(out_dir)}/"]), flush=True)
