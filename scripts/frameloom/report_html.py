"""A self-contained HTML view of processing_report.json (opens without a server).

Charts are inline SVG and the contact sheets inline JPEG thumbnails, so the page
also survives being embedded by ``snakemake --report``; the per-frame table and
the rejects link the full images by relative path.
"""

from __future__ import annotations

import base64
import os
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from .distributions import CLASSES
from .imageops import on_grey
from .joblog import job_seconds
from .pages import render_page, template_text
from .registry import STRATEGIES

BEFORE_COLOUR, AFTER_COLOUR = "#9aa5b1", "#5b8def"
THUMB_HEIGHT = 120

def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {name: count / total if total else 0.0 for name, count in counts.items()}


def distribution_chart(dimension: str, before: dict[str, int], after: dict[str, int]) -> dict:
    """One dimension's paired horizontal bars (input frames against training images), laid out
    for the report's inline SVG."""
    names = [n for n in CLASSES.get(dimension, ()) if n in before or n in after]
    names += sorted((set(before) | set(after)) - set(names))
    shares_before, shares_after = _shares(before), _shares(after)
    row, label_width, bar_width = 30, 110, 200
    rows = []
    for i, name in enumerate(names):
        y = 22 + i * row
        bars = [{"top": y + 2 + j * 13, "width": shares.get(name, 0.0) * bar_width, "share": shares.get(name, 0.0),
                 "count": counts.get(name, 0), "colour": colour}
                for j, (shares, counts, colour) in enumerate(((shares_before, before, BEFORE_COLOUR),
                                                               (shares_after, after, AFTER_COLOUR)))]
        rows.append({"name": name, "y": y, "bars": bars})
    return {"dimension": dimension, "width": label_width + bar_width + 110, "height": 22 + row * len(names),
            "label_width": label_width, "rows": rows}


def thumbnail_uri(path: str, height: int = THUMB_HEIGHT) -> str | None:
    """A small inline JPEG of an image (a cut-out on the neutral grey); None when unreadable."""
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.dtype != np.uint8:
        image = (image / 257).astype(np.uint8)
    if image.shape[2] == 4:
        image = on_grey(image[:, :, :3], image[:, :, 3:4].astype(np.float32) / 255)
    scale = height / image.shape[0]
    if scale < 1:
        image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode() if ok else None


def _sample(items: list, count: int) -> list:
    """``count`` items spread evenly over ``items`` (deterministic)."""
    if len(items) <= count:
        return items
    return [items[round(i * (len(items) - 1) / max(count - 1, 1))] for i in range(count)]


def input_file(result: dict, input_root: Path) -> Path:
    """The frame a report result was made from: its own path (a video's extracted frame), else
    its source under the input folder."""
    return Path(result.get("input") or input_root / result["frame"])


def result_images(result: dict) -> list[str]:
    """A report result's image outputs (its captions left out)."""
    return [path for path in result["outputs"] if not path.endswith(".txt")]


def contact_sheets(results: list[dict], input_root: Path, frames_per_strategy: int) -> list[dict]:
    """Per strategy: sampled frames, the input beside every image made from it (inline thumbnails)."""
    sheets = []
    for strategy in STRATEGIES:
        done = [r for r in results if r["success"] and r["strategy"] == strategy]
        if not done or not frames_per_strategy:
            continue
        rows = []
        for result in _sample(done, frames_per_strategy):
            cells = [("input", str(input_file(result, input_root)))]
            cells += [(Path(p).stem.removeprefix(result["frame_id"]).strip("_") or "output", p)
                      for p in result_images(result)]
            rows.append({"frame_id": result["frame_id"],
                         "cells": [{"uri": uri, "label": label} for label, path in cells
                                   if (uri := thumbnail_uri(path))]})
        sheets.append({"strategy": strategy, "frames": len(done), "rows": rows})
    return sheets


