"""Racing `provenance register` and `provenance promote` processes on one model and one alias,
against the stack (MLflow with 2 workers on PostgreSQL, S3, basic auth, the registry plugin).

While the stack is up, a race may refuse an attempt (exit 1: a newer decision or holder won) but
never crashes it (exit 4, a 500); the alias ends on a version the gate verified, and every
decision on every version is a gate-signed record about that very version.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.stack_gate import ALIAS, GateProject, no_crash, tampered_copy

pytestmark = pytest.mark.stack
HONEST = 4
PROMOTERS_PER_VERSION = 2


def wait_all(
    procs: list[subprocess.Popen[str]], timeout: float = 600
) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append((p.returncode, stdout, stderr))
    return out


@pytest.fixture(scope="module")
def raced(gate_project: GateProject) -> dict[str, object]:
    """HONEST registrations of the model files and one of a tampered copy, all started at once
    on a model that does not exist yet (so they also race to create it)."""
    model = f"race-{uuid.uuid4().hex[:8]}"
    tampered = tampered_copy(gate_project.root, f"tampered-{model}")
    paths: list[Path | str] = ["models"] * HONEST + [tampered]
    procs = [gate_project.start(*gate_project.register_args(model, p)) for p in paths]
    results = wait_all(procs)
    return {"model": model, "paths": paths, "results": results}


def test_racing_registrations_all_succeed_with_distinct_versions(
    gate_project: GateProject, raced: dict[str, object]
) -> None:
    results = raced["results"]
    assert isinstance(results, list)
    for code, _, stderr in results:
        assert code == 0, stderr
    docs = [json.loads(stdout) for _, stdout, _ in results]
    versions = sorted(int(d["version"]) for d in docs)
    assert versions == list(range(1, len(results) + 1))
    # Each version is its own run's files: the version's source names the run it came from.
    for d in docs:
        with gate_project.client() as client:
            mv = client.get_model_version(raced["model"], d["version"])
        assert mv.run_id == d["run_id"] and mv.source == d["source"]
        assert d["run_id"] in mv.source
    assert len({d["run_id"] for d in docs}) == len(docs)


def test_racing_promotions_end_on_a_verified_version_with_consistent_decisions(
    gate_project: GateProject, raced: dict[str, object]
) -> None:
    model = str(raced["model"])
    results = raced["results"]
    assert isinstance(results, list)
    docs = [json.loads(stdout) for _, stdout, _ in results]
    tampered = docs[-1]["version"]
    honest = [d["version"] for d in docs[:-1]]
    targets = [v for v in honest[:3] for _ in range(PROMOTERS_PER_VERSION)] + [tampered] * 2
    assert len(targets) >= 8
    procs = [gate_project.start(*gate_project.promote_args(model, v)) for v in targets]
    outcomes = wait_all(procs)
    for version, (code, stdout, stderr) in zip(targets, outcomes, strict=True):
        r = subprocess.CompletedProcess([], code, stdout, stderr)
        no_crash(r)
        assert code in (0, 1), (version, code, stderr)
        if code == 0:
            assert version != tampered and json.loads(stdout)["promoted"]
            continue
        doc = json.loads(stdout)  # --json: one document on every path
        if "promoted" in doc:  # the gate's own verdict: only the tampered version fails it
            assert version == tampered and not doc["promoted"], stdout
        else:  # a write that lost the race to a newer decision or holder, refused with a reason
            assert doc["exit_code"] == 1, stdout
            refusal = "refused by the registry: PERMISSION_DENIED: ml-provenance gate"
            assert refusal in doc["error"]["message"] and refusal in stderr
    assert any(code == 0 for code, _, _ in outcomes), [e for _, _, e in outcomes]

    holder = gate_project.alias_version(model)
    assert holder in honest[:3]
    digest = gate_project.honest_digest()
    for version in [*honest[:3], tampered]:
        decision = gate_project.decision(model, version)  # signature and binding checked
        assert (decision.model, decision.version, decision.alias) == (model, version, ALIAS)
        if version == tampered:
            assert decision.result == "FAILED" and decision.artifacts_sha256 != digest
        else:
            assert decision.passed and decision.artifacts_sha256 == digest
    # Versions nobody promoted carry no gate record at all.
    for version in honest[3:]:
        assert gate_project.provenance_tags(model, version) == {}
    # A consumer gets exactly the verified files through the alias.
    dest = gate_project.root / f"serving-{model}"
    r = gate_project.fetch(model, dest)
    assert r.returncode == 0, r.stderr
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == {
        p.name: p.read_bytes() for p in (gate_project.root / "models").iterdir()
    }
