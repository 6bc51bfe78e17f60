"""Demo stage: key-signed SLSA provenance for the trained weights, then its verification."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provenance.verification import VerificationResult

REPOSITORY = "https://github.com/ml-provenance/example-pipeline"


def slsa_stage(
    workdir: Path, report: Any, say: Callable[[str], None], verification: VerificationResult
) -> None:
    """The demo's SLSA stage: attest the verified chain with the trainer key, then verify it."""
    from provenance._fs import write_atomic
    from provenance.attest.slsa.build import build_statement, sign_with_key
    from provenance.attest.slsa.verify import Expectations, verify_builtin
    from provenance.signing import load_public_key, load_signer

    statement = build_statement(
        ["models/**"],
        verification,
        ".",
        repository=REPOSITORY,
        ref="refs/heads/main",
    )
    write_atomic("provenance.intoto.jsonl", sign_with_key(statement, load_signer("keys/trainer")))
    deps = statement.predicate.resolved_dependencies
    report.add(
        "slsa attest",
        "signed",
        f"{len(statement.subjects)} subjects, {len(deps)} "
        "resolved dependencies -> provenance.intoto.jsonl",
    )
    result = verify_builtin(
        "models/model.safetensors",
        "provenance.intoto.jsonl",
        Expectations(REPOSITORY, branch="main"),
        key=load_public_key("keys/trainer.pub"),
    )
    say(result.verdict)
    report.add(
        "slsa verify",
        "PASS" if result.ok else "FAIL",
        f"models/model.safetensors signed by {result.signer}; claimed source "
        f"{result.claims.get('source_repository')}@{result.claims.get('source_ref')} "
        f"[{result.verifier}]",
    )
    if not result.ok:
        from provenance.errors import VerificationError

        raise VerificationError(result.verdict)
