"""An external merge sort of manifest lines: memory bounded by a run, not by the member count.

Members arrive in walk or completion order (a directory walk is nearly sorted; Ray batches
finish in any order). Lines are kept in memory up to `RUN_BYTES`, then sorted and spilled to a
temporary run file; the runs are merged with `heapq.merge` at the end. A dataset that fits in
one run is never written twice.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

RUN_BYTES = 32 << 20  # ~300k member lines held at a time


class LineSorter:
    """Collect lines (`add`), then iterate them sorted (`sorted_lines`); `close` removes runs."""

    def __init__(self, tmpdir: str, run_bytes: int | None = None) -> None:
        self._tmpdir = tmpdir
        self._run_bytes = run_bytes or RUN_BYTES
        self._lines: list[bytes] = []
        self._held = 0
        self._runs: list[str] = []
        self._open: list[BinaryIO] = []

    def add(self, line: bytes) -> None:
        """Take one line (ending in a newline)."""
        self._lines.append(line)
        self._held += len(line) + 64  # rough object overhead, so the bound is about memory
        if self._held >= self._run_bytes:
            self._spill()

    def _spill(self) -> None:
        self._lines.sort()
        fd, path = tempfile.mkstemp(prefix=".run-", dir=self._tmpdir)
        self._runs.append(path)
        with os.fdopen(fd, "wb") as f:
            f.writelines(self._lines)
        self._lines, self._held = [], 0

    def sorted_lines(self) -> Iterator[bytes]:
        """Every line added, in byte order (each run is read back as it is merged)."""
        self._lines.sort()
        if not self._runs:
            yield from self._lines
            return
        sources: list[Iterator[bytes]] = [iter(self._lines)]
        for path in self._runs:
            f = open(path, "rb")  # noqa: SIM115 - closed by close()
            self._open.append(f)
            sources.append(iter(f))
        yield from heapq.merge(*sources)

    def close(self) -> None:
        """Remove every run file (also after an error)."""
        for f in self._open:
            f.close()
        for path in self._runs:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self._lines, self._runs, self._open = [], [], []
