"""slsa-verifier's `--build-workflow-input`: the inputs of the workflow_dispatch run that built.

The slsa-github-generator records the GitHub context in the predicate: SLSA v0.2 under
`invocation.environment` (lower-case keys), SLSA v1 under `buildDefinition.internalParameters`
(upper-case keys). Only a `workflow_dispatch` run has inputs; each expected input must be
present as a string equal to the expected value. GitHub artifact attestations record no
inputs, so an expectation of inputs never passes on them (as in slsa-verifier).
"""

from __future__ import annotations

from provenance.attest.slsa._identity import Provenance, event_names, recorded_inputs
from provenance.attest.slsa._result import Failure


def check_inputs(pred: Provenance, expected: tuple[tuple[str, str], ...]) -> list[Failure]:
    """Every expected `key=value` the provenance does not record, got vs expected.

    The inputs are what the signer recorded (a trusted generator's record, or a claim of the
    workflow that signed): they are compared, and shown among the claims, never as verified.
    Every event name the statement records must agree (one place must not say
    `workflow_dispatch` while another, checked against the certificate, says `push`).
    """
    if not expected:
        return []
    events = {str(e) for e in event_names(pred)}
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
