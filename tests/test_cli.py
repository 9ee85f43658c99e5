"""The `frameloom` command: flags to config, exit codes, run / preview / merge on generated frames."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from frameloom.cli import config_overrides, main
from frameloom.demo import write_demo_set

REPO = Path(__file__).resolve().parents[1]
RUN_FLAGS = ["--output-dir", "--decision-config", "--strategy-config", "--dataset-needs", "--limit", "--device",
             "--cores", "--profile", "--character", "--trigger", "--reference-images", "--quiet"]


def frameloom(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "frameloom.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_help_lists_every_flag():
    # The console command pip installs beside this interpreter.
    result = subprocess.run([str(Path(sys.executable).with_name("frameloom")), "run", "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0
    assert all(flag in result.stdout for flag in RUN_FLAGS), [f for f in RUN_FLAGS if f not in result.stdout]
    top = subprocess.run([sys.executable, "-m", "frameloom.cli", "--help"], capture_output=True, text=True).stdout
    assert all(name in top for name in ("run", "preview", "merge", "review", "download-models"))


def test_flags_map_one_to_one_to_config_keys():
    import argparse

    from frameloom.cli import _add_run_flags

    parser = argparse.ArgumentParser()
    _add_run_flags(parser)
    args = parser.parse_args(["in", "--output-dir", "out", "--decision-config", "d.yaml", "--strategy-config",
                              "s.yaml", "--dataset-needs", "n.json", "--limit", "5", "--device", "cpu",
                              "--character", "luca", "--trigger", "lucaw", "--reference-images", "refs"])
    assert config_overrides(args) == {
        "input_dir": "in", "output_dir": "out", "decision_thresholds": "d.yaml", "strategy_configs": "s.yaml",
        "dataset_needs_file": "n.json", "limit": 5, "device": "cpu",
        "character": {"name": "luca", "trigger_word": "lucaw", "reference_images": ["refs"]},
    }
    assert config_overrides(parser.parse_args(["in", "--output-dir", "o"])) == {"input_dir": "in", "output_dir": "o"}


def test_configuration_errors_exit_2_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "nowhere", "--output-dir", "out"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("input_dir: directory does not exist: nowhere")
    assert main(["merge", "out"]) == 2
    assert "not made by `frameloom run`" in capsys.readouterr().err


def test_download_models_passes_through(capsys):
    assert main(["download-models", "--list"]) == 0
    assert "sam2" in capsys.readouterr().out.lower()
    assert main(["download-models", "--models", "nonesuch"]) == 2  # a wrong request, like a config error
    assert capsys.readouterr().err.startswith("error: unknown model 'nonesuch'")


@pytest.mark.slow
def test_preview_run_and_merge_on_generated_frames(tmp_path):
    write_demo_set(tmp_path / "frames", 6, seed=7, truth_dir=tmp_path / "truth")
    # Only the classical, always-succeeding strategies: every frame ends done (exit 0).
    strategies = yaml.safe_load((REPO / "config" / "strategy_configs.yaml").read_text())
    for name in ("segment", "enhance_segment"):
        strategies["strategies"][name]["enabled"] = False
    (tmp_path / "strategies.yaml").write_text(yaml.safe_dump(strategies))
    flags = ["frames", "--output-dir", "out", "--strategy-config", "strategies.yaml", "--trigger", "lucaw", "--quiet"]

    preview = frameloom(tmp_path, "preview", *flags)
    assert preview.returncode == 0, preview.stderr[-2000:]
    # Without face weights (the packaged MTCNN) the classical finder may find no character in a
    # busy demo frame: the frame gate excludes it, which is no failure.
    summary = re.search(r"frames 6: (\d) decided, (\d) excluded, 0 failed", preview.stdout)
    assert summary and int(summary[1]) + int(summary[2]) == 6 and int(summary[1]) >= 4, preview.stdout
    decided, excluded = int(summary[1]), int(summary[2])
    assert f"expected: {decided} frames -> ~" in preview.stdout
    assert "shot_type: " in preview.stdout and (tmp_path / "out" / "plan.tsv").is_file()
    assert not (tmp_path / "out" / "keep_full").exists(), "preview runs no strategy"

    run = frameloom(tmp_path, "run", *flags)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert (f"frames 6: {decided} done, 0 failed" + (f", {excluded} excluded" if excluded else "") in run.stdout
            and f"report: {tmp_path / 'out' / 'report.html'}" in run.stdout)
    report = json.loads((tmp_path / "out" / "processing_report.json").read_text())
    captions = list((tmp_path / "out" / "training").rglob("*.txt"))
    assert captions and all(p.read_text().startswith("lucaw, ") for p in captions)

    # The seed's merge_strategy_outputs.py: the run's folder in, a training folder out.
    merged = subprocess.run([sys.executable, str(REPO / "scripts" / "data_curation" / "merge_strategy_outputs.py"),
                             "out", "--output-dir", "final"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert merged.returncode == 0, merged.stderr[-2000:]
    assert json.loads((tmp_path / "out" / "processing_report.json").read_text())["summary"] == report["summary"]
    training = sorted(p.relative_to(tmp_path / "out" / "training")
                      for p in (tmp_path / "out" / "training").rglob("*.*"))
    assert training and sorted(p.relative_to(tmp_path / "final") for p in (tmp_path / "final").rglob("*.*")) == training

    # A frame that cannot be read: exit 1, and the summary names it.
    (tmp_path / "frames" / "broken.png").write_text("no image")
    failed = frameloom(tmp_path, "run", *flags)
    assert failed.returncode == 1
    assert "failures: FrameDecodeError x1 (first: broken.png: FrameDecodeError: not a decodable image" in failed.stdout


@pytest.mark.parametrize(("script", "command"), [
    ("data_curation/intelligent_frame_processor.py", "run"), ("data_curation/merge_strategy_outputs.py", "merge"),
    ("data_curation/temporal_context_expansion.py", "expand"), ("setup/download_models.py", "download-models"),
])
def test_the_design_documents_script_paths_are_aliases(script, command):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / script), "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0 and result.stdout.startswith(f"usage: frameloom {command} ")


def test_an_alias_run_outside_the_environment_says_so_in_one_line(tmp_path):
    """A system python without the project's packages: one line naming the fix, exit 2."""
    import shutil

    bare = shutil.which("python3", path="/usr/bin:/bin")
    if bare is None or subprocess.run([bare, "-c", "import yaml, cv2"], capture_output=True).returncode == 0:
        pytest.skip("no interpreter without the project's packages here")
    script = REPO / "scripts" / "data_curation" / "intelligent_frame_processor.py"
    result = subprocess.run([bare, str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("intelligent_frame_processor.py: ") and "is not installed for" in line
    assert f".venv/bin/python {script}" in line


def test_expand_writes_curated_frames_and_neighbours(tmp_path):
    from test_temporal import write_sequence

    write_sequence(tmp_path / "frames" / "shot", 20)
    (tmp_path / "curated").mkdir()
    for number in (4, 15):
        (tmp_path / "curated" / f"frame_{number}.png").write_bytes(
            (tmp_path / "frames" / "shot" / f"frame_{number}.png").read_bytes())
    assert main(["expand", str(tmp_path / "curated"), "--frames-dir", str(tmp_path / "frames"),
                 "--output-dir", str(tmp_path / "expanded"), "--window-size", "2"]) == 0
    written = sorted(p.name for p in (tmp_path / "expanded" / "shot").iterdir())
    assert written == sorted(f"frame_{n}.png" for n in [2, 3, 4, 5, 6, 13, 14, 15, 16, 17])
    assert json.loads((tmp_path / "expanded" / "temporal_expansion.json").read_text())["added"] == 8


def test_progress_lines_count_rate_and_eta(tmp_path):
    from frameloom.cli import Progress

    lines, now = [], [0.0]
    progress = Progress(tmp_path / "plan.tsv", write=lines.append, clock=lambda: now[0], every=2.0)
    progress.handle({"event": "run_info", "stats": {"analyze": 10, "decide": 1, "all": 1, "total": 12}})
    progress.handle({"event": "job_info", "jobid": 1, "rule": "analyze"})  # the first job starts at 0 s
    for second in range(1, 11):
        now[0] = float(second)
        progress.handle({"event": "job_info", "jobid": second + 1, "rule": "analyze"})
        progress.handle({"event": "job_finished", "jobid": second})
    # Shown at most every 2 s, and always at the end: 1 frame/s since the first start.
    assert lines == ["frameloom: analyze 1/10 (1.0/s, ETA 9 s)\n", "frameloom: analyze 3/10 (1.0/s, ETA 7 s)\n",
                     "frameloom: analyze 5/10 (1.0/s, ETA 5 s)\n", "frameloom: analyze 7/10 (1.0/s, ETA 3 s)\n",
                     "frameloom: analyze 9/10 (1.0/s, ETA 1 s)\n", "frameloom: analyze 10/10 (1.0/s)\n"]
    # After the decide checkpoint, the plan gives the strategy rules' totals.
    (tmp_path / "plan.tsv").write_text("a\tkeep_full\nb\tkeep_full\nc\tfailed\n")
    for jobid, rule in ((21, "decide"), (22, "keep_full"), (23, "job_parameters"), (24, "all")):
        progress.handle({"event": "job_info", "jobid": jobid, "rule": rule})
        progress.handle({"event": "job_finished", "jobid": jobid})  # job_parameters, all: bookkeeping
    assert lines[-2:] == ["frameloom: decide 1/1\n", "frameloom: keep_full 1/2\n"]

    # A SLURM group job: six jobs submitted at 20 s end together at 32 s, 0.5 frames/s.
    cluster = Progress(tmp_path / "plan.tsv", write=lines.append, clock=lambda: now[0], every=2.0)
    cluster.handle({"event": "run_info", "stats": {"masks": 6, "total": 6}})
    now[0] = 20.0
    for jobid in range(6):
        cluster.handle({"event": "job_info", "jobid": jobid, "rule": "masks"})
    now[0] = 32.0
    for jobid in range(6):
        cluster.handle({"event": "job_finished", "jobid": jobid})
    assert lines[-1] == "frameloom: masks 6/6 (0.5/s)\n"


def test_run_reads_its_progress_from_the_logger_plugins_events(tmp_path):
    """`frameloom run` (not --quiet) starts Snakemake with the frameloom logger plugin and prints
    a progress line per stage from the job events it writes."""
    write_demo_set(tmp_path / "frames", 3, width=320, height=180)
    run = frameloom(tmp_path, "run", "frames", "--output-dir", "out")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "frameloom: analyze 3/3" in run.stderr and "frameloom: merge 1/1" in run.stderr, run.stderr[-3000:]
    events = [json.loads(line) for line in (tmp_path / "out" / "logs" / "frameloom-run-events.jsonl").open()]
    assert events[0]["event"] == "run_info" and events[0]["stats"]["analyze"] == 3
    assert {e["event"] for e in events} == {"run_info", "job_info", "job_finished"}


def test_the_onerror_handler_shows_each_error_of_snakemakes_log(tmp_path, capsys):
    """Under --quiet all Snakemake prints no error itself: frameloom.summary.stopped shows them."""
    from frameloom.summary import stopped

    log = tmp_path / "run.snakemake.log"
    log.write_text("Building DAG of jobs...\nError in rule analyze:\n"
                   "    jobid: 3\n    log: results/logs/analyze/a.log\n"
                   "\nRuleException:\nCalledProcessError in file Snakefile, line 3\nShutting down\n"
                   "Exiting because a job execution failed. Look above for error messages\n")
    stopped(str(log), "results")
    shown = capsys.readouterr().out.splitlines()
    assert shown[1] == "frameloom: the run stopped before its report:"
    assert shown[2:5] == ["Error in rule analyze:", "    jobid: 3", "    log: results/logs/analyze/a.log"]
    assert "Building DAG of jobs..." not in shown and "RuleException:" in shown
    assert shown[-1] == f"Snakemake's log: {log}; each job's log: results/logs/"
