"""The hashing progress bar: on a terminal after ~1 s, never under CI, never with --quiet."""

from __future__ import annotations

import io

from provenance import _progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def use_terminal(monkeypatch, delay: float = 0.0) -> Terminal:
    """Called in the test body: pytest re-installs its own sys.stderr after fixture setup."""
    term = Terminal()
    monkeypatch.setattr(_progress.sys, "stderr", term)
    monkeypatch.setattr(_progress, "DELAY_S", delay)
    monkeypatch.setenv("TERM", "xterm")
    return term


def drive(quiet: bool = False) -> None:
    with _progress.hashing_progress("materials", quiet=quiet) as (set_total, advance):
        set_total(10)
        for _ in range(10):
            advance(1)


def test_bar_on_a_terminal(monkeypatch) -> None:
    monkeypatch.delenv("CI")
    term = use_terminal(monkeypatch)
    drive()
    assert "hashing materials" in term.getvalue() and "100%" in term.getvalue()


def test_no_bar_under_ci_or_quiet(monkeypatch) -> None:
    term = use_terminal(monkeypatch)
    drive()  # CI=true (set for every test)
    monkeypatch.delenv("CI")
    drive(quiet=True)
    assert term.getvalue() == ""


def test_no_bar_before_the_delay(monkeypatch) -> None:
    monkeypatch.delenv("CI")
    term = use_terminal(monkeypatch, delay=60.0)
    drive()
    assert term.getvalue() == ""


def test_a_total_known_after_the_bar_appeared_still_reaches_100_percent(monkeypatch) -> None:
    """Recording lists and hashes at once: the total arrives when the walk ends."""
    monkeypatch.delenv("CI")
    term = use_terminal(monkeypatch)
    with _progress.hashing_progress("materials") as (set_total, advance):
        advance(4)
        set_total(10)
        advance(6)
    assert "100%" in term.getvalue()
