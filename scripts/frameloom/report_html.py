"""A self-contained HTML view of processing_report.json (opens without a server)."""

from __future__ import annotations

import html
import os
from pathlib import Path

from .config import STRATEGIES

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .5rem;vertical-align:top}
th{background:#f3f3f3}.bar{background:#5b8def;height:.8rem;display:inline-block}
.target{background:#ccc;height:.8rem;display:inline-block}.fail{color:#b00020}
img{max-height:96px;max-width:160px;margin:2px;background:#888}
"""


def _bar(fraction: float, css: str) -> str:
    return f'<span class="{css}" style="width:{max(fraction, 0) * 200:.0f}px"></span>'


def render_report(report: dict, base_dir: Path) -> str:
    """The summary, the strategy mix against its targets, and one row per frame with thumbnails."""
    summary = report["summary"]
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>frameloom report</title>",
        f"<style>{STYLE}</style></head><body><h1>frameloom report</h1>",
        "<table><tr><th>frames</th><th>successful</th><th>failed</th><th>training images</th></tr>",
        f"<tr><td>{summary['total_frames']}</td><td>{summary['successful']}</td>"
        f"<td class='fail'>{summary['failed']}</td><td>{summary['training_images']}</td></tr></table>",
        "<h2>Strategy mix</h2><table><tr><th>strategy</th><th>frames</th><th>achieved</th><th>target</th></tr>",
    ]
    for name in STRATEGIES:
        achieved = summary["strategy_mix"][name]
        target = summary["strategy_targets"][name]
        parts.append(
            f"<tr><td>{name}</td><td>{summary['strategies'][name]}</td>"
            f"<td>{_bar(achieved, 'bar')} {achieved:.0%}</td><td>{_bar(target, 'target')} {target:.0%}</td></tr>"
        )
    parts.append("</table><h2>Training folders</h2><table><tr><th>folder</th><th>images</th><th>repeats</th>"
                 "<th>effective share</th><th>target</th></tr>")
    for name, concept in summary["repeats"].items():
        parts.append(
            f"<tr><td>{esc(name)}</td><td>{concept['images']}</td><td>{concept['repeats']}</td>"
            f"<td>{_bar(concept['effective_share'], 'bar')} {concept['effective_share']:.0%}</td>"
            f"<td>{_bar(concept['target'], 'target')} {concept['target']:.0%}</td></tr>"
        )
    parts.append("</table><h2>Backends</h2><table><tr><th>backend</th><th>outputs</th></tr>")
    parts += [f"<tr><td>{esc(name)}</td><td>{count}</td></tr>" for name, count in summary["backends"].items()]
    parts.append("</table><h2>Frames</h2><table><tr><th>frame</th><th>strategy</th><th>confidence</th>"
                 "<th>reasoning</th><th>outputs</th></tr>")
    for result in report["results"]:
        images = [p for p in result["outputs"] if not p.endswith(".txt")]
        thumbs = "".join(
            f"<img loading='lazy' src='{esc(os.path.relpath(p, base_dir))}' title='{esc(result['backends'].get(p, ''))}'>"
            for p in images
        )
        status = "" if result["success"] else f"<div class='fail'>{esc(str(result['error']))}</div>"
        parts.append(
            f"<tr><td>{esc(result['frame'])}</td><td>{esc(str(result['strategy']))}</td>"
            f"<td>{result['confidence']:.2f}</td><td>{esc(result['reasoning'])}{status}</td><td>{thumbs}</td></tr>"
        )
    parts.append("</table></body></html>\n")
    return "\n".join(parts)
