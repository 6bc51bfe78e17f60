"""A progress bar on stderr for long hashing, only on a terminal and never under CI."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from provenance import _config

DELAY_S = 1.0


@contextmanager
def hashing_progress(
    label: str, *, quiet: bool = False
) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """Yield (set_total, advance) callbacks; a bar appears once hashing has taken ~1 s."""
    enabled = not quiet and sys.stderr.isatty() and not _config.environment("CI")
    state: dict[str, Any] = {"total": 0, "done": 0, "start": time.monotonic(), "bar": None}

    def set_total(total: int) -> None:
        state["total"] = total
        if state["bar"] is not None:  # the total may be known only once hashing is under way
            state["bar"].update(state["task"], total=total)

    def advance(n: int) -> None:
        state["done"] += n
        if not enabled:
            return
        bar = state["bar"]
        if bar is None:
            if time.monotonic() - state["start"] < DELAY_S:
                return
            from rich.console import Console
            from rich.progress import Progress

            # Never touch stdout (it may carry a --json document): no redirection, stderr only.
            bar = Progress(
                transient=True,
                console=Console(file=sys.stderr),
                redirect_stdout=False,
                redirect_stderr=False,
            )
            bar.start()
            state["task"] = bar.add_task(f"hashing {label}", total=state["total"])
            state["bar"] = bar
        bar.update(state["task"], completed=state["done"])

    try:
        yield set_total, advance
    finally:
        if state["bar"] is not None:
            state["bar"].stop()
