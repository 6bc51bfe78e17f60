"""The attestation layer: Statement v1 round trips, signature-before-parse, strict predicates,
the SLSA VSA (ours and slsa-verifier's test vector)."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import pytest

from provenance.attest import (
    ML_MODEL_SCANNED,
    ML_PROVENANCE_CHAIN_VERIFIED,
    InputAttestation,
    Statement,
    Subject,
    TestResult,
    VerificationSummary,
    build_vsa,
    check_vsa,
    dumps_jsonl,
    read_statement,
    read_statements,
    write_jsonl,
)
from provenance.attest.vsa import PREDICATE_TYPE as VSA_TYPE
from provenance.errors import InputError, UsageError, VerificationError
from provenance.signing import generate, load_public_key, load_signer

VECTORS = Path(__file__).parents[1] / "vectors-attest"
SHA_A = "a" * 64
SHA_B = "b" * 64


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("keys")
    out: dict[str, object] = {}
    for name, kind in (("gate", "ecdsa"), ("other", "ed25519")):
        pair = generate(name, str(d), kind)
        out[name] = load_signer(pair.private_path)
        out[name + ".pub"] = load_public_key(pair.public_path)
        out[name + ".path"] = pair.public_path
    return out


def _vsa(passed: bool = True) -> Statement[VerificationSummary]:
    return build_vsa(
        subjects={"models/model.safetensors": SHA_A, "models/config.json": SHA_B},
        resource_uri="models:/digits/3",
        policy_uri="layouts/root.layout",
        policy_sha256="c" * 64,
        input_attestations=[InputAttestation("links/train.1234abcd.link", "d" * 64)],
        passed=passed,
        verified_levels=["SLSA_BUILD_LEVEL_2", ML_PROVENANCE_CHAIN_VERIFIED, ML_MODEL_SCANNED],
        time_verified=dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.timezone.utc),
    )


def _envelope(payload: bytes, signer: object, payload_type: str = "application/vnd.in-toto+json"):
    from provenance.signing import dsse

    return dsse.dumps(dsse.sign(payload, signer, payload_type))


def _payload(envelope: bytes) -> dict[str, object]:
    return json.loads(base64.b64decode(json.loads(envelope)["payload"]))


def test_vsa_round_trip_through_dsse_and_jsonl(keys, tmp_path: Path) -> None:
    statement = _vsa()
    path = tmp_path / "vsa.intoto.jsonl"
    write_jsonl(path, [statement.sign(keys["gate"])])
    assert path.read_bytes().count(b"\n") == 1  # one envelope per line
    [signed] = read_statements(path, [keys["gate.pub"]], VSA_TYPE)
    assert signed.statement == statement
    assert signed.keyids == (keys["gate.pub"].keyid,)
    pred = signed.statement.predicate
    assert pred.to_dict()["timeVerified"] == "2026-11-30T10:00:00Z"
    assert pred.verified_levels == (
        "SLSA_BUILD_LEVEL_2",
        ML_PROVENANCE_CHAIN_VERIFIED,
        ML_MODEL_SCANNED,
    )
    assert pred.policy.digest == {"sha256": "c" * 64}
    assert pred.to_dict()["inputAttestations"] == [
        {"uri": "links/train.1234abcd.link", "digest": {"sha256": "d" * 64}}
    ]
    files = {"models/model.safetensors": SHA_A, "models/config.json": SHA_B}
    assert (
        check_vsa(
            signed, files=files, resource_uri="models:/digits/3", required_levels=[ML_MODEL_SCANNED]
        )
        == []
    )


def test_failed_vsa_carries_the_failed_level_and_is_refused_by_check(keys) -> None:
    envelope = dumps_jsonl([_vsa(passed=False).sign(keys["gate"])])
    signed = read_statement(envelope.strip(), [keys["gate.pub"]], VerificationSummary)
    assert signed.statement.predicate.verified_levels == ("FAILED",)
    failures = check_vsa(signed, files=signed.statement.digests())
    assert failures == ["<attestation>: verificationResult is FAILED"]


def test_check_vsa_names_mismatched_missing_and_extra_files(keys) -> None:
    signed = read_statement(dumps_jsonl([_vsa().sign(keys["gate"])]), [keys["gate.pub"]], VSA_TYPE)
    failures = check_vsa(
        signed,
        files={"models/model.safetensors": "e" * 64, "models/planted.bin": SHA_A},
        resource_uri="models:/digits/4",
        required_levels=["ML_EVALUATION_THRESHOLDS_MET"],
    )
    text = "\n".join(failures)
    assert "resourceUri is 'models:/digits/3', expected 'models:/digits/4'" in text
    assert "lacks ML_EVALUATION_THRESHOLDS_MET" in text
    assert (
        f"sha256 mismatch for 'models/model.safetensors': attested {SHA_A}, actual {'e' * 64}"
        in text
    )
    assert "'models/planted.bin' is not a subject" in text
    assert "'models/config.json' is not a model file (extra)" in text


def test_builder_refuses_made_up_slsa_levels_and_empty_subjects() -> None:
    with pytest.raises(UsageError, match="SLSA_BUILD_LEVEL_9 is not a SLSA level"):
        build_vsa(
            subjects={"m": SHA_A},
            resource_uri="r",
            policy_uri="p",
            policy_sha256=SHA_A,
            passed=True,
            verified_levels=["SLSA_BUILD_LEVEL_9"],
        )
    with pytest.raises(UsageError, match="at least one model file"):
        build_vsa(subjects={}, resource_uri="r", policy_uri="p", policy_sha256=SHA_A, passed=True)


def test_slsa_verifier_vsa_vector_is_read_with_its_key(tmp_path: Path) -> None:
    """slsa-verifier's own VSA test vector (Google BCID, raw r||s ECDSA) parses and verifies."""
    from securesystemslib.signer import SSlibKey

    key = load_public_key(str(VECTORS / "google-vsa-signing.pub"))
    theirs = SSlibKey(
        "keystore://76574:prod:vsa_signing_public_key", key.keytype, key.scheme, dict(key.keyval)
    )
    [signed] = read_statements(VECTORS / "gke-gce-pre.bcid-vsa.jsonl", [theirs], VSA_TYPE)
    vsa = signed.statement.predicate
    assert vsa.verifier_id == "https://bcid.corp.google.com/verifier/bcid_package_enforcer/v0.1"
    assert vsa.verified_levels == ("BCID_L1", "SLSA_BUILD_LEVEL_2")
    assert vsa.time_verified == "2024-06-12T07:24:34.351608Z"
    assert signed.statement.subjects == (Subject("_", {"gce_image_id": "8970095005306000053"}),)
    # Same bytes, signature without a key id (allowed by DSSE): tried against every trusted key.
    doc = json.loads((VECTORS / "gke-gce-pre.bcid-vsa.jsonl").read_bytes())
    doc["signatures"][0]["keyid"] = ""
    assert read_statement(json.dumps(doc).encode(), [theirs], VSA_TYPE).keyids == (theirs.keyid,)
    # A changed payload under their signature is refused.
    tampered = json.loads(base64.b64decode(doc["payload"]))
    tampered["predicate"]["verificationResult"] = "FAILED"
    doc["payload"] = base64.b64encode(json.dumps(tampered).encode()).decode()
    with pytest.raises(VerificationError, match="signature does not verify"):
        read_statement(json.dumps(doc).encode(), [theirs], VSA_TYPE)


