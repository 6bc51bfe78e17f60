"""Moved to `provenance._fs`; kept so modules not yet switched keep importing it."""

from __future__ import annotations

from provenance._fs import write_atomic

__all__ = ["write_atomic"]
