"""The verify flags taken from gh (`--signer-repo`, `--signer-digest`, `--source-ref`,
`--source-digest`, `--deny-self-hosted-runners`, `--predicate-type`) and slsa-verifier
(`--build-workflow-input`), where the producer table (test_slsa_table.py) cannot reach:
inputs of a real workflow_dispatch predicate, a self-hosted runner certificate, key-signed
provenance, and flag values that could never match.
"""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from provenance.attest.slsa import _policy
from provenance.attest.slsa._result import Failure
from provenance.signing import dsse, load_signer
from provenance.signing.keys import generate

VECTORS = Path(__file__).parents[1] / "vectors" / "slsa-verifier"
INPUTS = VECTORS / "workflow-inputs"
INPUTS_SOURCE = "github.com/laurentsimon/slsa-on-github-test"
GENERIC = VECTORS / "gha_generic" / "v2.1.0"
GENERIC_BIN = GENERIC / "binary-linux-amd64-workflow_dispatch"
GENERIC_PROV = GENERIC / "binary-linux-amd64-workflow_dispatch.intoto.jsonl"
EXAMPLE = "github.com/slsa-framework/example-package"
REGRESSION_INPUTS = {  # slsa-verifier main_regression_test.go 'workflow inputs match'
    "release_version": "(for example, 0.1.0)",
    "some_bool": "true",
    "some_integer": "123",
}


@pytest.fixture(scope="module")
def resigned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """slsa-verifier's real `workflow-inputs` predicate (generator v1.2.2), re-signed with a
    test key: its Fulcio envelope needs an online Rekor lookup, the key-signed copy does not."""
    root = tmp_path_factory.mktemp("inputs")
    pair = generate("signer", str(root / "keys"), key_type="ecdsa")
    envelope = json.loads((INPUTS / "workflow-inputs.intoto.jsonl").read_text())
    payload = base64.b64decode(envelope["payload"])
    out = root / "workflow-inputs.key.intoto.jsonl"
    out.write_bytes(dsse.dumps(dsse.sign(payload, load_signer(pair.private_path))) + b"\n")
    return out, Path(pair.public_path)


def _inputs_verify(cli, resigned: tuple[Path, Path], *flags: str):  # type: ignore[no-untyped-def]
    provenance, key = resigned
    return cli(
        "slsa",
        "verify",
        INPUTS / "workflow-inputs",
        "-b",
        provenance,
        "--key",
        key,
        "--source-uri",
        INPUTS_SOURCE,
        *flags,
    )


def test_workflow_inputs_match_as_in_slsa_verifier(cli, resigned: tuple[Path, Path]) -> None:
    flags = [
        f for k, v in REGRESSION_INPUTS.items() for f in ("--build-workflow-input", f"{k}={v}")
    ]
    r = _inputs_verify(cli, resigned, *flags)
    assert r.code == 0 and r.out.startswith("PASS"), r.out + r.err


@pytest.mark.parametrize(
    ("inputs", "words"),
    [
        # slsa-verifier 'workflow inputs missing field' (ErrorMismatchWorkflowInputs)
        (
            {
                "release_version": "(for example, 0.1.0)",
                "some_bool": "true",
                "missing_field": "123",
            },
            "build workflow input 'missing_field': got \"no string input 'missing_field'\", "
            "expected 'missing_field=123'",
        ),
        # slsa-verifier 'workflow inputs mismatch' (ErrorMismatchWorkflowInputs)
        (
            {"release_version": "(for example, 0.1.0)", "some_bool": "true", "some_integer": "321"},
            "build workflow input 'some_integer': got 'some_integer=123', "
            "expected 'some_integer=321'",
        ),
    ],
    ids=["missing-field", "mismatch"],
)
def test_workflow_inputs_refused_as_in_slsa_verifier(
    cli, resigned: tuple[Path, Path], inputs: dict[str, str], words: str
) -> None:
    flags = [f for k, v in inputs.items() for f in ("--build-workflow-input", f"{k}={v}")]
    r = _inputs_verify(cli, resigned, *flags, "--json")
    assert r.code == 1
    doc = json.loads(r.out)
    assert doc["verified"] is False and doc["authentic"] is True
    assert [f["message"] for f in doc["failures"]] == [words]


@pytest.mark.parametrize(
    "flag",
    [
        ("--deny-self-hosted-runners",),
        ("--signer-digest", "a" * 40),
        ("--signer-repo", "ORG/shared"),
        ("--signer-workflow", "ORG/shared/.github/workflows/build.yml"),
        # The builder the statement claims: still only the key holder's word, never verified.
        (
            "--builder-id",
            "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
            "generator_generic_slsa3.yml@refs/tags/v1.2.2",
        ),
    ],
    ids=lambda f: f[0],
)
def test_certificate_flags_refuse_key_signed_provenance(
    cli, resigned: tuple[Path, Path], flag: tuple[str, ...]
) -> None:
    """Fail closed: a key-signed statement has no certificate to meet a certificate check."""
    r = _inputs_verify(cli, resigned, *flag)
    assert r.code == 1
    assert r.out.startswith(f"FAIL: {flag[0]} (key-signed provenance has no signing certificate")
    # Both identities are named: the key that signed and the builder its statement claims.
    assert "got 'key " in r.out and "claims builder https://github.com/" in r.out