def test_bad_signature_is_reported_before_a_malformed_payload_is_parsed(keys) -> None:
    """Signature before parse: garbage under a wrong signature is a signature failure (exit 1)."""
    envelope = json.loads(_envelope(b"{not json at all", keys["other"]))
    with pytest.raises(VerificationError, match="signature does not verify") as err:
        read_statement(json.dumps(envelope).encode(), [keys["gate.pub"]], VSA_TYPE)
    assert err.value.exit_code == 1
    assert "JSON" not in str(err.value)
    # The same garbage validly signed is then an input error naming the payload (exit 3).
    with pytest.raises(InputError, match="signed payload is not JSON") as err2:
        read_statement(_envelope(b"{not json at all", keys["gate"]), [keys["gate.pub"]], VSA_TYPE)
    assert err2.value.exit_code == 3


def test_statement_of_another_predicate_type_is_input_error(keys) -> None:
    """A scan result (or a VSA) given where the other is expected: exit 3, types named."""
    envelope = dumps_jsonl([_vsa().sign(keys["gate"])])
    with pytest.raises(InputError, match=re.escape(f"predicateType is '{VSA_TYPE}'")):
        read_statement(envelope, [keys["gate.pub"]], TestResult)
    doc = _payload(envelope)
    doc["predicateType"] = "https://example.com/unknown/v1"
    with pytest.raises(InputError, match=re.escape(f"expected '{VSA_TYPE}'")):
        read_statement(
            _envelope(json.dumps(doc).encode(), keys["gate"]), [keys["gate.pub"]], VSA_TYPE
        )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(extra=1), "statement: unknown field(s) 'extra'"),
        (
            lambda d: d["predicate"].update(verifiedLevel=["X"]),
            "predicate: unknown field(s) 'verifiedLevel'",
        ),
        (
            lambda d: d["predicate"]["policy"].update(contents="aGk="),
            "predicate.policy: unknown field(s) 'contents'",
        ),
        (
            lambda d: d.update(_type="https://in-toto.io/Statement/v0.1"),
            "expected 'https://in-toto.io/Statement/v1'",
        ),
        (lambda d: d["predicate"].update(verificationResult="OK"), "must be PASSED or FAILED"),
        (lambda d: d["predicate"].update(timeVerified="yesterday"), "is not RFC 3339"),
        (
            lambda d: d["predicate"].update(verifiedLevels="SLSA_BUILD_LEVEL_3"),
            "must be a list of strings",
        ),
        (
            lambda d: d["subject"][0]["digest"].update(sha256="ABC"),
            "sha256 digest must be 64 lowercase hex",
        ),
        (lambda d: d.update(subject=[]), "At least one subject required"),
        (lambda d: d["predicate"].pop("resourceUri"), "required field 'resourceUri' is missing"),
    ],
)
def test_signed_but_malformed_statements_are_refused_field_by_field(keys, edit, message) -> None:
    doc = _payload(dumps_jsonl([_vsa().sign(keys["gate"])]))
    edit(doc)
    with pytest.raises(InputError, match=re.escape(message)) as err:
        read_statement(
            _envelope(json.dumps(doc).encode(), keys["gate"]), [keys["gate.pub"]], VSA_TYPE
        )
    assert err.value.exit_code == 3


