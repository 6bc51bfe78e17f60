"""Pickle streams judged by picklescan, which disassembles opcodes and never unpickles.

picklescan lists every global a pickle imports (GLOBAL, INST, STACK_GLOBAL, also through the
memo) and classifies it: dangerous (``posix.system``, ``builtins.eval``…), innocuous (torch /
numpy rebuild helpers), or unknown. We keep its lists and add our own rule on top: dangerous is
always an error, unknown is an error unless the file is on the allow-list.
"""

from __future__ import annotations

import logging
from typing import IO, Any

from provenance._scanning._model import Finding


def picklescan_version() -> str:
    try:
        from importlib.metadata import version

        return version("picklescan")
    except Exception:  # noqa: BLE001 - PackageNotFoundError or a broken install
        return ""


def _scanner() -> Any:
    """Picklescan's scanner module, or None where it cannot be installed (Python 3.10)."""
    try:
        from picklescan import scanner
    except ImportError:
        return None
    return scanner


def scan_pickle_stream(data: IO[bytes], label: str, *, allowed: bool) -> list[Finding]:
    """Findings for one pickle stream; `label` names a zip member ("" for the file itself)."""
    scanner = _scanner()
    who = f"{label}: " if label else ""
    if scanner is None:  # fail closed: an uninspected pickle never passes
        return [
            Finding(
                "pickle-import",
                f"{who}imports cannot be inspected: picklescan is not "
                "installed (it needs Python >= 3.11)",
            )
        ]
    subject = f"{label} imports" if label else "imports"
    log = logging.getLogger("picklescan")
    previous = log.level
    log.setLevel(logging.CRITICAL)  # its own warnings would duplicate our findings on stderr
    try:
        result = scanner.scan_pickle_bytes(data, label or "pickle", multiple_pickles=True)
    except Exception as exc:  # noqa: BLE001 - a malformed stream must fail closed, not crash
        return [Finding("pickle-parse", f"{who}pickle stream cannot be parsed ({exc})")]
    finally:
        log.setLevel(previous)
    findings: list[Finding] = []
    for g in sorted(result.globals, key=lambda g: (g.module, g.name)):
        name = f"{g.module}.{g.name}"
        level = g.safety.value
        if level == "dangerous":
            findings.append(Finding("pickle-import", f"{subject} {name} (dangerous)"))
        elif level == "suspicious":
            findings.append(
                Finding(
                    "pickle-import",
                    f"{subject} {name} (not on the scanner's safe list)",
                    "info" if allowed else "error",
                )
            )
    if result.scan_err:
        findings.append(Finding("pickle-parse", f"{who}pickle stream only partly parsed", "info"))
    if not result.globals and not result.scanned_files:
        findings.append(Finding("pickle-parse", f"{who}not a pickle stream"))
    return findings
