"""Moved to `provenance._fs`; kept so modules not yet switched keep importing it."""

from __future__ import annotations

from provenance._fs import read_bounded

__all__ = ["read_bounded"]