def test_wrong_payload_type_is_refused(keys) -> None:
    payload = _vsa().to_json()
    with pytest.raises(InputError, match="payloadType is 'text/plain'"):
        read_statement(_envelope(payload, keys["gate"], "text/plain"), [keys["gate.pub"]], VSA_TYPE)


def test_oversized_and_non_envelope_files_are_input_errors(keys, tmp_path: Path) -> None:
    big = tmp_path / "big.intoto.jsonl"
    with big.open("wb") as f:
        f.truncate(64 * 1024 * 1024 + 1)
    with pytest.raises(InputError, match="larger than"):
        read_statements(big, [keys["gate.pub"]], VSA_TYPE)
    other = tmp_path / "x.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(InputError, match="not a DSSE envelope"):
        read_statements(other, [keys["gate.pub"]], VSA_TYPE)


def test_no_trusted_key_is_a_usage_error(keys) -> None:
    with pytest.raises(UsageError, match="no trusted public key"):
        read_statement(dumps_jsonl([_vsa().sign(keys["gate"])]), [], VSA_TYPE)


def test_multi_line_jsonl_names_the_failing_line(keys, tmp_path: Path) -> None:
    path = tmp_path / "two.intoto.jsonl"
    path.write_bytes(dumps_jsonl([_vsa().sign(keys["gate"]), _vsa().sign(keys["other"])]))
    with pytest.raises(VerificationError, match=r"two.intoto.jsonl \(line 2\)"):
        read_statements(path, [keys["gate.pub"]], VSA_TYPE)
    both = read_statements(path, [keys["gate.pub"], keys["other.pub"]], VSA_TYPE)
    assert [s.keyids for s in both] == [(keys["gate.pub"].keyid,), (keys["other.pub"].keyid,)]


