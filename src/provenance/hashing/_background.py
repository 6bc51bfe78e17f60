"""Run a hashing job on a thread while the caller does other start-up work.

Recording spends a fixed few hundred milliseconds before it can sign (loading the signer and its
libraries, listing the installed packages). Hashing the materials does not need any of it, so it
runs meanwhile: hashlib and the worker processes leave the GIL free for the caller. A caller that
fails (a bad key) cancels the job; the engine stops at its next progress report, so a refused
step does not keep hashing a dataset for minutes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from provenance.hashing._engine import Progress

T = TypeVar("T")


class Cancelled(Exception):
    """Raised inside the job when its owner gave up on it."""


class Background(Generic[T]):
    """`job(progress)` on a daemon thread; `result()` joins it and re-raises its error."""

    def __init__(
        self,
        job: Callable[[Progress], T],
        progress: Progress | None = None,
        name: str = "provenance-hashing",
    ) -> None:
        self._stop = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None
        self._progress = progress

        def run() -> None:
            try:
                self._value = job(self._advance)
            except BaseException as exc:  # noqa: BLE001 - handed to the owner in result()
                self._error = exc

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def _advance(self, n: int) -> None:
        if self._stop.is_set():
            raise Cancelled
        if self._progress is not None:
            self._progress(n)

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when no error was raised

    def cancel(self) -> None:
        """Stop the job at its next progress report and wait for it (its error is dropped)."""
        self._stop.set()
        self._thread.join()
