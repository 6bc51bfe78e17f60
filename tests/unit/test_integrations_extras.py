"""Each orchestrator integration is an optional extra: imported only when used, and a missing
extra is an ImportError that says what to install."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [("kfp", "kfp", "ml-provenance[kfp]"), ("airflow", "airflow", "ml-provenance[airflow]")],
)
def test_a_missing_extra_says_which_to_install(module: str, blocked: str, extra: str) -> None:
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"  # as if the package were not installed
        f"import provenance.integrations.{module}"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: provenance.integrations.") and extra in last, last


def test_importing_provenance_imports_no_orchestrator() -> None:
    code = (
        "import sys, provenance, provenance.record, provenance.integrations\n"
        "print(sorted(m for m in ('kfp', 'airflow') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"
