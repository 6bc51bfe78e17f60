"""Timestamp-only Sigstore bundles (GitHub private repositories), verified offline.

Genuine vectors from cli/cli and sigstore-java verify against GitHub's shipped root and give the
identity their certificates prove; every tampered copy (edited here, in memory) is refused with
its reason, never accepted. Also: the exact pins of the private sigstore-python APIs used.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from provenance.errors import InputError, UsageError
from provenance.signing.sigstore._material import BundleRefused, VerifiedBundle
from provenance.signing.sigstore._roots import load_root, named_root
from provenance.signing.sigstore._tsa_only import is_tsa_only, verify_tsa_only

VECTORS = Path(__file__).parents[1] / "vectors"
GH = VECTORS / "gh"
JAVA = VECTORS / "sigstore-java" / "github-private-no-tlog"
DEMO = GH / "github_provenance_demo-0.0.12-py3-none-any-bundle.jsonl"
PUBLIC_GOOD = VECTORS / "sigstore-python" / "trusted_root.production.json"
REPO_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.12")  # Source Repository URI
ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


def first_line(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text().splitlines()[0])


def demo() -> dict[str, Any]:
    return first_line(DEMO)


def java() -> dict[str, Any]:
    return json.loads((JAVA / "attestation.sigstore.json").read_text())


def github_root() -> dict[str, Any]:
    return json.loads(Path(named_root("github")).read_text())


def san(cert: x509.Certificate) -> str:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ext.get_values_for_type(x509.UniformResourceIdentifier)[0]


def ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    raw = cert.extensions.get_extension_for_oid(oid).value.value  # type: ignore[attr-defined]
    return raw[2:].decode() if raw[:1] == b"\x0c" else raw.decode()


def refused(doc: dict[str, Any], root: Any, words: str) -> BundleRefused:
    with pytest.raises(BundleRefused) as info:
        verify_tsa_only(doc, root, source="bundle.json")
    assert words in info.value.reason, info.value.reason
    assert info.value.exit_code == 1
    return info.value


def stamps(doc: dict[str, Any]) -> list[dict[str, str]]:
    return doc["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]


def window(root: dict[str, Any], kind: str, index: int, start: str, end: str | None) -> None:
    vf: dict[str, str] = {"start": start}
    if end:
        vf["end"] = end
    root[kind][index]["validFor"] = vf


# --- genuine vectors ---------------------------------------------------------------------------


def test_gh_private_repo_attestation_verifies_with_the_github_root() -> None:
    doc = demo()
    assert is_tsa_only(doc)
    result = verify_tsa_only(doc, github_root(), source=str(DEMO))
    assert isinstance(result, VerifiedBundle)
    assert san(result.certificate) == (
        "https://github.com/actions/attest-demo/.github/workflows/build-python.yml@refs/heads/main"
    )
    assert ext(result.certificate, REPO_OID) == "https://github.com/actions/attest-demo"
    assert ext(result.certificate, ISSUER_OID) == "https://token.actions.githubusercontent.com"
    assert result.times == (datetime(2024, 4, 22, 17, 33, 26, tzinfo=timezone.utc),)
    assert result.time_source == "rfc3161" and result.sct_checked is False
    assert result.payload_type == "application/vnd.in-toto+json"
    statement = json.loads(result.payload)
    whl = (GH / "github_provenance_demo-0.0.12-py3-none-any.whl").read_bytes()
    assert statement["subject"][0]["digest"]["sha256"] == hashlib.sha256(whl).hexdigest()


def test_reusable_workflow_private_attestation_verifies_and_names_the_signer() -> None:
    result = verify_tsa_only(java(), load_root(named_root("github")))
    assert san(result.certificate) == (
        "https://github.com/neverendingsupport/slsa-attestations/.github/workflows/attest.yml"
        "@9f6d9dc1bfc02986955721eb15f89ad618f1cedb"
    )
    # The source repository differs from the signer's: a reusable workflow signed it.
    assert ext(result.certificate, REPO_OID) == (
        "https://github.com/neverendingsupport/nes-java-test-lib-a"
    )
    assert result.times == (datetime(2026, 7, 24, 15, 30, 27, tzinfo=timezone.utc),)


def test_shipped_github_root_is_the_one_gh_prints() -> None:
    gh_lines = (JAVA / "trusted_root.jsonl").read_text().splitlines()
    assert json.loads(gh_lines[1]) == github_root()
    assert "fulcio.githubapp.com" in gh_lines[1] and "tlogs" not in json.loads(gh_lines[1])


def test_named_roots() -> None:
    assert json.loads(Path(named_root("public-good")).read_text())["tlogs"]
    with pytest.raises(UsageError, match="unknown name"):
        named_root("staging")


# --- refusals: the root ------------------------------------------------------------------------


def test_public_good_root_never_accepts_a_bundle_without_a_log_entry() -> None:
    refused(demo(), json.loads(PUBLIC_GOOD.read_text()), "root lists transparency logs")


def test_github_root_plus_a_log_makes_the_same_refusal() -> None:
    root = github_root()
    root["tlogs"] = json.loads(PUBLIC_GOOD.read_text())["tlogs"]
    refused(demo(), root, "root lists transparency logs")


def test_root_without_timestamp_authorities_is_refused() -> None:
    root = github_root()
    root["timestampAuthorities"] = []
    refused(demo(), root, "no timestamp authority")


def test_root_without_certificate_authorities_is_refused() -> None:
    root = github_root()
    root["certificateAuthorities"] = []
    refused(demo(), root, "no certificate authority")


def test_root_with_ct_logs_requires_an_sct() -> None:
    """GitHub's Fulcio embeds no SCT; a root that lists CT logs demands one."""
    root = github_root()
    root["ctlogs"] = json.loads(PUBLIC_GOOD.read_text())["ctlogs"]
    refused(demo(), root, "SCT does not verify")


