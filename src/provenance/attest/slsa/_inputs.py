"""slsa-verifier's `--build-workflow-input`: the inputs of the workflow_dispatch run that built.

The slsa-github-generator records the GitHub context in the predicate: SLSA v0.2 under
`invocation.environment` (lower-case keys), SLSA v1 under `buildDefinition.internalParameters`
(upper-case keys). Only a `workflow_dispatch` run has inputs; each expected input must be
present as a string equal to the expected value. GitHub artifact attestations record no
inputs, so an expectation of inputs never passes on them (as in slsa-verifier).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provenance.attest.slsa._identity import Provenance
from provenance.attest.slsa._result import Failure
from provenance.attest.slsa_provenance import SlsaProvenanceV02


def _environment(pred: Provenance) -> tuple[Mapping[str, Any] | None, bool]:
    """The GitHub context the predicate records, and whether its keys are upper-case."""
    if isinstance(pred, SlsaProvenanceV02):
        env = pred.environment
        return (env if isinstance(env, Mapping) else None), False
    return pred.internal_parameters, True


def recorded_inputs(pred: Provenance) -> Mapping[str, Any] | Failure:
    """The run's inputs, or the Failure that says why the provenance has none to compare."""
    env, upper = _environment(pred)

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


def check_inputs(pred: Provenance, expected: tuple[tuple[str, str], ...]) -> list[Failure]:
    """Every expected `key=value` the provenance does not record, got vs expected.

    The inputs are what the signer recorded (a trusted generator's record, or a claim of the
    workflow that signed): they are compared, and shown among the claims, never as verified.
    Every event name the statement records must agree (one place must not say
    `workflow_dispatch` while another, checked against the certificate, says `push`).
    """
    if not expected:
        return []
    from provenance.attest.slsa._identity import _event_names

    events = {str(e) for e in _event_names(pred)}
    if len(events) > 1:
        return [
            Failure(
                "build workflow inputs: the statement records several events",
                None,
                str(sorted(events)),
            )
        ]
    inputs = recorded_inputs(pred)
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