def stage_times(logs_dir: Path, results: list[dict]) -> dict[str, dict]:
    """{stage: {jobs, seconds, max}} from the timing line of every current job log.

    A per-frame log counts only while the frame still has that stage (the plan
    may have moved it to another strategy since); the report's own log is the
    previous run's and is left out.
    """
    planned = {r["frame_id"]: r["strategy"] for r in results}
    totals: dict[str, list[float]] = defaultdict(list)
    for log in sorted(logs_dir.rglob("*.log")) if logs_dir.is_dir() else []:
        relative = log.relative_to(logs_dir)
        stage = relative.parent.as_posix() if relative.parent != Path(".") else log.stem
        if stage == "html_report":
            continue
        if stage in STRATEGIES and planned.get(log.stem) != stage or stage == "analyze" and log.stem not in planned:
            continue
        seconds = job_seconds(log.read_text(encoding="utf-8", errors="replace"))
        if seconds is not None:
            totals[stage].append(seconds)
    return {stage: {"jobs": len(times), "seconds": round(sum(times), 3), "max": round(max(times), 3)}
            for stage, times in totals.items()}


def _rejects(report: dict, base_dir: Path) -> list[dict]:
    rows = []
    # Curated names are "{strategy}__{image}" (dataset.curate_frame).
    for entry in report.get("rejected", []):
        if entry.get("reason") == "quality":
            detail = f"measured {entry['value']}, limit {entry['limit']}"
        elif entry.get("reason") == "duplicate":
            detail = f"near-duplicate of {Path(entry['duplicate_of']).name}" + (
                f" (augmented from {Path(entry['augmented_from']).name})" if entry.get("augmented_from") else "")
        else:
            detail = f"cluster {entry.get('cluster')}"
        rows.append({"link": os.path.relpath(entry["curated"], base_dir),
                     "strategy": Path(entry["curated"]).name.split("__")[0],
                     "removed_by": entry.get("filter") or entry["reason"], "detail": detail})
    return rows


def render_report(report: dict, base_dir: Path, input_root: Path | None = None, logs_dir: Path | None = None,
                  contact_sheet_frames: int = 6) -> str:
    """The whole page (templates/report.html.j2): what a person should know before training
    (summary.warnings), summary, mix against targets, distributions, contact sheets, stage times,
    backends, rejects, exclusions, failures, and one row per frame with its reasoning and thumbnails."""
    summary = report["summary"]
    results = report["results"]
    plan = summary.get("plan", {})
    mix = [{"name": name, "frames": summary["strategies"][name], "achieved": summary["strategy_mix"][name],
            "target": summary["strategy_targets"][name], "qualifying": plan.get(name, {}).get("qualifying", ""),
            "binding": plan.get(name, {}).get("binding", "")} for name in STRATEGIES]
    distributions = summary.get("distributions")
    charts = [distribution_chart(d, distributions["frames"].get(d, {}), distributions["training"].get(d, {}))
              for d in CLASSES] if distributions else []
    times = stage_times(logs_dir, results) if logs_dir is not None else None
    frames = [{"frame": r["frame"], "strategy": r["strategy"], "confidence": r["confidence"],
               "reasoning": r["reasoning"], "failed": not r["success"], "error": r["error"],
               "thumbs": [{"src": os.path.relpath(p, base_dir), "title": r["backends"].get(p, "")}
                          for p in result_images(r)]} for r in results]
    return render_page(
        "report.html.j2", style=template_text("report.css"), warnings=summary.get("warnings", []),
        summary={**summary, "excluded": summary.get("excluded", 0)}, mix=mix,
        folders=list(summary["repeats"].items()), charts=charts, before_colour=BEFORE_COLOUR,
        after_colour=AFTER_COLOUR,
        sheets=contact_sheets(results, input_root, contact_sheet_frames) if input_root is not None else None,
        times=sorted(times.items(), key=lambda item: -item[1]["seconds"]) if times is not None else None,
        longest=max((t["seconds"] for t in (times or {}).values()), default=0) or 1,
        backends=list(summary["backends"].items()), rejects=_rejects(report, base_dir),
        excluded=[{**r, "exclusion_reason": r.get("exclusion_reason")} for r in results if r.get("excluded")],
        failures=[r for r in results if not r["success"] and not r.get("excluded")], frames=frames)