def test_slsa_provenance_from_slsa_attest_is_read_typed(
    keys, tmp_path: Path, monkeypatch, cli
) -> None:
    """What `provenance slsa attest --key` writes is read strictly by the typed predicate, and a
    VSA given where provenance is expected is refused (exit 3)."""
    from provenance.attest import SlsaProvenance
    from provenance.attest.slsa.build import build_statement, sign_with_key
    from provenance.verification import verify

    monkeypatch.chdir(tmp_path)
    for name in ("owner", "trainer"):
        assert cli("keygen", name, "--dir", "k").code == 0
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.safetensors").write_bytes(b"weights")
    assert cli("run", "train", "-p", "models/**", "--key", "k/trainer", "--", "true").code == 0
    (tmp_path / "one.yaml").write_text(
        "expires: 30d\nfunctionaries:\n  trainer: k/trainer.pub\nsteps:\n"
        "  - name: train\n    functionaries: [trainer]\n"
        '    products:\n      - create: "models/*"\n'
    )
    assert cli("layout", "sign", "one.yaml", "--key", "k/owner", "-o", "root.layout").code == 0
    result = verify("root.layout", ["k/owner.pub"], ".provenance/links", ".")
    assert result.ok, result.verdict
    doc = build_statement(["models/**"], result, ".", builder_id="https://example.com/b@v1",
                          repository="https://github.com/o/r", ref="refs/heads/main")  # fmt: skip
    path = tmp_path / "model.intoto.jsonl"
    path.write_bytes(sign_with_key(doc, keys["gate"]))
    [signed] = read_statements(path, [keys["gate.pub"]], SlsaProvenance)
    pred = signed.statement.predicate
    assert pred.builder_id == "https://example.com/b@v1"
    assert pred.external_parameters["repository"] == "https://github.com/o/r"
    expected = json.loads(json.dumps(doc.to_dict()["predicate"]))
    for part, key in (("buildDefinition", "resolvedDependencies"), ("runDetails", "byproducts")):
        if not expected[part].get(key):
            expected[part].pop(key, None)  # empty lists are omitted, as the spec allows
    assert pred.to_dict() == expected  # nothing else dropped, nothing added
    assert signed.statement.digests() == {
        "models/model.safetensors": hashlib.sha256(b"weights").hexdigest()
    }
    vsa = tmp_path / "vsa.intoto.jsonl"
    vsa.write_bytes(dumps_jsonl([_vsa().sign(keys["gate"])]))
    with pytest.raises(
        InputError, match=r"predicateType is .*verification_summary.* expected"
    ) as e:
        read_statements(vsa, [keys["gate.pub"]], SlsaProvenance)
    assert e.value.exit_code == 3
    # A misspelt field inside the provenance is refused, not ignored.
    from provenance._fs import canonical_json
    from provenance.signing import dsse

    raw = doc.to_dict()
    raw["predicate"]["runDetails"]["builder"]["idd"] = "x"
    path.write_bytes(dsse.dumps(dsse.sign(canonical_json(raw), keys["gate"])) + b"\n")
    with pytest.raises(InputError, match=r"runDetails.builder: unknown field\(s\) 'idd'"):
        read_statements(path, [keys["gate.pub"]], SlsaProvenance)


def test_arbitrary_bytes_are_refused_cleanly(keys) -> None:
    """Random or mangled envelopes end in InputError/VerificationError/UsageError, never a crash."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from provenance.errors import ProvenanceError

    good = dumps_jsonl([_vsa().sign(keys["gate"])]).strip()

    @settings(max_examples=150, deadline=None)
    @given(st.one_of(st.binary(max_size=400), st.integers(0, len(good) - 1).map(
        lambda i: good[:i] + bytes([good[i] ^ 0x01]) + good[i + 1 :]
    )))  # fmt: skip
    def run(data: bytes) -> None:
        with contextlib.suppress(ProvenanceError):
            read_statement(data, [keys["gate.pub"]], VSA_TYPE)

    run()
