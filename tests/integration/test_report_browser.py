"""The HTML report in a real headless browser (Chromium from the system packages, installed by
`make browser`): it renders every step and the verdict, logs no console error, and attempts no
network request (a CSP violation or a blocked load is logged to the console, so it fails too)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_report import STEPS, hostile, report  # noqa: F401 - fixture

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--enable-logging=stderr",
    "--v=0",
)
CONSOLE = re.compile(r":CONSOLE[:(]|Uncaught|Content Security Policy|net::ERR_")


def render(page: Path, profile: Path) -> tuple[str, list[str]]:
    """(the DOM after rendering, the browser's console and load-error lines)."""
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: run `make browser` (make test does)")
    proc = subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, [line for line in proc.stderr.splitlines() if CONSOLE.search(line)]


def test_report_renders_without_console_errors_or_network(hostile: Path, cli, tmp_path) -> None:  # noqa: F811
    assert report(cli, "-o", "report.html").code == 0
    page = hostile / "report.html"
    dom, console = render(page, tmp_path / "profile")
    assert console == []
    assert 'id="verdict">PASS: 3 step(s) verified against root.layout' in dom
    for step in STEPS:
        assert re.search(rf'<text class="title" [^>]*>{step}</text>', dom)  # in the diagram
        assert f"<strong>{step}</strong>" in dom  # in the steps table
    # the hostile file name was rendered as text, not as an element
    assert "<img" not in dom and "&lt;img src=x onerror=alert(1)&gt;" in dom
    assert "default-src 'none'" in page.read_text()


def test_broken_page_is_detected(tmp_path: Path) -> None:
    """The check above has teeth: a script error or a network load in the page is caught."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\"></head>"
        '<body><img src="https://example.invalid/x.png"><script>undefined_fn()</script>'
        "</body></html>"
    )
    _, console = render(page, tmp_path / "profile")
    assert any("example.invalid" in line for line in console), console
    assert any("inline script" in line for line in console), console
