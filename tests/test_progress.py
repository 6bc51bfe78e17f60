"""The hashing progress bar: on a terminal after ~1 s, never under CI, never with --quiet."""

from __future__ import annotations

import io

import pytest

from provenance import _progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch) -> Terminal:
    term = Terminal()
    monkeypatch.setattr(_progress.sys, "stderr", term)
    monkeypatch.setattr(_progress, "DELAY_S", 0.0)
    monkeypatch.setenv("TERM", "xterm")
    return term


def drive(quiet: bool = False) -> None:
    with _progress.hashing_progress("materials", quiet=quiet) as (set_total, advance):
        set_total(10)
        for _ in range(10):
            advance(1)


def test_bar_on_a_terminal(terminal, monkeypatch) -> None:
    monkeypatch.delenv("CI")
    drive()
    assert "hashing materials" in terminal.getvalue()


def test_no_bar_under_ci_or_quiet(terminal, monkeypatch) -> None:
    drive()  # CI=true (set for every test)
    monkeypatch.delenv("CI")
    drive(quiet=True)
    assert terminal.getvalue() == ""


def test_no_bar_before_the_delay(terminal, monkeypatch) -> None:
    monkeypatch.delenv("CI")
    monkeypatch.setattr(_progress, "DELAY_S", 60.0)
    drive()
    assert terminal.getvalue() == ""
