"""The review page in a real headless Chromium: load, filter, override a frame, check the file and the rerun."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from test_workflow import jobs_run, snakemake, write_config

from frameloom.demo import write_demo_set

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install .[test])")
if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip("Debian's chromium and chromium-driver are not installed", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # No background networking: this machine's closed network refuses it, noisily.
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture()
def served_project(tmp_path):
    """A finished run on 8 generated frames and its review server on 127.0.0.1."""
    write_demo_set(tmp_path / "frames", 8, seed=11)
    write_config(tmp_path)
    snakemake(tmp_path)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "frameloom.review", "--port", str(port)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert "review page: http://127.0.0.1:" in server.stdout.readline()
    yield tmp_path, f"http://127.0.0.1:{port}/"
    server.terminate()
    server.wait(timeout=10)


def cards(driver) -> dict[str, object]:
    return {card.get_attribute("data-frame"): card for card in driver.find_elements(By.CSS_SELECTOR, ".frame")}


def test_override_one_frame_in_the_browser_and_rerun(served_project, browser):
    workdir, url = served_project
    report = json.loads((workdir / "results" / "processing_report.json").read_text())
    strategies = {r["frame_id"]: r["strategy"] for r in report["results"]}
    kept = sorted(f for f, s in strategies.items() if s == "keep_full")
    assert kept, strategies

    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: len(cards(d)) == len(strategies))
    # The input and output images load from the server (the first card's are in view).
    first = browser.find_elements(By.CSS_SELECTOR, ".frame")[0].find_elements(By.TAG_NAME, "img")
    assert len(first) >= 2
    WebDriverWait(browser, 20).until(lambda d: all(int(img.get_attribute("naturalWidth") or 0) > 0 for img in first))
    Select(browser.find_element(By.ID, "filter")).select_by_value("keep_full")
    shown = cards(browser)
    assert sorted(shown) == kept
    frame = kept[0]
    card = shown[frame]
    assert "Simple background" in card.text and "complexity" in card.text  # reasoning and analysis shown
    Select(card.find_element(By.CSS_SELECTOR, ".choice")).select_by_value("create_occlusion")
    card.find_element(By.CSS_SELECTOR, ".note").send_keys("wants occluded variants")
    card.find_element(By.CSS_SELECTOR, ".save").click()
    WebDriverWait(browser, 20).until(lambda d: cards(d)[frame].find_element(By.CSS_SELECTOR, ".status").text == "saved")
    assert yaml.safe_load((workdir / "results" / "overrides.yaml").read_text()) == {
        "frames": {frame: {"strategy": "create_occlusion", "note": "wants occluded variants"}}}

    # A reload reads the saved override back from the server.
    browser.get(url)
    Select(WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "filter"))).select_by_value("overridden")
    WebDriverWait(browser, 10).until(lambda d: list(cards(d)) == [frame])
    assert Select(cards(browser)[frame].find_element(By.CSS_SELECTOR, ".choice")).first_selected_option.get_attribute(
        "value") == "create_occlusion"

    # The rerun redoes this frame and the aggregates, nothing else.
    result = snakemake(workdir)
    ran = jobs_run(result)
    per_frame = {(rule, f) for rule, f in ran if f}
    assert per_frame == {("create_occlusion", frame)}, ran
    assert {rule for rule, f in ran if not f} <= {"decide", "select_dataset", "merge", "html_report", "all"}
    report = json.loads((workdir / "results" / "processing_report.json").read_text())
    result = next(r for r in report["results"] if r["frame_id"] == frame)
    assert result["strategy"] == "create_occlusion" and result["success"] and result["confidence"] == 1.0
    assert result["override"] == {"strategy": "create_occlusion", "exclude": False,
                                  "note": "wants occluded variants", "automatic": "keep_full"}
    assert not (workdir / "results" / "keep_full" / "meta" / f"{frame}.json").exists()
    dry = snakemake(workdir, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_excluding_a_frame_through_the_server_removes_it_from_the_dataset(served_project):
    workdir, url = served_project
    report = json.loads((workdir / "results" / "processing_report.json").read_text())
    frame = next(r["frame_id"] for r in report["results"] if r["success"] and r["training_images"])
    request = urllib.request.Request(url + "api/overrides", method="POST", data=json.dumps(
        {"frame": frame, "exclude": True, "note": "not our character"}).encode(),
        headers={"Content-Type": "application/json", "X-Frameloom-Review": "1"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["frames"][frame]["exclude"] is True
    result = snakemake(workdir)
    assert not {(rule, f) for rule, f in jobs_run(result) if f}
    report = json.loads((workdir / "results" / "processing_report.json").read_text())
    summary = report["summary"]
    assert summary["excluded"] == 1
    assert summary["successful"] + summary["failed"] + summary["excluded"] == summary["total_frames"]
    excluded = next(r for r in report["results"] if r["frame_id"] == frame)
    assert excluded["excluded"] and not excluded["outputs"] and excluded["reasoning"].startswith(
        "Excluded on review (not our character) | automatic: ")
    training = [p.name for p in (workdir / "results" / "training").rglob("*.png")]
    assert training and not any(frame in name for name in training)
