"""What the engineer's account (EDIT on every model) cannot do to the gate's work, over raw REST.

Every call is a plain HTTP request to the stack's MLflow (basic auth, the registry plugin), not
the Python client: on a shared server the REST API is the attack surface. Each attack asserts
the refusal (403 PERMISSION_DENIED naming the gate) and that the alias, the version's tags and
the registered model's tags are exactly as before. An EDIT user may not delete anything (the
auth app's rule), so the engineer here creates the model and holds MANAGE on it: every delete
reaches the registry and only the plugin refuses it. tests/integration/test_stack.py already covers setting a
protected alias on a version the gate never saw and the Production stage transition.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_stack import creds, http
from tests.stack_gate import ALIAS, GateProject

pytestmark = pytest.mark.stack
M = "/api/2.0/mlflow"


@pytest.fixture(scope="module")
def promoted(gate_project: GateProject) -> dict[str, str]:
    """A model the engineer created (so the auth app gives them MANAGE on it, deletes
    included: only the plugin stands in the way), whose version 1 the gate promoted to
    @champion; version 2 is an honest re-registration the gate has not looked at."""
    import uuid

    model = f"rest-{uuid.uuid4().hex[:8]}"
    engineer = creds(gate_project.stack.engineer_env)
    status, got = http(
        gate_project.stack, "POST", f"{M}/registered-models/create", engineer, {"name": model}
    )
    assert status == 200, got
    first = gate_project.register(model)
    second = gate_project.register(model)
    r = gate_project.promote(model, first)
    assert r.returncode == 0, r.stdout + r.stderr
    return {"model": model, "v1": first, "v2": second}


def state(gate_project: GateProject, p: dict[str, str]) -> dict[str, Any]:
    """Everything the attacks must leave alone, read as the gate's account over REST."""
    gate = creds(gate_project.stack.env)
    status, got = http(
        gate_project.stack, "GET", f"{M}/registered-models/get?name={p['model']}", gate
    )
    assert status == 200, got
    rm = got["registered_model"]
    out: dict[str, Any] = {
        "aliases": {a["alias"]: a["version"] for a in rm.get("aliases", [])},
        "model_tags": {t["key"]: t["value"] for t in rm.get("tags", [])},
    }
    for v in ("v1", "v2"):
        status, got = http(
            gate_project.stack,
            "GET",
            f"{M}/model-versions/get?name={p['model']}&version={p[v]}",
            gate,
        )
        assert status == 200, got
        out[v] = {t["key"]: t["value"] for t in got["model_version"].get("tags", [])}
    return out


def refused(gate_project: GateProject, method: str, path: str, body: dict[str, Any]) -> None:
    status, got = http(
        gate_project.stack, method, path, creds(gate_project.stack.engineer_env), body
    )
    assert status == 403, (method, path, body, status, got)
    assert got["error_code"] == "PERMISSION_DENIED", got
    assert "ml-provenance gate" in got["message"], got


def test_engineer_cannot_move_or_remove_a_protected_alias_the_gate_set(
    gate_project: GateProject, promoted: dict[str, str]
) -> None:
    before = state(gate_project, promoted)
    assert before["aliases"] == {ALIAS: promoted["v1"]}
    name = promoted["model"]
    for alias in (ALIAS, "Champion", "PRODUCTION"):  # case does not escape protection
        refused(
            gate_project,
            "POST",
            f"{M}/registered-models/alias",
            {"name": name, "alias": alias, "version": promoted["v2"]},
        )
    refused(gate_project, "DELETE", f"{M}/registered-models/alias", {"name": name, "alias": ALIAS})
    refused(
        gate_project,
        "POST",
        f"{M}/registered-models/alias",
        {"name": name, "alias": "champion\u200b", "version": promoted["v2"]},  # look-alike
    )
    assert state(gate_project, promoted) == before


