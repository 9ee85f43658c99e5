"""A self-contained HTML view of processing_report.json (opens without a server).

Charts are inline SVG and the contact sheets inline JPEG thumbnails, so the page
also survives being embedded by ``snakemake --report``; the per-frame table and
the rejects link the full images by relative path.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from .distributions import CLASSES
from .registry import STRATEGIES

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .5rem;vertical-align:top}
th{background:#f3f3f3}.bar{background:#5b8def;height:.8rem;display:inline-block}
.target{background:#ccc;height:.8rem;display:inline-block}.fail{color:#b00020}.warnings li{color:#8a4b00}
img{max-height:96px;max-width:160px;margin:2px;background:#888}
.charts{display:flex;flex-wrap:wrap;gap:1.5rem}.sheet td{text-align:center;font-size:.8rem}
.sheet img{max-height:none;max-width:none}.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem}
"""
BEFORE_COLOUR, AFTER_COLOUR = "#9aa5b1", "#5b8def"
THUMB_HEIGHT = 120
# The last line every job log ends with (joblog.job_log).
TIMING_LINE = re.compile(r"^.+: ([0-9.]+) s$")

esc = html.escape


def _bar(fraction: float, css: str) -> str:
    return f'<span class="{css}" style="width:{max(fraction, 0) * 200:.0f}px"></span>'


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {name: count / total if total else 0.0 for name, count in counts.items()}


def distribution_chart(dimension: str, before: dict[str, int], after: dict[str, int]) -> str:
    """One dimension as an SVG of paired horizontal bars: input frames against training images."""
    names = [n for n in CLASSES.get(dimension, ()) if n in before or n in after]
    names += sorted((set(before) | set(after)) - set(names))
    shares_before, shares_after = _shares(before), _shares(after)
    row, label_width, bar_width = 30, 110, 200
    height = 22 + row * len(names)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + bar_width + 110}" height="{height}" '
             f'role="img" aria-label="{esc(dimension)}"><text x="0" y="14" font-weight="bold">{esc(dimension)}</text>']
    for i, name in enumerate(names):
        y = 22 + i * row
        parts.append(f'<text x="0" y="{y + 16}" font-size="12">{esc(name)}</text>')
        for j, (shares, counts, colour) in enumerate(((shares_before, before, BEFORE_COLOUR),
                                                       (shares_after, after, AFTER_COLOUR))):
            share = shares.get(name, 0.0)
            top = y + 2 + j * 13
            parts.append(f'<rect x="{label_width}" y="{top}" width="{share * bar_width:.1f}" height="11" '
                         f'fill="{colour}"><title>{counts.get(name, 0)}</title></rect>'
                         f'<text x="{label_width + share * bar_width + 4:.1f}" y="{top + 10}" font-size="10">'
                         f'{share:.0%} ({counts.get(name, 0)})</text>')
    parts.append("</svg>")
    return "".join(parts)


def thumbnail_uri(path: str, height: int = THUMB_HEIGHT) -> str | None:
    """A small inline JPEG of an image (a cut-out's alpha over mid grey); None when unreadable."""
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.dtype != np.uint8:
        image = (image / 257).astype(np.uint8)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255
        image = (image[:, :, :3] * alpha + 128 * (1 - alpha)).astype(np.uint8)
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


def contact_sheets(results: list[dict], input_root: Path, frames_per_strategy: int) -> str:
    """Per strategy: sampled frames, the input beside every image made from it."""
    parts = []
    for strategy in STRATEGIES:
        done = [r for r in results if r["success"] and r["strategy"] == strategy]
        if not done or not frames_per_strategy:
            continue
        parts.append(f"<h3>{esc(strategy)} ({len(done)} frames)</h3><table class='sheet'>")
        for result in _sample(done, frames_per_strategy):
            cells = [("input", result.get("input") or str(input_root / result["frame"]))]
            cells += [(Path(p).stem.removeprefix(result["frame_id"]).strip("_") or "output", p)
                      for p in result["outputs"] if not p.endswith(".txt")]
            row = "".join(
                f"<td><img src='{uri}' alt='{esc(label)}'><br>{esc(label)}</td>"
                for label, path in cells if (uri := thumbnail_uri(path)))
            parts.append(f"<tr><th>{esc(result['frame_id'])}</th>{row}</tr>")
        parts.append("</table>")
    return "".join(parts) or "<p>No frame has outputs yet.</p>"


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
        lines = log.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()
        match = TIMING_LINE.match(lines[-1]) if lines else None
        if match:
            totals[stage].append(float(match.group(1)))
    return {stage: {"jobs": len(times), "seconds": round(sum(times), 3), "max": round(max(times), 3)}
            for stage, times in totals.items()}


