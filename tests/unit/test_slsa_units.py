"""SLSA verification, one layer down: the matching rules, the policy collector, the result model,
malformed bundles, and key verification running without sigstore installed."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from provenance.attest.slsa import _policy
from provenance.attest.slsa._expect import Expectations
from provenance.attest.slsa._result import Failure, SlsaResult
from provenance.errors import UsageError

VECTORS = Path(__file__).parents[1] / "vectors"
GENERIC = VECTORS / "slsa-verifier" / "gha_generic" / "v2.1.0"
ARTIFACT = GENERIC / "binary-linux-amd64-workflow_dispatch"
PROVENANCE = GENERIC / "binary-linux-amd64-workflow_dispatch.intoto.jsonl"
EXAMPLE = "github.com/slsa-framework/example-package"
GEN = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"


def vector_cert() -> x509.Certificate:
    bundle = json.loads(PROVENANCE.read_text())
    raw = base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
    return x509.load_der_x509_certificate(raw)


@pytest.mark.parametrize(
    ("actual", "wanted", "ok"),
    [
        (GEN + "g.yml@refs/tags/v2.1.0", GEN + "g.yml", True),
        (GEN + "g.yml@refs/tags/v2.1.0", GEN + "g.yml@refs/tags/v2.1.0", True),
        (GEN + "g.yml@refs/tags/v2.1.0", GEN + "g.yml@v2.1.0", True),
        (GEN + "g.yml@refs/tags/v2.1.0", GEN + "g.yml@v2.1.1", False),
        (GEN + "g.yml@refs/tags/v2.1.0", GEN + "h.yml", False),
        (GEN + "g.yml@refs/tags/v2.1.0", GEN + "g.y", False),  # no prefix matching
        (
            "https://github.com/o/r/.github/workflows/a.yml@" + "a" * 40,
            "o/r/.github/workflows/a.yml",
            True,
        ),
        (
            "https://github.com/o/r/.github/workflows/a.yml@" + "a" * 40,
            "github.com/o/r/.github/workflows/a.yml@" + "a" * 40,
            True,
        ),
        (
            "https://github.com/o/r/.github/workflows/a.yml@" + "a" * 40,
            "o/r/.github/workflows/a.yml@" + "b" * 40,
            False,
        ),
    ],
)
def test_builder_id_matching_follows_slsa_verifier(actual: str, wanted: str, ok: bool) -> None:
    assert _policy.builder_matches(actual, wanted) is ok


@pytest.mark.parametrize(
    ("ref", "wanted", "ok"),
    [  # slsa-verifier main_regression_test.go "versioned …" cases
        ("refs/tags/v13.0.30", "v13", True),
        ("refs/tags/v13.0.30", "v13.0", True),
        ("refs/tags/v13.0.30", "v13.0.30", True),
        ("refs/tags/v13.0.30", "v13.0.31", False),
        ("refs/tags/v13.0.30", "v13.1", False),
        ("refs/tags/v13.0.30", "v12.9", False),
        ("refs/tags/v14", "v14.0", True),
        ("refs/tags/v14", "v14.1", False),
        ("refs/tags/v14.2", "v14.2.1", False),
        ("refs/tags/v14.2", "v14", True),
        ("refs/heads/main", "v1", False),
        (None, "v1", False),
    ],
)
def test_versioned_tag_matching_follows_slsa_verifier(
    ref: str | None, wanted: str, ok: bool
) -> None:
    assert _policy.versioned_tag_matches(ref, wanted) is ok


def test_repo_forms_normalize_alike() -> None:
    forms = [
        "github.com/o/r",
        "https://github.com/o/r",
        "git+https://github.com/o/r@refs/heads/m",
        "o/r",
        "https://github.com/o/r.git/",
    ]
    assert {_policy.repo_url(f) for f in forms} == {"https://github.com/o/r"}


def test_collect_is_sigstore_allof_and_records_every_mismatch() -> None:
    from sigstore.verify.policy import AllOf

    from provenance.attest.slsa._bundle import Collect

    cert = vector_cert()
    collect = Collect(
        [
            _policy.issuer_check("https://issuer.example"),
            _policy.source_check("github.com/attacker/repo"),
            _policy.trusted_generator_check(),
        ]
    )
    assert isinstance(collect, AllOf)
    collect.verify(cert)  # records, never raises: sigstore's verification must run to the end
    assert [f.what for f in collect.failures] == ["certificate OIDC issuer", "source repository"]
    assert collect.failures[1].actual == "https://github.com/slsa-framework/example-package"
    assert collect.failures[1].expected == "https://github.com/attacker/repo"


def test_empty_collect_is_never_trivially_valid() -> None:
    from sigstore.errors import VerificationError

    from provenance.attest.slsa._bundle import Collect

    with pytest.raises(VerificationError):
        Collect([]).verify(vector_cert())


def test_failure_and_result_render_got_expected() -> None:
    f = Failure("source tag", "refs/tags/v2", "refs/tags/v1")
    assert f.message == "source tag: got 'refs/tags/v1', expected 'refs/tags/v2'"
    result = SlsaResult("a.bin", "v", "ab" * 32, authentic=True, failures=[f])
    assert not result.ok
    doc = result.to_dict()
    assert doc["verified"] is False and doc["authentic"] is True
    assert doc["failures"][0] == {
        "what": "source tag",
        "expected": "refs/tags/v2",
        "actual": "refs/tags/v1",
        "message": f.message,
    }
    assert doc["verdict"].startswith("FAIL: source tag")
    assert SlsaResult("a.bin", "v", "00", authentic=True).ok


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"source_uri": "o/r", "tag": "v1", "versioned_tag": "v1"},
        {"source_uri": "o/r", "branch": "main", "tag": "v1"},
        {"source_uri": "o/r", "versioned_tag": "latest"},
        {"source_uri": "o/r", "issuer": "token.actions.githubusercontent.com"},
    ],
)
def test_contradictory_expectations_are_usage_errors(kwargs: dict) -> None:
    with pytest.raises(UsageError):
        Expectations(**kwargs)


def _write_bundle(tmp_path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    bundle = json.loads(PROVENANCE.read_text())
    edit(bundle)
    out = tmp_path / "edited.sigstore.json"
    out.write_text(json.dumps(bundle))
    return out


def _truncate_cert(bundle: dict) -> None:
    cert = bundle["verificationMaterial"]["certificate"]
    cert["rawBytes"] = base64.b64encode(base64.b64decode(cert["rawBytes"])[:300]).decode()


def _drop_cert(bundle: dict) -> None:
    del bundle["verificationMaterial"]["certificate"]


@pytest.mark.parametrize(
    ("edit", "words"),
    [(_truncate_cert, "malformed Sigstore bundle"), (_drop_cert, "no signing certificate")],
)
def test_missing_or_truncated_certificate_is_invalid_input(
    cli, tmp_path: Path, edit, words: str
) -> None:
    bad = _write_bundle(tmp_path, edit)
    r = cli("slsa", "verify", ARTIFACT, "-b", bad, "--builtin", "--source-uri", EXAMPLE, "--json")
    assert r.code == 3 and words in r.err and "Traceback" not in r.err
    assert json.loads(r.out)["error"]["message"].endswith(words) or words in r.out


def test_npm_registry_attestations_document_is_unsupported(cli, tmp_path: Path) -> None:
    bundle = json.loads((VECTORS / "gh" / "sigstore-js-2.1.0-bundle.json").read_text())
    doc = tmp_path / "sigstore@2.1.0.json"
    doc.write_text(
        json.dumps(
            {
                "attestations": [
                    {"predicateType": "https://slsa.dev/provenance/v1", "bundle": bundle}
                ]
            }
        )
    )
    r = cli(
        "slsa",
        "verify",
        VECTORS / "gh" / "sigstore-js-2.1.0.tgz",
        "-b",
        doc,
        "--builtin",
        "--owner",
        "sigstore",
    )
    assert r.code == 3 and "unsupported: an npm registry attestations document" in r.err


def test_artifact_and_digest_exclude_each_other(cli) -> None:
    both = cli(
        "slsa",
        "verify",
        ARTIFACT,
        "--artifact-digest",
        "sha256:" + "0" * 64,
        "-b",
        PROVENANCE,
        "--source-uri",
        EXAMPLE,
    )
    neither = cli("slsa", "verify", "-b", PROVENANCE, "--source-uri", EXAMPLE)
    bad = cli(
        "slsa", "verify", "--artifact-digest", "md5:00", "-b", PROVENANCE, "--source-uri", EXAMPLE
    )
    assert both.code == neither.code == bad.code == 2


def test_digest_path_equals_file_path(cli) -> None:
    digest = "sha256:" + hashlib.sha256(ARTIFACT.read_bytes()).hexdigest()
    by_digest = cli(
        "slsa",
        "verify",
        "--artifact-digest",
        digest,
        "-b",
        PROVENANCE,
        "--builtin",
        "--source-uri",
        EXAMPLE,
        "--json",
    )
    by_file = cli(
        "slsa", "verify", ARTIFACT, "-b", PROVENANCE, "--builtin", "--source-uri", EXAMPLE, "--json"
    )
    assert by_digest.code == by_file.code == 0
    assert json.loads(by_digest.out)["sha256"] == json.loads(by_file.out)["sha256"]


def _key_signed(tmp_path: Path, cli) -> tuple[Path, Path, Path]:  # type: ignore[no-untyped-def]
    from provenance.signing import dsse, load_signer

    assert cli("keygen", "builder", "--dir", str(tmp_path / "keys")).code == 0
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": "model.bin", "digest": {"sha256": hashlib.sha256(b"weights").hexdigest()}}
        ],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://example.com/build/v1",
                "externalParameters": {
                    "repository": "https://github.com/acme/models",
                    "ref": "refs/tags/v1.2.0",
                },
            },
            "runDetails": {"builder": {"id": "https://example.com/builder"}},
        },
    }
    prov = tmp_path / "model.intoto.jsonl"
    signer = load_signer(str(tmp_path / "keys" / "builder"))
    prov.write_bytes(dsse.dumps(dsse.sign(json.dumps(statement).encode(), signer)) + b"\n")
    return model, prov, tmp_path / "keys" / "builder.pub"


def test_key_signed_envelope_without_key_is_invalid_input(cli, tmp_path: Path) -> None:
    model, prov, _ = _key_signed(tmp_path, cli)
    r = cli("slsa", "verify", model, "-b", prov, "--source-uri", "github.com/acme/models", "--json")
    assert r.code == 3 and "pass the signer's public key with --key" in r.err
    assert json.loads(r.out)["exit_code"] == 3


def test_key_signed_versioned_tag(cli, tmp_path: Path) -> None:
    model, prov, pub = _key_signed(tmp_path, cli)
    base = (
        "slsa",
        "verify",
        model,
        "-b",
        prov,
        "--key",
        pub,
        "--source-uri",
        "github.com/acme/models",
    )
    assert cli(*base, "--source-versioned-tag", "v1.2").code == 0
    wrong = cli(*base, "--source-versioned-tag", "v1.3")
    assert wrong.code == 1 and "source versioned tag" in wrong.out


def test_key_verification_runs_without_sigstore(cli, tmp_path: Path) -> None:
    """--key verification imports no sigstore: it works where sigstore cannot be imported."""
    model, prov, pub = _key_signed(tmp_path, cli)
    code = (
        "import sys; sys.modules['sigstore'] = None\n"  # any `import sigstore…` now raises
        "from provenance.cli import main\n"
        f"rc = main(['slsa', 'verify', {str(model)!r}, '-b', {str(prov)!r}, '--key', {str(pub)!r},"
        " '--source-uri', 'github.com/acme/models', '--source-tag', 'v1.2.0'])\n"
        "assert not any(m.startswith('sigstore.') for m in sys.modules), 'sigstore imported'\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("PASS") and "built-in key verifier" in proc.stdout


@pytest.mark.parametrize(
    "media",
    [
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
    ],
)
def test_every_bundle_media_type_verifies(cli, tmp_path: Path, media: str) -> None:
    """The generic-generator bundle re-wrapped in each bundle version (the media type and the
    certificate's place are not signed; bundles before 0.3 carry a certificate chain)."""

    def rewrap(bundle: dict) -> None:
        bundle["mediaType"] = media
        if media.endswith(("0.1", "0.2")):
            vm = bundle["verificationMaterial"]
            vm["x509CertificateChain"] = {"certificates": [vm.pop("certificate")]}

    wrapped = _write_bundle(tmp_path, rewrap)
    r = cli("slsa", "verify", ARTIFACT, "-b", wrapped, "--builtin", "--source-uri", EXAMPLE)
    assert r.code == 0 and r.out.startswith("PASS"), r.out + r.err


def test_github_api_wrapper_is_unwrapped(cli, tmp_path: Path) -> None:
    """GitHub's attestations API returns `{"bundle": …, "repository_id": …}` documents."""
    wrapped = tmp_path / "api.json"
    wrapped.write_text(
        json.dumps({"bundle": json.loads(PROVENANCE.read_text()), "repository_id": 1})
    )
    r = cli("slsa", "verify", ARTIFACT, "-b", wrapped, "--builtin", "--source-uri", EXAMPLE)
    assert r.code == 0, r.out + r.err


def test_undecodable_checkpoint_signature_is_invalid_input(cli, tmp_path: Path) -> None:
    """Found by test_fuzz: sigstore base64-decodes the checkpoint's signature mid-verification
    and lets binascii.Error (a ValueError) escape; one byte less must be exit 3, not a crash."""
    bundle = json.loads(PROVENANCE.read_text())
    checkpoint = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]
    checkpoint["envelope"] = checkpoint["envelope"].replace(
        "— rekor.sigstore.dev wNI9", "— rekor.sigstore.dev NI9"
    )
    edited = tmp_path / "edited.intoto.jsonl"
    edited.write_text(json.dumps(bundle))
    r = cli(
        "slsa", "verify", ARTIFACT, "-b", edited, "--builtin", "--source-uri", EXAMPLE, "--json"
    )
    assert r.code == 3 and "Traceback" not in r.err
    assert f"{edited}: malformed Sigstore bundle: Invalid base64-encoded string" in r.err
    assert json.loads(r.out)["exit_code"] == 3