def test_tsa_window_excluding_the_time_is_refused() -> None:
    root = github_root()
    window(root, "timestampAuthorities", 0, "2024-05-01T00:00:00Z", "2024-06-01T00:00:00Z")
    refused(demo(), root, "outside that authority's validity window")


def test_a_timestamp_never_borrows_another_authoritys_window() -> None:
    """TOB-SIGSTORE-11: the signing TSA's window excludes genTime; another TSA's covers it."""
    root = github_root()
    window(root, "timestampAuthorities", 0, "2024-05-01T00:00:00Z", "2024-06-01T00:00:00Z")
    window(root, "timestampAuthorities", 1, "2020-01-01T00:00:00Z", None)
    refused(demo(), root, "outside that authority's validity window")


def test_chain_not_valid_at_the_timestamp_is_refused() -> None:
    root = github_root()
    window(root, "certificateAuthorities", 0, "2024-05-01T00:00:00Z", "2024-06-01T00:00:00Z")
    refused(demo(), root, "no certificate authority of the trusted root is valid at 2024-04-22")


def test_a_certificate_never_borrows_another_cas_window() -> None:
    """The issuing CA's window excludes the time; a CA that did not issue it covers it."""
    root = github_root()
    window(root, "certificateAuthorities", 0, "2024-05-01T00:00:00Z", "2024-06-01T00:00:00Z")
    window(root, "certificateAuthorities", 1, "2020-01-01T00:00:00Z", None)
    refused(demo(), root, "does not chain to a certificate authority")


# --- refusals: the bundle ----------------------------------------------------------------------


def test_bundle_without_a_timestamp_is_refused() -> None:
    doc = demo()
    del doc["verificationMaterial"]["timestampVerificationData"]
    refused(doc, github_root(), "neither a transparency-log entry nor a timestamp")


def test_timestamp_from_another_bundle_is_refused() -> None:
    doc = demo()
    stamps(doc)[0] = stamps(java())[0]
    refused(doc, github_root(), "does not verify against any timestamp authority")


def test_one_foreign_timestamp_among_good_ones_is_refused() -> None:
    doc = demo()
    stamps(doc).append(stamps(java())[0])
    refused(doc, github_root(), "timestamp #2")


def test_duplicate_timestamp_is_refused() -> None:
    doc = demo()
    stamps(doc).append(dict(stamps(doc)[0]))
    refused(doc, github_root(), "same timestamp twice")


def test_changed_signature_is_refused() -> None:
    doc = demo()
    sig = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-1] ^= 1
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    # The timestamp's message imprint is over the signature: it no longer matches.
    refused(doc, github_root(), "over this bundle's signature")


def test_changed_payload_is_refused() -> None:
    doc = demo()
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    refused(doc, github_root(), "DSSE signature does not verify")


def test_changed_payload_type_is_refused() -> None:
    doc = demo()
    doc["dsseEnvelope"]["payloadType"] = "application/json"
    refused(doc, github_root(), "DSSE signature does not verify")


def test_swapped_certificate_is_refused() -> None:
    doc = demo()
    doc["verificationMaterial"]["certificate"] = java()["verificationMaterial"]["certificate"]
    refused(doc, github_root(), "does not chain")


