"""`--json` prints one JSON document on stdout on every path, failures and errors included."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest


def only_document(out: str) -> dict:
    doc = json.loads(out)  # exactly one document: trailing text would not parse
    assert isinstance(doc, dict)
    return doc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreadable_input_is_a_document_with_exit_3(project: Path, cli) -> None:
    r = cli("verify", "--layout", "missing.layout", "--layout-key", "keys/owner.pub", "--json")
    assert r.code == 3
    doc = only_document(r.out)
    assert doc["ok"] is False and doc["exit_code"] == 3
    assert "missing.layout" in doc["error"]["message"]
    assert "missing.layout" in r.err  # the one line on stderr stays


def test_usage_error_is_a_document_with_exit_2(project: Path, cli) -> None:
    r = cli("verify", "--json", "--no-such-option")
    assert r.code == 2
    doc = only_document(r.out)
    assert doc["exit_code"] == 2 and "--no-such-option" in doc["error"]["message"]


def test_unreachable_server_is_a_document_with_exit_4(project: Path, cli, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    dest = project / "fetched"
    r = cli(
        "fetch", "models:/digits/1", str(dest), "--gate-pub-key", "keys/owner.pub",
        "--tracking-uri", f"http://127.0.0.1:{free_port()}", "--json",
    )  # fmt: skip
    assert r.code == 4, r.err
    assert only_document(r.out)["exit_code"] == 4
    assert not dest.exists()


def test_a_command_that_printed_its_own_failure_document_prints_no_second(
    project: Path, cli
) -> None:
    Path("artifact.bin").write_bytes(b"x")
    Path("bad.intoto.jsonl").write_text("{not json")
    r = cli(
        "slsa", "verify", "artifact.bin", "--provenance", "bad.intoto.jsonl",
        "--source-uri", "github.com/o/r", "--json",
    )  # fmt: skip
    assert r.code == 3
    doc = only_document(r.out)
    assert doc["verified"] is False and doc["exit_code"] == 3


@pytest.mark.parametrize("position", ["wrapped", "absent"])
def test_json_of_a_wrapped_command_is_not_ours(project: Path, cli, position: str) -> None:
    """`--json` after `--` belongs to the wrapped command: no document of ours on failure."""
    extra = ["--json"] if position == "wrapped" else []
    r = cli("run", "s", "--key", "keys/trainer", "--", "sh", "-c", "exit 5", *extra)
    assert r.code == 5
    assert r.out == ""
