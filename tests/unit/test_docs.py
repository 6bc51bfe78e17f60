"""Generated documentation stays current with the code it documents."""

from __future__ import annotations

import importlib.util

from tests.conftest import REPO


def test_api_reference_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_api", REPO / "tools" / "gen_api_docs.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (REPO / "docs" / "api.md").read_text() == gen.render(), (
        "docs/api.md is stale: run .venv/bin/python tools/gen_api_docs.py"
    )


def test_api_reference_covers_the_public_api() -> None:
    import provenance

    text = (REPO / "docs" / "api.md").read_text()
    for name in provenance.__all__:
        if name != "__version__":
            assert f"`provenance.{name}" in text, name
    assert "provenance.record._params" not in text and "provenance.cli" not in text