def test_bundle_with_a_log_entry_is_not_taken_as_timestamp_only() -> None:
    doc = demo()
    npm = json.loads((GH / "sigstore-js-2.1.0-bundle.json").read_text())
    doc["verificationMaterial"]["tlogEntries"] = npm["verificationMaterial"]["tlogEntries"]
    assert not is_tsa_only(doc)
    refused(doc, github_root(), "not a timestamp-only bundle")


# --- malformed input: InputError, exit 3 -------------------------------------------------------


def test_missing_certificate_is_invalid_input() -> None:
    """gh's `-missing-cert` vector (a public-key hint, no envelope) and the genuine bundle with
    its certificate replaced by a public-key hint: malformed input, never verified."""
    doc = first_line(GH / "github_provenance_demo-0.0.12-py3-none-any-bundle-missing-cert.jsonl")
    with pytest.raises(InputError) as info:
        verify_tsa_only(doc, github_root(), source="b.jsonl")
    assert info.value.exit_code == 3 and "b.jsonl" in str(info.value)
    doc = demo()
    doc["verificationMaterial"]["publicKey"] = {"hint": "x"}
    del doc["verificationMaterial"]["certificate"]
    with pytest.raises(InputError, match="only a public-key hint"):
        verify_tsa_only(doc, github_root(), source="b.jsonl")


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (
            lambda d: stamps(d).__setitem__(0, {"signedTimestamp": "%%%"}),
            "timestamp #1 is not base64",
        ),
        (
            lambda d: stamps(d).__setitem__(
                0, {"signedTimestamp": base64.b64encode(b"x").decode()}
            ),
            "timestamp #1 is not RFC 3161",
        ),
        (lambda d: d.__setitem__("extra", 1), "unknown field(s) in the bundle"),
        (lambda d: d["dsseEnvelope"]["signatures"].append({"sig": "AA=="}), "one signature"),
        (lambda d: d.__setitem__("mediaType", "application/x"), "unknown media type"),
        (lambda d: d["dsseEnvelope"].__setitem__("payload", 5), "DSSE payload is missing"),
    ],
)
def test_malformed_bundle_is_invalid_input(edit: Any, words: str) -> None:
    doc = demo()
    edit(doc)
    with pytest.raises(InputError) as info:
        verify_tsa_only(doc, github_root())
    assert words in str(info.value) and info.value.exit_code == 3


def test_malformed_root_is_invalid_input(tmp_path: Path) -> None:
    bad = tmp_path / "root.json"
    bad.write_text(
        '{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",'
        ' "certificateAuthorities": 3}'
    )
    with pytest.raises(InputError, match="not a Sigstore trusted root"):
        load_root(str(bad))


def test_verification_does_not_modify_its_inputs() -> None:
    doc, root = demo(), github_root()
    before = copy.deepcopy((doc, root))
    verify_tsa_only(doc, root)
    assert (doc, root) == before


# --- private APIs: exact pins ------------------------------------------------------------------


def test_pinned_private_sigstore_apis_exist() -> None:
    """_material/_tsa_only/_rekor_intoto use private sigstore-python APIs: an upgrade
    must be a deliberate change of these pins (pyproject `sigstore` extra) and of this test."""
    assert metadata.version("sigstore") == "4.5.1"
    assert metadata.version("sigstore-models") == "0.0.6"
    assert metadata.version("rfc3161-client") == "1.0.9"
    from sigstore._internal import merkle, sct
    from sigstore._internal.rekor import checkpoint
    from sigstore._internal.trust import CTKeyring, Keyring, RekorKeyring
    from sigstore.models import TransparencyLogEntry, TrustedRoot

    assert callable(merkle.verify_merkle_inclusion) and callable(checkpoint.verify_checkpoint)
    assert callable(sct.verify_sct) and callable(TransparencyLogEntry._verify_set)
    assert Keyring and CTKeyring and RekorKeyring
    root = load_root(named_root("github"))
    assert isinstance(root, TrustedRoot)
    assert root._inner.tlogs == [] and len(root._inner.timestamp_authorities) == 6
    pins = Path(__file__).parents[2].joinpath("pyproject.toml").read_text()
    for pin in ('"sigstore==4.5.1"', '"sigstore-models==0.0.6"', '"rfc3161-client==1.0.9"'):
        assert pin in pins


# --- routing and the caller's policy -----------------------------------------------------------