def test_source_digest_and_ref_of_key_signed_provenance_come_from_the_predicate(
    cli, resigned: tuple[Path, Path]
) -> None:
    commit = "e52ca19ae4944c39dc6060b514ac496e62a9a077"  # its configSource digest
    assert _inputs_verify(cli, resigned, "--source-digest", commit).code == 0
    wrong = _inputs_verify(cli, resigned, "--source-digest", "f" * 40)
    assert wrong.code == 1
    assert f"source digest (claimed): got '{commit}', expected '{'f' * 40}'" in wrong.out
    ref = _inputs_verify(cli, resigned, "--source-ref", "refs/heads/main")  # configSource.uri@ref
    assert ref.code == 0 and "@refs/heads/main" in ref.out, ref.out
    other = _inputs_verify(cli, resigned, "--source-ref", "refs/heads/dev")
    assert (
        other.code == 1
        and "source ref (claimed by the key holder): got 'refs/heads/main'" in other.out
    )


def _certificate(runner: str | None) -> x509.Certificate:
    """A certificate carrying only a Fulcio Runner Environment extension (or none)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "runner-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(minutes=10))
    )
    if runner is not None:  # DER UTF8String, as Fulcio encodes its v2 extensions
        der = bytes([0x0C, len(runner)]) + runner.encode()
        builder = builder.add_extension(
            x509.UnrecognizedExtension(_policy.OID_RUNNER_V2, der), critical=False
        )
    return builder.sign(key, hashes.SHA256())


@pytest.mark.parametrize(
    ("runner", "ok"),
    [("github-hosted", True), ("self-hosted", False), (None, False)],
    ids=["github-hosted", "self-hosted", "no-extension"],
)
def test_deny_self_hosted_runners_reads_the_runner_environment(
    runner: str | None, ok: bool
) -> None:
    """gh --deny-self-hosted-runners: RunnerEnvironment must be `github-hosted`. No public
    vector was built on a self-hosted runner, so the policy runs on a made-up certificate."""
    from provenance.attest.slsa._bundle import Collect

    collect = Collect([_policy.hosted_runner_check()])
    collect.verify(_certificate(runner))
    if ok:
        assert collect.failures == []
    else:
        assert collect.failures == [
            Failure("runner environment (self-hosted runners denied)", "github-hosted", runner)
        ]


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (("--signer-repo", "o/r", "--signer-workflow", "o/r/.github/workflows/a.yml"), "exclude"),
        (("--signer-repo", "github.com/o/r/x"), "expected OWNER/REPO"),
        (("--source-ref", "main"), "expected a full git ref"),
        (("--source-ref", "refs/heads/main", "--source-branch", "main"), "exclude each other"),
        (("--signer-digest", "v1.2.3"), "40 or 64 hex digits"),
        (("--source-digest", "A" * 40), "40 or 64 hex digits"),
        (("--predicate-type", "https://spdx.dev/Document"), "checks SLSA provenance"),
        (("--build-workflow-input", "novalue"), "expected KEY=VALUE"),
        (("--build-workflow-input", "a=b=c"), "expected KEY=VALUE"),
        (("--build-workflow-input", "=b"), "expected KEY=VALUE"),
    ],
)
def test_flag_values_that_can_never_match_are_usage_errors(
    cli, flags: tuple[str, ...], words: str
) -> None:
    r = cli(
        "slsa", "verify", GENERIC_BIN, "-b", GENERIC_PROV, "--source-uri", EXAMPLE, *flags, "--json"
    )
    assert r.code == 2 and words in r.err and "Traceback" not in r.err
    assert json.loads(r.out)["exit_code"] == 2


def test_gh_flags_never_go_to_slsa_verifier(cli, tmp_path: Path) -> None:
    """slsa-verifier has no --source-ref and friends: with them, the built-in verifier runs
    even when an slsa-verifier is given (which would otherwise drop the check)."""
    stub = tmp_path / "slsa-verifier"
    stub.write_text("#!/bin/sh\necho PASSED\n")
    stub.chmod(0o755)
    r = cli(
        "slsa", "verify", GENERIC_BIN, "-b", GENERIC_PROV, "--source-uri", EXAMPLE,
        "--source-ref", "refs/heads/dev", "--slsa-verifier", stub,
    )  # fmt: skip
    assert r.code == 1 and "source ref" in r.out and "built-in" in r.out


def test_workflow_inputs_are_handed_to_slsa_verifier(cli, tmp_path: Path) -> None:
    record = tmp_path / "argv"
    stub = tmp_path / "slsa-verifier"
    stub.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {record}\necho PASSED\n")
    stub.chmod(0o755)
    r = cli(
        "slsa", "verify", GENERIC_BIN, "-b", GENERIC_PROV, "--source-uri", EXAMPLE,
        "--build-workflow-input", "a=1", "--build-workflow-input", "b=2", "--slsa-verifier", stub,
    )  # fmt: skip
    assert r.code == 0
    argv = record.read_text().split("\n")
    assert argv.count("--build-workflow-input") == 2 and "a=1" in argv and "b=2" in argv


@pytest.mark.parametrize(
    "source",
    [
        EXAMPLE + "@refs/heads/evil",  # the vector was built from refs/heads/main
        EXAMPLE + "@refs/heads/main",  # even the right ref: it would be dropped, not checked
        "git+https://" + EXAMPLE + "@refs/tags/v99.0.0",
        "https://user@" + EXAMPLE,
    ],
)
def test_a_ref_in_the_source_uri_is_refused_not_dropped(cli, source: str) -> None:
    """The repository comparison ignores a claimed URI's @REF; an expected @REF would have been
    dropped with it and the pin never checked (slsa-verifier refuses it as a mismatch)."""
    r = cli("slsa", "verify", GENERIC_BIN, "-b", GENERIC_PROV, "--source-uri", source, "--json")
    assert r.code == 2 and "names a repository, not a ref" in r.err and "Traceback" not in r.err
    assert json.loads(r.out)["exit_code"] == 2
    assert "--source-branch" in r.err