def _rejects(report: dict, base_dir: Path) -> list[str]:
    parts = ["<table><tr><th>image</th><th>strategy</th><th>removed by</th><th>detail</th></tr>"]
    # Curated names are "{strategy}__{image}" (dataset.curate_frame).
    for entry in report.get("rejected", []):
        if entry.get("reason") == "quality":
            detail = f"measured {entry['value']}, limit {entry['limit']}"
        elif entry.get("reason") == "duplicate":
            detail = f"near-duplicate of {Path(entry['duplicate_of']).name}" + (
                f" (augmented from {Path(entry['augmented_from']).name})" if entry.get("augmented_from") else "")
        else:
            detail = f"cluster {entry.get('cluster')}"
        link = esc(os.path.relpath(entry["curated"], base_dir))
        parts.append(f"<tr><td><a href='{link}'><img loading='lazy' src='{link}'></a></td>"
                     f"<td>{esc(Path(entry['curated']).name.split('__')[0])}</td>"
                     f"<td>{esc(entry.get('filter') or entry['reason'])}</td>"
                     f"<td>{esc(detail)}</td></tr>")
    parts.append("</table>")
    return parts


def _warnings(warnings: list[str]) -> list[str]:
    """The report opens with what a person should know before training (summary.warnings)."""
    if not warnings:
        return []
    return ["<h2 id='warnings'>Warnings</h2><ul class='warnings'>",
            *(f"<li>{esc(warning)}</li>" for warning in warnings), "</ul>"]