def test_route_sends_each_bundle_to_its_path() -> None:
    from provenance.signing.sigstore._offline import route, verify_offline

    npm = json.loads((GH / "sigstore-js-2.1.0-bundle.json").read_text())
    dsse = json.loads(
        (
            VECTORS
            / "slsa-verifier/gha_generic/v2.1.0/binary-linux-amd64-workflow_dispatch.intoto.jsonl"
        )
        .read_text()
        .splitlines()[0]
    )
    assert (route(demo()), route(npm), route(dsse)) == ("tsa-only", "intoto-0.0.2", None)
    assert verify_offline(dsse, github_root()) is None
    stripped = copy.deepcopy(npm)
    del stripped["verificationMaterial"]["tlogEntries"]
    assert route(stripped) == "tsa-only"  # a stripped entry lands where logs are required...
    with pytest.raises(BundleRefused, match="root lists transparency logs"):
        verify_offline(stripped, json.loads(PUBLIC_GOOD.read_text()))  # ...and is refused


def test_callers_sigstore_policy_is_applied_to_the_certificate() -> None:
    from sigstore.errors import VerificationError as SigstoreVerificationError
    from sigstore.verify.policy import Identity

    from provenance.signing.sigstore._offline import verify_offline

    issuer = "https://token.actions.githubusercontent.com"
    signer = (
        "https://github.com/actions/attest-demo/.github/workflows/build-python.yml@refs/heads/main"
    )
    ok = verify_offline(demo(), github_root(), policy=Identity(identity=signer, issuer=issuer))
    assert ok is not None and san(ok.certificate) == signer
    other = Identity(identity=signer.replace("attest-demo", "evil"), issuer=issuer)
    with pytest.raises(SigstoreVerificationError):
        verify_offline(demo(), github_root(), policy=other)


def _paths(node: Any, at: tuple[Any, ...] = ()) -> Any:
    if at:
        yield at
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, value in children:
        yield from _paths(value, (*at, key))


# Fields no signature covers and no check reads: a DSSE key-id hint, an absent timestamp list.
UNBOUND = {
    ("dsseEnvelope", "signatures", 0, "keyid"),
    ("verificationMaterial", "timestampVerificationData"),
}


@pytest.mark.parametrize(
    ("path", "root_name"),
    [
        (DEMO, "github"),
        (JAVA / "attestation.sigstore.json", "github"),
        (GH / "sigstore-js-2.1.0-bundle.json", "public-good"),
        (VECTORS / "sigstore-go" / "sigstore.js@2.0.0-provenance.sigstore.json", "public-good"),
    ],
)
def test_every_field_replaced_is_refused_or_left_to_sigstore(path: Path, root_name: str) -> None:
    """Each field of a genuine bundle replaced by a wrong value: a typed error (InputError or
    BundleRefused), or None (not an offline shape; sigstore-python verifies it), never a crash
    and never a pass, except for the fields nothing signs."""
    from provenance.errors import ProvenanceError
    from provenance.signing.sigstore._offline import verify_offline

    text = path.read_text()
    doc = json.loads(text if path.suffix == ".json" else text.splitlines()[0])
    root = json.loads(Path(named_root(root_name)).read_text())
    for at in list(_paths(doc)):
        for value in (None, 0, "x", [], {}):
            bad = copy.deepcopy(doc)
            parent = bad
            for key in at[:-1]:
                parent = parent[key]
            if parent[at[-1]] == value:
                continue
            parent[at[-1]] = value
            try:
                result = verify_offline(bad, root)
            except ProvenanceError:
                continue
            assert result is None or at in UNBOUND, (at, value)


def test_certificate_is_checked_at_the_verified_time_not_now() -> None:
    """The leaf lives ten minutes: valid at the timestamp, refused eleven minutes later."""
    from datetime import timedelta

    from provenance.signing.sigstore._material import parse_bundle, verify_chain_at

    parts = parse_bundle(demo())
    root = load_root(named_root("github"))
    signed = datetime(2024, 4, 22, 17, 33, 26, tzinfo=timezone.utc)
    chain = verify_chain_at(parts.certificate, root, signed)
    assert [c.subject.rfc4514_string() for c in chain] == [
        "CN=Fulcio Intermediate l2,O=GitHub\\, Inc.",
        "CN=Fulcio Intermediate l1,O=GitHub\\, Inc.",
        "CN=Internal Services Root,O=GitHub\\, Inc.",
    ]
    with pytest.raises(BundleRefused, match="does not chain"):
        verify_chain_at(parts.certificate, root, signed + timedelta(minutes=11))