def test_engineer_cannot_write_or_overwrite_provenance_tags(
    gate_project: GateProject, promoted: dict[str, str]
) -> None:
    before = state(gate_project, promoted)
    name, v1, v2 = promoted["model"], promoted["v1"], promoted["v2"]
    record = before["v1"][f"provenance.decision.{ALIAS}"]
    vsa = before["v1"][f"provenance.vsa.{ALIAS}"]
    version_tags = [
        (v2, "provenance.verified", "true"),  # a tag nobody trusts, still reserved
        (v2, "Provenance.Verified", "true"),  # case does not escape the prefix
        (v1, f"provenance.decision.{ALIAS}", "PASSED"),  # overwrite the gate's record
        (v2, f"provenance.decision.{ALIAS}", record),  # replay v1's record onto v2
        (v2, f"provenance.vsa.{ALIAS}", vsa),  # replay v1's VSA onto v2
        (v1, f"provenance.vsa.{ALIAS}", "{}"),
        (v2, "provenance.revoked", "by me"),
    ]
    for version, key, value in version_tags:
        refused(
            gate_project,
            "POST",
            f"{M}/model-versions/set-tag",
            {"name": name, "version": version, "key": key, "value": value},
        )
    for key in ("provenance.verified", " provenance.decision.champion"):
        refused(
            gate_project,
            "POST",
            f"{M}/registered-models/set-tag",
            {"name": name, "key": key, "value": "true"},
        )
    assert state(gate_project, promoted) == before


def test_engineer_cannot_delete_decisions_or_what_a_protected_alias_rests_on(
    gate_project: GateProject, promoted: dict[str, str]
) -> None:
    before = state(gate_project, promoted)
    name, v1 = promoted["model"], promoted["v1"]
    for key in (f"provenance.decision.{ALIAS}", f"provenance.vsa.{ALIAS}"):
        refused(
            gate_project,
            "DELETE",
            f"{M}/model-versions/delete-tag",
            {"name": name, "version": v1, "key": key},
        )
    refused(
        gate_project,
        "DELETE",
        f"{M}/registered-models/delete-tag",
        {"name": name, "key": "provenance.anything"},
    )
    refused(gate_project, "DELETE", f"{M}/model-versions/delete", {"name": name, "version": v1})
    refused(gate_project, "DELETE", f"{M}/registered-models/delete", {"name": name})
    refused(
        gate_project,
        "POST",
        f"{M}/registered-models/rename",
        {"name": name, "new_name": f"{name}-renamed"},
    )
    assert state(gate_project, promoted) == before


def test_engineer_cannot_bring_gate_records_in_with_a_new_model_or_version(
    gate_project: GateProject, promoted: dict[str, str]
) -> None:
    import uuid

    engineer = creds(gate_project.stack.engineer_env)
    record = state(gate_project, promoted)["v1"][f"provenance.decision.{ALIAS}"]
    refused(
        gate_project,
        "POST",
        f"{M}/registered-models/create",
        {"name": f"forged-{uuid.uuid4().hex[:8]}", "tags": [{"key": "provenance.x", "value": "1"}]},
    )
    # A new version (what `copy_model_version` does) is created, but without the records.
    status, got = http(
        gate_project.stack,
        "GET",
        f"{M}/model-versions/get?name={promoted['model']}&version={promoted['v1']}",
        engineer,
    )
    assert status == 200, got
    source, run_id = got["model_version"]["source"], got["model_version"]["run_id"]
    status, got = http(
        gate_project.stack,
        "POST",
        f"{M}/model-versions/create",
        engineer,
        {
            "name": promoted["model"],
            "source": source,
            "run_id": run_id,
            "tags": [
                {"key": f"provenance.decision.{ALIAS}", "value": record},
                {"key": "team", "value": "ml"},
            ],
        },
    )
    assert status == 200, got
    new = got["model_version"]["version"]
    tags = {t["key"]: t["value"] for t in got["model_version"].get("tags", [])}
    assert tags == {"team": "ml"}
    refused(
        gate_project,
        "POST",
        f"{M}/registered-models/alias",
        {"name": promoted["model"], "alias": ALIAS, "version": new},
    )
    assert gate_project.alias_version(promoted["model"]) == promoted["v1"]
    # A version that holds nothing protected is the engineer's to delete: EDIT still works.
    status, got = http(
        gate_project.stack,
        "DELETE",
        f"{M}/model-versions/delete",
        engineer,
        {"name": promoted["model"], "version": new},
    )
    assert status == 200, got