def render_report(report: dict, base_dir: Path, input_root: Path | None = None, logs_dir: Path | None = None,
                  contact_sheet_frames: int = 6) -> str:
    """The whole page: summary, mix against targets, distributions, contact sheets, stage times,
    backends, rejects, failures, and one row per frame with its reasoning and thumbnails."""
    summary = report["summary"]
    results = report["results"]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>frameloom report</title>",
        f"<style>{STYLE}</style></head><body><h1>frameloom report</h1>",
        *_warnings(summary.get("warnings", [])),
        "<table><tr><th>frames</th><th>successful</th><th>failed</th><th>excluded</th><th>training images</th></tr>",
        f"<tr><td>{summary['total_frames']}</td><td>{summary['successful']}</td>"
        f"<td class='fail'>{summary['failed']}</td><td>{summary.get('excluded', 0)}</td>"
        f"<td>{summary['training_images']}</td></tr></table>",
        "<h2>Strategy mix</h2><table><tr><th>strategy</th><th>frames</th><th>achieved</th><th>target</th>"
        "<th>qualifying frames</th><th>what binds</th></tr>",
    ]
    for name in STRATEGIES:
        achieved = summary["strategy_mix"][name]
        target = summary["strategy_targets"][name]
        planned = summary.get("plan", {}).get(name, {})
        parts.append(
            f"<tr><td>{name}</td><td>{summary['strategies'][name]}</td>"
            f"<td>{_bar(achieved, 'bar')} {achieved:.0%}</td><td>{_bar(target, 'target')} {target:.0%}</td>"
            f"<td>{planned.get('qualifying', '')}</td><td>{esc(planned.get('binding', ''))}</td></tr>"
        )
    parts.append("</table><h2>Training folders</h2><table><tr><th>folder</th><th>images</th><th>repeats</th>"
                 "<th>effective share</th><th>target</th></tr>")
    for name, concept in summary["repeats"].items():
        parts.append(
            f"<tr><td>{esc(name)}</td><td>{concept['images']}</td><td>{concept['repeats']}</td>"
            f"<td>{_bar(concept['effective_share'], 'bar')} {concept['effective_share']:.0%}</td>"
            f"<td>{_bar(concept['target'], 'target')} {concept['target']:.0%}</td></tr>"
        )
    parts.append("</table>")
    distributions = summary.get("distributions")
    if distributions:
        parts.append(
            "<h2 id='distributions'>Before and after</h2><p class='legend'>"
            f"<span style='background:{BEFORE_COLOUR}'></span>input frames "
            f"<span style='background:{AFTER_COLOUR}'></span>training images</p><div class='charts'>")
        parts += [distribution_chart(d, distributions["frames"].get(d, {}), distributions["training"].get(d, {}))
                  for d in CLASSES]
        parts.append("</div>")
    if input_root is not None:
        parts.append("<h2 id='contact-sheets'>Contact sheets</h2>")
        parts.append(contact_sheets(results, input_root, contact_sheet_frames))
    if logs_dir is not None:
        times = stage_times(logs_dir, results)
        longest = max((t["seconds"] for t in times.values()), default=0) or 1
        parts.append("<h2 id='stage-times'>Run time per stage</h2><p>From the job logs (the latest run of each "
                     "job).</p><table><tr><th>stage</th><th>jobs</th><th>total s</th><th>mean s</th>"
                     "<th>slowest job s</th></tr>")
        parts += [f"<tr><td>{esc(stage)}</td><td>{t['jobs']}</td><td>{_bar(t['seconds'] / longest, 'bar')} "
                  f"{t['seconds']:.1f}</td><td>{t['seconds'] / t['jobs']:.3f}</td><td>{t['max']:.3f}</td></tr>"
                  for stage, t in sorted(times.items(), key=lambda item: -item[1]["seconds"])]
        parts.append("</table>")
    parts.append("<h2>Backends</h2><table><tr><th>backend</th><th>outputs</th></tr>")
    parts += [f"<tr><td>{esc(name)}</td><td>{count}</td></tr>" for name, count in summary["backends"].items()]
    parts.append("</table><h2 id='rejects'>Rejected by curation</h2>")
    parts += _rejects(report, base_dir)
    excluded = [r for r in results if r.get("excluded")]
    parts.append(f"<h2 id='excluded'>Excluded frames ({len(excluded)})</h2><p>By the frame gate "
                 "(decision_thresholds.yaml, <code>gate</code>) or by hand on the review page, where an "
                 "exclusion can be overridden.</p><table><tr><th>frame</th><th>reason</th><th>why</th></tr>")
    parts += [f"<tr><td>{esc(r['frame'])}</td><td>{esc(str(r.get('exclusion_reason')))}</td>"
              f"<td>{esc(r['reasoning'])}</td></tr>" for r in excluded]
    parts.append("</table>")
    failures = [r for r in results if not r["success"] and not r.get("excluded")]
    parts.append(f"<h2 id='failures'>Failures ({len(failures)})</h2><table><tr><th>frame</th><th>error</th></tr>")
    parts += [f"<tr><td>{esc(r['frame'])}</td><td class='fail'>{esc(str(r['error']))}</td></tr>" for r in failures]
    parts.append("</table><h2>Frames</h2><table><tr><th>frame</th><th>strategy</th><th>confidence</th>"
                 "<th>reasoning</th><th>outputs</th></tr>")
    for result in results:
        images = [p for p in result["outputs"] if not p.endswith(".txt")]
        thumbs = "".join(
            f"<img loading='lazy' src='{esc(os.path.relpath(p, base_dir))}' "
            f"title='{esc(result['backends'].get(p, ''))}'>"
            for p in images
        )
        status = "" if result["success"] else f"<div class='fail'>{esc(str(result['error']))}</div>"
        parts.append(
            f"<tr><td>{esc(result['frame'])}</td><td>{esc(str(result['strategy']))}</td>"
            f"<td>{result['confidence']:.2f}</td><td>{esc(result['reasoning'])}{status}</td><td>{thumbs}</td></tr>"
        )
    parts.append("</table></body></html>\n")
    return "\n".join(parts)
