"""The builder is who signed: a statement signed by workflow A that names builder B is refused.

Real vectors: slsa-verifier's `bcr/MODULE-wrong-signer.bazel` (signed by a workflow of
loosebazooka/aa-test, naming bazel-contrib/publish-to-bcr's publish.yaml as builder) and this
project's own key-signed provenance naming a GitHub builder. Whatever flags are given — none,
or any that names either identity — the result is exit 1 and both identities are named.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from pathlib import Path

import pytest
from cryptography import x509

from provenance.attest.slsa import _identity
from provenance.attest.slsa_provenance import SlsaProvenance
from provenance.errors import InputError

VECTORS = Path(__file__).parents[1] / "vectors"
BCR = VECTORS / "slsa-verifier" / "bcr"
WRONG = BCR / "MODULE-wrong-signer.bazel"
A = "https://github.com/loosebazooka/aa-test/.github/workflows/malicious_attestation.yaml"
A_REF = A + "@refs/heads/main"
B = "https://github.com/bazel-contrib/publish-to-bcr/.github/workflows/publish.yaml"
B_REF = B + "@refs/tags/v0.0.1"

SOURCES = (("--repo", "aspect-build/rules_lint"), ("--repo", "loosebazooka/aa-test"))
IDENTITY_FLAGS = (
    (),
    ("--builder-id", A),
    ("--builder-id", A_REF),
    ("--builder-id", B),
    ("--builder-id", B_REF),
    ("--signer-workflow", A_REF),
    ("--signer-workflow", B_REF),
    ("--signer-repo", "loosebazooka/aa-test"),
    ("--signer-repo", "bazel-contrib/publish-to-bcr"),
    ("--builder-id", B_REF, "--signer-workflow", A_REF),
    ("--builder-id", A_REF, "--signer-workflow", B_REF),
)
COMBINATIONS = [s + f for s, f in itertools.product(SOURCES, IDENTITY_FLAGS)]


@pytest.mark.parametrize("flags", COMBINATIONS, ids=lambda f: " ".join(f))
def test_real_statement_signed_by_a_naming_b_fails_naming_both(cli, flags: tuple[str, ...]) -> None:
    argv = ["slsa", "verify", str(WRONG), "--provenance", f"{WRONG}.intoto.jsonl", "--builtin"]
    r = cli(*argv, *flags)
    assert r.code == 1, r.out + r.err
    assert r.out.startswith("FAIL") and A_REF in r.out and B_REF in r.out, r.out
    doc = json.loads(cli(*argv, *flags, "--json").out)
    assert doc["verified"] is False and doc["authentic"] is True
    assert doc["facts"]["verified"]["signer"] == A_REF
    assert doc["facts"]["claimed"]["builder_id"] == B_REF
    builder = [f for f in doc["failures"] if f["what"].startswith("builder id the statement")]
    assert builder and builder[0]["actual"] == B_REF and A_REF in builder[0]["expected"]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Our own statement, signed with our own key, claiming a GitHub builder B."""
    from provenance.signing import dsse, generate, load_signer

    root = tmp_path_factory.mktemp("keyed")
    generate("signer", str(root), key_type="ecdsa")
    artifact = root / "model.bin"
    artifact.write_bytes(b"weights")
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": "model.bin", "digest": {"sha256": hashlib.sha256(b"weights").hexdigest()}}
        ],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://example.com/t@v1",
                "externalParameters": {
                    "repository": "https://github.com/aspect-build/rules_lint",
                    "ref": "refs/heads/main",
                },
            },
            "runDetails": {"builder": {"id": B_REF}},
        },
    }
    payload = json.dumps(statement).encode()
    envelope = dsse.dumps(dsse.sign(payload, load_signer(str(root / "signer")))) + b"\n"
    prov = root / "model.intoto.jsonl"
    prov.write_bytes(envelope)
    return artifact, prov, root / "signer.pub"


KEYED_FLAGS = [
    ("--builder-id", B_REF),
    ("--builder-id", B),
    ("--signer-workflow", B_REF),
    ("--signer-repo", "bazel-contrib/publish-to-bcr"),
]


@pytest.mark.parametrize("flags", KEYED_FLAGS, ids=lambda f: " ".join(f))
def test_key_signed_statement_claiming_a_builder_cannot_prove_it(
    cli, keyed: tuple[Path, Path, Path], flags: tuple[str, ...]
) -> None:
    artifact, prov, pub = keyed
    argv = ["slsa", "verify", str(artifact), "--provenance", str(prov), "--key", str(pub)]
    r = cli(*argv, "--repo", "aspect-build/rules_lint", *flags)
    assert r.code == 1 and "key-signed provenance has no signing certificate" in r.out, r.out
    assert "got 'key " in r.out and B_REF in r.out


def test_key_signed_pass_names_the_key_and_labels_the_builder_a_claim(
    cli, keyed: tuple[Path, Path, Path]
) -> None:
    artifact, prov, pub = keyed
    argv = ["slsa", "verify", str(artifact), "--provenance", str(prov), "--key", str(pub)]
    r = cli(*argv, "--repo", "aspect-build/rules_lint")
    assert r.code == 0, r.out + r.err
    assert "verified: signed by key " in r.out
    assert f"claimed by the key holder: builder {B_REF}" in r.out
    doc = json.loads(cli(*argv, "--repo", "aspect-build/rules_lint", "--json").out)
    assert set(doc["facts"]["verified"]) == {"key"}
    assert doc["facts"]["claimed"]["builder_id"] == B_REF


