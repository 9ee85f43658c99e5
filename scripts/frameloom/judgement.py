"""How well the analysis and the decisions judge real, labelled film frames.

A labelled folder holds frames and a ``labels.csv`` written by a person (one row
per file: ``characters``, ``character_present``, ``shot_type``, ``lighting``,
``blur``, ...; the frames may sit in the folder or in its ``frames/``). Each
frame is scored by the workflow's own analysis and decision code, then held
to the checks below. Two scores come out of them:

* **safety**: the checks that keep poison out of the dataset (sharpness
  order, dark, blurred and empty frames, what may be kept whole);
* **reading**: character count and shot type, which steer the balance.

``usable_for_training`` is a person's opinion (often about tiny or back-view
characters a dataset may still want): agreement with it is reported, never
scored.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

LABELS_FILE = "labels.csv"
SAFETY, READING = "safety", "reading"
WHOLE_FRAME_STRATEGIES = ("keep_full", "create_occlusion")
READABLE_BLUR = ("sharp", "soft")
# Sintel's clean and final passes of one frame: the final pass adds depth of
# field, motion blur and fog, so the clean one is sharper.
PASS_PAIR = re.compile(r"^(?P<shot>.+)_(?P<pass>clean|final)_frame_(?P<number>\d+)$")


@dataclass
class Check:
    name: str
    kind: str
    passed: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.passed + len(self.failures)

    def record(self, ok: bool, frame: str, detail: str) -> None:
        if ok:
            self.passed += 1
        else:
            self.failures.append(f"{frame} ({detail})")


@dataclass
class Judged:
    """One labelled frame with what the workflow made of it."""

    frame: str
    label: dict
    analysis: dict
    decision: dict

    @property
    def excluded(self) -> bool:
        return bool(self.decision.get("excluded"))

    @property
    def outcome(self) -> str:
        if self.excluded:
            return f"excluded: {self.decision.get('exclusion_reason')}"
        return self.decision.get("strategy") or "failed"


def labelled_frames(folder: Path) -> list[tuple[Path, dict]]:
    """(frame path, label row) for every row of ``folder/labels.csv`` whose file exists."""
    folder = Path(folder)
    with open(folder / LABELS_FILE, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    found = []
    for row in rows:
        for candidate in (folder / row["file"], folder / "frames" / row["file"]):
            if candidate.is_file():
                found.append((candidate, row))
                break
    return found


def _has_character(label: dict) -> bool:
    return label["character_present"] == "yes"


def _count_ok(labelled: int, measured: int) -> bool:
    return measured >= 3 if labelled >= 3 else measured == labelled


def judge(frames: list[Judged]) -> list[Check]:
    """Every check over every frame it applies to."""
    sharper = Check("clean pass sharper than final pass", SAFETY)
    dark = Check("dark frame with a character never keep_full", SAFETY)
    blurred = Check("motion-blurred/unusable -> enhance_segment or excluded", SAFETY)
    unusable = Check("unusable blur -> excluded", SAFETY)
    empty = Check("no character -> excluded", SAFETY)
    whole = Check("keep_full/create_occlusion only with a readable character", SAFETY)
    count = Check("instance_count (0, 1, 2 exact; 3+ at least 3)", READING)
    shot = Check("shot_type", READING)

    by_name = {judged.frame: judged for judged in frames}
    for judged in frames:
        label, analysis, name = judged.label, judged.analysis, judged.frame
        outcome = judged.outcome
        present = _has_character(label)
        match = PASS_PAIR.match(name)
        if match and match["pass"] == "clean":
            final = by_name.get(f"{match['shot']}_final_frame_{match['number']}")
            if final is not None:
                ok = analysis["sharpness"] > final.analysis["sharpness"]
                sharper.record(ok, name, f"clean {analysis['sharpness']:.3f} vs final "
                                         f"{final.analysis['sharpness']:.3f}")
        if label["lighting"] == "dark" and present:
            dark.record(judged.decision.get("strategy") != "keep_full" or judged.excluded, name, outcome)
        if label["blur"] in ("motion_blur", "unusable") and present:
            ok = judged.excluded or judged.decision.get("strategy") == "enhance_segment"
            blurred.record(ok, name, f"{label['blur']}: {outcome}")
        if label["blur"] == "unusable" and present:
            unusable.record(judged.excluded, name, outcome)
        if not present:
            empty.record(judged.excluded, name, outcome)
        if not judged.excluded and judged.decision.get("strategy") in WHOLE_FRAME_STRATEGIES:
            ok = present and label["blur"] in READABLE_BLUR
            whole.record(ok, name, f"{outcome}, character {label['character_present']}, blur {label['blur']}")
        labelled_count = int(label["characters"])
        measured = int(analysis.get("instance_count", 0))
        count.record(_count_ok(labelled_count, measured), name, f"labelled {labelled_count}, measured {measured}")
        shot.record(analysis.get("shot_type") == label["shot_type"], name,
                    f"labelled {label['shot_type']}, measured {analysis.get('shot_type')}")
    return [sharper, dark, blurred, unusable, empty, whole, count, shot]


def score(checks: list[Check], kind: str) -> tuple[int, int]:
    """(passed, total) over the checks of one kind."""
    chosen = [check for check in checks if check.kind == kind]
    return sum(c.passed for c in chosen), sum(c.total for c in chosen)


def usable_agreement(frames: list[Judged]) -> tuple[int, int]:
    """Frames where 'kept at all' (not excluded, not failed) agrees with usable_for_training."""
    agree = sum(
        (judged.label["usable_for_training"] == "yes") == (not judged.excluded and judged.decision.get("ok", False))
        for judged in frames
    )
    return agree, len(frames)


def confusion(frames: list[Judged], key: str, measured) -> dict[tuple[str, str], int]:
    """{(labelled, measured): count} for one label column."""
    table: dict[tuple[str, str], int] = {}
    for judged in frames:
        pair = (judged.label[key], str(measured(judged)))
        table[pair] = table.get(pair, 0) + 1
    return table


def evaluate_folders(folders: list[Path], models_dir: Path | None,
                     map_function=map) -> tuple[list[Judged], list[Check]]:
    """Analyse and decide every labelled frame of ``folders`` with the project's default
    configuration (``map_function`` may be a pool's map), then judge them."""
    from .analysis import analyze_file
    from .config import load_project_config
    from .decision import decide_all

    project = Path(__file__).resolve().parents[2]
    run_config = load_project_config(project, project)
    labelled = [(path, label) for folder in folders for path, label in labelled_frames(folder)]

    def one(item: tuple[Path, dict]) -> dict:
        path, _ = item
        return analyze_file(path, path.stem, path.name, models_dir=models_dir)

    analyses = list(map_function(one, labelled))
    # Decided as one set, as the decide step does: the planner sees them all.
    decisions = decide_all(analyses, run_config.decision, run_config.enabled_strategies)
    frames = [Judged(analysis["frame"], label, analysis, decisions[analysis["frame"]])
              for analysis, (_, label) in zip(analyses, labelled)]
    return frames, judge(frames)
