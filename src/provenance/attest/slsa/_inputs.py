"""slsa-verifier's `--build-workflow-input`: the inputs of the workflow_dispatch run that built.

The slsa-github-generator records the GitHub context in the predicate: SLSA v0.2 under
`invocation.environment` (lower-case keys), SLSA v1 under `buildDefinition.internalParameters`
(upper-case keys). Only a `workflow_dispatch` run has inputs; each expected input must be
present as a string equal to the expected value. GitHub artifact attestations record no
inputs, so an expectation of inputs never passes on them (as in slsa-verifier).
"""

from __future__ import annotations

from typing import Any

from provenance.attest.slsa._result import Failure

SLSA_V1 = "https://slsa.dev/provenance/v1"


def _environment(statement: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """The GitHub context the predicate records, and whether its keys are upper-case."""
    pred = statement.get("predicate")
    if not isinstance(pred, dict):
        return None, False
    if statement.get("predicateType") == SLSA_V1:
        definition = pred.get("buildDefinition")
        env = definition.get("internalParameters") if isinstance(definition, dict) else None
        return (env if isinstance(env, dict) else None), True
    invocation = pred.get("invocation")
    env = invocation.get("environment") if isinstance(invocation, dict) else None
    return (env if isinstance(env, dict) else None), False


def recorded_inputs(statement: dict[str, Any]) -> dict[str, Any] | Failure:
    """The run's inputs, or the Failure that says why the provenance has none to compare."""
    env, upper = _environment(statement)

    def key(name: str) -> str:
        return name.upper() if upper else name

    event = env.get(key("github_event_name")) if env else None
    if not isinstance(event, str):
        return Failure("build workflow inputs", None, "the provenance records no GitHub event")
    if event != "workflow_dispatch":
        return Failure(
            "build workflow inputs (only a workflow_dispatch run has inputs): trigger",
            "workflow_dispatch",
            event,
        )
    payload = env.get(key("github_event_payload")) if env else None
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    if not isinstance(inputs, dict):
        return Failure("build workflow inputs", None, "the provenance records no inputs")
    return inputs


def check_inputs(statement: dict[str, Any], expected: tuple[tuple[str, str], ...]) -> list[Failure]:
    """Every expected `key=value` the provenance does not record, got vs expected."""
    if not expected:
        return []
    inputs = recorded_inputs(statement)
    if isinstance(inputs, Failure):
        return [inputs]
    failures = []
    for name, value in expected:
        got = inputs.get(name)
        if got != value or not isinstance(got, str):
            failures.append(
                Failure(
                    f"build workflow input {name!r}",
                    f"{name}={value}",
                    f"{name}={got}" if isinstance(got, str) else f"no string input {name!r}",
                )
            )
    return failures
