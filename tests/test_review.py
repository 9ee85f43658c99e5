"""Overrides, the review server, and the report's distributions, charts and stage times."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from analysis_records import PICTURE

from frameloom.decision import decide
from frameloom.distributions import distribution, frame_classes, training_classes
from frameloom.imageio import write_image
from frameloom.overrides import apply_override, load_overrides, save_overrides
from frameloom.plan import EXCLUDED, FAILED, write_plan
from frameloom.registry import STRATEGIES
from frameloom.report_html import distribution_chart, stage_times, thumbnail_uri
from frameloom.review import WRITE_HEADER, ReviewServer, render_review_page
from frameloom.schema import ConfigError, validate

THRESHOLDS = {"simple_background": 0.3, "good_lighting": 0.7, "low_occlusion": 0.2, "multi_character": 2,
              "poor_quality": 0.5, "low_sharpness": 0.4}
DECISION_CFG = {
    "thresholds": THRESHOLDS,
    "strategy_targets": {"keep_full": 0.3, "segment": 0.4, "create_occlusion": 0.15, "enhance_segment": 0.15},
    "dataset_needs": {"occlusion": 0.8, "multi_character": 0.9, "far_shot": 0.7, "complex_bg": 0.6},
    "steering": True,
    "gate": validate({}, "decision_thresholds", "defaults")["gate"],
}
CLEAN = {**PICTURE, "frame": "f1", "ok": True, "complexity": 0.1, "lighting": 0.9, "occlusion": 0.05, "quality": 0.9,
         "sharpness": 0.9, "instance_count": 1, "shot_type": "medium"}


# --- overrides file -------------------------------------------------------------------------


def test_overrides_round_trip_and_missing_file(tmp_path):
    path = tmp_path / "overrides.yaml"
    assert load_overrides(path, "overrides.yaml") == {}
    save_overrides(path, {"b": {"exclude": True, "note": "not ours"}, "a": {"strategy": "segment", "note": ""}})
    text = path.read_text()
    assert text.startswith("# frameloom overrides")
    assert yaml.safe_load(text) == {"frames": {"a": {"strategy": "segment"},
                                               "b": {"exclude": True, "note": "not ours"}}}
    assert load_overrides(path, "overrides.yaml") == {
        "a": {"strategy": "segment", "exclude": False, "note": ""},
        "b": {"exclude": True, "note": "not ours"},
    }


@pytest.mark.parametrize(("frames", "message"), [
    ({"x": {"strategy": "segment", "exclude": True}}, "frames.x: give either strategy or exclude: true, not both"),
    ({"x": {"note": "hm"}}, "frames.x: give a strategy"),
    ({"x": {"strategy": "flip"}}, "frames.x.strategy: must be one of keep_full"),
    ({"x": {"strategy": "segment", "colour": 1}}, "frames.x.colour: unknown key"),
])
def test_bad_overrides_are_named_errors(tmp_path, frames, message):
    path = tmp_path / "o.yaml"
    path.write_text(yaml.safe_dump({"frames": frames}))
    with pytest.raises(ConfigError, match=rf"^o\.yaml: {message}"):
        load_overrides(path, "o.yaml")


def test_override_replaces_the_decision_and_keeps_the_automatic_one():
    automatic = decide(CLEAN, DECISION_CFG, list(STRATEGIES))
    changed = apply_override(automatic, {"strategy": "enhance_segment", "note": "soft"}, list(STRATEGIES))
    assert changed["strategy"] == "enhance_segment" and changed["confidence"] == 1.0
    assert changed["override"]["automatic"] == automatic["strategy"]
    assert changed["reasoning"].startswith(
        f"Override to enhance_segment on review (soft) | automatic {automatic['strategy']}: ")
    assert apply_override(automatic, None, list(STRATEGIES)) is automatic


def test_exclusion_and_conflicts_in_the_plan(tmp_path):
    enabled = ["keep_full", "segment"]
    excluded = apply_override(decide(CLEAN, DECISION_CFG, enabled), {"exclude": True}, enabled)
    disabled = apply_override(decide({**CLEAN, "frame": "f2"}, DECISION_CFG, enabled),
                              {"strategy": "create_occlusion"}, enabled)
    assert disabled["error"] == "OverrideError: create_occlusion is disabled in strategy_configs"
    broken = decide({"frame": "f3", "ok": False, "error": "FrameDecodeError: x"}, DECISION_CFG, enabled)
    # A frame with no analysis cannot be given a strategy; it stays failed.
    still_broken = apply_override(broken, {"strategy": "segment"}, enabled)
    assert not still_broken["ok"] and still_broken["strategy"] is None
    plan = write_plan({"f1": excluded, "f2": disabled, "f3": still_broken}, str(tmp_path / "plan.tsv"))
    assert plan == {"f1": EXCLUDED, "f2": FAILED, "f3": FAILED}


# --- review server --------------------------------------------------------------------------


@pytest.fixture()
def server(tmp_path):
    out, frames = tmp_path / "results", tmp_path / "frames"
    (out / "keep_full" / "images").mkdir(parents=True)
    frames.mkdir()
    write_image(frames / "a.png", np.full((8, 8, 3), 90, np.uint8))
    write_image(out / "keep_full" / "images" / "a.png", np.full((8, 8, 3), 90, np.uint8))
    (tmp_path / "secret.txt").write_text("no")
    (out / "review.html").write_text("<html>review</html>")
    (out / "notes.txt").write_text("not an image")
    review = ReviewServer(0, out / "review.html", out, frames, tmp_path / "config" / "overrides.yaml",
                          "config/overrides.yaml", {"a", "b"})
    thread = threading.Thread(target=review.serve_forever, daemon=True)
    thread.start()
    yield review
    review.shutdown()
    review.server_close()


def _request(review, path, body=None, headers=None):
    url = f"http://127.0.0.1:{review.server_address[1]}{path}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


WRITE = {"Content-Type": "application/json", WRITE_HEADER: "1"}


def test_server_binds_to_loopback_and_serves_only_its_folders(server):
    assert server.server_address[0] == "127.0.0.1"
    assert _request(server, "/")[0] == 200
    assert _request(server, "/input/a.png")[0] == 200
    assert _request(server, "/out/keep_full/images/a.png")[0] == 200
    for path in ("/out/../secret.txt", "/out/%2e%2e/secret.txt", "/input/../../secret.txt", "/etc/passwd",
                 "/out//etc/passwd", "/out/notes.txt"):
        assert _request(server, path)[0] == 403, path
    assert _request(server, "/out/missing.png")[0] == 404


def test_server_saves_one_override_at_a_time(server):
    path = server.overrides_path
    assert _request(server, "/api/overrides", {"frame": "a", "strategy": "segment"})[0] == 403  # no header
    assert _request(server, "/api/overrides", {"frame": "zz", "strategy": "segment"}, WRITE)[0] == 400
    assert _request(server, "/api/overrides", {"frame": "a", "strategy": "flip"}, WRITE)[0] == 400
    assert _request(server, "/api/overrides", {"frame": "a", "strategy": "segment", "exclude": True}, WRITE)[0] == 400
    assert not path.exists()
    status, body = _request(server, "/api/overrides", {"frame": "a", "strategy": "segment", "note": "two"}, WRITE)
    assert status == 200 and json.loads(body)["frames"]["a"]["strategy"] == "segment"
    _request(server, "/api/overrides", {"frame": "b", "exclude": True}, WRITE)
    assert yaml.safe_load(path.read_text()) == {"frames": {"a": {"strategy": "segment", "note": "two"},
                                                           "b": {"exclude": True}}}
    # Back to automatic: the entry goes.
    _request(server, "/api/overrides", {"frame": "a", "strategy": None}, WRITE)
    assert json.loads(_request(server, "/api/overrides")[1])["frames"] == {"b": {"exclude": True, "note": ""}}


def test_review_page_inlines_data_safely(tmp_path):
    result = {"frame_id": "x", "frame": "x.png", "strategy": "keep_full", "success": True, "confidence": 0.8,
              "reasoning": "</script><script>alert(1)</script>", "error": None, "outputs": [str(tmp_path / "o.png")],
              "backends": {}, "analysis": {"lighting": 0.9}, "override": None}
    page = render_review_page({"results": [result]}, tmp_path / "review.html", tmp_path, tmp_path / "in",
                              ["keep_full", "segment"])
    assert "</script><script>alert" not in page
    data = page.split('<script id="data" type="application/json">')[1].split("</script>")[0]
    parsed = json.loads(data)
    assert parsed["frames"][0]["reasoning"] == result["reasoning"]
    assert parsed["frames"][0]["input"] == "in/x.png" and parsed["frames"][0]["outputs"][0]["served"] == "o.png"


# --- report pieces --------------------------------------------------------------------------


def test_training_images_are_classed_by_what_the_strategy_made():
    frame = frame_classes({**CLEAN, "instance_count": 3, "occlusion": 0.5}, THRESHOLDS)
    assert frame == {"shot_type": "medium", "lighting": "good", "background": "simple", "occlusion": "occluded",
                     "instances": "3+"}
    assert training_classes("character", frame, 3)["background"] == "clean (cut-out)"
    assert training_classes("enhanced_character", frame, 3)["instances"] == "1"
    plate = training_classes("background", frame, 3)
    assert plate["shot_type"] == "no character" and plate["instances"] == "2"
    assert training_classes("occlusion:overlay:right", frame, 3)["occlusion"] == "synthetic"
    assert training_classes("full", frame, 3) == frame
    counts = distribution([frame, training_classes("character", frame, 3)])
    assert list(counts["background"]) == ["simple", "clean (cut-out)"]  # chart order, empty classes left out


def test_distribution_chart_pairs_the_shares_of_frames_and_training_images():
    chart = distribution_chart("lighting", {"good": 3, "poor": 1}, {"good": 10})
    rows = {row["name"]: [(bar["share"], bar["count"]) for bar in row["bars"]] for row in chart["rows"]}
    assert rows == {"good": [(0.75, 3), (1.0, 10)], "poor": [(0.25, 1), (0.0, 0)]}
    assert chart["height"] == 22 + 30 * 2


def test_stage_times_count_only_current_jobs(tmp_path):
    logs = tmp_path / "logs"
    for rel, seconds in (("analyze/a.log", 0.5), ("analyze/gone.log", 9.0), ("keep_full/a.log", 0.25),
                         ("segment/a.log", 7.0), ("segment/batches/0000.log", 3.0), ("merge.log", 0.1),
                         ("html_report.log", 5.0)):
        (logs / rel).parent.mkdir(parents=True, exist_ok=True)
        (logs / rel).write_text(f"some line\nstage: {seconds:.3f} s\n")
    (logs / "keep_full" / "b.log").write_text("Traceback without a timing line\n")
    times = stage_times(logs, [{"frame_id": "a", "strategy": "keep_full"}])
    # segment/a.log is an earlier strategy of frame a; gone.log a frame no longer in the input.
    assert times == {"analyze": {"jobs": 1, "seconds": 0.5, "max": 0.5},
                     "keep_full": {"jobs": 1, "seconds": 0.25, "max": 0.25},
                     "segment/batches": {"jobs": 1, "seconds": 3.0, "max": 3.0},
                     "merge": {"jobs": 1, "seconds": 0.1, "max": 0.1}}


def test_thumbnails_flatten_alpha_and_shrink(tmp_path):
    rgba = np.zeros((400, 300, 4), np.uint8)
    rgba[..., 2] = 255  # red, fully transparent
    write_image(tmp_path / "cut.png", rgba)
    uri = thumbnail_uri(str(tmp_path / "cut.png"))
    import base64

    import cv2

    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape[0] == 120 and abs(int(decoded[60, 45, 2]) - 128) < 6  # grey, not red
    assert thumbnail_uri(str(tmp_path / "missing.png")) is None


def test_review_cli_without_a_finished_run_says_so(tmp_path, monkeypatch, capsys):
    from frameloom.review import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("input_dir: demo\n")
    assert main(["--configfile", "config.yaml", "--port", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "frameloom review: results/processing_report.json: missing: run snakemake first".replace(
            "results/", f"{tmp_path}/results/"))


def test_the_run_config_reads_the_overrides_file(tmp_path):
    from frameloom.config import load_run_config

    repo = Path(__file__).resolve().parents[1]
    assert load_run_config({}, tmp_path, workflow_dir=repo).overrides == {}
    # By default each run keeps its overrides in its own output folder.
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "overrides.yaml").write_text("frames: {f2: {exclude: true}}\n")
    run = load_run_config({"output_dir": "out/"}, tmp_path, workflow_dir=repo)
    assert run.overrides_file == "out/overrides.yaml"
    assert run.overrides == {"f2": {"exclude": True, "note": ""}}
    (tmp_path / "mine.yaml").write_text("frames: {f1: {strategy: segment}}\n")
    run = load_run_config({"overrides_file": "mine.yaml"}, tmp_path, workflow_dir=repo)
    assert run.overrides == {"f1": {"strategy": "segment", "exclude": False, "note": ""}}
    (tmp_path / "mine.yaml").write_text("frames: {f1: {}}\n")
    with pytest.raises(ConfigError, match=r"^mine\.yaml: frames\.f1: give a strategy"):
        load_run_config({"overrides_file": "mine.yaml"}, tmp_path, workflow_dir=repo)


def test_review_serves_the_run_it_is_pointed_at(tmp_path, monkeypatch):
    """`frameloom review OUT`: the server for that output folder, configured by the run's
    frameloom-run.yaml (a `frameloom run`), or by the config with that output folder."""
    from frameloom.layout import RUN_FLAGS_FILE
    from frameloom.review import make_server

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "frames").mkdir()
    for name, flags in (("from_cli", {"input_dir": "frames", "overrides_file": "cli_overrides.yaml"}),
                        ("from_snakemake", None)):
        out = tmp_path / name
        out.mkdir()
        (out / "processing_report.json").write_text(json.dumps({"results": [{"frame_id": "f1"}]}))
        if flags:
            (out / RUN_FLAGS_FILE).write_text(yaml.safe_dump(flags))
        server = make_server("config/config.yaml", 0, repo, str(out))
        try:
            assert server.roots["out"] == out and server.frames == {"f1"}
            expected = "cli_overrides.yaml" if flags else f"{out}/overrides.yaml"
            assert server.overrides_source == expected
        finally:
            server.server_close()
    with pytest.raises(ConfigError, match="missing: run snakemake first"):
        make_server("config/config.yaml", 0, repo, str(tmp_path / "frames"))
