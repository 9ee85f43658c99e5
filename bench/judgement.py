"""How well the workflow judges real, labelled film frames (frameloom.judgement).

Runs the workflow's own analysis and decide code, with the project's default
configuration, on every frame of each labelled folder (a folder with a
``labels.csv``), and prints per check: passes / total and the failing frames,
then the safety and reading scores. Frames are analysed as the workflow does
(face weights from --models-dir; the character finder the analysis uses).

    .venv/bin/python bench/judgement.py ../shared/data/calibration ../shared/data/frames
    .venv/bin/python bench/judgement.py FOLDER --confusion   # + count and shot-type confusion tables
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from frameloom.judgement import READING, SAFETY, confusion, evaluate_folders, score, usable_agreement  # noqa: E402

SHARED = Path(os.environ.get("FRAMELOOM_SHARED_DIR", REPO.parent / "shared"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/judgement.py", description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="labelled folders (each with a labels.csv)")
    parser.add_argument("--models-dir", type=Path,
                        default=Path(os.environ.get("FRAMELOOM_MODELS_DIR", SHARED / "models")),
                        help="where the face weights are (default: ../shared/models)")
    parser.add_argument("--confusion", action="store_true", help="also print count and shot-type confusion tables")
    parser.add_argument("--failures", type=int, default=12, help="failing frames listed per check (default 12)")
    args = parser.parse_args(argv)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        frames, checks = evaluate_folders(args.folders, args.models_dir, pool.map)
    print(f"{len(frames)} labelled frames from {', '.join(str(f) for f in args.folders)}; "
          f"finder: {frames[0].analysis.get('finder') if frames else '-'}; "
          f"face detector: {frames[0].analysis.get('face_detector') if frames else '-'}")
    print(f"{'check':<58} {'kind':<8} {'passed':>11}")
    for check in checks:
        share = f"{check.passed}/{check.total}"
        print(f"{check.name:<58} {check.kind:<8} {share:>11}")
        for failure in check.failures[:args.failures]:
            print(f"    {failure}")
        if len(check.failures) > args.failures:
            print(f"    ... and {len(check.failures) - args.failures} more")
    for kind in (SAFETY, READING):
        passed, total = score(checks, kind)
        print(f"{kind} score: {passed}/{total} = {100.0 * passed / max(total, 1):.1f}%")
    passed, total = score(checks, SAFETY)
    reading_passed, reading_total = score(checks, READING)
    overall = passed + reading_passed, total + reading_total
    print(f"overall: {overall[0]}/{overall[1]} = {100.0 * overall[0] / max(overall[1], 1):.1f}%")
    agree, judged = usable_agreement(frames)
    print(f"agreement with usable_for_training (reported, not scored): {agree}/{judged}")
    if args.confusion:
        for key, measured in (("characters", lambda j: min(j.analysis.get("instance_count", 0), 3)),
                              ("shot_type", lambda j: j.analysis.get("shot_type"))):
            print(f"\n{key}: labelled -> measured")
            for (labelled, got), count in sorted(confusion(frames, key, measured).items()):
                print(f"  {labelled:>10} -> {got:<10} {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
