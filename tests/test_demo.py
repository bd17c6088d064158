"""`cortexfm demo --quick`: every stage, resumption, and the HTML report in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cortexfm.cli import main as cli

STAGES = ("simulate", "foundation", "efficiency", "evaluate", "insilico", "anatomy")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "run"
    assert cli(["demo", "--quick", "--out", str(out)]) == 0
    return out


def test_quick_demo_runs_every_stage_under_one_folder(demo_run: Path):
    for stage in STAGES:
        assert (demo_run / "stages" / f"{stage}.json").exists(), stage
    for folder in ("cohort", "foundation", "efficiency", "evaluate", "insilico", "anatomy"):
        assert (demo_run / folder).is_dir(), folder
    efficiency = json.loads((demo_run / "stages" / "efficiency.json").read_text())
    assert {r["model"] for r in efficiency["summary"]} == {"foundation", "individual"}
    html = (demo_run / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 8
    assert 'src="http' not in html and 'href="http' not in html  # self-contained


def test_demo_resumes_from_finished_stages(demo_run: Path, capsys):
    before = {s: (demo_run / "stages" / f"{s}.json").stat().st_mtime_ns for s in STAGES}
    (demo_run / "stages" / "anatomy.json").unlink()  # as if interrupted during the last stage
    assert cli(["demo", "--quick", "--out", str(demo_run)]) == 0
    after = {s: (demo_run / "stages" / f"{s}.json").stat().st_mtime_ns for s in STAGES}
    assert all(before[s] == after[s] for s in STAGES if s != "anatomy")
    assert "[demo] anatomy done" in capsys.readouterr().out


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    _chromium() is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_report_renders_in_headless_chromium_with_every_figure(demo_run: Path):
    report = demo_run / "report.html"
    screenshot = demo_run / "report.png"
    common = [
        _chromium(),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=5000",
    ]
    dom = subprocess.run(
        [*common, "--enable-logging=stderr", "--v=0", "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    images = int(re.search(r'data-images="(\d+)"', dom.stdout).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', dom.stdout).group(1))
    assert images >= 8 and loaded == images
    console_errors = [
        line
        for line in dom.stderr.splitlines()
        if "CONSOLE" in line and ("Error" in line or "error" in line)
    ]
    assert not console_errors, console_errors
    shot = subprocess.run(
        [*common, "--window-size=1200,4000", f"--screenshot={screenshot}", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.returncode == 0 and screenshot.stat().st_size > 50_000
    keep = Path(__file__).resolve().parents[1] / "runs" / "test-artifacts"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(screenshot, keep / "report.png")  # kept for a look (runs/ is git-ignored)
