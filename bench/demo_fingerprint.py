"""Fingerprint of a run's outcome: its report summary and its training folder.

    .venv/bin/python bench/demo_fingerprint.py results

prints one sha256 for ``processing_report.json``'s summary (canonical JSON) and one
for the training folder (every file's path and bytes, in path order), so a refactor
can show that the demo's outcome did not change: run the quick start before and
after, into two output folders, and compare the two lines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def summary_digest(output_dir: Path) -> str:
    """The summary with the output folder's path written as ``OUT`` and the checkout's as ``REPO``
    (fallback names carry the missing weights' paths): the same run into another folder, or
    from another clone, gives the same digest."""
    report = json.loads((output_dir / "processing_report.json").read_text())
    text = json.dumps(report["summary"], sort_keys=True).replace(str(output_dir.resolve()), "OUT")
    # A relative output_dir (the default "results") leaves relative paths in the report.
    text = text.replace(f'"{output_dir}/', '"OUT/').replace(str(REPO), "REPO")
    return hashlib.sha256(text.encode()).hexdigest()


def folder_digest(folder: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    for path in files:
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest(), len(files)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/demo_fingerprint.py", description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path, help="a finished run's output folder (default config: results)")
    args = parser.parse_args()
    training, count = folder_digest(args.output_dir / "training")
    print(f"summary  {summary_digest(args.output_dir)}")
    print(f"training {training} ({count} files)")


if __name__ == "__main__":
    main()
