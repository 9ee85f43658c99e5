"""Bad and hostile inputs: each reads correctly or fails alone with a one-line named reason."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from bad_inputs import decompression_bomb_png, frame, write_bad_inputs
from PIL import Image, ImageOps

from frameloom.analysis import analyze_file
from frameloom.imageio import read_image


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("bad")
    return folder, write_bad_inputs(folder)


def test_every_case_reads_as_expected_or_fails_by_name(bad_dir):
    folder, expected = bad_dir
    for name, outcome in expected.items():
        if isinstance(outcome, tuple):
            image = read_image(folder / name)
            assert image.shape == (*outcome, 3) and image.dtype == np.uint8, name
        else:
            record = analyze_file(folder / name, "f", name, models_dir=folder)
            assert record["ok"] is False and record["error"] == outcome, name
            assert "\n" not in record["error"]


def test_conversions_keep_the_picture(bad_dir):
    folder, _ = bad_dir
    original = frame().astype(int)
    for name, tolerance in (("sixteen bit.png", 0), ("rgba.png", 0), ("palette.png", 40), ("cmyk.jpg", 40)):
        assert np.abs(read_image(folder / name).astype(int) - original).mean() <= tolerance / 4, name
    grey = cv2.cvtColor(frame(), cv2.COLOR_BGR2GRAY)
    assert np.array_equal(read_image(folder / "grey.png")[..., 1], grey)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_and_opencv(tmp_path, orientation):
    image = np.zeros((24, 40, 3), np.uint8)
    image[:12, :20] = (0, 0, 255)
    image[12:, 30:] = (255, 0, 0)
    pil = Image.fromarray(image[:, :, ::-1])
    exif = pil.getexif()
    exif[0x0112] = orientation
    pil.save(tmp_path / "o.png", exif=exif)
    pil.save(tmp_path / "o.jpg", exif=exif, quality=95)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))[:, :, ::-1]
    assert np.array_equal(read_image(tmp_path / "o.png"), upright)
    assert np.array_equal(read_image(tmp_path / "o.jpg"), cv2.imread(str(tmp_path / "o.jpg"), cv2.IMREAD_COLOR))


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    decompression_bomb_png(tmp_path / "bomb.png")
    assert (tmp_path / "bomb.png").stat().st_size < 2_000_000
    # In a fresh interpreter, so its peak memory says whether the 400 MB were ever allocated: VmHWM,
    # the peak of this process image (ru_maxrss would carry the forking test process's peak over exec).
    probe = (
        "import re, sys\n"
        "from frameloom.imageio import FrameTooLarge, read_image\n"
        "try:\n    read_image(sys.argv[1])\nexcept FrameTooLarge as error:\n    print(error)\n"
        "status = open('/proc/self/status').read()\n"
        "print(int(re.search(r'VmHWM:\\s+(\\d+) kB', status)[1]) // 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "bomb.png")], capture_output=True,
                            text=True, timeout=120, check=True)
    message, peak_mb = result.stdout.strip().splitlines()
    assert message == "20000x20000 is 400 MP, over the 100 MP limit: bomb.png"
    assert int(peak_mb) < 300, f"peak {peak_mb} MB: the image was decoded"


def test_file_names_never_reach_a_shell_unquoted():
    """Every placeholder in a shell: command is quoted (:q), but for values the workflow controls."""
    repo = Path(__file__).resolve().parents[1]
    # Numbers, the interpreter path and a wildcard constrained to two names.
    controlled = {"threads", "params.python", "wildcards.strategy", "resources.attempt", "resources.attempts"}
    shells = []
    for rule_file in sorted((repo / "rules").glob("*.smk")) + [repo / "Snakefile"]:
        text = rule_file.read_text()
        for block in re.findall(r"^    shell:\n((?:        .*\n)+)", text, re.M):
            shells.append(block)
            for placeholder in re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", block):
                assert placeholder.endswith(":q") or placeholder in controlled, (rule_file.name, placeholder)
    assert shells, "no shell: rules found"


@pytest.mark.slow
def test_the_workflow_runs_every_case_and_each_bad_one_fails_alone(tmp_path):
    import json

    from test_workflow import snakemake, write_config

    from frameloom.demo import write_demo_set

    expected = write_bad_inputs(tmp_path / "frames")
    write_demo_set(tmp_path / "frames" / "good", 4, seed=5, truth_dir=tmp_path / "truth")
    write_config(tmp_path)
    snakemake(tmp_path)  # failed frames are reported, not fatal: exit 1 with the summary (the helper checks)
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()
    report = json.loads((tmp_path / "results" / "processing_report.json").read_text())
    results = {r["frame"]: r for r in report["results"]}
    assert set(results) == set(expected) | {f"good/demo_{i:04d}.png" for i in range(4)}
    for name, outcome in expected.items():
        result = results[name]
        if isinstance(outcome, str):
            assert (result["success"], result["error"]) == (False, outcome), name
        elif outcome[0] * outcome[1] >= 64 * 64:
            # Decoded and judged: processed, or excluded by the frame gate with its reason.
            assert result["success"] or result["exclusion_reason"], (name, result["error"])
        else:
            # 1x1 and 8x8 are analysed; the gate may exclude them, or a strategy may find nothing to
            # work with, and says so in one line.
            assert (result["success"] or result["exclusion_reason"]
                    or re.fullmatch(r"\w+: [^\n]+", result["error"])), (name, result["error"])
    assert report["summary"]["failed"] >= 5 and report["summary"]["successful"] >= 14
    assert report["summary"]["training_images"] > 0


# --- fuzz ------------------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from frameloom.decision import GATE_REASONS, decide  # noqa: E402
from frameloom.imageio import FrameDecodeError  # noqa: E402
from frameloom.registry import STRATEGIES  # noqa: E402
from frameloom.schema import validate  # noqa: E402

UNIT = st.floats(0, 1, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(metrics=st.fixed_dictionaries({"complexity": UNIT, "lighting": UNIT, "occlusion": UNIT, "quality": UNIT,
                                      "sharpness": UNIT, "instance_count": st.integers(0, 50),
                                      "shot_type": st.sampled_from(["close-up", "medium", "full-body", "far"]),
                                      "exposure": st.fixed_dictionaries({"p1": UNIT, "p99": UNIT}),
                                      "plain_ground": st.fixed_dictionaries({
                                          "flat_share": UNIT, "text_lines": st.integers(0, 40),
                                          "title_card": st.booleans()})}),
       enabled=st.lists(st.sampled_from(STRATEGIES), min_size=1, unique=True),
       steering=st.booleans(), frame=st.text(min_size=1, max_size=30))
def test_any_analysis_gets_a_valid_decision(metrics, enabled, steering, frame):
    cfg = validate({"steering": steering}, "decision_thresholds", "fuzz")
    record = decide({"frame": frame, "ok": True, **metrics}, cfg, enabled)
    if record.get("excluded"):
        assert record["strategy"] is None and record["exclusion_reason"] in GATE_REASONS
    else:
        assert record["strategy"] in enabled and 0.5 <= record["confidence"] <= 1.0
    assert record["reasoning"] and set(record["eligible"]) <= set(enabled)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(
    st.binary(max_size=2048),
    # Real headers with damaged bodies: the decoder's worst case.
    st.tuples(st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"RIFF\x00\x00\x00\x00WEBP", b"BM"]),
              st.binary(max_size=2048)).map(lambda parts: parts[0] + parts[1]),
))
def test_any_bytes_read_as_an_image_or_fail_by_name(tmp_path, data):
    path = tmp_path / "fuzz.png"
    path.write_bytes(data)
    try:
        image = read_image(path)
    except FrameDecodeError as error:
        assert "\n" not in str(error)
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