# --- the rules, on their own ------------------------------------------------------------


@pytest.mark.parametrize(
    ("builder", "signer", "same"),
    [
        (A_REF, A_REF, True),
        (A + "@main", A_REF, False),  # a branch name is not a tag
        (B + "@v0.0.1", B_REF, True),  # short tag == refs/tags/ (slsa-verifier allowRef)
        (B, B_REF, False),  # no ref never equals a signer with one
        (B + "@", B_REF, False),
        (B_REF + "@x", B_REF, False),
        (A_REF, B_REF, False),
        (A_REF.upper(), A_REF, False),  # exact, as slsa-verifier
    ],
)
def test_builder_is_signer_follows_slsa_verifier_matches_full(
    builder: str, signer: str, same: bool
) -> None:
    assert _identity.builder_is_signer(builder, signer) is same


def _statement(builder: object, workflow: object = None) -> SlsaProvenance:
    """A typed SLSA v1 predicate, read strictly as the verifier reads one."""
    ext = {} if workflow is None else {"workflow": workflow}
    return SlsaProvenance.from_dict(
        {
            "buildDefinition": {"buildType": "https://example.com/t@v1", "externalParameters": ext},
            "runDetails": {"builder": {"id": builder}},
        },
        "test",
    )


FACTS = {
    "signer": A_REF,
    "runner_environment": "github-hosted",
    "source_repository": "https://github.com/loosebazooka/aa-test",
    "source_ref": "refs/heads/main",
    "build_config": A_REF,
}


@pytest.mark.parametrize(
    ("builder", "ok"),
    [
        ("https://github.com/actions/runner/github-hosted", True),
        ("https://github.com/actions/runner/self-hosted", False),  # the certificate says hosted
        ("https://github.com/actions/runner", False),
        ("https://github.com/actions/runner/github-hosted2", False),
        ("https://github.com/loosebazooka/aa-test", False),  # a repository is not a builder
        ("https://example.com/made-up", False),
    ],
)
def test_runner_ids_are_claims_that_must_agree_with_the_certificate(
    builder: object, ok: bool
) -> None:
    failures = _identity.check_builder(_statement(builder), FACTS, runner_ok=True)
    assert (failures == []) is ok, failures


@pytest.mark.parametrize("builder", [None, 42, "", ["x"]])
def test_a_builder_id_that_is_not_a_string_is_malformed_provenance(builder: object) -> None:
    with pytest.raises(InputError, match="builder"):
        _statement(builder)


def test_trusted_generators_may_not_name_a_runner() -> None:
    statement = _statement("https://github.com/actions/runner/github-hosted")
    assert _identity.check_builder(statement, FACTS, runner_ok=False)


@pytest.mark.parametrize(
    ("workflow", "ok"),
    [
        (
            {
                "repository": "https://github.com/loosebazooka/aa-test",
                "path": ".github/workflows/malicious_attestation.yaml",
                "ref": "refs/heads/main",
            },
            True,
        ),
        # This project's own statements: GITHUB_WORKFLOW_REF.
        ("loosebazooka/aa-test/.github/workflows/malicious_attestation.yaml@refs/heads/main", True),
        (
            {
                "repository": "https://github.com/loosebazooka/aa-test",
                "path": ".github/workflows/other.yaml",
                "ref": "refs/heads/main",
            },
            False,
        ),
        (
            {
                "repository": "https://github.com/loosebazooka/aa-test",
                "path": ".github/workflows/malicious_attestation.yaml",
                "ref": "refs/heads/dev",
            },
            False,
        ),
        (
            {
                "repository": "https://github.com/aspect-build/rules_lint",
                "path": ".github/workflows/malicious_attestation.yaml",
                "ref": "refs/heads/main",
            },
            False,
        ),
        ({"repository": "https://github.com/loosebazooka/aa-test"}, False),
        ("not a workflow", False),
        (["a"], False),
    ],
)
def test_the_workflow_a_statement_names_must_be_the_build_config(
    workflow: object, ok: bool
) -> None:
    failures = _identity.check_workflow(_statement(A_REF, workflow), FACTS)
    assert (failures == []) is ok, failures


def test_a_workflow_claim_without_a_build_config_uri_is_refused() -> None:
    facts = {k: v for k, v in FACTS.items() if k != "build_config"}
    workflow = "loosebazooka/aa-test/.github/workflows/malicious_attestation.yaml@refs/heads/main"
    failures = _identity.check_workflow(_statement(A_REF, workflow), facts)
    assert failures and "no Build Config URI" in failures[0].what


def test_certificate_facts_of_a_real_certificate() -> None:
    doc = json.loads(Path(f"{WRONG}.intoto.jsonl").read_text().splitlines()[0])
    vm = doc["verificationMaterial"]
    raw = (vm.get("certificate") or vm["x509CertificateChain"]["certificates"][0])["rawBytes"]
    facts = _identity.certificate_facts(x509.load_der_x509_certificate(base64.b64decode(raw)))
    assert facts["signer"] == A_REF and facts["build_config"] == A_REF
    assert facts["source_repository"] == "https://github.com/loosebazooka/aa-test"
    assert (
        facts["runner_environment"] == "github-hosted" and facts["trigger"] == "workflow_dispatch"
    )
